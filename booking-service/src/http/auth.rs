//! Bearer-token authentication (docs/API.md §2): the algorithm is pinned by configuration, never
//! taken from the token; `exp` is required, `nbf` and `iat` honoured, with at most 60 s of leeway.

use super::error::ApiError;
use super::{AppState, RateLimit};
use crate::domain::OrgId;
use crate::store::Actor;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use shared::Role;
use uuid::Uuid;

const LEEWAY_SECS: u64 = 60;
/// The longest token subject taken: an identity provider's ids are far shorter.
const MAX_SUB_CHARS: usize = 256;

pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

/// The claims as they must arrive; anything else is a 401.
#[derive(Deserialize)]
struct TokenClaims {
    sub: String,
    role: Role,
    #[serde(default)]
    org_id: Option<String>,
    /// A NumericDate, which RFC 7519 lets be fractional (as the library reads `exp` and `nbf`).
    #[serde(default)]
    iat: Option<f64>,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: String,
    pub role: Role,
    pub org: Option<OrgId>,
}

impl Authenticator {
    pub fn hs256(secret: &[u8], issuer: Option<&str>, audience: Option<&str>) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256, issuer, audience)
    }

    /// A verifier for tokens signed with the private half of a PEM public key. The algorithm is
    /// `algorithm` if given, else the one the key's type implies (RS256, ES256 or EdDSA).
    pub fn public_key(
        pem: &[u8],
        algorithm: Option<Algorithm>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> anyhow::Result<Self> {
        let candidates = [
            (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
            (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
            (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem)),
        ];
        for (default_alg, key) in candidates {
            if let Ok(key) = key {
                // A pinned algorithm of another family than the key's would refuse every token.
                let fits = |alg: Algorithm| match default_alg {
                    Algorithm::RS256 => matches!(
                        alg,
                        Algorithm::RS256
                            | Algorithm::RS384
                            | Algorithm::RS512
                            | Algorithm::PS256
                            | Algorithm::PS384
                            | Algorithm::PS512
                    ),
                    Algorithm::ES256 => matches!(alg, Algorithm::ES256 | Algorithm::ES384),
                    _ => alg == Algorithm::EdDSA,
                };
                if let Some(pinned) = algorithm.filter(|alg| !fits(*alg)) {
                    anyhow::bail!("JWT_ALGORITHM {pinned:?} cannot verify with the {default_alg:?}-family key in JWT_PUBLIC_KEY_FILE");
                }
                return Ok(Self::new(key, algorithm.unwrap_or(default_alg), issuer, audience));
            }
        }
        anyhow::bail!("JWT_PUBLIC_KEY_FILE holds no RSA, EC or Ed25519 public key in PEM form")
    }

    fn new(key: DecodingKey, algorithm: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        let mut required = vec!["exp", "sub"];
        match issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation }
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let unauthorized = |why: &str| ApiError::Unauthorized(format!("invalid token: {why}"));
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthorized("expired"),
                ErrorKind::ImmatureSignature => unauthorized("not valid yet (nbf)"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => unauthorized("algorithm not accepted"),
                ErrorKind::InvalidSignature => unauthorized("bad signature"),
                ErrorKind::MissingRequiredClaim(c) => unauthorized(&format!("missing claim {c}")),
                ErrorKind::InvalidIssuer => unauthorized("iss is not the issuer this service takes (JWT_ISSUER)"),
                ErrorKind::InvalidAudience => unauthorized("aud is not the audience this service takes (JWT_AUDIENCE)"),
                _ => unauthorized("malformed"),
            }
        })?;
        let claims = data.claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat.is_some_and(|iat| iat > (now + LEEWAY_SECS as i64) as f64) {
            return Err(unauthorized("issued in the future (iat)"));
        }
        if claims.sub.trim().is_empty() {
            return Err(unauthorized("empty sub"));
        }
        // The subject is written as the actor of every change the caller makes (a NUL is text
        // PostgreSQL cannot store) and spoken of in the audit trail.
        if claims.sub.chars().count() > MAX_SUB_CHARS || claims.sub.chars().any(crate::domain::breaks_line) {
            return Err(unauthorized(&format!("sub must be at most {MAX_SUB_CHARS} characters on one line")));
        }
        let org = match claims.org_id.as_deref().map(Uuid::parse_str) {
            Some(Ok(id)) => Some(OrgId(id)),
            Some(Err(_)) => return Err(unauthorized("org_id is not a UUID")),
            None if claims.role == Role::Platform => None,
            None => return Err(unauthorized("missing claim org_id")),
        };
        Ok(Caller { sub: claims.sub, role: claims.role, org })
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 9110),
/// if the request has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Caller {
    /// The caller the request's token names, not yet counted against any rate.
    fn verified(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::Unauthorized("missing Authorization: Bearer token".into()));
        }
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into()))?;
        state.auth.verify(token)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Self::verified(parts, state)?;
        Requests::spend(&state.rate_limit, &caller)?;
        Ok(caller)
    }
}

/// The allowance a route's requests spend (docs/API.md §6), named by a type as [`Roles`] are.
pub trait Allowance: Send + Sync + 'static {
    fn spend(limit: &RateLimit, caller: &Caller) -> Result<(), ApiError>;
}

/// `RATE_LIMIT_PER_MINUTE`: every route's but Vapi's server URL's.
pub struct Requests;

impl Allowance for Requests {
    fn spend(limit: &RateLimit, caller: &Caller) -> Result<(), ApiError> {
        limit.check(caller)
    }
}

/// Vapi's server URL: every message spends the messages' own allowance, and the route charges
/// the requests' one for what a message asks (its tool calls, an assistant, a transfer, a report).
pub struct VapiMessages;

impl Allowance for VapiMessages {
    fn spend(limit: &RateLimit, caller: &Caller) -> Result<(), ApiError> {
        limit.check_vapi_message(caller)
    }
}

/// The roles a route admits, named by a type so that [`Allowed`] refuses every other role with
/// 403 before the route reads its path, query or body (a staff token's malformed body to an
/// admin's route is 403, not 422).
pub trait Roles: Send + Sync + 'static {
    const ALLOWED: &'static [Role];
}

macro_rules! roles {
    ($($(#[$doc:meta])* $name:ident = [$($role:ident),+];)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Roles for $name {
            const ALLOWED: &'static [Role] = &[$(Role::$role),+];
        }
    )*};
}

roles! {
    /// The clinic's administrators.
    Admins = [Admin];
    /// Those who run the clinic's calendar.
    Managers = [Staff, Admin];
    /// Everyone of the clinic, its voice agent included.
    Readers = [Agent, Staff, Admin];
    /// The clinic's voice agent.
    Agents = [Agent];
    /// The platform's operators, above the clinics.
    Operators = [Platform];
}

/// A caller whose role is one of `R`'s, counted against `A`: the first extractor of a route, so
/// that a refused role learns nothing of what the route would have read.
pub struct Allowed<R: Roles, A: Allowance = Requests> {
    pub caller: Caller,
    roles: std::marker::PhantomData<(R, A)>,
}

impl<R: Roles, A: Allowance> Allowed<R, A> {
    /// The caller acting inside its organization (401 for a token without one).
    pub fn actor(&self) -> Result<Actor, ApiError> {
        let org = self.caller.org.ok_or_else(|| ApiError::Unauthorized("the token carries no org_id".into()))?;
        Ok(Actor::new(org, self.caller.sub.clone()))
    }
}

impl<R: Roles, A: Allowance> FromRequestParts<AppState> for Allowed<R, A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::verified(parts, state)?;
        A::spend(&state.rate_limit, &caller)?;
        if !R::ALLOWED.contains(&caller.role) {
            return Err(ApiError::Forbidden);
        }
        Ok(Self { caller, roles: std::marker::PhantomData })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAf7rewTjknPcFMJK7wzGLmN/5MEqMfwW9HMudgWms640=\n-----END PUBLIC KEY-----\n";

    /// A pinned algorithm that cannot verify with the key stops the service at start, rather than
    /// letting it start and refuse every token.
    #[test]
    fn a_pinned_algorithm_must_fit_the_key() {
        let pem = ED25519_PUBLIC.as_bytes();
        assert!(Authenticator::public_key(pem, None, None, None).is_ok());
        assert!(Authenticator::public_key(pem, Some(Algorithm::EdDSA), None, None).is_ok());
        for other in [Algorithm::RS256, Algorithm::ES256, Algorithm::PS512] {
            let refused = Authenticator::public_key(pem, Some(other), None, None).err().map(|e| e.to_string());
            assert!(refused.is_some_and(|e| e.contains("JWT_ALGORITHM")), "{other:?}");
        }
    }
}
