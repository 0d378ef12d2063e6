//! Requests per token subject and organization (docs/API.md §6), so that one token cannot take
//! the service, or a clinic's mail, for itself: governor's GCRA limiter keyed by both, at
//! `RATE_LIMIT_PER_MINUTE` with a burst of as many. Beyond it: 429 with `Retry-After`. A Vapi
//! message counts once per tool call it holds, as each is a request's worth of work; the messages
//! that ask for nothing (Vapi sends several a second on every call unless the assistant is told
//! not to) spend only an allowance of their own, so that a busy clinic's chatter never refuses
//! its tool calls.

use super::auth::Caller;
use super::error::ApiError;
use crate::domain::{AppointmentId, OrgId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// Keys kept before the idle ones are dropped (a key exists only for a signed token or a known
/// manage link).
const MAX_KEYS: usize = 10_000;

/// Every Vapi server message spends from an allowance this many times `RATE_LIMIT_PER_MINUTE`,
/// before its body is read: at 600, 100 a second, the chatter of some fifty calls at once.
pub const VAPI_MESSAGES_PER_REQUEST: NonZeroU32 = NonZeroU32::new(10).expect("not zero");

/// The body a Vapi message may have for the one unit of the messages' allowance it spends at the
/// door; a longer one spends a unit more for each such part begun (`charge_vapi_body`).
pub const VAPI_BYTES_PER_MESSAGE: usize = 64 * 1024;

type Key = (Option<OrgId>, String);

pub struct RateLimit {
    /// Requests, and the Vapi messages' own allowance; `None`: no limit.
    limiters: Option<[Limiter; 2]>,
}

/// The limiters' places in [`RateLimit::limiters`].
const REQUESTS: usize = 0;
const MESSAGES: usize = 1;

/// A limiter and its burst.
struct Limiter(DefaultKeyedRateLimiter<Key>, NonZeroU32);

impl Limiter {
    fn per_minute(n: NonZeroU32) -> Self {
        Self(DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)), n)
    }

    /// Counts `n` at once, at most a whole burst (a Vapi message of more tool calls than the
    /// burst always fits in one).
    fn check(&self, key: Key, n: usize) -> Result<(), ApiError> {
        let Self(limiter, burst) = self;
        let n = u32::try_from(n).unwrap_or(u32::MAX).min(burst.get());
        let Some(n) = NonZeroU32::new(n) else { return Ok(()) };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        match limiter.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(ApiError::RateLimited(not_until.wait_time_from(DefaultClock::default().now()))),
            // More than a burst at once: never asked for, as `n` is at most one burst.
            Err(_) => Err(ApiError::RateLimited(std::time::Duration::from_secs(60))),
        }
    }
}

impl RateLimit {
    /// `per_minute` requests per key, or no limit for 0.
    pub fn per_minute(per_minute: u32) -> Self {
        let limiters = NonZeroU32::new(per_minute)
            .map(|n| [Limiter::per_minute(n), Limiter::per_minute(n.saturating_mul(VAPI_MESSAGES_PER_REQUEST))]);
        Self { limiters }
    }

    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        self.charge(caller, 1)
    }

    /// Counts `n` requests of the caller's at once (a Vapi message's tool calls), at most a
    /// whole burst.
    pub fn charge(&self, caller: &Caller, n: usize) -> Result<(), ApiError> {
        self.spend(REQUESTS, (caller.org, caller.sub.clone()), n)
    }

    /// A Vapi server message, at the door: it spends the messages' own allowance; what it then
    /// asks for is charged as requests.
    pub fn check_vapi_message(&self, caller: &Caller) -> Result<(), ApiError> {
        self.spend(MESSAGES, (caller.org, caller.sub.clone()), 1)
    }

    /// A Vapi server message's body, once read and before it is parsed: one more of the
    /// messages' allowance for every [`VAPI_BYTES_PER_MESSAGE`] past the first, so that what a
    /// token can make the service parse is bounded in bytes, not only in messages (a 1 MiB
    /// `status-update` costs sixteen).
    pub fn charge_vapi_body(&self, caller: &Caller, bytes: usize) -> Result<(), ApiError> {
        self.spend(MESSAGES, (caller.org, caller.sub.clone()), bytes.saturating_sub(1) / VAPI_BYTES_PER_MESSAGE)
    }

    /// A patient's links (confirm and manage) count as one caller of their own (their tokens are
    /// the credential), keyed by their appointment once a token is known, so an unknown token
    /// adds no key.
    pub fn check_link(&self, org: OrgId, appointment: AppointmentId) -> Result<(), ApiError> {
        self.spend(REQUESTS, (Some(org), format!("patient-links:{}", appointment.0)), 1)
    }

    /// Counts `n` against `key` in the limiter `which` ([`REQUESTS`] or [`MESSAGES`]).
    fn spend(&self, which: usize, key: Key, n: usize) -> Result<(), ApiError> {
        self.limiters.as_ref().map_or(Ok(()), |limiters| limiters[which].check(key, n))
    }
}
