//! Requests per token subject and organization (docs/API.md §9), so that one token cannot take
//! the service, or a clinic's mail, for itself: governor's GCRA limiter keyed by both, at
//! `RATE_LIMIT_PER_MINUTE` with a burst of as many. Beyond it: 429 with `Retry-After`.
//!
//! And guesses at patients' links per client address (`LINK_GUESSES_PER_MINUTE`): a link token
//! is the credential, so a token no link has is a guess (or a link long withdrawn). Only those
//! count, so patients behind one address are not limited by each other's clicks; an address out
//! of guesses is refused before its token is looked up, so a flood of guesses from it costs the
//! database nothing.

use super::auth::Caller;
use super::error::ApiError;
use crate::domain::{AppointmentId, OrgId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before the idle ones are dropped (a key exists only for a signed token or a known
/// manage link).
const MAX_KEYS: usize = 10_000;

type Key = (Option<OrgId>, String);

pub struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<Key>>,
    guesses: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The addresses out of guesses, and until when: asked before a lookup, which spends nothing.
    refused: Mutex<HashMap<IpAddr, Instant>>,
}

impl RateLimit {
    /// `per_minute` requests per key and `guesses_per_minute` unknown link tokens per client
    /// address, each unlimited at 0.
    pub fn per_minute(per_minute: u32, guesses_per_minute: u32) -> Self {
        Self { limiter: keyed(per_minute), guesses: keyed(guesses_per_minute), refused: Mutex::default() }
    }

    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        self.check_key((caller.org, caller.sub.clone()))
    }

    /// A patient's links (confirm and manage) count as one caller of their own (their tokens are
    /// the credential), keyed by their appointment once a token is known, so an unknown token
    /// adds no key.
    pub fn check_link(&self, org: OrgId, appointment: AppointmentId) -> Result<(), ApiError> {
        self.check_key((Some(org), format!("patient-links:{}", appointment.0)))
    }

    /// Before a patient's link is looked up: refused while the client's address is out of guesses.
    pub fn may_guess(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let mut refused = self.refused();
        let Some(&until) = refused.get(&network(client)) else { return Ok(()) };
        match until.checked_duration_since(Instant::now()) {
            Some(wait) if !wait.is_zero() => Err(ApiError::RateLimited(wait)),
            _ => {
                refused.remove(&network(client));
                Ok(())
            }
        }
    }

    /// A link token no link has: spends one of the client's guesses; the answer is 404, or 429 once
    /// they are spent (and [`may_guess`](Self::may_guess) refuses the address until the next).
    pub fn missed(&self, client: Option<IpAddr>) -> ApiError {
        let Some(guesses) = &self.guesses else { return ApiError::NotFound };
        let key = network(client);
        if guesses.len() > MAX_KEYS {
            guesses.retain_recent();
        }
        let Err(not_until) = guesses.check_key(&key) else { return ApiError::NotFound };
        let wait = not_until.wait_time_from(DefaultClock::default().now()).max(Duration::from_millis(1));
        let mut refused = self.refused();
        if refused.len() >= MAX_KEYS {
            let now = Instant::now();
            refused.retain(|_, until| *until > now);
        }
        // Past MAX_KEYS addresses refused at once, the newest go unremembered: each of their next
        // guesses costs a lookup again, and is refused after it.
        if refused.len() < MAX_KEYS {
            refused.insert(key, Instant::now() + wait);
        }
        ApiError::RateLimited(wait)
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        // The map holds no invariant a panicking holder could break: keep using it.
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_key(&self, key: Key) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&key)
            .map_err(|not_until| ApiError::RateLimited(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

/// A limiter of `per_minute` for each key, or none at 0.
fn keyed<K: Clone + Eq + std::hash::Hash>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)))
}

/// The key of a client address: an IPv6 client is its /64 (one subscriber's network, whose
/// addresses it may rotate through at will), an IPv4-mapped one its IPv4 address; an unknown
/// address (a header source and a request that did not come through the proxy) is one key of its own.
fn network(client: Option<IpAddr>) -> IpAddr {
    match client {
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_network_and_a_mapped_one_its_ipv4_address() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("an address"));
        assert_eq!(network(ip("2001:db8:1:2:aaaa::1")), network(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(network(ip("2001:db8:1:2::1")), network(ip("2001:db8:1:3::1")));
        assert_eq!(network(ip("::ffff:192.0.2.7")), network(ip("192.0.2.7")));
        assert_ne!(network(ip("192.0.2.7")), network(ip("192.0.2.8")));
        assert_eq!(network(None), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }
}
