//! Sentences an agent can speak: local dates and times in the provider's zone, lists joined the
//! way people say them, and every answer on one line.

use crate::domain::{sentence, DomainError, Slot, WeeklyHours, Zone};
use crate::store::Provider;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// How many items of a list (free times, appointments) are read out: more is hard to follow by ear.
pub const MAX_READ_OUT: usize = 5;

/// "Friday, January 15"
pub fn day(date: NaiveDate) -> String {
    date.format("%A, %B %-d").to_string()
}

/// "2:00 PM"
fn time(zone: &Zone, t: DateTime<Utc>) -> String {
    zone.local(t).format("%-I:%M %p").to_string()
}

/// "Friday, January 15 at 2:00 PM": an instant in the provider's zone, named when it is one of
/// its own ([`named`]).
pub fn moment(provider: &Provider, t: DateTime<Utc>) -> String {
    let local = provider.zone().local(t);
    local_moment(local.date(), local.time(), Some(provider))
}

/// "Friday, January 15 at 2:00 PM" for a local day and time: of `provider`'s clock when one is
/// given, its zone then named like every time of its ([`named`]).
pub fn local_moment(date: NaiveDate, at: NaiveTime, provider: Option<&Provider>) -> String {
    format!("{} at {}{}", day(date), at.format("%-I:%M %p"), provider.map(zone_note).unwrap_or_default())
}

/// A provider's name, and its zone when it keeps one other than its clinic's: "Dr. Kai (Honolulu
/// time)". The tools read and say such a provider's times in that zone, which a caller at the
/// clinic would otherwise take for the clinic's: every time of its that is spoken names it.
pub fn named(provider: &Provider) -> String {
    format!("{}{}", provider.name, zone_note(provider))
}

/// " (Honolulu time)" for a provider keeping a zone other than its clinic's, else empty.
fn zone_note(provider: &Provider) -> String {
    match provider.other_zone() {
        Some(zone) => {
            let place = zone.name().rsplit('/').next().unwrap_or_default().replace('_', " ");
            format!(" ({place} time)")
        }
        None => String::new(),
    }
}

/// "a", "a or b", "a, b or c" (with `and` or `or`).
pub fn join(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

/// Free slots as spoken, in the order given, each in its provider's zone, those of one day
/// sharing it: of one provider by time alone, its zone named once at the end ("Friday, January 15
/// at 1:30 PM or 2:30 PM (Honolulu time)"); of several, each naming its provider ("Friday,
/// January 15 at 9:00 AM with Dr. Smith or 9:30 AM with Dr. Kai (Honolulu time)").
pub fn slots(slots: &[(&Provider, Slot)], one_provider: bool, word: &str) -> String {
    let mut days: Vec<(NaiveDate, Vec<String>)> = Vec::new();
    for (provider, slot) in slots {
        let (date, t) = (provider.zone().local(slot.start()).date(), said_time(provider, slot, one_provider));
        match days.last_mut() {
            Some((d, same_day)) if *d == date => same_day.push(t),
            _ => days.push((date, vec![t])),
        }
    }
    let phrases: Vec<String> =
        days.into_iter().map(|(d, times)| format!("{} at {}", day(d), join(&times, word))).collect();
    format!("{}{}", join(&phrases, word), one_note(slots, one_provider))
}

/// Free slots of one day as spoken, without the day: "1:30 PM or 2:30 PM", as [`slots`] says them.
pub fn times(slots: &[(&Provider, Slot)], one_provider: bool, word: &str) -> String {
    let times: Vec<String> = slots.iter().map(|(p, s)| said_time(p, s, one_provider)).collect();
    format!("{}{}", join(&times, word), one_note(slots, one_provider))
}

/// One slot's time, naming its provider among several.
fn said_time(provider: &Provider, slot: &Slot, one_provider: bool) -> String {
    let t = time(&provider.zone(), slot.start());
    if one_provider {
        t
    } else {
        format!("{t} with {}", named(provider))
    }
}

/// One provider's zone, said once after all its times.
fn one_note(slots: &[(&Provider, Slot)], one_provider: bool) -> String {
    slots.first().filter(|_| one_provider).map(|(p, _)| zone_note(p)).unwrap_or_default()
}

/// "9 AM", "5:30 PM", "noon", "midnight": minutes after midnight as said aloud.
fn clock(minutes: u32) -> String {
    match minutes {
        0 | 1440 => "midnight".into(),
        720 => "noon".into(),
        m => {
            let (h, min) = (m / 60, m % 60);
            let (h12, half) = (if h % 12 == 0 { 12 } else { h % 12 }, if h < 12 { "AM" } else { "PM" });
            if min == 0 {
                format!("{h12} {half}")
            } else {
                format!("{h12}:{min:02} {half}")
            }
        }
    }
}

/// The clinic's opening hours in one line, from the working hours of its active providers who
/// keep the clinic's clock: a provider in another zone (one working remotely) keeps hours that
/// are not the clinic's.
pub fn clinic_hours<'a>(providers: impl IntoIterator<Item = &'a Provider>, clinic: &Zone) -> String {
    let hours: Vec<&WeeklyHours> =
        providers.into_iter().filter(|p| p.active && p.zone() == *clinic).map(|p| &p.hours).collect();
    opening_hours(&hours)
}

/// Opening hours in one line, from providers' working hours: each weekday from
/// the earliest start to the latest end among them (a provider without hours is open all day),
/// runs of days with the same hours said once: "Monday to Friday 9 AM to 5 PM, Saturday 9 AM to
/// noon; closed Sunday".
pub fn opening_hours(providers: &[&WeeklyHours]) -> String {
    // 2024-01-01 is a Monday: a week to read each weekday's openings from.
    let monday = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default();
    let days: Vec<(NaiveDate, Option<(u32, u32)>)> = monday
        .iter_days()
        .take(7)
        .map(|date| {
            let spans = providers.iter().flat_map(|h| h.openings_on(date));
            let span = spans.fold(None, |acc: Option<(u32, u32)>, (start, end)| match acc {
                None => Some((start, end)),
                Some((s, e)) => Some((s.min(start), e.max(end))),
            });
            (date, span)
        })
        .collect();
    let name = |d: NaiveDate| d.format("%A").to_string();
    let mut open: Vec<String> = Vec::new();
    let mut closed: Vec<String> = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let (first, span) = days[i];
        let mut j = i;
        while j + 1 < days.len() && days[j + 1].1 == span {
            j += 1;
        }
        let which = match j - i {
            0 => name(first),
            1 => format!("{} and {}", name(first), name(days[j].0)),
            _ => format!("{} to {}", name(first), name(days[j].0)),
        };
        match span {
            Some((0, 1440)) => open.push(format!("{which} all day")),
            Some((start, end)) => open.push(format!("{which} {} to {}", clock(start), clock(end))),
            None => closed.push(which),
        }
        i = j + 1;
    }
    match (open.is_empty(), closed.is_empty()) {
        (true, _) => "No opening hours are set yet".into(),
        (false, true) => open.join(", "),
        (false, false) => format!("{}; closed {}", open.join(", "), join(&closed, "and")),
    }
}

/// The variables an assistant is started with (Vapi's `variableValues`): the clinic's name and
/// zone, and its local date, weekday and time now, so the model never has to guess today.
pub fn assistant_variables(
    clinic_name: &str,
    zone: &Zone,
    now: DateTime<Utc>,
    opening_hours: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let local = zone.local(now);
    let mut vars = serde_json::Map::new();
    for (key, value) in [
        ("clinic_name", clinic_name.to_owned()),
        ("timezone", zone.name().to_owned()),
        ("today", local.date().format("%Y-%m-%d").to_string()),
        ("weekday", local.format("%A").to_string()),
        ("now", local.format("%H:%M").to_string()),
        ("opening_hours", opening_hours.to_owned()),
    ] {
        vars.insert(key.into(), value.into());
    }
    vars
}

/// A name with its indefinite article, chosen by its first letter: "an Annual physical", "a Checkup".
pub fn a(name: &str) -> String {
    let article = if name.starts_with(|c: char| "aeiouAEIOU".contains(c)) { "an" } else { "a" };
    format!("{article} {name}")
}

/// A confirmation code spelled out so text-to-speech reads each character.
pub fn code(code: &str) -> String {
    code.chars().map(String::from).collect::<Vec<_>>().join("-")
}

/// The answer as one line: Vapi drops results that contain line breaks.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words of the model's said back in an answer, cut to a few dozen characters: a name is never
/// longer, and an answer (kept with the call for days) stays small whatever the model sent.
pub fn quoted(s: &str) -> String {
    const MOST: usize = 60;
    match s.char_indices().nth(MOST) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A polite sentence for a value the caller gave that cannot be used.
pub fn invalid(e: &DomainError) -> String {
    let DomainError::Invalid { field, message } = e;
    match *field {
        "appointment_date" if message.contains("future") => {
            "That date and time have already passed. Which day in the future would suit you?".into()
        }
        // "Checkup can be booked at most 30 days ahead", or the 365 days of every booking.
        "appointment_date" if message.contains("days ahead") => {
            format!("{}. Could you pick an earlier date?", sentence(message))
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
    use crate::domain::Minutes;

    fn hours(periods: &[(shared::api::Weekday, &str, &str)]) -> WeeklyHours {
        let wire: Vec<shared::api::WorkingHours> = periods
            .iter()
            .map(|&(weekday, start, end)| shared::api::WorkingHours { weekday, start: start.into(), end: end.into() })
            .collect();
        WeeklyHours::parse(&wire).expect("hours")
    }

    #[test]
    fn opening_hours_merge_providers_and_runs_of_days() {
        use shared::api::Weekday::*;
        let weekdays: Vec<_> = [Mon, Tue, Wed, Thu, Fri].into_iter().map(|d| (d, "09:00", "17:00")).collect();
        let smith = hours(&weekdays);
        let jones = hours(&[(Fri, "08:30", "12:00"), (Sat, "09:00", "12:00")]);
        assert_eq!(
            opening_hours(&[&smith, &jones]),
            "Monday to Thursday 9 AM to 5 PM, Friday 8:30 AM to 5 PM, Saturday 9 AM to noon; closed Sunday"
        );
        assert_eq!(opening_hours(&[&WeeklyHours::default()]), "Monday to Sunday all day");
        assert_eq!(opening_hours(&[]), "No opening hours are set yet");
    }

    #[test]
    fn the_assistant_is_told_the_clinics_own_date_and_time() {
        let zone = Zone::parse("tz", "Pacific/Auckland").expect("zone");
        // 20:30 UTC on Thursday the 14th is 09:30 on Friday the 15th in Auckland (NZDT, +13).
        let now = DateTime::parse_from_rfc3339("2027-01-14T20:30:00Z").expect("instant").to_utc();
        let vars = assistant_variables("Harbour Clinic", &zone, now, "Monday to Friday 9 AM to 5 PM");
        assert_eq!(vars["today"], "2027-01-15");
        assert_eq!(vars["weekday"], "Friday");
        assert_eq!(vars["now"], "09:30");
        assert_eq!(vars["timezone"], "Pacific/Auckland");
        assert_eq!(vars["clinic_name"], "Harbour Clinic");
    }

    #[test]
    fn a_kind_of_visit_is_said_with_its_article_and_its_own_limit() {
        assert_eq!(a("Annual physical"), "an Annual physical");
        assert_eq!(a("Checkup"), "a Checkup");
        assert_eq!(sentence(&a("Eye exam")), "An Eye exam");
        // A type's own horizon is said as it is, not as the year every booking has.
        let limited = DomainError::invalid("appointment_date", "Checkup can be booked at most 30 days ahead");
        assert_eq!(invalid(&limited), "Checkup can be booked at most 30 days ahead. Could you pick an earlier date?");
    }

    #[test]
    fn lists_are_joined_as_spoken() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(join(&s(&["a"]), "or"), "a");
        assert_eq!(join(&s(&["a", "b"]), "or"), "a or b");
        assert_eq!(join(&s(&["a", "b", "c"]), "and"), "a, b and c");
    }

    /// A provider keeping a zone other than its clinic's has its times said in it and the zone
    /// named: once after one provider's times, after each name among several; never for a
    /// provider whose own zone is the clinic's.
    #[test]
    fn a_providers_own_zone_is_named_with_its_times() {
        let kai = Provider::sample("Dr. Kai", "Pacific/Auckland", Some("Pacific/Honolulu"));
        let ngata = Provider::sample("Dr. Ngata", "Pacific/Auckland", Some("Pacific/Auckland"));
        let date = NaiveDate::from_ymd_opt(2027, 1, 15).expect("date");
        let at =
            |p: &Provider, hour| p.zone().resolve(date, NaiveTime::from_hms_opt(hour, 0, 0).expect("t")).expect("t");
        let slot = |p: &Provider, hour| Slot::new(at(p, hour), Minutes::parse("m", 30).expect("minutes"));
        assert_eq!(moment(&kai, at(&kai, 11)), "Friday, January 15 at 11:00 AM (Honolulu time)");
        assert_eq!(moment(&ngata, at(&ngata, 11)), "Friday, January 15 at 11:00 AM");
        let kais = [(&kai, slot(&kai, 9)), (&kai, slot(&kai, 10))];
        assert_eq!(slots(&kais, true, "or"), "Friday, January 15 at 9:00 AM or 10:00 AM (Honolulu time)");
        assert_eq!(times(&kais, true, "or"), "9:00 AM or 10:00 AM (Honolulu time)");
        let both = [(&ngata, slot(&ngata, 9)), (&kai, slot(&kai, 9))];
        assert_eq!(times(&both, false, "or"), "9:00 AM with Dr. Ngata or 9:00 AM with Dr. Kai (Honolulu time)");
        assert_eq!(
            local_moment(date, NaiveTime::from_hms_opt(14, 0, 0).expect("t"), None),
            "Friday, January 15 at 2:00 PM"
        );
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
        assert_eq!(
            moment(&Provider::sample("Dr. Smith", "America/New_York", None), t),
            "Friday, January 15 at 2:00 PM"
        );
        assert_eq!(one_line("a\nb\r\n  c"), "a b c");
        assert_eq!(quoted("Dr. Smith"), "Dr. Smith");
        assert_eq!(quoted(&"é".repeat(1_000_000)), format!("{}…", "é".repeat(60)));
        assert_eq!(code("AB3X7K"), "A-B-3-X-7-K");
    }
}
