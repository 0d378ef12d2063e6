//! What a booking must respect beyond its provider's working hours: how long it is and at which
//! starts it is offered, the buffers it blocks around itself, and how soon and how far ahead it
//! may be made. An appointment type sets each; without one a booking blocks only its own time, may
//! start any time in the future, and is offered at the provider's appointment length.

use super::{Busy, Minutes, Slot, BOOKING_HORIZON_DAYS};
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub length: Minutes,
    /// Free starts are offered every `step` from the start of each working period.
    pub step: Minutes,
    pub buffer_before: Duration,
    pub buffer_after: Duration,
    /// The soonest a start may be after now.
    pub notice: Duration,
    /// The furthest a start may be after now.
    pub horizon: Duration,
}

impl Policy {
    /// A booking without a type: `length` long, offered every `step`, no buffers, no notice.
    pub fn plain(length: Minutes, step: Minutes) -> Self {
        Self {
            length,
            step,
            buffer_before: Duration::zero(),
            buffer_after: Duration::zero(),
            notice: Duration::zero(),
            horizon: Duration::days(BOOKING_HORIZON_DAYS),
        }
    }

    /// The range an appointment at `slot` keeps from every other appointment of its provider.
    pub fn blocked(&self, slot: &Slot) -> Slot {
        slot.widened(self.buffer_before, self.buffer_after)
    }

    /// Whether a start is late enough for the notice and early enough for the horizon (and in the
    /// future).
    pub fn admits(&self, slot: &Slot, now: DateTime<Utc>) -> bool {
        slot.start() > now && slot.start() >= now + self.notice && slot.start() <= now + self.horizon
    }

    /// Whether a slot is free: admitted, and its blocked range meets none of `busy` (the blocked
    /// ranges of other appointments, time off and closed days).
    pub fn is_free(&self, slot: &Slot, busy: &Busy, now: DateTime<Utc>) -> bool {
        self.admits(slot, now) && !busy.meets(&self.blocked(slot))
    }
}

/// How close to its start the patient may still change an appointment through the manage link:
/// the clinic's `manage_cutoff_minutes`. Nearer than that the clinic wants a call, not a silent
/// change (someone may already be preparing the visit); from the start on the link changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff(Duration);

/// Whether an appointment is still within the patient's reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// It starts later than the cut-off from now: the patient may cancel or move it.
    Open,
    /// It starts within the cut-off: only the clinic can change it now.
    TooSoon,
    /// It has started (or is over).
    Started,
}

impl Cutoff {
    /// None before the start, and no change from the start on: what the voice agent changes a
    /// caller's appointment under.
    pub const AT_START: Self = Self(Duration::zero());

    pub fn minutes(minutes: u32) -> Self {
        Self(Duration::minutes(i64::from(minutes)))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Whether an appointment starting at `start` may be changed by its patient at `now`.
    pub fn reach(self, start: DateTime<Utc>, now: DateTime<Utc>) -> Reach {
        if start <= now {
            Reach::Started
        } else if start < now + self.0 {
            Reach::TooSoon
        } else {
            Reach::Open
        }
    }

    /// The policy a patient's move is held to: no start sooner than the cut-off (nor the type's
    /// own notice), so a move never lands where the patient could not change it again.
    pub fn bound(self, policy: Policy) -> Policy {
        Policy { notice: policy.notice.max(self.0), ..policy }
    }

    /// The cut-off as a person says it: "2 days", "3 hours", "90 minutes".
    pub fn spoken(self) -> String {
        let minutes = self.0.num_minutes();
        let (n, unit) = match minutes {
            m if m > 0 && m % 1440 == 0 => (m / 1440, "day"),
            m if m > 0 && m % 60 == 0 => (m / 60, "hour"),
            m => (m, "minute"),
        };
        format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(m: i64) -> Minutes {
        Minutes::parse("m", m).expect("minutes")
    }

    #[test]
    fn buffers_widen_the_blocked_range_and_notice_holds_back_early_starts() {
        let now = Utc::now();
        let policy = Policy {
            buffer_before: Duration::minutes(10),
            buffer_after: Duration::minutes(15),
            notice: Duration::hours(24),
            ..Policy::plain(minutes(30), minutes(30))
        };
        let slot = Slot::new(now + Duration::days(2), minutes(30));
        let blocked = policy.blocked(&slot);
        assert_eq!(
            (blocked.start(), blocked.end()),
            (slot.start() - Duration::minutes(10), slot.end() + Duration::minutes(15))
        );
        assert!(policy.admits(&slot, now));
        assert!(!policy.admits(&Slot::new(now + Duration::hours(23), minutes(30)), now), "inside the notice");
        // An appointment ending 5 minutes before the slot's start meets its 10-minute buffer; one
        // ending 10 minutes before only touches it.
        let before = Slot::new(slot.start() - Duration::minutes(35), minutes(30));
        assert!(!policy.is_free(&slot, &Busy::new(vec![before], None), now));
        let clear = Slot::new(slot.start() - Duration::minutes(40), minutes(30));
        assert!(policy.is_free(&slot, &Busy::new(vec![clear], None), now));
    }

    #[test]
    fn the_cutoff_closes_the_patients_reach_before_the_start_and_bounds_a_move() {
        let now = Utc::now();
        let day = Cutoff::minutes(1440);
        assert_eq!(day.reach(now + Duration::hours(25), now), Reach::Open);
        assert_eq!(day.reach(now + Duration::hours(24), now), Reach::Open, "exactly the cut-off away");
        assert_eq!(day.reach(now + Duration::hours(23), now), Reach::TooSoon);
        assert_eq!(day.reach(now, now), Reach::Started, "at the start");
        assert_eq!(day.reach(now - Duration::hours(1), now), Reach::Started);
        assert_eq!(Cutoff::minutes(0).reach(now + Duration::minutes(1), now), Reach::Open);

        let plain = Policy::plain(minutes(30), minutes(30));
        assert_eq!(day.bound(plain).notice, Duration::hours(24));
        let noticed = Policy { notice: Duration::hours(48), ..plain };
        assert_eq!(day.bound(noticed).notice, Duration::hours(48), "a longer notice of the type stands");
        assert!(!day.bound(plain).admits(&Slot::new(now + Duration::hours(23), minutes(30)), now));

        assert_eq!(day.spoken(), "1 day");
        assert_eq!(Cutoff::minutes(180).spoken(), "3 hours");
        assert_eq!(Cutoff::minutes(90).spoken(), "90 minutes");
    }
}
