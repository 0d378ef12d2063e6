//! What is busy, the free slots of a day, and the nearest free slots to a time that was taken.

use super::{Minutes, Policy, Slot, WeeklyHours, Zone};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

/// What is busy for a provider (other appointments' blocked ranges, time off, closures) as
/// disjoint ranges in order, so that whether a range meets any of it is one binary search however
/// much is busy: a day's slots cost their number times its logarithm, not times its length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Busy {
    ranges: Vec<Slot>,
    /// The range of the appointment being moved, free to it.
    own: Option<Slot>,
}

impl Busy {
    /// `ranges` as one busy set, less `own`: the range an appointment being moved blocks now, which
    /// is free to it (one copy of it, if several ranges are equal).
    pub fn new(mut ranges: Vec<Slot>, own: Option<Slot>) -> Self {
        if let Some(at) = own.and_then(|own| ranges.iter().position(|range| *range == own)) {
            ranges.remove(at);
        }
        ranges.sort();
        let mut merged: Vec<Slot> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                // Half-open ranges that touch or overlap are met by exactly the ranges their union is.
                Some(last) if range.start() <= last.end() => {
                    if let Some(joined) = Slot::from_bounds(last.start(), range.end().max(last.end())) {
                        *last = joined;
                    }
                }
                _ => merged.push(range),
            }
        }
        Self { ranges: merged, own }
    }

    /// Whether `range` is what the appointment being moved blocks now: moving there changes nothing.
    pub fn is_own(&self, range: &Slot) -> bool {
        self.own.as_ref() == Some(range)
    }

    /// Whether `range` overlaps anything busy.
    pub fn meets(&self, range: &Slot) -> bool {
        // The ranges end in order too, so only the first one ending after `range` starts can meet it.
        let first = self.ranges.partition_point(|busy| busy.end() <= range.start());
        self.ranges.get(first).is_some_and(|busy| busy.overlaps(range))
    }
}

/// The most slots one local day yields: one every 5 minutes (the shortest appointment) around the
/// clock. Well-formed hours never reach it; it bounds the work and the answer whatever is stored.
pub const MAX_SLOTS_PER_DAY: usize = (24 * 60 / Minutes::MIN) as usize;

/// The slots of `policy.length` starting every `policy.step` from the start of each opening of
/// the local `date`, that the policy admits (notice, horizon) and whose blocked range meets none of
/// `busy`: in order, each once, at most [`MAX_SLOTS_PER_DAY`].
pub fn free_slots(
    zone: &Zone,
    hours: &WeeklyHours,
    date: NaiveDate,
    policy: &Policy,
    busy: &Busy,
    now: DateTime<Utc>,
) -> Vec<Slot> {
    let length = policy.length;
    let mut slots = Vec::new();
    // Each period's slots step from its own start; the last may run on into a period it touches.
    // Where a slot ends is judged as an instant (`permits`), not by adding minutes to the wall
    // clock: the night the clocks go back, a slot ends an hour earlier on it than that sum.
    'openings: for (open, close) in hours.openings_on(date) {
        let mut minute = open;
        while minute < close {
            let wall = NaiveTime::from_num_seconds_from_midnight_opt(minute * 60, 0);
            if let Some(start) = wall.and_then(|t| zone.instant(date.and_time(t))) {
                let slot = Slot::new(start, length);
                if hours.permits(zone, &slot) && policy.is_free(&slot, busy, now) {
                    slots.push(slot);
                    if slots.len() == MAX_SLOTS_PER_DAY {
                        break 'openings;
                    }
                }
            }
            minute += policy.step.get() as u32;
        }
    }
    // Each slot once, whatever openings gave it: well-formed hours never repeat one, but the slot
    // list is an answer to the outside and must not depend on that.
    slots.sort();
    slots.dedup();
    slots
}

/// How many days either side of a taken time are searched for alternatives.
pub const ALTERNATIVE_WINDOW_DAYS: i64 = 7;

/// Up to `max` free slots of the policy nearest to `wanted`, searching its local day and the
/// `ALTERNATIVE_WINDOW_DAYS` either side, none the time an appointment being moved has now.
/// `busy` must cover that window.
pub fn alternatives(
    zone: &Zone,
    hours: &WeeklyHours,
    wanted: &Slot,
    policy: &Policy,
    busy: &Busy,
    now: DateTime<Utc>,
    max: usize,
) -> Vec<Slot> {
    let day = zone.local(wanted.start()).date();
    let mut candidates: Vec<Slot> = (-ALTERNATIVE_WINDOW_DAYS..=ALTERNATIVE_WINDOW_DAYS)
        .filter_map(|offset| day.checked_add_signed(Duration::days(offset)))
        .flat_map(|date| free_slots(zone, hours, date, policy, busy, now))
        .filter(|slot| slot != wanted && !busy.is_own(&policy.blocked(slot)))
        .collect();
    candidates.sort_by_key(|slot| ((slot.start() - wanted.start()).num_seconds().abs(), slot.start()));
    candidates.truncate(max);
    candidates.sort();
    candidates
}

/// The longest buffer an appointment type keeps before or after its appointments, in minutes.
pub const MAX_BUFFER_MINUTES: u32 = 240;

/// The earliest instant at which anything busy can still matter to a booking made at `now`: no
/// bookable slot starts before `now`, and none blocks more than the longest buffer before its
/// start. Reads of what is busy start no earlier, so time off that has ended (kept, and not counted
/// against the limit of upcoming entries) cannot make them grow without bound.
pub fn relevant_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::minutes(i64::from(MAX_BUFFER_MINUTES))
}

/// The instant range whose appointments can affect the alternatives of `wanted` offered at `now`
/// (the margin covers the largest buffers too).
pub fn alternatives_window(wanted: &Slot, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let margin = Duration::days(ALTERNATIVE_WINDOW_DAYS + 2);
    ((wanted.start() - margin).max(relevant_since(now)), wanted.end() + margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{Weekday, WorkingHours};

    /// What is busy is read from the longest buffer before now at the earliest, whatever the
    /// wanted time: nothing that ended before can meet a bookable slot.
    #[test]
    fn the_alternatives_window_starts_no_earlier_than_what_can_matter() {
        let now = Utc::now();
        let soon = Slot::new(now + Duration::hours(1), Minutes::parse("m", 30).expect("minutes"));
        let (from, to) = alternatives_window(&soon, now);
        assert_eq!(from, now - Duration::minutes(i64::from(MAX_BUFFER_MINUTES)));
        assert!(to > soon.end());
        let later = Slot::new(now + Duration::days(30), Minutes::parse("m", 30).expect("minutes"));
        assert_eq!(alternatives_window(&later, now).0, later.start() - Duration::days(ALTERNATIVE_WINDOW_DAYS + 2));
    }

    fn setup() -> (Zone, WeeklyHours, NaiveDate, Minutes) {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let hours =
            WeeklyHours::parse(&[WorkingHours { weekday: Weekday::Fri, start: "09:00".into(), end: "12:00".into() }])
                .expect("hours");
        let friday = NaiveDate::from_ymd_opt(2027, 1, 15).expect("date");
        (zone, hours, friday, Minutes::parse("m", 30).expect("m"))
    }

    fn at(zone: &Zone, date: NaiveDate, hm: &str) -> DateTime<Utc> {
        zone.resolve(date, super::super::parse_time("t", hm).expect("t")).expect("instant")
    }

    #[test]
    fn a_day_is_cut_into_free_slots_around_booked_ones() {
        let (zone, hours, friday, half) = setup();
        let now = at(&zone, friday, "00:00") - Duration::days(1);
        let busy = [Slot::new(at(&zone, friday, "10:00"), half)];
        let starts: Vec<_> =
            free_slots(&zone, &hours, friday, &Policy::plain(half, half), &Busy::new(busy.to_vec(), None), now)
                .iter()
                .map(|s| zone.local(s.start()).format("%H:%M").to_string())
                .collect();
        assert_eq!(starts, ["09:00", "09:30", "10:30", "11:00", "11:30"]);
    }

    #[test]
    fn a_type_steps_by_its_interval_and_keeps_its_buffer_clear_of_other_appointments() {
        let (zone, hours, friday, half) = setup();
        let now = at(&zone, friday, "00:00") - Duration::days(1);
        let quarter = Minutes::parse("m", 15).expect("m");
        let policy = Policy { buffer_after: Duration::minutes(15), ..Policy::plain(half, quarter) };
        let busy = [Slot::new(at(&zone, friday, "10:00"), half)];
        let starts: Vec<_> = free_slots(&zone, &hours, friday, &policy, &Busy::new(busy.to_vec(), None), now)
            .iter()
            .map(|s| zone.local(s.start()).format("%H:%M").to_string())
            .collect();
        assert_eq!(starts, ["09:00", "09:15", "10:30", "10:45", "11:00", "11:15", "11:30"]);
    }

    /// Whatever is busy, nested, touching, overlapping or apart, a range meets it exactly when it
    /// meets one of the ranges it was made of; the own range of a move is left out.
    #[test]
    fn a_range_meets_what_is_busy_exactly_when_it_meets_one_of_its_ranges() {
        let base = Utc::now();
        let range = |from: i64, to: i64| {
            Slot::from_bounds(base + Duration::minutes(from), base + Duration::minutes(to)).expect("from < to")
        };
        let ranges = vec![range(60, 90), range(0, 30), range(10, 20), range(30, 45), range(100, 101), range(55, 58)];
        let busy = Busy::new(ranges.clone(), None);
        for from in -5..110 {
            for length in 1..40 {
                let asked = range(from, from + length);
                assert_eq!(busy.meets(&asked), ranges.iter().any(|b| b.overlaps(&asked)), "{from} +{length}");
            }
        }
        let moving = Busy::new(ranges, Some(range(60, 90)));
        assert!(!moving.meets(&range(70, 80)), "its own range is free to a move");
        assert!(moving.meets(&range(44, 56)) && !moving.meets(&range(45, 55)));
    }

    #[test]
    fn alternatives_are_the_nearest_free_times() {
        let (zone, hours, friday, half) = setup();
        let now = at(&zone, friday, "00:00") - Duration::days(1);
        let wanted = Slot::new(at(&zone, friday, "10:00"), half);
        let busy = [wanted, Slot::new(at(&zone, friday, "10:30"), half)];
        let alts =
            alternatives(&zone, &hours, &wanted, &Policy::plain(half, half), &Busy::new(busy.to_vec(), None), now, 3);
        let starts: Vec<_> = alts.iter().map(|s| zone.local(s.start()).format("%H:%M").to_string()).collect();
        assert_eq!(starts, ["09:00", "09:30", "11:00"]);
        // Moving the 9:30 appointment to the taken 10:00: its own time is free to it, but no
        // alternative (it would change nothing).
        let own = Slot::new(at(&zone, friday, "09:30"), half);
        let moving = Busy::new([&busy[..], &[own]].concat(), Some(own));
        let alts = alternatives(&zone, &hours, &wanted, &Policy::plain(half, half), &moving, now, 3);
        let starts: Vec<_> = alts.iter().map(|s| zone.local(s.start()).format("%H:%M").to_string()).collect();
        assert_eq!(starts, ["09:00", "11:00", "11:30"]);
    }

    #[test]
    fn a_day_yields_each_slot_once_and_at_most_the_daily_cap() {
        let zone = Zone::parse("tz", "UTC").expect("zone");
        let saturday = NaiveDate::from_ymd_opt(2027, 1, 16).expect("date");
        let all_day = WorkingHours { weekday: Weekday::Sat, start: "00:00".into(), end: "24:00".into() };
        let hours = WeeklyHours::stored(&vec![all_day; 1300]).expect("hours stored before the limits");
        let five = Minutes::parse("m", Minutes::MIN).expect("m");
        let now = zone.resolve(saturday, NaiveTime::MIN).expect("midnight") - Duration::days(1);
        let slots = free_slots(&zone, &hours, saturday, &Policy::plain(five, five), &Busy::default(), now);
        assert_eq!(slots.len(), MAX_SLOTS_PER_DAY);
        assert!(slots.windows(2).all(|w| w[0].start() < w[1].start()), "in order, each once");
        let unmerged = WeeklyHours::default();
        assert_eq!(
            free_slots(&zone, &unmerged, saturday, &Policy::plain(five, five), &Busy::default(), now).len(),
            MAX_SLOTS_PER_DAY
        );
    }

    /// Each period's slots step from its own start, the last of one running on into the period
    /// it touches: 09:00-12:00 and 12:00-17:00 by 40 minutes offer 11:40 and 12:00.
    #[test]
    fn slots_step_from_each_periods_start_and_may_run_on_into_the_next() {
        let zone = Zone::parse("tz", "UTC").expect("zone");
        let friday = NaiveDate::from_ymd_opt(2027, 1, 15).expect("date");
        let period =
            |start: &str, end: &str| WorkingHours { weekday: Weekday::Fri, start: start.into(), end: end.into() };
        let hours = WeeklyHours::parse(&[period("09:00", "12:00"), period("12:00", "13:30")]).expect("hours");
        let forty = Minutes::parse("m", 40).expect("m");
        let now = zone.resolve(friday, NaiveTime::MIN).expect("midnight") - Duration::days(1);
        let slots = free_slots(&zone, &hours, friday, &Policy::plain(forty, forty), &Busy::default(), now);
        let starts: Vec<_> = slots.iter().map(|s| zone.local(s.start()).format("%H:%M").to_string()).collect();
        assert_eq!(starts, ["09:00", "09:40", "10:20", "11:00", "11:40", "12:00", "12:40"]);
    }

    /// The night the clocks go back, hours to 02:00 hold 90 minutes from 01:00 and 01:30 (EDT),
    /// which end at 01:30 and 02:00 EST: offered, as a booking of them is accepted.
    #[test]
    fn the_night_the_clocks_go_back_offers_every_slot_the_hours_hold() {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let sunday = NaiveDate::from_ymd_opt(2027, 11, 7).expect("date");
        let hours =
            WeeklyHours::parse(&[WorkingHours { weekday: Weekday::Sun, start: "00:00".into(), end: "02:00".into() }])
                .expect("hours");
        let policy = Policy::plain(Minutes::parse("m", 90).expect("m"), Minutes::parse("m", 30).expect("m"));
        let now = zone.resolve(sunday, NaiveTime::MIN).expect("midnight") - Duration::days(1);
        let slots = free_slots(&zone, &hours, sunday, &policy, &Busy::default(), now);
        let starts: Vec<_> = slots.iter().map(|s| s.start().format("%H:%M").to_string()).collect();
        assert_eq!(starts, ["04:00", "04:30", "05:00", "05:30"], "UTC: 00:00, 00:30, 01:00 and 01:30 EDT");
        assert!(slots.iter().all(|slot| hours.permits(&zone, slot)));
    }

    #[test]
    fn the_spring_gap_yields_no_slot() {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let day = NaiveDate::from_ymd_opt(2027, 3, 14).expect("date");
        let hour = Minutes::parse("m", 60).expect("m");
        let midnight = zone.resolve(day, NaiveTime::MIN).expect("midnight");
        let now = midnight - Duration::days(400);
        let slots = free_slots(&zone, &WeeklyHours::default(), day, &Policy::plain(hour, hour), &Busy::default(), now);
        assert_eq!(slots.len(), 0, "the whole day lies past the horizon from 400 days before");
        let now = midnight - Duration::days(1);
        let slots = free_slots(&zone, &WeeklyHours::default(), day, &Policy::plain(hour, hour), &Busy::default(), now);
        assert_eq!(slots.len(), 23, "02:00 does not exist that day");
    }
}
