//! Sentences an agent can speak: local dates and times in the provider's zone, lists joined the
//! way people say them, and every answer on one line.

use crate::domain::{DomainError, Slot, Zone};
use chrono::{DateTime, NaiveDate, Utc};

/// How many items of a list (free times, appointments) are read out: more is hard to follow by ear.
pub const MAX_READ_OUT: usize = 5;

/// "Friday, January 15"
pub fn day(date: NaiveDate) -> String {
    date.format("%A, %B %-d").to_string()
}

/// "2:00 PM"
pub fn time(zone: &Zone, t: DateTime<Utc>) -> String {
    zone.local(t).format("%-I:%M %p").to_string()
}

/// "Friday, January 15 at 2:00 PM"
pub fn moment(zone: &Zone, t: DateTime<Utc>) -> String {
    format!("{} at {}", day(zone.local(t).date()), time(zone, t))
}

/// "a", "a or b", "a, b or c" (with `and` or `or`).
pub fn join(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

/// Slots as spoken: times of the same day share it ("Friday, January 15 at 1:30 PM or 2:30 PM").
pub fn slots(zone: &Zone, slots: &[Slot], word: &str) -> String {
    let mut by_day: Vec<(NaiveDate, Vec<String>)> = Vec::new();
    for s in slots {
        let date = zone.local(s.start()).date();
        let t = time(zone, s.start());
        match by_day.last_mut() {
            Some((d, times)) if *d == date => times.push(t),
            _ => by_day.push((date, vec![t])),
        }
    }
    let phrases: Vec<String> =
        by_day.into_iter().map(|(d, times)| format!("{} at {}", day(d), join(&times, word))).collect();
    join(&phrases, word)
}

/// Slots of several providers as spoken, each naming its provider, times of the same day sharing
/// it ("Friday, January 15 at 9:00 AM with Dr. Smith or 9:30 AM with Dr. Jones").
pub fn slots_with(slots: &[(Zone, Slot, &str)], word: &str) -> String {
    let mut by_day: Vec<(NaiveDate, Vec<String>)> = Vec::new();
    for (zone, s, name) in slots {
        let date = zone.local(s.start()).date();
        let t = format!("{} with {name}", time(zone, s.start()));
        match by_day.last_mut() {
            Some((d, times)) if *d == date => times.push(t),
            _ => by_day.push((date, vec![t])),
        }
    }
    let phrases: Vec<String> =
        by_day.into_iter().map(|(d, times)| format!("{} at {}", day(d), join(&times, word))).collect();
    join(&phrases, word)
}

/// A confirmation code spelled out so text-to-speech reads each character.
pub fn code(code: &str) -> String {
    code.chars().map(String::from).collect::<Vec<_>>().join("-")
}

/// The answer as one line: Vapi drops results that contain line breaks.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A polite sentence for a value the caller gave that cannot be used.
pub fn invalid(e: &DomainError) -> String {
    let DomainError::Invalid { field, message } = e;
    match *field {
        "appointment_date" if message.contains("future") => {
            "That date and time have already passed. Which day in the future would suit you?".into()
        }
        "appointment_date" if message.contains("days ahead") => {
            "I can only book up to a year ahead. Could you pick an earlier date?".into()
        }
        "appointment_date" | "date" => "I didn't get a valid date. Could you tell me the day again?".into(),
        "appointment_time" if message.contains("clocks change") => {
            "That time doesn't exist on that day because the clocks change. Could you pick another time?".into()
        }
        "appointment_time" => "That isn't a valid time. Could you say a time like 2:30 PM?".into(),
        "duration_minutes" => "Appointments can be between 5 minutes and 8 hours long.".into(),
        "patient_name" => "I couldn't use that name. Could you tell me your name again?".into(),
        "patient_email" => "That email address doesn't look right. Could you spell it again?".into(),
        other => format!("I couldn't use the {}: {message}.", other.replace('_', " ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_joined_as_spoken() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(join(&s(&["a"]), "or"), "a");
        assert_eq!(join(&s(&["a", "b"]), "or"), "a or b");
        assert_eq!(join(&s(&["a", "b", "c"]), "and"), "a, b and c");
    }

    #[test]
    fn times_read_in_the_zone_on_one_line() {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let t = zone
            .resolve(
                NaiveDate::from_ymd_opt(2027, 1, 15).expect("date"),
                chrono::NaiveTime::from_hms_opt(14, 0, 0).expect("t"),
            )
            .expect("instant");
        assert_eq!(moment(&zone, t), "Friday, January 15 at 2:00 PM");
        assert_eq!(one_line("a\nb\r\n  c"), "a b c");
        assert_eq!(code("AB3X7K"), "A-B-3-X-7-K");
    }
}
