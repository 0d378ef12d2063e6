//! Limits per client address on following patients' links (docs/API.md §6), GCRA schedules an
//! address may run a minute ahead of: two of them are kept in the router's state.
//!
//! - Guesses (`LINK_GUESSES_PER_MINUTE`): a link's token is its credential, so a token no link has
//!   is a guess (or a link long withdrawn). Every lookup holds one of the address's guesses while
//!   it runs, so requests sent side by side cannot outrun the limit, and a token that leads to a
//!   link gives its guess back ([`Held::settle`]): only misses count, and patients behind one
//!   address do not limit each other's clicks. An inbound SMS taken without Twilio's signature
//!   spends one too, never given back.
//! - Lookups (ten times `RATE_LIMIT_PER_MINUTE`): every lookup spends one, found or not, so one
//!   known link sent again and again (its own limit is checked only once it is found) costs no
//!   database work past them.
//!
//! Beyond its limit an address's links are refused (429) before any lookup. That is governor's
//! GCRA with a way to give a cell back, which governor lacks: hence this small one.

use super::error::ApiError;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How far ahead of now an address's allowance may be spent: a minute's worth at once.
const BURST: Duration = Duration::from_secs(60);
/// Addresses tracked at most (some 5 MB). Past them, while every one of them still has requests
/// out, a new address is not limited: memory stays bounded, and a flood from that many addresses
/// at once is not one an allowance per address could stop anyway. Sharing one allowance instead
/// would let such a flood refuse every new patient's link.
const MAX_ADDRESSES: usize = 100_000;
/// The key of a client whose address cannot be read (a header source and a request that did not
/// come through the proxy, or a header that is not an address).
const UNKNOWN: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

pub struct LinkLimit {
    /// What one request adds to an address's schedule; `None`: no limit.
    interval: Option<Duration>,
    schedule: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    /// When each address has spent its allowance up to (its theoretical arrival time); an address
    /// whose instant has passed has its whole burst again and need not be kept.
    spent_until: HashMap<IpAddr, Instant>,
    /// The last time the past instants were swept out.
    swept: Option<Instant>,
}

/// One request's share held for a lookup: spent unless given back (dropped, as when the client
/// hangs up during the lookup, it is spent).
#[must_use = "a held share is spent unless given back"]
pub struct Held<'g> {
    limit: &'g LinkLimit,
    /// The address it is held for; `None`: not tracked (no limit, or past [`MAX_ADDRESSES`]).
    key: Option<IpAddr>,
}

impl Held<'_> {
    /// A guess: spent only when the lookup found nothing; a token that led to a link, or a lookup
    /// that failed (the database, not the client), gives it back.
    pub fn settle<T, E>(self, looked_up: &Result<Option<T>, E>) {
        if !matches!(looked_up, Ok(None)) {
            self.give_back();
        }
    }

    /// Gives the share back, as when no lookup ran.
    pub fn give_back(self) {
        let (Some(interval), Some(key)) = (self.limit.interval, self.key) else { return };
        if let Some(until) = self.limit.schedule().spent_until.get_mut(&key) {
            *until = until.checked_sub(interval).unwrap_or(*until);
        }
    }
}

impl LinkLimit {
    /// `per_minute` requests a minute per address, or no limit for 0.
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = (per_minute > 0).then(|| BURST / per_minute);
        Self { interval, schedule: Mutex::default() }
    }

    /// Holds one of the client's requests for a lookup, or 429 when it has none left.
    pub fn hold(&self, client: Option<IpAddr>) -> Result<Held<'_>, ApiError> {
        self.hold_at(client, Instant::now())
    }

    fn hold_at(&self, client: Option<IpAddr>, now: Instant) -> Result<Held<'_>, ApiError> {
        let untracked = Held { limit: self, key: None };
        let Some(interval) = self.interval else { return Ok(untracked) };
        let key = network(client);
        let mut schedule = self.schedule();
        schedule.sweep(now);
        if schedule.spent_until.len() >= MAX_ADDRESSES && !schedule.spent_until.contains_key(&key) {
            return Ok(untracked);
        }
        let next = schedule.spent_until.get(&key).map_or(now, |until| (*until).max(now)) + interval;
        let ahead = next - now;
        if ahead > BURST {
            return Err(ApiError::RateLimited(ahead - BURST));
        }
        schedule.spent_until.insert(key, next);
        Ok(Held { limit: self, key: Some(key) })
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        // The map holds no invariant a panicking holder could break: keep using it.
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Schedule {
    /// Drops the addresses whose allowance is all back, once the map is full, at most once a second
    /// (a full map of active guessers is not scanned on every request).
    fn sweep(&mut self, now: Instant) {
        let recently = self.swept.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if self.spent_until.len() < MAX_ADDRESSES || recently {
            return;
        }
        self.spent_until.retain(|_, until| *until > now);
        self.swept = Some(now);
    }
}

/// The key of a client address: an IPv6 client is its /64 (one subscriber's network, whose
/// addresses it may rotate through at will), an IPv4-mapped one its IPv4 address.
fn network(client: Option<IpAddr>) -> IpAddr {
    match client {
        None => UNKNOWN,
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    #[test]
    fn an_ipv6_client_is_its_network_and_a_mapped_one_its_ipv4_address() {
        assert_eq!(network(ip("2001:db8:1:2:aaaa::1")), network(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(network(ip("2001:db8:1:2::1")), network(ip("2001:db8:1:3::1")));
        assert_eq!(network(ip("::ffff:192.0.2.7")), network(ip("192.0.2.7")));
        assert_ne!(network(ip("192.0.2.7")), network(ip("192.0.2.8")));
        assert_eq!(network(None), UNKNOWN);
    }

    fn address(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from((0x0a00_0000 + n).to_be_bytes()))
    }

    /// A minute's guesses at once, then one every 20 s; guesses held side by side count before
    /// their lookups end; a token found, a failed lookup, or one that did not run gives its guess
    /// back.
    #[test]
    fn misses_spend_guesses_and_the_rest_give_them_back() {
        let guesses = LinkLimit::per_minute(3);
        let start = Instant::now();
        let held: Vec<Held> = (0..3).map(|_| guesses.hold_at(ip("192.0.2.7"), start).expect("a guess")).collect();
        let refused = guesses.hold_at(ip("192.0.2.7"), start).err().expect("the fourth, while three are out");
        assert!(matches!(refused, ApiError::RateLimited(wait) if wait == Duration::from_secs(20)), "{refused:?}");
        assert!(guesses.hold_at(ip("192.0.2.8"), start).is_ok(), "another address");
        let mut held = held.into_iter();
        held.next().expect("held").settle(&Ok::<_, ()>(Some("a link")));
        held.next().expect("held").settle(&Err::<Option<()>, _>("the database is down"));
        guesses.hold_at(ip("192.0.2.7"), start).expect("one given back").give_back();
        for _ in 0..2 {
            guesses.hold_at(ip("192.0.2.7"), start).expect("one given back").settle(&Ok::<Option<()>, ()>(None));
        }
        assert!(guesses.hold_at(ip("192.0.2.7"), start).is_err(), "both spent on misses");
        let later = start + Duration::from_secs(20);
        let _spent = guesses.hold_at(ip("192.0.2.7"), later).expect("one back 20 s later");
        assert!(guesses.hold_at(ip("192.0.2.7"), later).is_err(), "only one");
        drop(held);
        assert!(LinkLimit::per_minute(0).hold(ip("192.0.2.7")).is_ok(), "no limit");
    }

    /// The addresses whose guesses are all back are forgotten once the map is full; past the
    /// addresses it tracks, a new one is not limited (and not kept).
    #[test]
    fn the_map_stays_bounded() {
        let guesses = LinkLimit::per_minute(2);
        let start = Instant::now();
        for n in 0..MAX_ADDRESSES as u32 {
            let _spent = guesses.hold_at(address(n), start).expect("a guess");
        }
        for _ in 0..5 {
            let _spent = guesses.hold_at(ip("203.0.113.1"), start).expect("not limited past the tracked");
        }
        assert!(guesses.hold_at(address(1), start).is_ok(), "a tracked address keeps its own");
        assert!(guesses.hold_at(address(1), start).is_err(), "and its limit");
        assert_eq!(guesses.schedule().spent_until.len(), MAX_ADDRESSES);
        let later = start + Duration::from_secs(31);
        let _spent = guesses.hold_at(ip("203.0.113.1"), later).expect("a guess");
        assert_eq!(guesses.schedule().spent_until.len(), 2, "swept: address 1 and the new one");
    }
}
