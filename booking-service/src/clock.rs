//! The time the service reads "now" from where a test must be able to choose it: the Vapi tools'
//! "today" and the assistant's variables. Bookings are still checked against the real time by the
//! store, so a test clock is set to instants in the real future.

use chrono::{DateTime, Duration, Utc};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

/// Where the current instant comes from.
pub trait Clock: Debug + Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock the whole service can share.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The machine's clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still at the instant it is set to, for tests.
#[derive(Debug)]
pub struct SettableClock(Mutex<DateTime<Utc>>);

impl SettableClock {
    pub fn at(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(now)))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for SettableClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settable_clock_says_what_it_was_set_to() {
        let t = DateTime::parse_from_rfc3339("2027-01-31T11:30:00Z").expect("instant").to_utc();
        let clock = SettableClock::at(t);
        assert_eq!(clock.now(), t);
        clock.advance(Duration::hours(13));
        assert_eq!(clock.now(), t + Duration::hours(13));
        clock.set(t);
        let shared: SharedClock = clock;
        assert_eq!(shared.now(), t);
        assert!((system().now() - Utc::now()).num_seconds().abs() < 5);
    }
}
