//! A provider's weekly working hours, in local wall-clock minutes.

use super::{DomainError, Slot, Zone};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use shared::api::{self, WorkingHours};

const DAY_MINUTES: u32 = 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Opening {
    weekday: Weekday,
    start: u32,
    end: u32,
}

/// The most working-hour periods a provider may have: four a day, every day of the week.
pub const MAX_PERIODS: usize = 28;

/// When a provider can be booked. Empty means at any time. The openings are sorted by weekday
/// and start, and never overlap within a weekday (they may touch: 09:00–12:00, 12:00–17:00).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyHours(Vec<Opening>);

impl WeeklyHours {
    /// Hours from a request: at most [`MAX_PERIODS`] periods, each a range, none overlapping
    /// another of its weekday (`[start, end)`, so back-to-back is fine).
    pub fn parse(hours: &[WorkingHours]) -> Result<Self, DomainError> {
        if hours.len() > MAX_PERIODS {
            return Err(DomainError::invalid(
                "working_hours",
                format!("at most {MAX_PERIODS} periods are allowed, got {}", hours.len()),
            ));
        }
        let openings = read(hours)?;
        if let Some(pair) =
            openings.windows(2).find(|pair| pair[0].weekday == pair[1].weekday && pair[0].end > pair[1].start)
        {
            return Err(DomainError::invalid(
                "working_hours",
                format!("{} overlaps {}: periods of one day must not overlap", pair[0], pair[1]),
            ));
        }
        Ok(Self(openings))
    }

    /// Hours as the store keeps them, read without the request limits so that hours saved before
    /// them still load: overlapping periods are merged into one, so hours saved as a thousand
    /// copies of one period cost what that one period costs.
    pub fn stored(hours: &[WorkingHours]) -> Result<Self, DomainError> {
        let mut merged: Vec<Opening> = Vec::new();
        for o in read(hours)? {
            match merged.last_mut() {
                Some(last) if last.weekday == o.weekday && last.end > o.start => last.end = last.end.max(o.end),
                _ => merged.push(o),
            }
        }
        Ok(Self(merged))
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

    /// The local periods of that date (minutes after midnight), in order: each one's start and
    /// end (the whole day without hours). A slot starting in one may end in a period it touches,
    /// as [`WeeklyHours::permits`] judges.
    pub fn openings_on(&self, date: NaiveDate) -> Vec<(u32, u32)> {
        if self.0.is_empty() {
            return vec![(0, DAY_MINUTES)];
        }
        self.day(date.weekday()).iter().map(|o| (o.start, o.end)).collect()
    }

    /// The working time of the local `date` as instants: from its first opening's start to its
    /// last one's end (the whole day without hours); `None` on a day without openings.
    pub fn working_span(&self, zone: &Zone, date: NaiveDate) -> Option<Slot> {
        let openings = self.openings_on(date);
        Slot::from_bounds(bound(zone, date, openings.first()?.0), bound(zone, date, openings.last()?.1))
    }

    /// The openings of one weekday, found by halving rather than scanning.
    fn day(&self, weekday: Weekday) -> &[Opening] {
        let day = weekday.num_days_from_monday();
        let first = self.0.partition_point(|o| o.weekday.num_days_from_monday() < day);
        let after = self.0.partition_point(|o| o.weekday.num_days_from_monday() <= day);
        &self.0[first..after]
    }

    /// Whether the whole slot lies inside one opening of its local day (periods that touch as one).
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
        } else if day.succ_opt().is_some_and(|next| slot.end() == zone.start_of_day(next)) {
            // Ends as the day does (at 24:00): the next day's first instant, which is not
            // midnight where the clocks spring forward at midnight.
            DAY_MINUTES
        } else {
            return false;
        };
        // Openings of a day do not overlap: only the last one starting by `start_min` can hold its
        // start, and those touching it in turn its end. Its start must be inside too, not only its
        // end: when the clocks fall back, a slot can end at an earlier wall-clock time than it starts.
        let openings = self.day(day.weekday());
        let holding = openings.partition_point(|o| o.start <= start_min);
        let Some(first) = holding.checked_sub(1).map(|i| openings[i]) else { return false };
        let mut end = first.end;
        for o in &openings[holding..] {
            if o.start != end {
                break;
            }
            end = o.end;
        }
        // The end by the clock, and as an instant: where the clocks fall back, a slot can end in
        // the repeated hour at a wall-clock time inside the hours, an hour after they ended.
        start_min < first.end && end_min <= end && slot.end() <= bound(zone, day, end)
    }
}

/// The instant `minutes` into the local `date`, as hours name it: the earlier one of a time the
/// clocks fall back over, where the skipped hour would have put one they skip, and 24:00 the next
/// day's first instant.
fn bound(zone: &Zone, date: NaiveDate, minutes: u32) -> DateTime<Utc> {
    let offset = Duration::minutes(minutes.into());
    if minutes == DAY_MINUTES {
        if let Some(next) = date.succ_opt() {
            return zone.start_of_day(next);
        }
    }
    zone.instant(date.and_time(NaiveTime::MIN) + offset).unwrap_or_else(|| zone.start_of_day(date) + offset)
}

/// Each period read and checked to be a range, sorted by weekday and start.
fn read(hours: &[WorkingHours]) -> Result<Vec<Opening>, DomainError> {
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
    openings.sort_by_key(|o| (o.weekday.num_days_from_monday(), o.start, o.end));
    Ok(openings)
}

impl std::fmt::Display for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let day = self.weekday.to_string().to_lowercase();
        write!(f, "{day} {}-{}", format_minutes(self.start), format_minutes(self.end))
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
    use chrono::NaiveTime;

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

    fn field_and_message(e: DomainError) -> (&'static str, String) {
        let DomainError::Invalid { field, message } = e;
        (field, message)
    }

    /// Four periods a day, every day: 28 distinct periods, none overlapping.
    fn four_a_day() -> Vec<WorkingHours> {
        let days = [
            api::Weekday::Mon,
            api::Weekday::Tue,
            api::Weekday::Wed,
            api::Weekday::Thu,
            api::Weekday::Fri,
            api::Weekday::Sat,
            api::Weekday::Sun,
        ];
        days.into_iter()
            .flat_map(|d| {
                [("06:00", "09:00"), ("09:00", "12:00"), ("13:00", "17:00"), ("18:00", "24:00")]
                    .map(|(start, end)| hours(d, start, end))
            })
            .collect()
    }

    #[test]
    fn at_most_twenty_eight_periods_are_taken() {
        let mut week = four_a_day();
        assert_eq!(week.len(), MAX_PERIODS);
        assert_eq!(WeeklyHours::parse(&week).expect("28 distinct periods").to_wire().len(), 28);
        week.push(hours(api::Weekday::Mon, "17:00", "18:00"));
        let (field, message) = field_and_message(WeeklyHours::parse(&week).expect_err("29 periods"));
        assert_eq!(field, "working_hours");
        assert!(message.contains("at most 28") && message.contains("29"), "{message}");
    }

    #[test]
    fn overlapping_periods_of_one_day_are_refused_and_touching_ones_taken() {
        let refused = [
            vec![hours(api::Weekday::Mon, "09:00", "12:00"), hours(api::Weekday::Mon, "11:00", "17:00")],
            vec![hours(api::Weekday::Tue, "09:00", "17:00"), hours(api::Weekday::Tue, "09:00", "17:00")],
            vec![hours(api::Weekday::Wed, "12:00", "13:00"), hours(api::Weekday::Wed, "08:00", "18:00")],
            vec![
                hours(api::Weekday::Thu, "00:00", "24:00"),
                hours(api::Weekday::Fri, "09:00", "10:00"),
                hours(api::Weekday::Thu, "23:59", "24:00"),
            ],
        ];
        for week in refused {
            let (field, message) = field_and_message(WeeklyHours::parse(&week).expect_err("overlap"));
            assert_eq!(field, "working_hours");
            assert!(message.contains("overlaps"), "{message}");
        }
        let (_, message) = field_and_message(
            WeeklyHours::parse(&[
                hours(api::Weekday::Mon, "11:00", "17:00"),
                hours(api::Weekday::Mon, "09:00", "12:00"),
            ])
            .expect_err("overlap"),
        );
        assert_eq!(message, "mon 09:00-12:00 overlaps mon 11:00-17:00: periods of one day must not overlap");

        let touching = [hours(api::Weekday::Mon, "12:00", "17:00"), hours(api::Weekday::Mon, "09:00", "12:00")];
        let week = WeeklyHours::parse(&touching).expect("back-to-back periods");
        assert_eq!(week.to_wire(), [touching[1].clone(), touching[0].clone()], "kept as given, in order");
        let same_times_other_days =
            [hours(api::Weekday::Mon, "09:00", "17:00"), hours(api::Weekday::Tue, "09:00", "17:00")];
        assert!(WeeklyHours::parse(&same_times_other_days).is_ok());
    }

    /// Periods that touch are one working time: a slot across the point where they meet lies in
    /// the hours (the contract refuses only times outside them), and the day's slots run on
    /// across it.
    #[test]
    fn a_slot_across_two_touching_periods_lies_in_the_hours() {
        let zone = Zone::parse("tz", "UTC").expect("zone");
        let week = WeeklyHours::parse(&[
            hours(api::Weekday::Mon, "09:00", "12:00"),
            hours(api::Weekday::Mon, "12:00", "17:00"),
        ])
        .expect("hours");
        let monday = NaiveDate::from_ymd_opt(2027, 1, 11).expect("date");
        let at = |h, m| zone.resolve(monday, NaiveTime::from_hms_opt(h, m, 0).expect("t")).expect("i");
        let hour = Minutes::parse("m", 60).expect("m");
        assert!(week.permits(&zone, &Slot::new(at(11, 0), hour)));
        assert!(week.permits(&zone, &Slot::new(at(12, 0), hour)));
        assert!(week.permits(&zone, &Slot::new(at(16, 0), hour)));
        assert!(week.permits(&zone, &Slot::new(at(11, 30), hour)), "across the two periods");
        assert!(!week.permits(&zone, &Slot::new(at(8, 30), hour)));
        assert!(!week.permits(&zone, &Slot::new(at(16, 30), hour)));
        assert_eq!(week.openings_on(monday), [(540, 720), (720, 1020)]);
        let apart = WeeklyHours::parse(&[
            hours(api::Weekday::Mon, "09:00", "12:00"),
            hours(api::Weekday::Mon, "12:30", "17:00"),
            hours(api::Weekday::Mon, "17:00", "18:00"),
        ])
        .expect("hours");
        assert!(!apart.permits(&zone, &Slot::new(at(11, 30), hour)), "across the break");
        assert!(apart.permits(&zone, &Slot::new(at(16, 30), hour)), "across 17:00");
        assert!(!apart.permits(&zone, &Slot::new(at(17, 30), hour)), "past the day's end");
        assert_eq!(apart.openings_on(monday), [(540, 720), (750, 1020), (1020, 1080)]);
    }

    /// When the clocks fall back, a slot may end at an earlier wall-clock time than it starts: a
    /// start in a break before the repeated hour is still outside the hours.
    #[test]
    fn a_slot_starting_in_a_break_is_refused_across_the_clocks_falling_back() {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let week = WeeklyHours::parse(&[
            hours(api::Weekday::Sun, "00:00", "01:15"),
            hours(api::Weekday::Sun, "01:45", "05:00"),
        ])
        .expect("hours");
        // Sunday, November 7, 2027: 01:30 EDT (05:30Z) plus 30 minutes is 01:00 EST.
        let in_the_break = "2027-11-07T05:30:00Z".parse().expect("instant");
        let half_hour = Minutes::parse("m", 30).expect("m");
        assert!(!week.permits(&zone, &Slot::new(in_the_break, half_hour)));
        let in_the_second_period = "2027-11-07T05:45:00Z".parse().expect("instant");
        assert!(week.permits(&zone, &Slot::new(in_the_second_period, half_hour)));
    }

    /// When the clocks fall back, a slot may end in the repeated hour at a wall-clock time inside
    /// the hours although, as an instant, past them (the hours' end taken as its earlier instant).
    #[test]
    fn a_slot_ending_in_the_repeated_hour_past_the_hours_is_refused() {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let week = WeeklyHours::parse(&[hours(api::Weekday::Sun, "00:00", "01:15")]).expect("hours");
        // Sunday, November 7, 2027: 01:00 EDT (05:00Z); the hours end at 01:15 EDT (05:15Z).
        let one_am = "2027-11-07T05:00:00Z".parse().expect("instant");
        let minutes = |m| Minutes::parse("m", m).expect("m");
        assert!(week.permits(&zone, &Slot::new(one_am, minutes(15))));
        assert!(!week.permits(&zone, &Slot::new(one_am, minutes(60))), "ends at 01:00 EST, 45 minutes past");
        assert!(!week.permits(&zone, &Slot::new(one_am, minutes(30))), "ends at 01:30 EDT");
    }

    /// Where the clocks spring forward at midnight, a day ends at 01:00 of the next: hours until
    /// 24:00 still hold the day's last slot.
    #[test]
    fn hours_until_midnight_hold_the_last_slot_when_the_next_midnight_is_skipped() {
        let zone = Zone::parse("tz", "America/Santiago").expect("zone");
        let week = WeeklyHours::parse(&[hours(api::Weekday::Sat, "20:00", "24:00")]).expect("hours");
        // Saturday, September 5, 2026, 23:30 (-04:00); Sunday begins at 01:00 (-03:00).
        let last = "2026-09-06T03:30:00Z".parse().expect("instant");
        assert!(week.permits(&zone, &Slot::new(last, Minutes::parse("m", 30).expect("m"))));
        assert!(!week.permits(&zone, &Slot::new(last, Minutes::parse("m", 45).expect("m"))), "past the day's end");
    }

    #[test]
    fn stored_hours_load_past_the_limits_with_overlaps_merged() {
        let copies = vec![hours(api::Weekday::Sat, "00:00", "24:00"); 1300];
        assert!(WeeklyHours::parse(&copies).is_err());
        let stored = WeeklyHours::stored(&copies).expect("stored hours still load");
        assert_eq!(stored.to_wire(), [hours(api::Weekday::Sat, "00:00", "24:00")]);
        let overlapping = [
            hours(api::Weekday::Mon, "11:00", "17:00"),
            hours(api::Weekday::Mon, "09:00", "12:00"),
            hours(api::Weekday::Mon, "10:00", "11:00"),
            hours(api::Weekday::Mon, "17:00", "18:00"),
            hours(api::Weekday::Tue, "09:00", "10:00"),
        ];
        let merged = WeeklyHours::stored(&overlapping).expect("stored");
        let wire: Vec<(String, String)> = merged.to_wire().into_iter().map(|h| (h.start, h.end)).collect();
        assert_eq!(
            wire,
            [("09:00".into(), "17:00".into()), ("17:00".into(), "18:00".into()), ("09:00".into(), "10:00".into())],
            "overlaps merge, touching periods stay apart"
        );
        assert!(WeeklyHours::stored(&[hours(api::Weekday::Mon, "17:00", "09:00")]).is_err());
    }

    #[test]
    fn reversed_or_malformed_hours_are_refused() {
        assert!(WeeklyHours::parse(&[hours(api::Weekday::Mon, "17:00", "09:00")]).is_err());
        assert!(WeeklyHours::parse(&[hours(api::Weekday::Mon, "9am", "17:00")]).is_err());
        assert!(WeeklyHours::parse(&[hours(api::Weekday::Mon, "20:00", "24:00")]).is_ok());
    }
}
