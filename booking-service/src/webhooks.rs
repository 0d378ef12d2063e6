//! Webhook delivery, as the Standard Webhooks specification has it: each message is POSTed as JSON
//! with `webhook-id` (the outbox message's id, the same on every retry), `webhook-timestamp` (Unix
//! seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//! with the base64-decoded part of the endpoint's `whsec_` secret.
//!
//! An endpoint must resolve to public addresses only (not loopback, private, link-local, shared or
//! otherwise special), checked when it is created and again at every delivery, and the delivery
//! connects to the address just checked, so a DNS answer that changes in between (rebinding) cannot
//! point it inside. `WEBHOOK_ALLOW_PRIVATE=true` lifts the rule (for a clinic's own network, and
//! the tests). Redirects are not followed.

use crate::domain::OrgId;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::hash_map::{Entry, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use url::Url;

/// How long each step of a delivery may take: the name's lookup, then the POST.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const SECRET_PREFIX: &str = "whsec_";

/// Lookups of new endpoints' names running at once, at most, and of one clinic's. Each holds one
/// of tokio's blocking threads until the system's resolver answers, which no timeout cuts short:
/// unbounded, names whose servers never answer (a clinic's admin may create them as fast as the
/// rate limit lets) would take every blocking thread, which the mail and SMS spools need too; and
/// with one bound for all, one clinic could hold every lookup and keep the others from adding
/// webhooks. Deliveries' lookups wait for none (a bound of their own here would let one clinic's
/// silent name hold up every other clinic's webhooks): they start at the dispatcher's pace, each
/// message's lookup cut at its timeout, though its thread lives until the resolver gives up.
const LOOKUPS_AT_ONCE: usize = 16;
const LOOKUPS_PER_CLINIC: usize = 2;
static LOOKUPS: LazyLock<Arc<Lookups>> = LazyLock::new(|| Lookups::new(LOOKUPS_AT_ONCE));

/// The lookups of new endpoints' names in flight: permits for all, and a count per clinic.
struct Lookups {
    permits: Arc<Semaphore>,
    clinics: Mutex<HashMap<OrgId, usize>>,
}

impl Lookups {
    fn new(at_once: usize) -> Arc<Self> {
        Arc::new(Self { permits: Arc::new(Semaphore::new(at_once)), clinics: Mutex::default() })
    }

    /// One of the clinic's lookups, unless it has [`LOOKUPS_PER_CLINIC`] in flight: given back
    /// when dropped, with the thread that holds it.
    fn share(self: &Arc<Self>, org: OrgId) -> Option<Share> {
        let mut clinics = self.clinics.lock().unwrap_or_else(PoisonError::into_inner);
        let in_flight = clinics.entry(org).or_default();
        if *in_flight >= LOOKUPS_PER_CLINIC {
            return None;
        }
        *in_flight += 1;
        Some(Share { lookups: Arc::clone(self), org })
    }

    #[cfg(test)]
    fn in_flight(&self, org: OrgId) -> usize {
        self.clinics.lock().unwrap_or_else(PoisonError::into_inner).get(&org).copied().unwrap_or(0)
    }
}

/// A clinic's lookup in flight.
struct Share {
    lookups: Arc<Lookups>,
    org: OrgId,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut clinics = self.lookups.clinics.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut in_flight) = clinics.entry(self.org) {
            *in_flight.get_mut() -= 1;
            if *in_flight.get() == 0 {
                in_flight.remove();
            }
        }
    }
}

/// Why a new endpoint was not taken.
#[derive(Debug)]
pub enum Unchecked {
    /// Not a URL webhooks may go to: why.
    Refused(String),
    /// The clinic's own lookups still in flight fill its share.
    ClinicBusy,
    /// Every lookup is taken (by several clinics): none could start in time.
    Busy,
}

/// How webhooks are checked and sent.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub allow_private: bool,
    pub timeout: Duration,
}

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header's value for a message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = STANDARD.decode(key).map_err(|_| "the webhook secret is not base64".to_owned())?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// `blocking` run on a blocking thread, which holds `held` until it ends (whenever that is); `None`
/// when no answer came within `timeout`.
async fn bounded<T: Send + 'static>(
    timeout: Duration,
    held: impl Send + 'static,
    blocking: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let run = tokio::task::spawn_blocking(move || {
        let _held = held;
        blocking()
    });
    tokio::time::timeout(timeout, run).await.ok().and_then(Result::ok)
}

/// Whether an address is one the open internet routes to. An IPv6 address that carries an IPv4
/// one (mapped, NAT64's well-known prefix, 6to4) is judged by the IPv4 address it reaches; any
/// other IPv6 address must be global unicast (2000::/3), and not Teredo, the IETF's
/// special-purpose block or documentation.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 88 && c == 99) // 6to4 relays
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let carried = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            match v6.segments() {
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => is_public(carried(hi, lo)),
                [0x2002, hi, lo, ..] => is_public(carried(hi, lo)),
                // Teredo and the rest of the IETF's special-purpose block (2001::/23), and both
                // documentation prefixes (2001:db8::/32, 3fff::/20).
                [0x2001, second, ..] if second < 0x200 => false,
                [0x2001, 0xdb8, ..] => false,
                [0x3fff, second, ..] if second < 0x1000 => false,
                [first, ..] => first & 0xe000 == 0x2000,
            }
        }
    }
}

/// A URL webhooks may be sent to, as far as it tells (http(s), a host, no credentials), with its
/// host and port.
fn target(url: &str) -> Result<(Url, String, u16), String> {
    let url = Url::parse(url).map_err(|_| "not a URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = url.host_str().ok_or("has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("has no port")?;
    Ok((url, host, port))
}

impl Sender {
    /// The URL of a new endpoint of the clinic `org`, if it is one webhooks may go to: http(s),
    /// with a host, resolving (now) to public addresses only unless private ones are allowed. The
    /// addresses it resolved to.
    /// All within `within` (and the sender's timeout): a request must answer, 422 for a name
    /// that did not resolve in time, before its own deadline answers 503, "try again".
    pub async fn check(&self, org: OrgId, url: &str, within: Duration) -> Result<(Url, Vec<SocketAddr>), Unchecked> {
        self.check_with(&LOOKUPS, org, url, within).await
    }

    /// [`Self::check`], its lookup one of `lookups`.
    async fn check_with(
        &self,
        lookups: &Arc<Lookups>,
        org: OrgId,
        url: &str,
        within: Duration,
    ) -> Result<(Url, Vec<SocketAddr>), Unchecked> {
        let until = tokio::time::Instant::now() + within.min(self.timeout);
        let (url, host, port) = target(url).map_err(Unchecked::Refused)?;
        let share = lookups.share(org).ok_or(Unchecked::ClinicBusy)?;
        let permit = tokio::time::timeout_at(until, Arc::clone(&lookups.permits).acquire_owned()).await;
        let permit = permit.ok().and_then(Result::ok).ok_or(Unchecked::Busy)?;
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let addrs = self.resolved(&host, port, (share, permit), left).await.map_err(Unchecked::Refused)?;
        Ok((url, addrs))
    }

    /// The addresses of `host`, looked up within `within` on a thread that holds `held`, if they are
    /// ones webhooks may go to.
    async fn resolved(
        &self,
        host: &str,
        port: u16,
        held: impl Send + 'static,
        within: Duration,
    ) -> Result<Vec<SocketAddr>, String> {
        // Unless private addresses are allowed, a name that does not resolve (in time) and one that
        // resolves to the service's own network are refused alike: telling them apart would let
        // a clinic's admin find out which names the service's network knows, and which address
        // is not said either.
        let refused = |why: &str| match self.allow_private {
            true => format!("{host} {why}"),
            false => format!("{host} does not resolve to public addresses only"),
        };
        let name = host.trim_matches(['[', ']']).to_owned();
        let lookup = move || (name.as_str(), port).to_socket_addrs().map(Iterator::collect::<Vec<_>>);
        let addrs = bounded(within, held, lookup)
            .await
            .ok_or_else(|| refused("did not resolve in time"))?
            .map_err(|_| refused("does not resolve"))?;
        if addrs.is_empty() {
            return Err(refused("does not resolve"));
        }
        if !self.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(refused("resolves to a private address"));
        }
        Ok(addrs)
    }

    /// POSTs one message to the endpoint, checked again first and connected to the address
    /// checked; `Ok` on a 2xx answer.
    pub async fn deliver(&self, url: &str, secret: &str, id: &str, body: &[u8]) -> Result<(), String> {
        let (url, host, port) = target(url)?;
        let addrs = self.resolved(&host, port, (), self.timeout).await?;
        // No proxy from the environment: a proxy would resolve the host again, past the check.
        let mut client =
            reqwest::Client::builder().timeout(self.timeout).redirect(reqwest::redirect::Policy::none()).no_proxy();
        if let Some(host) = url.host_str() {
            // Every address was checked: the connection may try each, as a host without IPv6
            // needs when the name has both.
            client = client.resolve_to_addrs(host, &addrs);
        }
        let client = client.build().map_err(|e| e.to_string())?;
        let timestamp = chrono::Utc::now().timestamp();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(secret, id, timestamp, body)?)
            .body(body.to_vec())
            .send()
            .await
            // Without the URL, which may hold the endpoint's own secret in its query.
            .map_err(|e| format!("could not deliver: {}", e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {}", response.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signatures_follow_the_standard() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).expect("signed");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(new_secret().starts_with("whsec_") && STANDARD.decode(&new_secret()[6..]).expect("base64").len() >= 24);
    }

    #[test]
    fn only_public_addresses_are_targets() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "192.0.0.170",
            "::10.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:5",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fec0::1",
            "100::1",
            "2001:2::1",
            "2001:1ff::1",
            "3fff::1",
            "3fff:fff::1",
        ] {
            assert!(!is_public(inside.parse().expect("ip")), "{inside}");
        }
        for outside in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "2001:200::1",
        ] {
            assert!(is_public(outside.parse().expect("ip")), "{outside}");
        }
    }

    #[tokio::test]
    async fn a_url_to_the_inside_is_refused_unless_allowed() {
        let (strict, org) = (Sender { allow_private: false, timeout: TIMEOUT }, OrgId::new());
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://[::1]/hook",
            "ftp://example.com/x",
            "http://user:pw@127.0.0.1/",
        ] {
            assert!(matches!(strict.check(org, url, TIMEOUT).await, Err(Unchecked::Refused(_))), "{url}");
        }
        let open = Sender { allow_private: true, timeout: TIMEOUT };
        assert!(open.check(org, "http://127.0.0.1:9/hook", TIMEOUT).await.is_ok());
    }

    /// A lookup that never answers is cut at its timeout but keeps its thread, and what it holds
    /// (its permit and its clinic's share), until it ends.
    #[tokio::test]
    async fn a_lookup_cut_at_its_timeout_holds_its_share_until_its_thread_ends() {
        let (lookups, org) = (Lookups::new(1), OrgId::new());
        let share = lookups.share(org).expect("a share");
        let hanging = || std::thread::sleep(Duration::from_millis(300));
        assert_eq!(bounded(Duration::from_millis(50), share, hanging).await, None, "cut at its timeout");
        assert_eq!(lookups.in_flight(org), 1, "held by the thread still waiting");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(lookups.in_flight(org), 0, "given back once the thread ended");
    }

    /// A clinic with its share of lookups in flight gets none more, while another clinic's goes
    /// ahead; with every lookup taken, a check gives up in time without taking a thread.
    #[tokio::test]
    async fn one_clinics_lookups_leave_the_others_theirs() {
        let open = Sender { allow_private: true, timeout: TIMEOUT };
        let check_with = |lookups, org, url| open.check_with(lookups, org, url, Duration::from_millis(200));
        let (lookups, busy, other) = (Lookups::new(LOOKUPS_PER_CLINIC + 1), OrgId::new(), OrgId::new());
        let url = "http://127.0.0.1:9/hook";
        let held: Vec<Share> = (0..LOOKUPS_PER_CLINIC).filter_map(|_| lookups.share(busy)).collect();
        assert_eq!(held.len(), LOOKUPS_PER_CLINIC);
        assert!(matches!(check_with(&lookups, busy, url).await, Err(Unchecked::ClinicBusy)));
        assert!(check_with(&lookups, other, url).await.is_ok(), "another clinic's lookup goes ahead");
        drop(held);
        assert!(check_with(&lookups, busy, url).await.is_ok(), "its share is back");
        let every = Arc::clone(&lookups.permits).acquire_many_owned(3).await.expect("every permit");
        // Given up within the time given, not the sender's ten seconds.
        let asked = tokio::time::Instant::now();
        assert!(matches!(check_with(&lookups, other, url).await, Err(Unchecked::Busy)));
        assert!(asked.elapsed() < Duration::from_secs(5), "waited {:?}", asked.elapsed());
        drop(every);
        assert!(check_with(&lookups, other, url).await.is_ok());
    }
}
