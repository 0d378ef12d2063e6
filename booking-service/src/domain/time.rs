//! Local dates and times read in an IANA zone, turned into instants on purpose: a time that does
//! not exist (a DST gap) is refused, an ambiguous one (a DST overlap) takes the earlier instant.

use super::DomainError;
use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

/// How far ahead a booking may be made.
pub const BOOKING_HORIZON_DAYS: i64 = 365;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

impl Zone {
    /// A zone a clinic or a provider is given: the IANA name of a place (Area/Location, not under
    /// `Etc/`: `America/New_York`, as the zone of a place follows its clocks' changes) or UTC by
    /// any of its names. The database's other names are refused: `EST`, `MST` and `HST` keep one
    /// offset all year (a New York clinic set to `EST` would have every summer appointment an hour
    /// off), `Etc/GMT+5` is five hours *behind* UTC, and `EST5EDT`, `NZ` or `Japan` name no place.
    pub fn parse(field: &'static str, name: &str) -> Result<Self, DomainError> {
        let name = name.trim();
        let zone = Self::named(name).ok_or_else(|| {
            DomainError::invalid(field, format!("'{name}' is not an IANA time zone name such as America/New_York"))
        })?;
        let place = name.contains('/') && !name.starts_with("Etc/");
        if !place && !zone.is_utc() {
            return Err(DomainError::invalid(
                field,
                format!("'{name}' is not the zone of a place: name one such as America/New_York (or UTC)"),
            ));
        }
        Ok(zone)
    }

    /// Whether it is UTC under another name (`GMT`, `Zulu`, `Etc/Universal`): UTC in winter and
    /// in summer alike.
    fn is_utc(&self) -> bool {
        [(2001, 1), (2001, 7)].into_iter().all(|(year, month)| {
            let day = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default().and_time(NaiveTime::MIN);
            self.0.offset_from_utc_datetime(&day).fix().local_minus_utc() == 0
        })
    }

    /// Any zone of the IANA database by name, as a stored one is read (kept before `parse`
    /// refused legacy names).
    pub fn named(name: &str) -> Option<Self> {
        name.parse::<Tz>().ok().map(Self)
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant of a local wall-clock time: `None` in a DST gap, the earlier instant when the
    /// time occurs twice.
    pub fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }

    /// Like [`Zone::instant`], refusing a DST gap with a message naming the field.
    pub fn resolve(&self, date: NaiveDate, time: NaiveTime) -> Result<DateTime<Utc>, DomainError> {
        self.instant(date.and_time(time)).ok_or_else(|| {
            DomainError::invalid(
                "appointment_time",
                format!("{date} {} does not exist in {} (the clocks change then)", time.format("%H:%M"), self.name()),
            )
        })
    }

    /// The instant as the zone's wall clock with its offset, as the API shows it.
    pub fn localize(&self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.0).fixed_offset()
    }

    /// Whether the wall-clock time of `t` occurs twice in the zone (the hour the clocks go back),
    /// so that only with its offset does it name `t`.
    pub fn occurs_twice(&self, t: DateTime<Utc>) -> bool {
        matches!(self.0.from_local_datetime(&self.local(t)), LocalResult::Ambiguous(..))
    }

    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.0).naive_local()
    }

    /// The first instant of a local day: midnight, or the first minute after a DST gap that
    /// swallows it (a few zones change their clocks at midnight).
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        let midnight = date.and_time(NaiveTime::MIN);
        (0..=180)
            .find_map(|minute| self.instant(midnight + Duration::minutes(minute)))
            .unwrap_or_else(|| midnight.and_utc())
    }

    /// The local days `first` to `last`, inclusive, as instants: from the start of `first` to the
    /// start of the day after `last`; `None` when `last` is before `first` or past the calendar.
    pub fn whole_days(&self, first: NaiveDate, last: NaiveDate) -> Option<Slot> {
        let after_last = last.succ_opt().filter(|_| first <= last)?;
        Slot::from_bounds(self.start_of_day(first), self.start_of_day(after_last))
    }

    pub fn today(&self) -> NaiveDate {
        self.local(Utc::now()).date()
    }
}

/// An RFC 3339 instant with its offset, e.g. `2027-01-15T14:00:00-05:00`.
pub fn parse_instant(field: &'static str, s: &str) -> Result<DateTime<Utc>, DomainError> {
    DateTime::parse_from_rfc3339(s.trim()).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        // A `+01:00` offset put in a query string unencoded arrives as a space.
        let plus = s.trim().rsplit_once(' ').map(|(time, offset)| format!("{time}+{offset}"));
        let hint = match plus.is_some_and(|s| DateTime::parse_from_rfc3339(&s).is_ok()) {
            true => " (in a URL, write the offset's + as %2B)",
            false => "",
        };
        DomainError::invalid(field, format!("'{s}' is not an RFC 3339 instant{hint}"))
    })
}

/// `YYYY-MM-DD`.
pub fn parse_date(field: &'static str, s: &str) -> Result<NaiveDate, DomainError> {
    let s = s.trim();
    (s.len() == 10)
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| DomainError::invalid(field, format!("'{s}' is not a date in the form YYYY-MM-DD")))
}

/// `HH:MM`, 24-hour.
pub fn parse_time(field: &'static str, s: &str) -> Result<NaiveTime, DomainError> {
    let s = s.trim();
    let well_formed = s.len() == 5 && s.as_bytes()[2] == b':';
    well_formed
        .then(|| NaiveTime::parse_from_str(s, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| DomainError::invalid(field, format!("'{s}' is not a time in the form HH:MM (00:00 to 23:59)")))
}

/// The longest time off or closure one entry may cover, in days.
pub const MAX_CLOSED_DAYS: i64 = 366;

/// An appointment length: 5 to 480 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minutes(i64);

impl Minutes {
    pub const MIN: i64 = 5;
    pub const MAX: i64 = 480;

    pub fn parse(field: &'static str, minutes: i64) -> Result<Self, DomainError> {
        if (Self::MIN..=Self::MAX).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(DomainError::invalid(
                field,
                format!("must be between {} and {} minutes, got {minutes}", Self::MIN, Self::MAX),
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::minutes(self.0)
    }
}

/// A half-open time range `[start, end)` with `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Slot {
    pub fn new(start: DateTime<Utc>, length: Minutes) -> Self {
        Self { start, end: start + length.duration() }
    }

    /// A range read back from storage, where `start < end` is a table constraint.
    pub fn from_bounds(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Self> {
        (start < end).then_some(Self { start, end })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// The range from `before` ahead of its start to `after` past its end.
    pub fn widened(&self, before: Duration, after: Duration) -> Self {
        Self { start: self.start - before.abs(), end: self.end + after.abs() }
    }

    pub fn overlaps(&self, other: &Slot) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether the whole of `other` lies within this range.
    pub fn covers(&self, other: &Slot) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Refuses a start in the past or beyond the booking horizon.
    pub fn check_bookable(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        if self.start <= now {
            return Err(DomainError::invalid("appointment_date", "the appointment must be in the future"));
        }
        if self.start > now + Duration::days(BOOKING_HORIZON_DAYS) {
            return Err(beyond_horizon(None, BOOKING_HORIZON_DAYS));
        }
        Ok(())
    }
}

/// The refusal of a date past the booking window: that of the kind of visit named, else every
/// booking's, `days` long.
pub fn beyond_horizon(kind: Option<&str>, days: i64) -> DomainError {
    let said = match kind {
        Some(name) => format!("{name} can be booked at most {days} days ahead"),
        None => format!("bookings can be made at most {days} days ahead"),
    };
    DomainError::invalid("appointment_date", said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_whose_plus_a_url_turned_into_a_space_is_explained() {
        let at = parse_instant("from", "2027-01-15T00:00:00+01:00").expect("an instant");
        assert_eq!(at.to_rfc3339(), "2027-01-14T23:00:00+00:00");
        let refused = parse_instant("from", "2027-01-15T00:00:00 01:00").expect_err("a space").to_string();
        assert!(refused.contains("from") && refused.contains("%2B"), "{refused}");
        for other in ["yesterday", "2027-01-15 14:00"] {
            let refused = parse_instant("from", other).expect_err("not an instant").to_string();
            assert!(!refused.contains("%2B"), "{refused}");
        }
    }

    fn ny() -> Zone {
        Zone::parse("timezone", "America/New_York").expect("zone")
    }

    fn date(s: &str) -> NaiveDate {
        parse_date("d", s).expect("date")
    }

    fn time(s: &str) -> NaiveTime {
        parse_time("t", s).expect("time")
    }

    #[test]
    fn a_local_time_in_the_spring_gap_is_refused() {
        let err = ny().resolve(date("2027-03-14"), time("02:30")).expect_err("gap");
        assert!(matches!(err, DomainError::Invalid { field: "appointment_time", .. }));
    }

    #[test]
    fn an_ambiguous_autumn_time_takes_the_earlier_instant() {
        let t = ny().resolve(date("2027-11-07"), time("01:30")).expect("ambiguous");
        assert_eq!(t.to_rfc3339(), "2027-11-07T05:30:00+00:00", "EDT (-04:00) comes first");
    }

    #[test]
    fn local_times_keep_their_offset_on_the_wire() {
        let t = ny().resolve(date("2027-01-15"), time("14:00")).expect("valid");
        assert_eq!(ny().localize(t).to_rfc3339(), "2027-01-15T14:00:00-05:00");
    }

    #[test]
    fn malformed_times_and_dates_are_refused() {
        for bad in ["25:99", "24:00", "2pm", "9:00", "14:00:00", ""] {
            assert!(parse_time("t", bad).is_err(), "{bad}");
        }
        for bad in ["2027-02-30", "15/01/2027", "2027-1-5"] {
            assert!(parse_date("d", bad).is_err(), "{bad}");
        }
        assert!(Zone::parse("timezone", "Mars/Olympus").is_err());
    }

    #[test]
    fn durations_outside_five_to_480_minutes_are_refused() {
        assert!(Minutes::parse("m", 4).is_err());
        assert!(Minutes::parse("m", 481).is_err());
        assert!(Minutes::parse("m", 5).is_ok() && Minutes::parse("m", 480).is_ok());
    }

    #[test]
    fn a_day_starts_at_midnight_or_just_after_a_gap_that_swallows_it() {
        let ny_day = ny().start_of_day(date("2027-03-14"));
        assert_eq!(ny_day.to_rfc3339(), "2027-03-14T05:00:00+00:00");
        // Santiago moves its clocks from 00:00 to 01:00 on the first Sunday of September.
        let santiago = Zone::parse("tz", "America/Santiago").expect("zone");
        let day = santiago.start_of_day(date("2027-09-05"));
        assert_eq!(santiago.local(day).format("%H:%M").to_string(), "01:00");
    }

    #[test]
    fn back_to_back_slots_do_not_overlap() {
        let start = Utc::now();
        let a = Slot::new(start, Minutes(30));
        let b = Slot::new(a.end(), Minutes(30));
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&Slot::new(start + Duration::minutes(29), Minutes(5))));
    }
}
