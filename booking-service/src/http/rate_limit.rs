//! Requests per token subject and organization (docs/API.md §9), so that one token cannot take
//! the service, or a clinic's mail, for itself: governor's GCRA limiter keyed by both, at
//! `RATE_LIMIT_PER_MINUTE` with a burst of as many. Beyond it: 429 with `Retry-After`.

use super::auth::Caller;
use super::error::ApiError;
use crate::domain::OrgId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// Keys kept before the idle ones are dropped (a key exists only for a signed token).
const MAX_KEYS: usize = 10_000;

type Key = (Option<OrgId>, String);

pub struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<Key>>,
}

impl RateLimit {
    /// `per_minute` requests per key, or no limit for 0.
    pub fn per_minute(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)));
        Self { limiter }
    }

    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&(caller.org, caller.sub.clone()))
            .map_err(|not_until| ApiError::RateLimited(not_until.wait_time_from(DefaultClock::default().now())))
    }
}
