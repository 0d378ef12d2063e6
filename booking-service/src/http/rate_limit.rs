//! Requests per token subject and organization (docs/API.md §6), so that one token cannot take
//! the service, or a clinic's mail, for itself: governor's GCRA limiter keyed by both, at
//! `RATE_LIMIT_PER_MINUTE` with a burst of as many. Beyond it: 429 with `Retry-After`. A Vapi
//! message counts once per tool call it holds, as each is a request's worth of work.

use super::auth::Caller;
use super::error::ApiError;
use crate::domain::{AppointmentId, OrgId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// Keys kept before the idle ones are dropped (a key exists only for a signed token or a known
/// manage link).
const MAX_KEYS: usize = 10_000;

type Key = (Option<OrgId>, String);

pub struct RateLimit {
    /// The limiter and its burst; `None`: no limit.
    limiter: Option<(DefaultKeyedRateLimiter<Key>, NonZeroU32)>,
}

impl RateLimit {
    /// `per_minute` requests per key, or no limit for 0.
    pub fn per_minute(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| (DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)), n));
        Self { limiter }
    }

    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        self.check_key((caller.org, caller.sub.clone()), NonZeroU32::MIN)
    }

    /// Counts `more` requests of the caller's at once (a Vapi message's tool calls beyond the
    /// first, which its request counted): at most a burst less that request, so that a message
    /// always fits in a whole burst.
    pub fn charge(&self, caller: &Caller, more: usize) -> Result<(), ApiError> {
        let Some((_, burst)) = &self.limiter else { return Ok(()) };
        let more = u32::try_from(more).unwrap_or(u32::MAX).min(burst.get() - 1);
        let Some(more) = NonZeroU32::new(more) else { return Ok(()) };
        self.check_key((caller.org, caller.sub.clone()), more)
    }

    /// A patient's links (confirm and manage) count as one caller of their own (their tokens are
    /// the credential), keyed by their appointment once a token is known, so an unknown token
    /// adds no key.
    pub fn check_link(&self, org: OrgId, appointment: AppointmentId) -> Result<(), ApiError> {
        self.check_key((Some(org), format!("patient-links:{}", appointment.0)), NonZeroU32::MIN)
    }

    fn check_key(&self, key: Key, n: NonZeroU32) -> Result<(), ApiError> {
        let Some((limiter, _)) = &self.limiter else { return Ok(()) };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        match limiter.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(ApiError::RateLimited(not_until.wait_time_from(DefaultClock::default().now()))),
            // More than a burst at once: `charge` never asks for that.
            Err(_) => Err(ApiError::RateLimited(std::time::Duration::from_secs(60))),
        }
    }
}
