//! The patient's links: `PUBLIC_BASE_URL/confirm/{token}` and `PUBLIC_BASE_URL/manage/{token}`.
//!
//! The token must reach the patient's mail, possibly after a crash and a retried delivery, yet
//! never be stored. So each issue draws a fresh 128-bit nonce from the operating system's CSPRNG
//! and the token is `base64url(HMAC-SHA256(link key, nonce))` (256 bits, 43 characters). The
//! database keeps the nonce in the outbox job and `SHA-256(token)` beside the appointment; neither
//! gives the token without the link key, which lives only in the process's configuration
//! (`CONFIRM_LINK_SECRET`, else derived from the JWT signing secret). The dispatcher recomputes the
//! token from the nonce when it renders the mail; the confirm page hashes what it is given and
//! looks the hash up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Characters of an encoded token: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// The secret that turns a stored nonce into a link token.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

impl LinkKey {
    /// A key derived from secret material (a configured secret or the JWT signing secret), with a
    /// label of its own so the same secret never serves two purposes.
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(b"booking-service confirmation links v1");
        Self(mac.finalize().into_bytes().into())
    }

    /// A fresh link, valid for `ttl` from `now`: what the store keeps (nonce and hash).
    pub fn issue(&self, now: DateTime<Utc>, ttl: Duration) -> IssuedLink {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let token_hash = self.token(&nonce).hash();
        IssuedLink { nonce, token_hash, expires_at: now + ttl }
    }

    /// The key of manage links, derived from this one so one secret serves both.
    fn manage(&self) -> LinkKey {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(b"booking-service manage links v1");
        LinkKey(mac.finalize().into_bytes().into())
    }

    /// The token a nonce stands for.
    pub fn token(&self, nonce: &str) -> LinkToken {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(nonce.as_bytes());
        LinkToken(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// The keys and lifetime of links: what the booking use cases need to issue them. Confirm and
/// manage links are derived from the same secret under different labels, so neither token
/// opens the other's page.
#[derive(Debug, Clone)]
pub struct Links {
    pub key: LinkKey,
    pub manage: LinkKey,
    pub ttl: Duration,
    /// The confirmation and manage keys of `CONFIRM_LINK_SECRET_PREVIOUS`: links issued before a
    /// rotation are still rendered with the key they were issued under.
    previous: Option<(LinkKey, LinkKey)>,
}

impl Links {
    pub fn new(key: LinkKey, ttl: Duration) -> Self {
        let manage = key.manage();
        Self { key, manage, ttl, previous: None }
    }

    /// These links, also knowing the key used before the current one.
    pub fn with_previous(self, previous: LinkKey) -> Self {
        let manage = previous.manage();
        Self { previous: Some((previous, manage)), ..self }
    }

    /// The confirmation tokens `nonce` may have been issued under: the current key's first.
    pub fn confirm_tokens(&self, nonce: &str) -> Vec<LinkToken> {
        let previous = self.previous.as_ref().map(|(key, _)| key.token(nonce));
        std::iter::once(self.key.token(nonce)).chain(previous).collect()
    }

    /// The manage tokens `nonce` may have been issued under: the current key's first.
    pub fn manage_tokens(&self, nonce: &str) -> Vec<LinkToken> {
        let previous = self.previous.as_ref().map(|(_, manage)| manage.token(nonce));
        std::iter::once(self.manage.token(nonce)).chain(previous).collect()
    }

    /// A confirmation link, expiring after the configured lifetime.
    pub fn issue(&self) -> IssuedLink {
        self.key.issue(crate::store::now(), self.ttl)
    }

    /// A manage link: it lives as long as its appointment (the page refuses it from the start on),
    /// so its expiry is not used.
    pub fn issue_manage(&self) -> IssuedLink {
        let now = crate::store::now();
        self.manage.issue(now, Duration::zero())
    }
}

/// What the store keeps of a link: never the token itself.
#[derive(Debug, Clone)]
pub struct IssuedLink {
    /// Random, hex; goes into the outbox job so the dispatcher can recompute the token.
    pub nonce: String,
    /// Hex SHA-256 of the token; the confirm page looks it up.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A link token, as put in a URL or received from one.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(***)")
    }
}

impl LinkToken {
    /// A token from a URL, if it has the shape of one (else it cannot be known).
    pub fn parse(s: &str) -> Option<Self> {
        let well_formed = s.len() == TOKEN_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        well_formed.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256, as stored.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_recomputed_from_its_nonce_and_only_its_hash_is_kept() {
        let key = LinkKey::derive(b"some secret material");
        let link = key.issue(Utc::now(), Duration::hours(72));
        let token = key.token(&link.nonce);
        assert_eq!(token.as_str().len(), TOKEN_LEN);
        assert_eq!(token.hash(), link.token_hash);
        assert!(!link.token_hash.contains(token.as_str()));
        assert_eq!(LinkToken::parse(token.as_str()), Some(token));
    }

    #[test]
    fn another_key_or_nonce_gives_another_token() {
        let a = LinkKey::derive(b"one");
        let b = LinkKey::derive(b"two");
        assert_ne!(a.token("n"), b.token("n"));
        let first = a.issue(Utc::now(), Duration::hours(1));
        let second = a.issue(Utc::now(), Duration::hours(1));
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.token_hash, second.token_hash);
    }

    #[test]
    fn a_manage_token_is_not_the_confirmation_token_of_the_same_nonce() {
        let links = Links::new(LinkKey::derive(b"secret"), Duration::hours(72));
        let manage = links.issue_manage();
        assert_ne!(links.key.token(&manage.nonce), links.manage.token(&manage.nonce));
        assert_eq!(links.manage.token(&manage.nonce).hash(), manage.token_hash);
    }

    /// After a rotation a nonce yields the new key's token first, then the one it was issued
    /// under; without a previous key, only the current one.
    #[test]
    fn a_previous_key_adds_the_tokens_issued_under_it() {
        let old = Links::new(LinkKey::derive(b"old secret"), Duration::hours(72));
        let issued = (old.issue(), old.issue_manage());
        let rotated = Links::new(LinkKey::derive(b"new secret"), Duration::hours(72));
        let confirm = rotated.confirm_tokens(&issued.0.nonce);
        assert_eq!(confirm.len(), 1);
        assert_ne!(confirm[0].hash(), issued.0.token_hash);
        let rotated = rotated.with_previous(LinkKey::derive(b"old secret"));
        let confirm = rotated.confirm_tokens(&issued.0.nonce);
        assert_eq!(confirm.iter().map(LinkToken::hash).collect::<Vec<_>>()[1], issued.0.token_hash);
        let manage = rotated.manage_tokens(&issued.1.nonce);
        assert_eq!(manage.iter().map(LinkToken::hash).collect::<Vec<_>>()[1], issued.1.token_hash);
        assert_eq!(manage[0], rotated.manage.token(&issued.1.nonce));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(LinkToken::parse("short").is_none());
        assert!(LinkToken::parse(&"=".repeat(TOKEN_LEN)).is_none());
        assert!(LinkToken::parse(&"a".repeat(TOKEN_LEN + 1)).is_none());
    }
}
