//! Guesses at patients' links, per client address (`LINK_GUESSES_PER_MINUTE`, docs/API.md §6). A
//! link's token is its credential, so a token no link has is a guess (or a link long withdrawn):
//! each one costs a lookup. An address may make a minute's worth at once, then one every
//! `60 s / LINK_GUESSES_PER_MINUTE`; beyond that its links are refused (429) before any lookup.
//!
//! Every lookup holds one of the address's guesses while it runs, so requests sent side by side
//! cannot outrun the limit, and a token that leads to a link gives its guess back, so only misses
//! count and patients behind one address do not limit each other's clicks. That is governor's
//! GCRA with a way to give a cell back, which governor lacks: hence this small one.

use super::error::ApiError;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How far ahead of now an address's guesses may be spent: a minute's worth at once.
const BURST: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond them new addresses share one allowance (the unknown one), so
/// a flood from many addresses takes bounded memory and still bounded lookups.
const MAX_ADDRESSES: usize = 10_000;
/// The key of a client whose address cannot be read (a header source and a request that did not
/// come through the proxy, or a header that is not an address), and of the overflow.
const UNKNOWN: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

pub struct LinkGuesses {
    /// What one guess adds to an address's schedule; `None`: no limit.
    interval: Option<Duration>,
    schedule: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    /// When each address has spent its guesses up to (its theoretical arrival time); an address
    /// whose instant has passed has its whole burst again and need not be kept.
    spent_until: HashMap<IpAddr, Instant>,
    /// The last time the past instants were swept out.
    swept: Option<Instant>,
}

/// One guess held for a lookup: spent unless [`Held::found`] gives it back.
#[must_use = "a held guess is spent unless the token was found"]
pub struct Held<'g> {
    guesses: &'g LinkGuesses,
    key: IpAddr,
}

impl Held<'_> {
    /// The token led to a link: the guess is given back.
    pub fn found(self) {
        let Some(interval) = self.guesses.interval else { return };
        if let Some(until) = self.guesses.schedule().spent_until.get_mut(&self.key) {
            *until = until.checked_sub(interval).unwrap_or(*until);
        }
    }
}

impl LinkGuesses {
    /// `per_minute` guesses a minute per address, or no limit for 0.
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = (per_minute > 0).then(|| BURST / per_minute);
        Self { interval, schedule: Mutex::default() }
    }

    /// Holds one of the client's guesses for a lookup, or 429 when it has none left.
    pub fn hold(&self, client: Option<IpAddr>) -> Result<Held<'_>, ApiError> {
        let key = network(client);
        let Some(interval) = self.interval else { return Ok(Held { guesses: self, key }) };
        let now = Instant::now();
        let mut schedule = self.schedule();
        schedule.sweep(now);
        let key = if schedule.spent_until.len() >= MAX_ADDRESSES && !schedule.spent_until.contains_key(&key) {
            UNKNOWN
        } else {
            key
        };
        let next = schedule.spent_until.get(&key).map_or(now, |until| (*until).max(now)) + interval;
        let ahead = next - now;
        if ahead > BURST {
            return Err(ApiError::RateLimited(ahead - BURST));
        }
        schedule.spent_until.insert(key, next);
        Ok(Held { guesses: self, key })
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        // The map holds no invariant a panicking holder could break: keep using it.
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Schedule {
    /// Drops the addresses whose guesses are all back, once the map is full, at most once a second
    /// (a full map of active guessers is not scanned on every request).
    fn sweep(&mut self, now: Instant) {
        if self.spent_until.len() < MAX_ADDRESSES || self.swept.is_some_and(|at| now - at < Duration::from_secs(1)) {
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

    /// A minute's guesses at once, then none until one comes back; a found token gives its back;
    /// guesses held side by side count before their lookups end.
    #[test]
    fn misses_spend_guesses_and_finds_give_them_back() {
        let guesses = LinkGuesses::per_minute(3);
        let held: Vec<Held> = (0..3).map(|_| guesses.hold(ip("192.0.2.7")).expect("a guess")).collect();
        let refused = guesses.hold(ip("192.0.2.7")).err().expect("the fourth, while three are out");
        let ApiError::RateLimited(wait) = refused else { panic!("{refused:?}") };
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(guesses.hold(ip("192.0.2.8")).is_ok(), "another address");
        let mut held = held.into_iter();
        held.next().expect("held").found();
        guesses.hold(ip("192.0.2.7")).expect("the one given back").found();
        let _spent = guesses.hold(ip("192.0.2.7")).expect("given back again");
        assert!(guesses.hold(ip("192.0.2.7")).is_err(), "that one was spent");
        drop(held);
        assert!(LinkGuesses::per_minute(0).hold(ip("192.0.2.7")).is_ok(), "no limit");
    }

    /// Past the addresses it tracks, new ones share the unknown address's allowance.
    #[test]
    fn beyond_the_addresses_tracked_new_ones_share_one_allowance() {
        let guesses = LinkGuesses::per_minute(2);
        for n in 0..MAX_ADDRESSES as u32 {
            let _ = guesses.hold(Some(IpAddr::from((0x0a00_0000 + n).to_be_bytes())));
        }
        let _ = guesses.hold(ip("203.0.113.1")).expect("a guess of the shared allowance");
        let _ = guesses.hold(ip("203.0.113.2")).expect("the other");
        assert!(guesses.hold(ip("203.0.113.3")).is_err(), "a third new address, sharing it");
        assert!(guesses.hold(ip("10.0.0.1")).is_ok(), "a tracked address keeps its own");
        assert_eq!(guesses.schedule().spent_until.len(), MAX_ADDRESSES + 1);
    }
}
