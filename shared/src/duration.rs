//! Durations as the test tools' flags take them: a number and a unit (`ms`, `s`, `m`, `h` or
//! `d`; seconds when there is none), within the range each flag allows.

use std::ops::RangeInclusive;
use std::time::Duration;

/// `s` read as a duration in `range`; the error says what was wrong, for clap to print.
pub fn parse(s: &str, range: RangeInclusive<Duration>) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let value: f64 =
        number.trim().parse().map_err(|_| format!("`{s}` is not a duration: a number and ms, s, m, h or d"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(format!("`{s}`: use the unit ms, s, m, h or d")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if range.contains(&d) => Ok(d),
        _ => Err(format!("`{s}` must be between {} and {}", show(*range.start()), show(*range.end()))),
    }
}

/// `seconds` as a duration, whatever a service or a scrape sent: a negative or NaN figure is
/// none, one past what a `Duration` holds is the longest (`from_secs_f64` would panic on either).
pub fn seconds(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

/// `d` in the largest unit that writes it whole.
fn show(d: Duration) -> String {
    let ms = d.as_millis();
    [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        .into_iter()
        .find(|&(_, unit)| ms >= unit && ms.is_multiple_of(unit))
        .map_or_else(|| format!("{ms}ms"), |(name, unit)| format!("{}{name}", ms / unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_a_duration_cannot_hold_are_none_or_the_longest() {
        assert_eq!(seconds(1.5), Duration::from_millis(1500));
        assert_eq!((seconds(-3.0), seconds(f64::NAN)), (Duration::ZERO, Duration::ZERO));
        assert_eq!((seconds(1e300), seconds(f64::INFINITY)), (Duration::MAX, Duration::MAX));
    }

    const ANY: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(366 * 86_400);

    #[test]
    fn each_unit_is_read_and_a_bare_number_is_seconds() {
        assert_eq!(parse("250ms", ANY), Ok(Duration::from_millis(250)));
        assert_eq!(parse("90s", ANY), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s", ANY), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("15m", ANY), Ok(Duration::from_secs(900)));
        assert_eq!(parse("24h", ANY), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("7d", ANY), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse(" 3 ", ANY), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn what_is_not_a_duration_in_range_is_refused_with_the_range() {
        for bad in ["h", "5 parsecs", "nan", "inf", "-1s", "", "2w"] {
            assert!(parse(bad, ANY).is_err(), "{bad}");
        }
        let hour = Duration::from_millis(1)..=Duration::from_secs(3600);
        assert_eq!(parse("0s", hour.clone()), Err("`0s` must be between 1ms and 1h".into()));
        assert!(parse("0.0001ms", hour.clone()).is_err());
        assert_eq!(parse("3h", hour.clone()), Err("`3h` must be between 1ms and 1h".into()));
        assert_eq!(parse("1h", hour), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1000d", ANY), Err("`1000d` must be between 1ms and 366d".into()));
    }
}
