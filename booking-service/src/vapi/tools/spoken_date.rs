//! Days as callers and models say them, read against the local `today` of the provider (or the
//! clinic): `2027-01-15`, `today`, `tomorrow`, `the day after tomorrow`, a weekday (`friday`, `this
//! friday`, `next friday`, `on fri`: the nearest such day after today), `in 3 days`, `in two
//! weeks`, and a month and day without a year (`January 15`, `15 Jan`, `Friday, January 15`: the
//! next such date from today, unless its last one passed within 90 days: refused as past). Models
//! left to themselves write dates of years gone by, so the words are resolved here, where the
//! clinic's date is known, and a past date is refused saying today's.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Timelike, Weekday};

/// A part of the day, in the provider's local time: said with a day ("Tuesday morning"), given as
/// the availability tool's time window, and settling the half of the day of a bare hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartOfDay {
    /// Before 12:00.
    Morning,
    /// 12:00 to 17:00.
    Afternoon,
    /// From 17:00.
    Evening,
}

impl PartOfDay {
    /// The part one word names: "morning", "afternoon", "evening" ("night" and "tonight" are the
    /// evening).
    pub fn named(word: &str) -> Option<Self> {
        match word {
            "morning" => Some(Self::Morning),
            "afternoon" => Some(Self::Afternoon),
            "evening" | "night" | "tonight" => Some(Self::Evening),
            _ => None,
        }
    }

    pub fn holds(self, local: NaiveTime) -> bool {
        let minute = local.hour() * 60 + local.minute();
        match self {
            Self::Morning => minute < 12 * 60,
            Self::Afternoon => (12 * 60..17 * 60).contains(&minute),
            Self::Evening => minute >= 17 * 60,
        }
    }

    /// " in the morning", or nothing for no part.
    pub fn phrase(part: Option<Self>) -> &'static str {
        match part {
            None => "",
            Some(Self::Morning) => " in the morning",
            Some(Self::Afternoon) => " in the afternoon",
            Some(Self::Evening) => " in the evening",
        }
    }
}

/// Why a spoken day cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateError {
    /// No reading fits the words.
    Unreadable,
    /// A real day, before today.
    Past { date: NaiveDate, today: NaiveDate },
    /// A month and day with a weekday that is not theirs ("Friday, January 14").
    WrongWeekday { date: NaiveDate, said: Weekday },
}

impl DateError {
    /// What the caller hears.
    pub fn spoken(&self) -> String {
        match self {
            Self::Unreadable => {
                "I didn't get which day you mean. Could you say it like tomorrow, Friday or January 15?".into()
            }
            Self::Past { today, .. } => {
                format!("That day has already passed: today is {}. Which day would you like?", with_year(*today))
            }
            Self::WrongWeekday { date, said } => format!(
                "{} is a {}, not a {}. Which day did you mean?",
                date.format("%B %-d"),
                date.format("%A"),
                weekday_name(*said)
            ),
        }
    }
}

/// "Friday, January 15, 2027"
pub fn with_year(date: NaiveDate) -> String {
    date.format("%A, %B %-d, %Y").to_string()
}

/// The day `said` means when today is `today`; never before today. A part of the day said with
/// it ("tuesday morning", "tomorrow afternoon", "tonight") is left for [`part_of_day`].
pub fn resolve(said: &str, today: NaiveDate) -> Result<NaiveDate, DateError> {
    let (day, _) = split_part(said);
    let date = read(&day, today).ok_or(DateError::Unreadable)?;
    let date = date?;
    if date < today {
        return Err(DateError::Past { date, today });
    }
    Ok(date)
}

/// The part of the day said with the day.
pub fn part_of_day(said: &str) -> Option<PartOfDay> {
    split_part(said).1
}

/// The day's words without a part of the day said after them ("tuesday in the morning": "tuesday";
/// "this afternoon" and "tonight": "today"), and that part.
fn split_part(said: &str) -> (String, Option<PartOfDay>) {
    let lower = said.trim().to_lowercase();
    let mut words: Vec<&str> = lower.split_whitespace().collect();
    let Some(part) = words.last().copied().and_then(PartOfDay::named) else {
        return (said.to_owned(), None);
    };
    let tonight = words.pop() == Some("tonight");
    while matches!(words.last(), Some(&("in" | "the" | "at"))) {
        words.pop();
    }
    // "This afternoon", "tonight": today. A part alone ("morning") names no day.
    let day = if words == ["this"] || (tonight && words.is_empty()) { "today".to_owned() } else { words.join(" ") };
    (day, Some(part))
}

/// The date the words name, or `None` when no reading fits.
fn read(said: &str, today: NaiveDate) -> Option<Result<NaiveDate, DateError>> {
    let trimmed = said.trim();
    if trimmed.len() == 10 {
        if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
            return Some(Ok(date));
        }
    }
    let lower = trimmed.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.')
        .filter(|w| !w.is_empty() && !["on", "the", "of"].contains(w))
        .collect();
    let day = |n: i64| Some(Ok(today + Duration::days(n)));
    match words.as_slice() {
        ["today"] | ["now"] => day(0),
        ["tomorrow"] => day(1),
        ["day", "after", "tomorrow"] => day(2),
        ["in", n, unit] => {
            let n = i64::from(number(n)?);
            match *unit {
                "day" | "days" => day(n),
                "week" | "weeks" => day(7 * n),
                _ => None,
            }
        }
        ["this" | "next" | "coming", name] | [name] if weekday(name).is_some() => {
            Some(Ok(next_weekday(today, weekday(name)?)))
        }
        [name, rest @ ..] if weekday(name).is_some() && !rest.is_empty() => {
            let said = weekday(name)?;
            let date = match month_day(rest, today)? {
                Ok(date) => date,
                Err(e) => return Some(Err(e)),
            };
            Some(if date.weekday() == said { Ok(date) } else { Err(DateError::WrongWeekday { date, said }) })
        }
        other => month_day(other, today),
    }
}

/// How far back a month and day without a year is taken as a day gone by, not next year's.
const RECENTLY_PAST_DAYS: i64 = 90;

/// "January 15", "15 January", "Jan 15th", with an optional year: the next such date from today
/// when no year is said (unless its last one, this year's or last year's, passed within
/// [`RECENTLY_PAST_DAYS`]: "December 15" said on March 1 is refused, not taken as nine months
/// away). "The 15th"
/// alone: the next date with that day of the month (this month's while it is still ahead; a month
/// without a 31st is passed over).
fn month_day(words: &[&str], today: NaiveDate) -> Option<Result<NaiveDate, DateError>> {
    if let [d] = words {
        let day = ordinal(d).filter(|_| d.ends_with(|c: char| c.is_ascii_alphabetic()))?;
        let first = today.with_day(1)?;
        return (0..12)
            .filter_map(|k| first.checked_add_months(chrono::Months::new(k))?.with_day(day))
            .find(|date| *date >= today)
            .map(Ok);
    }
    let (month, day, year) = match words {
        [m, d] if month(m).is_some() => (month(m)?, ordinal(d)?, None),
        [d, m] if month(m).is_some() => (month(m)?, ordinal(d)?, None),
        [m, d, y] if month(m).is_some() => (month(m)?, ordinal(d)?, Some(y.parse::<i32>().ok()?)),
        [d, m, y] if month(m).is_some() => (month(m)?, ordinal(d)?, Some(y.parse::<i32>().ok()?)),
        _ => return None,
    };
    if let Some(year) = year {
        // A year of four digits, as every date the API takes has.
        return (1000..=9999).contains(&year).then(|| NaiveDate::from_ymd_opt(year, month, day).map(Ok)).flatten();
    }
    // Gone within the last 90 days (this year's, or last year's early in the year): the caller
    // misspoke or was misheard, and next year's, said back without its year, would sound like a
    // date days away. Else the next such date: February 29 may be a few years away, any other is
    // this year's or next year's.
    for year in [today.year(), today.year() - 1] {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            if date < today && today - date <= Duration::days(RECENTLY_PAST_DAYS) {
                return Some(Err(DateError::Past { date, today }));
            }
        }
    }
    (today.year()..=today.year() + 8)
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .find(|d| *d >= today)
        .map(Ok)
}

/// The nearest day after `today` that falls on `weekday` (a week ahead when today is one).
fn next_weekday(today: NaiveDate, weekday: Weekday) -> NaiveDate {
    let ahead = (7 + weekday.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
    today + Duration::days(if ahead == 0 { 7 } else { i64::from(ahead) })
}

fn weekday(word: &str) -> Option<Weekday> {
    let word = word.strip_suffix("s").filter(|w| w.ends_with("day")).unwrap_or(word);
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn month(word: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let word = word.strip_suffix('.').unwrap_or(word);
    if word.len() < 3 {
        return None;
    }
    MONTHS.iter().position(|m| m.starts_with(word) && (word.len() == m.len() || word.len() <= 4)).map(|i| i as u32 + 1)
}

/// "15", "15th", "1st", "22nd", "3rd".
fn ordinal(word: &str) -> Option<u32> {
    let digits = ["st", "nd", "rd", "th"].iter().find_map(|s| word.strip_suffix(s)).unwrap_or(word);
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

/// A count of days or weeks, in digits or words: "3", "three", "a".
fn number(word: &str) -> Option<u32> {
    const WORDS: [&str; 15] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen",
    ];
    if word == "a" || word == "an" {
        return Some(1);
    }
    let n = word.parse().ok().or_else(|| WORDS.iter().position(|w| *w == word).map(|i| i as u32))?;
    // A year ahead is as far as anything can be booked.
    (n <= 400).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn words_for_days_count_from_today() {
        // Sunday, January 31, 2027: a month's (and a week's) last day.
        let today = d("2027-01-31");
        for (said, meant) in [
            ("2027-02-03", "2027-02-03"),
            (" today ", "2027-01-31"),
            ("Tomorrow", "2027-02-01"),
            ("the day after tomorrow", "2027-02-02"),
            ("in 3 days", "2027-02-03"),
            ("in three days", "2027-02-03"),
            ("in a day", "2027-02-01"),
            ("in 2 weeks", "2027-02-14"),
            ("friday", "2027-02-05"),
            ("this Friday", "2027-02-05"),
            ("next friday", "2027-02-05"),
            ("on Fri", "2027-02-05"),
            ("monday", "2027-02-01"),
            ("Sunday", "2027-02-07"),
            ("next sunday", "2027-02-07"),
            ("February 3", "2027-02-03"),
            ("3rd of February", "2027-02-03"),
            ("Feb 3rd", "2027-02-03"),
            ("Wednesday, February 3", "2027-02-03"),
            ("January 31", "2027-01-31"),
            ("October 15", "2027-10-15"),
            ("November 1", "2027-11-01"),
            ("February 29", "2028-02-29"),
            ("March 1, 2027", "2027-03-01"),
            ("the 31st", "2027-01-31"),
            ("on the 3rd", "2027-02-03"),
            ("the 30th", "2027-03-30"),
            ("Wednesday the 3rd", "2027-02-03"),
        ] {
            assert_eq!(resolve(said, today), Ok(d(meant)), "{said}");
        }
    }

    /// A part of the day said with the day is no part of the day's name: "tuesday morning" is
    /// Tuesday, "this afternoon" and "tonight" today; the part is kept for the time window.
    #[test]
    fn a_part_of_the_day_said_with_it_is_left_aside() {
        let today = d("2027-01-31");
        for (said, meant, part) in [
            ("Tuesday morning", "2027-02-02", PartOfDay::Morning),
            ("tuesday in the morning", "2027-02-02", PartOfDay::Morning),
            ("tomorrow afternoon", "2027-02-01", PartOfDay::Afternoon),
            ("this afternoon", "2027-01-31", PartOfDay::Afternoon),
            ("this evening", "2027-01-31", PartOfDay::Evening),
            ("tonight", "2027-01-31", PartOfDay::Evening),
            ("Friday night", "2027-02-05", PartOfDay::Evening),
            ("February 3 in the evening", "2027-02-03", PartOfDay::Evening),
        ] {
            assert_eq!((resolve(said, today), part_of_day(said)), (Ok(d(meant)), Some(part)), "{said}");
        }
        assert_eq!(part_of_day("tuesday"), None);
        assert_eq!(resolve("morning", today), Err(DateError::Unreadable), "no day said");
    }

    #[test]
    fn a_weekday_named_on_that_weekday_means_next_weeks() {
        let friday = d("2027-01-15");
        assert_eq!(friday.weekday(), Weekday::Fri);
        for said in ["friday", "this friday", "next friday", "Fridays"] {
            assert_eq!(resolve(said, friday), Ok(d("2027-01-22")), "{said}");
        }
        assert_eq!(resolve("saturday", friday), Ok(d("2027-01-16")));
        assert_eq!(resolve("thursday", friday), Ok(d("2027-01-21")));
    }

    #[test]
    fn past_days_are_refused_saying_today() {
        let today = d("2026-12-03");
        let err = resolve("2024-12-05", today).expect_err("past");
        assert_eq!(err, DateError::Past { date: d("2024-12-05"), today });
        assert!(err.spoken().contains("today is Thursday, December 3, 2026"), "{}", err.spoken());
        assert!(resolve("December 2, 2026", today).is_err());
        // A month and day a few weeks gone is refused, not taken as next year's.
        assert_eq!(resolve("December 2", today), Err(DateError::Past { date: d("2026-12-02"), today }));
        assert_eq!(resolve("September 5", today), Err(DateError::Past { date: d("2026-09-05"), today }));
        assert_eq!(resolve("September 3", today), Ok(d("2027-09-03")), "91 days gone: next year's");
        let new_year = d("2027-01-05");
        assert_eq!(resolve("December 28", new_year), Err(DateError::Past { date: d("2026-12-28"), today: new_year }));
        let spring = d("2027-03-01");
        assert_eq!(resolve("December 15", spring), Err(DateError::Past { date: d("2026-12-15"), today: spring }));
        assert_eq!(resolve("November 30", spring), Ok(d("2027-11-30")), "91 days gone: this year's");
        assert_eq!(
            resolve("January 30", d("2027-01-31")),
            Err(DateError::Past { date: d("2027-01-30"), today: d("2027-01-31") })
        );
        assert_eq!(resolve("2026-12-03", today), Ok(today));
    }

    #[test]
    fn a_day_of_the_month_alone_needs_its_ordinal() {
        let today = d("2027-01-31");
        assert_eq!(resolve("the 15", today).ok(), None, "a bare number is no day");
        assert_eq!(resolve("the 32nd", today).ok(), None);
        let err = resolve("Friday the 3rd", today).expect_err("a Wednesday");
        assert!(err.spoken().starts_with("February 3 is a Wednesday, not a Friday"), "{}", err.spoken());
    }

    #[test]
    fn a_weekday_that_is_not_the_dates_own_is_questioned() {
        let err = resolve("Friday, February 4", d("2027-01-31")).expect_err("a Thursday");
        assert!(err.spoken().starts_with("February 4 is a Thursday, not a Friday"), "{}", err.spoken());
    }

    #[test]
    fn anything_else_is_unreadable() {
        for said in [
            "",
            "someday",
            "2027-13-01",
            "2027-1-5",
            "in many days",
            "in 3 fortnights",
            "next",
            "February 30",
            "frid",
            "December 31 262142",
            "Friday December 31 99999",
        ] {
            assert_eq!(resolve(said, d("2027-01-31")), Err(DateError::Unreadable), "{said}");
        }
    }
}
