//! Vapi's optional HMAC credential: `x-signature` = hex(HMAC-SHA256(secret, "{timestamp}.{raw body}"))
//! with the timestamp in `x-timestamp` (seconds or milliseconds), checked in constant time and
//! within a bounded clock tolerance.

use axum::http::{HeaderMap, HeaderName};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing signature header {0}")]
    MissingSignature(String),
    #[error("missing or malformed timestamp header {0}")]
    BadTimestamp(String),
    #[error("the signature timestamp is outside the allowed clock tolerance")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

#[derive(Clone)]
pub struct SignatureCheck {
    secret: Vec<u8>,
    signature_header: HeaderName,
    timestamp_header: HeaderName,
    tolerance_secs: i64,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("signature_header", &self.signature_header)
            .field("timestamp_header", &self.timestamp_header)
            .field("tolerance_secs", &self.tolerance_secs)
            .finish_non_exhaustive()
    }
}

impl SignatureCheck {
    pub fn new(
        secret: &[u8],
        signature_header: &str,
        timestamp_header: &str,
        tolerance_secs: i64,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            secret: secret.to_vec(),
            signature_header: HeaderName::try_from(signature_header.to_ascii_lowercase())?,
            timestamp_header: HeaderName::try_from(timestamp_header.to_ascii_lowercase())?,
            tolerance_secs,
        })
    }

    /// The signature a sender with the same secret puts on `body` at `timestamp`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        hex::encode(self.mac(timestamp, body).finalize().into_bytes())
    }

    fn mac(&self, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<(), SignatureError> {
        let header = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let signature = header(&self.signature_header)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SignatureError::MissingSignature(self.signature_header.to_string()))?;
        let timestamp = header(&self.timestamp_header)
            .ok_or_else(|| SignatureError::BadTimestamp(self.timestamp_header.to_string()))?;
        let sent: i64 =
            timestamp.parse().map_err(|_| SignatureError::BadTimestamp(self.timestamp_header.to_string()))?;
        let sent_secs = if sent > 100_000_000_000 { sent / 1000 } else { sent };
        if now_secs.abs_diff(sent_secs) > self.tolerance_secs.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        let hex_part = signature.strip_prefix("sha256=").unwrap_or(signature);
        let given = hex::decode(hex_part).map_err(|_| SignatureError::Mismatch)?;
        self.mac(timestamp, body).verify_slice(&given).map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> SignatureCheck {
        SignatureCheck::new(b"vapi-secret", "x-signature", "x-timestamp", 300).expect("check")
    }

    fn headers(signature: &str, timestamp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-signature", signature.parse().expect("value"));
        h.insert("x-timestamp", timestamp.parse().expect("value"));
        h
    }

    #[test]
    fn a_fresh_correct_signature_passes_in_seconds_or_milliseconds() {
        let c = check();
        let body = br#"{"message":{"type":"tool-calls"}}"#;
        assert_eq!(c.verify(&headers(&c.sign("1000", body), "1000"), body, 1100), Ok(()));
        let ms = "1000000000000";
        assert_eq!(c.verify(&headers(&format!("sha256={}", c.sign(ms, body)), ms), body, 1_000_000_100), Ok(()));
    }

    /// A signature made outside this code (`printf '%s' '1700000000.{body}' | openssl dgst -sha256
    /// -hmac vapi-secret`) passes: what is signed and how it is written are Vapi's, not only ours.
    #[test]
    fn a_signature_made_elsewhere_passes() {
        let body = br#"{"message":{"type":"tool-calls"}}"#;
        let known = "fefc68e2228087be395a292f3a30106ebe76dd178a011f4a58f04303d462dfca";
        assert_eq!(check().verify(&headers(known, "1700000000"), body, 1_700_000_010), Ok(()));
        assert_eq!(check().sign("1700000000", body), known);
    }

    #[test]
    fn tampering_staleness_and_absence_are_refused() {
        let c = check();
        let body = b"{}";
        let sig = c.sign("1000", body);
        assert_eq!(c.verify(&headers(&sig, "1000"), b"{ }", 1000), Err(SignatureError::Mismatch));
        assert_eq!(c.verify(&headers(&sig, "1000"), body, 1301), Err(SignatureError::Stale));
        // The farthest timestamps are stale, not an overflow.
        for far in [i64::MIN, i64::MAX] {
            assert_eq!(c.verify(&headers(&sig, &far.to_string()), body, 1000), Err(SignatureError::Stale));
        }
        assert_eq!(c.verify(&headers("zz", "1000"), body, 1000), Err(SignatureError::Mismatch));
        assert!(matches!(c.verify(&HeaderMap::new(), body, 1000), Err(SignatureError::MissingSignature(_))));
    }
}
