//! Times as people and models say them. The definitions ask for `HH:MM`, but models pass on what
//! the caller said often enough that refusing "2 PM" would fail real calls.

use super::arguments::{required, text};
use super::refusal::Refusal;
use super::speech;
use super::spoken_date::{self, PartOfDay};
use crate::domain::Zone;
use crate::store::Provider;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;

/// The local day and time a booking or a move is for, as the model sent them.
#[derive(Debug, Deserialize)]
pub struct SpokenStart {
    #[serde(default, deserialize_with = "text")]
    appointment_date: Option<String>,
    #[serde(default, deserialize_with = "text")]
    appointment_time: Option<String>,
    /// The part of the day asked about besides the day's words ("evening"), for a time said
    /// without AM or PM; before the day's words, as `time_window` is.
    #[serde(skip)]
    part: Option<PartOfDay>,
}

impl SpokenStart {
    /// A day and a time as said, from a tool that names them otherwise, in `part` of the day
    /// when one is given (else the day's words say it, if they do).
    pub fn new(appointment_date: String, appointment_time: String, part: Option<PartOfDay>) -> Self {
        Self { appointment_date: Some(appointment_date), appointment_time: Some(appointment_time), part }
    }

    /// The day, resolved against today in `zone` at `now`, and the time as `HH:MM` where it can be
    /// read so; or the question for the first one missing, or why the day or the time cannot be.
    /// `provider`: whose clock `zone` is, named in what is said of it.
    pub fn read(
        self,
        (zone, provider): (&Zone, Option<&Provider>),
        now: DateTime<Utc>,
        ask_day: &str,
        ask_time: &str,
    ) -> Result<(NaiveDate, String), Refusal> {
        let said = required(self.appointment_date, ask_day)?;
        let part = self.part.or_else(|| spoken_date::part_of_day(&said));
        let said_time = in_part(required(self.appointment_time, ask_time)?, part);
        if let Some(question) = morning_or_afternoon(&said_time) {
            return Err(Refusal::spoken(question));
        }
        let time = normalize_time(&said_time);
        let date = spoken_date::resolve(&said, zone.local(now).date()).map_err(|e| Refusal::spoken(e.spoken()))?;
        let start = NaiveTime::parse_from_str(&time, "%H:%M").ok().and_then(|t| zone.instant(date.and_time(t)));
        if start.is_some_and(|start| start <= now) {
            let local = zone.local(now);
            return Err(Refusal::spoken(format!(
                "That time has already passed: it is now {}. Which later time would suit you?",
                speech::local_moment(local.date(), local.time(), provider)
            )));
        }
        Ok((date, time))
    }
}

/// A time said with a part of the day ("Tuesday evening", "7:30"): one to eleven o'clock without
/// AM or PM is of that half of the day. A zero-padded hour ("07:30") is meant as written.
fn in_part(said: String, part: Option<PartOfDay>) -> String {
    let Some(part) = part else { return said };
    let hour = said.trim().split(':').next().unwrap_or_default();
    let bare = hour.parse::<u32>().is_ok_and(|h| (1..=11).contains(&h)) && !hour.starts_with('0');
    let clock_only = said.trim().chars().all(|c| c.is_ascii_digit() || c == ':');
    if !(bare && clock_only) {
        return said;
    }
    format!("{} {}", said.trim(), if part == PartOfDay::Morning { "am" } else { "pm" })
}

/// The question to ask of a time that could be either half of the day: an hour alone ("2"), or
/// one to six o'clock with minutes but without AM or PM ("2:30", which a model writes for "two
/// thirty" and which would read as 02:30), with or without seconds ("2:30:00"). A zero-padded
/// "02:30" or an hour past six is meant as written.
fn morning_or_afternoon(said: &str) -> Option<String> {
    let said = said.trim();
    let said = said.strip_suffix(":00").filter(|clock| clock.contains(':')).unwrap_or(said);
    let (hour, minutes) = said.split_once(':').map_or((said, None), |(h, m)| (h, Some(m)));
    let hour: u32 = hour.parse().ok().filter(|_| !hour.starts_with('0'))?;
    let ambiguous = match minutes {
        None => (1..=11).contains(&hour),
        Some(m) => (1..=6).contains(&hour) && m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()),
    };
    ambiguous.then(|| {
        let at = minutes.map_or_else(|| hour.to_string(), |m| format!("{hour}:{m}"));
        format!("Did you mean {at} in the morning or in the afternoon? Please say it with AM or PM.")
    })
}

/// Reads the times people and models say ("2 PM", "2:30pm", "noon", "14:00", "9:00") as `HH:MM`;
/// anything else is passed on unchanged for the domain to refuse.
pub fn normalize_time(s: &str) -> String {
    let lower = s.trim().to_lowercase().replace('.', "");
    if matches!(lower.as_str(), "noon" | "12 noon" | "midday" | "12 midday") {
        return "12:00".into();
    }
    if matches!(lower.as_str(), "midnight" | "12 midnight") {
        return "00:00".into();
    }
    let (clock, meridiem) = if let Some(c) = lower.strip_suffix("am") {
        (c.trim(), Some(false))
    } else if let Some(c) = lower.strip_suffix("pm") {
        (c.trim(), Some(true))
    } else {
        (lower.as_str(), None)
    };
    let mut parts = clock.split(':');
    let (Some(h), m, s_part, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return s.to_owned();
    };
    let (Ok(mut hour), Ok(minute)) = (h.trim().parse::<u32>(), m.map_or(Ok(0), |m| m.trim().parse::<u32>())) else {
        return s.to_owned();
    };
    if s_part.is_some_and(|sec| sec.trim() != "00") || m.is_some_and(|m| m.trim().len() != 2) {
        return s.to_owned();
    }
    match meridiem {
        Some(pm) if (1..=12).contains(&hour) => hour = hour % 12 + if pm { 12 } else { 0 },
        Some(_) => return s.to_owned(),
        None if m.is_none() => return s.to_owned(),
        None => {}
    }
    format!("{hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_times_become_24_hour_clock_times() {
        for (said, meant) in [
            ("2 PM", "14:00"),
            ("2:30pm", "14:30"),
            ("12 am", "00:00"),
            ("12:15 PM", "12:15"),
            ("9:00", "09:00"),
            ("14:00", "14:00"),
            ("14:00:00", "14:00"),
            ("9 a.m.", "09:00"),
            ("Noon", "12:00"),
            ("12 noon", "12:00"),
            ("midday", "12:00"),
            ("11:45 AM", "11:45"),
            ("midnight", "00:00"),
        ] {
            assert_eq!(normalize_time(said), meant, "{said}");
        }
        for unusable in ["25:99", "13 pm", "afternoon", "2", "14:5", "0 am"] {
            assert!(crate::domain::parse_time("t", &normalize_time(unusable)).is_err(), "{unusable}");
        }
    }

    /// The part of the day said with the day settles a bare hour: "Tuesday evening" at "7:30" is
    /// 19:30, "tomorrow morning" at "9" 09:00; what says its half, or is zero-padded, is as said.
    #[test]
    fn the_part_of_the_day_said_with_the_day_settles_the_half() {
        for (time, part, meant) in [
            ("7:30", Some(PartOfDay::Evening), "19:30"),
            ("2", Some(PartOfDay::Afternoon), "14:00"),
            ("9", Some(PartOfDay::Morning), "09:00"),
            ("11:15", Some(PartOfDay::Morning), "11:15"),
            ("7:30 am", Some(PartOfDay::Evening), "07:30"),
            ("07:30", Some(PartOfDay::Evening), "07:30"),
            ("19:30", Some(PartOfDay::Evening), "19:30"),
            ("12:30", Some(PartOfDay::Afternoon), "12:30"),
            ("noon", Some(PartOfDay::Afternoon), "12:00"),
        ] {
            let read = in_part(time.into(), part);
            assert_eq!(morning_or_afternoon(&read), None, "{time} {part:?}: not asked");
            assert_eq!(normalize_time(&read), meant, "{time} {part:?}");
        }
        assert_eq!(in_part("7:30".into(), None), "7:30");
    }

    #[test]
    fn a_time_of_either_half_of_the_day_is_asked_about() {
        for said in ["2", "2:30", " 6:45 ", "11", "1:00"] {
            let asked = morning_or_afternoon(said).unwrap_or_else(|| panic!("{said} is not asked about"));
            assert!(asked.contains(said.trim()) && asked.contains("AM or PM"), "{asked}");
        }
        for (said, asked_as) in [("2:30:00", "2:30"), ("1:00:00", "1:00")] {
            let asked = morning_or_afternoon(said).unwrap_or_else(|| panic!("{said} is not asked about"));
            assert!(asked.contains(&format!("{asked_as} in the morning")), "{asked}");
        }
        for meant in [
            "02:30", "7:30", "9:00", "14:00", "12", "2 PM", "2:30 pm", "noon", "0", "13", "2:3", "02:30:00", "14:00:00",
        ] {
            assert_eq!(morning_or_afternoon(meant), None, "{meant}");
        }
    }
}
