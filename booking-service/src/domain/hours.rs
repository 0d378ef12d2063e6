//! A provider's weekly working hours, in local wall-clock minutes.

use super::{DomainError, Slot, Zone};
use chrono::{Datelike, NaiveDate, NaiveTime, Timelike, Weekday};
use shared::api::{self, WorkingHours};

const DAY_MINUTES: u32 = 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Opening {
    weekday: Weekday,
    start: u32,
    end: u32,
}

/// When a provider can be booked. Empty means at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyHours(Vec<Opening>);

impl WeeklyHours {
    pub fn parse(hours: &[WorkingHours]) -> Result<Self, DomainError> {
        let mut openings = Vec::with_capacity(hours.len());
        for h in hours {
            let start = minutes_of_day(&h.start, false)?;
            let end = minutes_of_day(&h.end, true)?;
            if start >= end {
                return Err(DomainError::invalid(
                    "working_hours",
                    format!("{} to {} is not a range: start must come before end", h.start, h.end),
                ));
            }
            openings.push(Opening { weekday: to_chrono(h.weekday), start, end });
        }
        openings.sort_by_key(|o| (o.weekday.num_days_from_monday(), o.start));
        Ok(Self(openings))
    }

    pub fn to_wire(&self) -> Vec<WorkingHours> {
        self.0
            .iter()
            .map(|o| WorkingHours {
                weekday: from_chrono(o.weekday),
                start: format_minutes(o.start),
                end: format_minutes(o.end),
            })
            .collect()
    }

    /// The local opening ranges (minutes after midnight) of that date.
    pub fn openings_on(&self, date: NaiveDate) -> Vec<(u32, u32)> {
        if self.0.is_empty() {
            return vec![(0, DAY_MINUTES)];
        }
        self.0.iter().filter(|o| o.weekday == date.weekday()).map(|o| (o.start, o.end)).collect()
    }

    /// Whether the whole slot lies inside one opening of its local day.
    pub fn permits(&self, zone: &Zone, slot: &Slot) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let start = zone.local(slot.start());
        let end = zone.local(slot.end());
        let day = start.date();
        let start_min = start.hour() * 60 + start.minute();
        let end_min = if end.date() == day {
            end.hour() * 60 + end.minute()
        } else if Some(end.date()) == day.succ_opt() && end.time() == NaiveTime::MIN {
            DAY_MINUTES
        } else {
            return false;
        };
        self.openings_on(day).into_iter().any(|(open, close)| open <= start_min && end_min <= close)
    }
}

fn minutes_of_day(s: &str, is_end: bool) -> Result<u32, DomainError> {
    if is_end && s.trim() == "24:00" {
        return Ok(DAY_MINUTES);
    }
    let t = super::parse_time("working_hours", s)?;
    Ok(t.hour() * 60 + t.minute())
}

fn format_minutes(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn to_chrono(d: api::Weekday) -> Weekday {
    match d {
        api::Weekday::Mon => Weekday::Mon,
        api::Weekday::Tue => Weekday::Tue,
        api::Weekday::Wed => Weekday::Wed,
        api::Weekday::Thu => Weekday::Thu,
        api::Weekday::Fri => Weekday::Fri,
        api::Weekday::Sat => Weekday::Sat,
        api::Weekday::Sun => Weekday::Sun,
    }
}

fn from_chrono(d: Weekday) -> api::Weekday {
    match d {
        Weekday::Mon => api::Weekday::Mon,
        Weekday::Tue => api::Weekday::Tue,
        Weekday::Wed => api::Weekday::Wed,
        Weekday::Thu => api::Weekday::Thu,
        Weekday::Fri => api::Weekday::Fri,
        Weekday::Sat => api::Weekday::Sat,
        Weekday::Sun => api::Weekday::Sun,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Minutes;

    fn hours(day: api::Weekday, start: &str, end: &str) -> WorkingHours {
        WorkingHours { weekday: day, start: start.into(), end: end.into() }
    }

    #[test]
    fn a_slot_must_fit_inside_one_opening_of_its_local_day() {
        let zone = Zone::parse("tz", "Europe/Berlin").expect("zone");
        let week = WeeklyHours::parse(&[hours(api::Weekday::Fri, "09:00", "17:00")]).expect("hours");
        let friday = NaiveDate::from_ymd_opt(2027, 1, 15).expect("date");
        let at = |h, m| zone.resolve(friday, NaiveTime::from_hms_opt(h, m, 0).expect("t")).expect("i");
        let half_hour = Minutes::parse("m", 30).expect("m");
        assert!(week.permits(&zone, &Slot::new(at(9, 0), half_hour)));
        assert!(week.permits(&zone, &Slot::new(at(16, 30), half_hour)));
        assert!(!week.permits(&zone, &Slot::new(at(16, 45), half_hour)));
        assert!(!week.permits(&zone, &Slot::new(at(8, 45), half_hour)));
        let saturday = friday.succ_opt().expect("date");
        let sat = zone.resolve(saturday, NaiveTime::from_hms_opt(10, 0, 0).expect("t")).expect("i");
        assert!(!week.permits(&zone, &Slot::new(sat, half_hour)));
    }

    #[test]
    fn reversed_or_malformed_hours_are_refused() {
        assert!(WeeklyHours::parse(&[hours(api::Weekday::Mon, "17:00", "09:00")]).is_err());
        assert!(WeeklyHours::parse(&[hours(api::Weekday::Mon, "9am", "17:00")]).is_err());
        assert!(WeeklyHours::parse(&[hours(api::Weekday::Mon, "20:00", "24:00")]).is_ok());
    }
}
