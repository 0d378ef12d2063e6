//! What an assistant is told about the clinic at the start of a call and by `get_clinic_info`:
//! its name, its local date and time, and its opening hours as one line a voice can read.

use crate::domain::{OrgId, Zone};
use crate::store::{self, DynStore, PageRequest, Provider, StoreError};
use chrono::{DateTime, NaiveDate, Utc, Weekday};
use serde_json::{Map, Value};

const DAY_MINUTES: u32 = 24 * 60;

/// The hours of a day, from the earliest start to the latest end (local minutes); `None`: closed.
type Span = Option<(u32, u32)>;

/// The variable values of an `assistant-request` answer (docs/API.md §7): `clinic_name`,
/// `timezone`, `today` (YYYY-MM-DD, local), `weekday` ("Friday"), `now` (local "HH:MM") and
/// `opening_hours`, all read at `now` in the clinic's `zone`.
pub fn assistant_variables(
    clinic_name: &str,
    zone: &Zone,
    now: DateTime<Utc>,
    opening_hours: &str,
) -> Map<String, Value> {
    let local = zone.local(now);
    let mut values = Map::new();
    values.insert("clinic_name".into(), clinic_name.into());
    values.insert("timezone".into(), zone.name().into());
    values.insert("today".into(), local.format("%Y-%m-%d").to_string().into());
    values.insert("weekday".into(), local.format("%A").to_string().into());
    values.insert("now".into(), local.format("%H:%M").to_string().into());
    values.insert("opening_hours".into(), opening_hours.into());
    values
}

/// The clinic's opening hours as one speakable line ("Monday to Friday 9 AM to 5 PM, Saturday 9 AM
/// to noon; closed Sunday"), from its active providers' working hours: on each weekday, from the
/// earliest start to the latest end of any of them, a provider without hours being bookable all
/// day. Hours are read as local wall-clock times.
pub fn opening_hours(providers: &[Provider]) -> String {
    let week: Vec<(Weekday, Span)> = WEEK
        .iter()
        .map(|&day| {
            // Any date of that weekday: the hours repeat every week.
            let date = NaiveDate::from_isoywd_opt(2027, 1, day).unwrap_or_default();
            let span = providers.iter().filter(|p| p.active).flat_map(|p| p.hours.openings_on(date)).fold(
                None,
                |acc: Option<(u32, u32)>, (start, end)| {
                    Some(acc.map_or((start, end), |(s, e)| (s.min(start), e.max(end))))
                },
            );
            (day, span)
        })
        .collect();
    describe(&week)
}

/// [`opening_hours`] of the organization's providers, read from the store.
pub async fn clinic_opening_hours(store: &DynStore, org: OrgId) -> Result<String, StoreError> {
    let page = store.providers(org, &PageRequest::first(store::MAX_PAGE)).await?;
    Ok(opening_hours(&page.items))
}

const WEEK: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// Consecutive days with the same hours read together.
fn describe(week: &[(Weekday, Span)]) -> String {
    let mut runs: Vec<(Weekday, Weekday, Span)> = Vec::new();
    for &(day, span) in week {
        match runs.last_mut() {
            Some((_, last, s)) if *s == span => *last = day,
            _ => runs.push((day, day, span)),
        }
    }
    if let [(_, _, only)] = runs.as_slice() {
        return match only {
            None => "No opening hours are set yet".into(),
            Some((0, DAY_MINUTES)) => "Open every day, all day".into(),
            Some(span) => format!("Every day {}", hours(*span)),
        };
    }
    let open: Vec<String> = runs
        .iter()
        .filter_map(|(first, last, span)| span.map(|span| format!("{} {}", days(*first, *last, "to"), hours(span))))
        .collect();
    // Two closed days are named each on its own, so "and" only joins the list.
    let closed: Vec<String> = runs
        .iter()
        .filter(|(_, _, span)| span.is_none())
        .flat_map(|&(first, last, _)| match first.succ() == last {
            true => vec![days(first, first, "to"), days(last, last, "to")],
            false => vec![days(first, last, "to")],
        })
        .collect();
    let open = open.join(", ");
    match closed.as_slice() {
        [] => open,
        closed => format!("{open}; closed {}", super::speech::join(closed, "and")),
    }
}

/// "Monday", "Saturday and Sunday", "Monday to Friday".
fn days(first: Weekday, last: Weekday, word: &str) -> String {
    let name = |d: Weekday| NaiveDate::from_isoywd_opt(2027, 1, d).unwrap_or_default().format("%A").to_string();
    if first == last {
        name(first)
    } else if first.succ() == last {
        format!("{} and {}", name(first), name(last))
    } else {
        format!("{} {word} {}", name(first), name(last))
    }
}

/// "9 AM to 5 PM", "9:30 AM to noon", "all day".
fn hours((start, end): (u32, u32)) -> String {
    if (start, end) == (0, DAY_MINUTES) {
        return "all day".into();
    }
    format!("{} to {}", clock(start), clock(end))
}

/// "9 AM", "9:30 AM", "noon", "midnight".
fn clock(minutes: u32) -> String {
    match minutes {
        0 | DAY_MINUTES => "midnight".into(),
        720 => "noon".into(),
        m => {
            let (hour, minute) = (m / 60, m % 60);
            let meridiem = if hour < 12 { "AM" } else { "PM" };
            let hour = match hour % 12 {
                0 => 12,
                h => h,
            };
            match minute {
                0 => format!("{hour} {meridiem}"),
                m => format!("{hour}:{m:02} {meridiem}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Minutes, OrgId, ProviderId, WeeklyHours};
    use shared::api::{self, WorkingHours};

    fn provider(hours: &[(api::Weekday, &str, &str)]) -> Provider {
        let wire: Vec<WorkingHours> = hours
            .iter()
            .map(|&(weekday, start, end)| WorkingHours { weekday, start: start.into(), end: end.into() })
            .collect();
        let zone = Zone::parse("tz", "Pacific/Auckland").expect("zone");
        Provider {
            id: ProviderId(uuid::Uuid::new_v4()),
            org_id: OrgId(uuid::Uuid::new_v4()),
            name: "Dr. Who".into(),
            own_zone: None,
            org_zone: zone,
            appointment_minutes: Minutes::parse("m", 30).expect("minutes"),
            hours: WeeklyHours::parse(&wire).expect("hours"),
            active: true,
        }
    }

    #[test]
    fn weekdays_with_the_same_hours_are_read_together_and_closed_days_last() {
        use api::Weekday::*;
        let weekdays: Vec<_> = [Mon, Tue, Wed, Thu, Fri].into_iter().map(|d| (d, "09:00", "17:00")).collect();
        let a = provider(&weekdays);
        let b = provider(&[(Sat, "09:00", "12:00"), (Mon, "08:30", "10:00")]);
        assert_eq!(
            opening_hours(&[a.clone(), b.clone()]),
            "Monday 8:30 AM to 5 PM, Tuesday to Friday 9 AM to 5 PM, Saturday 9 AM to noon; closed Sunday"
        );
        assert_eq!(
            opening_hours(std::slice::from_ref(&a)),
            "Monday to Friday 9 AM to 5 PM; closed Saturday and Sunday"
        );
        let split = provider(&[(Wed, "09:00", "12:00"), (Wed, "13:00", "18:30")]);
        assert_eq!(opening_hours(&[split]), "Wednesday 9 AM to 6:30 PM; closed Monday, Tuesday and Thursday to Sunday");
        let mut gone = b;
        gone.active = false;
        assert_eq!(
            opening_hours(&[a.clone(), gone]),
            opening_hours(std::slice::from_ref(&a)),
            "inactive providers don't count"
        );
    }

    #[test]
    fn a_provider_without_hours_keeps_the_clinic_open_all_day() {
        use api::Weekday::*;
        assert_eq!(opening_hours(&[provider(&[])]), "Open every day, all day");
        assert_eq!(opening_hours(&[]), "No opening hours are set yet");
        let all: Vec<_> = [Mon, Tue, Wed, Thu, Fri, Sat, Sun].into_iter().map(|d| (d, "07:00", "19:00")).collect();
        assert_eq!(opening_hours(&[provider(&all)]), "Every day 7 AM to 7 PM");
        let sunday = provider(&[(Sun, "00:00", "24:00"), (Sat, "10:00", "24:00")]);
        assert_eq!(opening_hours(&[sunday]), "Saturday 10 AM to midnight, Sunday all day; closed Monday to Friday");
    }

    #[test]
    fn the_variables_are_the_clinics_local_date_and_time() {
        let zone = Zone::parse("tz", "Pacific/Auckland").expect("zone");
        // 11:30 UTC on January 31 is 00:30 on Monday, February 1 in Auckland (UTC+13 in summer).
        let now = DateTime::parse_from_rfc3339("2027-01-31T11:30:00Z").expect("instant").to_utc();
        let values = assistant_variables("Harbour Clinic", &zone, now, "Every day 7 AM to 7 PM");
        let expected = serde_json::json!({
            "clinic_name": "Harbour Clinic",
            "timezone": "Pacific/Auckland",
            "today": "2027-02-01",
            "weekday": "Monday",
            "now": "00:30",
            "opening_hours": "Every day 7 AM to 7 PM"
        });
        assert_eq!(Value::Object(values), expected);
    }
}
