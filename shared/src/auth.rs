//! The bearer token's claims (docs/API.md §2) and a helper that mints HS256 tokens for tools and
//! tests.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The operator: creates and deletes organizations.
    Platform,
    /// Manages the providers of its organization, and everything staff may.
    Admin,
    /// Manages the appointments of its organization.
    Staff,
    /// A voice agent of its organization.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims valid from now for `ttl_secs` seconds.
    pub fn new(sub: impl Into<String>, role: Role, org_id: Option<Uuid>, ttl_secs: i64) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self { sub: sub.into(), role, org_id, exp: now + ttl_secs, iat: Some(now), nbf: None, iss: None, aud: None }
    }

    /// Signs the claims with an HS256 secret.
    pub fn mint_hs256(&self, secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
        sign_hs256(self, secret)
    }
}

/// Signs any claims with an HS256 secret (those of another issuer's shape, such as an `aud` list).
pub fn sign_hs256(claims: &impl Serialize, secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
}

/// What tools and dev mode mint tokens with: an HS256 secret, and the `iss` and `aud` a service
/// that checks them (`JWT_ISSUER`, `JWT_AUDIENCE`) takes.
#[derive(Clone)]
pub struct Signer {
    secret: String,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("secret", &"***")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Signer {
    pub fn hs256(secret: impl Into<String>) -> Self {
        Self { secret: secret.into(), issuer: None, audience: None }
    }

    /// Tokens that carry `iss` and `aud`, when given.
    pub fn for_service(self, issuer: Option<String>, audience: Option<String>) -> Self {
        Self { issuer, audience, ..self }
    }

    /// The claims of a token for `sub` valid from now for `ttl_secs` seconds, with the `iss` and
    /// `aud` the service takes.
    pub fn claims(&self, sub: impl Into<String>, role: Role, org_id: Option<Uuid>, ttl_secs: i64) -> Claims {
        Claims { iss: self.issuer.clone(), aud: self.audience.clone(), ..Claims::new(sub, role, org_id, ttl_secs) }
    }

    /// A token for `sub` valid from now for `ttl_secs` seconds.
    pub fn mint(
        &self,
        sub: impl Into<String>,
        role: Role,
        org_id: Option<Uuid>,
        ttl_secs: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.claims(sub, role, org_id, ttl_secs).mint_hs256(self.secret.as_bytes())
    }
}
