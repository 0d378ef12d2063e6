//! The service under test: a deployed one (`--target`), or one started in-process on a temporary
//! SQLite database (or `--database-url`) whose database the run can make unreachable for real.

use crate::cli::Cli;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use booking_service::config::Config;
use booking_service::startup::{Application, Running};
use local_peers::http::HttpSink;
use local_peers::proxy::TcpProxy;
use local_peers::smtp::SmtpSink;
use local_peers::twilio::FakeTwilio;
use shared::{Claims, Role, Signer};
use sqlx::Connection;
use uuid::Uuid;

/// The tokens of an existing clinic, given instead of the target's key.
#[derive(Debug, Clone)]
pub struct ClinicTokens {
    pub org: Uuid,
    pub admin: String,
    pub staff: String,
    pub agent: String,
}

impl ClinicTokens {
    fn from_flags(admin: &str, staff: &str, agent: &str, which: &str) -> Result<Self, String> {
        let org = org_of(admin).ok_or_else(|| format!("the {which} admin token carries no org_id"))?;
        for (role, token) in [("staff", staff), ("agent", agent)] {
            if org_of(token) != Some(org) {
                return Err(format!("the {which} {role} token is not of the admin token's organization"));
            }
        }
        Ok(Self { org, admin: admin.to_owned(), staff: staff.to_owned(), agent: agent.to_owned() })
    }
}

/// The claims of a token, read without verifying it (the target does that).
fn claims_of(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The `org_id` claim of a token, read without verifying it.
fn org_of(token: &str) -> Option<Uuid> {
    claims_of(token)?["org_id"].as_str()?.parse().ok()
}

/// How the run gets its tokens.
enum Credentials {
    /// The target's HS256 key (and the `iss` and `aud` it takes): the run creates its own clinics
    /// and mints their tokens.
    Key(Signer),
    /// Tokens of existing clinics.
    Given(Vec<ClinicTokens>),
}

pub struct Target {
    pub base: String,
    credentials: Credentials,
    in_process: Option<InProcess>,
    /// Where the service's mail arrives: the in-process service's own sink, or `--smtp-listen`.
    mail: Option<SmtpSink>,
    /// Where the in-process service's SMS and webhooks arrive.
    notifications: Option<Peers>,
}

/// The receivers of the in-process service's SMS and webhooks, and what it was told of them.
pub struct Peers {
    /// The service's Twilio: its Messages API on a port of ours.
    pub twilio: FakeTwilio,
    /// The auth token Twilio signs inbound messages with.
    pub auth_token: String,
    /// The service's SMS sender number (`SMS_FROM`).
    pub sender: String,
    /// A webhook endpoint (answers 204).
    pub hooks: HttpSink,
}

struct InProcess {
    running: Running,
    database: Database,
    _dir: Option<tempfile::TempDir>,
}

enum Database {
    /// The SQLite file: an outage is another connection holding its write lock.
    Sqlite(String),
    /// PostgreSQL reached through a proxy of ours: an outage cuts every connection.
    Postgres(TcpProxy),
}

/// A database made unreachable until [`Outage::restore`] (or drop).
pub enum Outage {
    Sqlite(Option<sqlx::SqliteConnection>),
    Postgres(TcpProxy),
}

impl Outage {
    pub async fn restore(mut self) {
        match &mut self {
            Outage::Sqlite(conn) => {
                if let Some(mut c) = conn.take() {
                    let _ = sqlx::query("ROLLBACK").execute(&mut c).await;
                    let _ = c.close().await;
                }
            }
            Outage::Postgres(proxy) => proxy.restore(),
        }
    }
}

/// An outage dropped unrestored (Ctrl-C during the outage step drops the scenario) must not leave
/// the database cut off: the clean-up that follows needs it. SQLite's connection, dropped, closes
/// and its transaction rolls back on its own.
impl Drop for Outage {
    fn drop(&mut self) {
        if let Outage::Postgres(proxy) = self {
            proxy.restore();
        }
    }
}

impl Peers {
    const ACCOUNT_SID: &str = "ACuat0000000000000000000000000000";

    async fn start() -> Result<Self, String> {
        let auth_token = Uuid::new_v4().simple().to_string();
        let twilio = FakeTwilio::start(Self::ACCOUNT_SID, &auth_token)
            .await
            .map_err(|e| format!("cannot start the Twilio stand-in: {e}"))?;
        let hooks = HttpSink::start().await.map_err(|e| format!("cannot start the webhook endpoint: {e}"))?;
        Ok(Self { twilio, auth_token, sender: "+15550100100".to_owned(), hooks })
    }
}

impl Target {
    /// Connects to `--target`, or starts the service in-process. `Err` is a reason the run cannot
    /// judge anything.
    pub async fn start(cli: &Cli) -> Result<Self, String> {
        if let Some(url) = &cli.target {
            let credentials =
                match (&cli.jwt_secret, &cli.admin_token) {
                    (Some(secret), _) => Credentials::Key(
                        Signer::hs256(secret).for_service(cli.jwt_issuer.clone(), cli.jwt_audience.clone()),
                    ),
                    (None, Some(admin)) => {
                        let mut clinics = vec![ClinicTokens::from_flags(
                            admin,
                            cli.staff_token.as_deref().unwrap_or_default(),
                            cli.agent_token.as_deref().unwrap_or_default(),
                            "first clinic's",
                        )?];
                        if let Some(other) = &cli.other_admin_token {
                            let other = ClinicTokens::from_flags(
                                other,
                                cli.other_staff_token.as_deref().unwrap_or_default(),
                                cli.other_agent_token.as_deref().unwrap_or_default(),
                                "second clinic's",
                            )?;
                            // Isolation would find the "other" clinic's data readable: its own.
                            if other.org == clinics[0].org {
                                return Err(format!(
                                    "the --other-* tokens are of the first clinic's organization ({}): give another's",
                                    other.org
                                ));
                            }
                            clinics.push(other);
                        }
                        Credentials::Given(clinics)
                    }
                    (None, None) => return Err(
                        "--target needs --jwt-secret (the target's HS256 key), or the tokens of an existing clinic \
                                (--admin-token, --staff-token, --agent-token)"
                            .into(),
                    ),
                };
            shared::client::http_url(url).map_err(|e| format!("--target: {e}"))?;
            let mail = match &cli.smtp_listen {
                Some(address) => {
                    let address =
                        address.parse().map_err(|e| format!("--smtp-listen {address} is not an address: {e}"))?;
                    Some(
                        SmtpSink::start_on(address)
                            .await
                            .map_err(|e| format!("cannot listen for mail on {address}: {e}"))?,
                    )
                }
                None => None,
            };
            return Ok(Self {
                base: url.trim_end_matches('/').to_owned(),
                credentials,
                in_process: None,
                mail,
                notifications: None,
            });
        }
        let secret = format!("uat-{}-{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let (url, database, dir) = match &cli.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let mut parsed = url::Url::parse(url).map_err(|e| format!("--database-url is not a URL: {e}"))?;
                let upstream = format!("{}:{}", parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(5432));
                let proxy = TcpProxy::start(upstream).await.map_err(|e| format!("cannot start the database proxy: {e}"))?;
                parsed.set_ip_host(proxy.addr.ip()).map_err(|_| "cannot point the service at the proxy")?;
                parsed.set_port(Some(proxy.addr.port())).map_err(|_| "cannot point the service at the proxy")?;
                (parsed.to_string(), Database::Postgres(proxy), None)
            }
            Some(other) => return Err(format!("--database-url must be a postgres:// URL (got {other}); without it a temporary SQLite database is used")),
            None => {
                let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
                let url = format!("sqlite://{}", dir.path().join("uat.db").display());
                (url.clone(), Database::Sqlite(url), Some(dir))
            }
        };
        let sink = SmtpSink::start().await.map_err(|e| format!("cannot start the mail sink: {e}"))?;
        let peers = Peers::start().await?;
        let mut config = Config::with_database(url);
        config.jwt_secret = Some(secret.clone());
        config.smtp_url = Some(sink.url());
        config.mail_poll_ms = 200;
        config.twilio_account_sid = Some(Peers::ACCOUNT_SID.to_owned());
        config.twilio_auth_token = Some(peers.auth_token.clone());
        config.twilio_api_base = peers.twilio.base_url();
        config.sms_from = Some(peers.sender.clone());
        // The run's webhook endpoint is on this machine.
        config.webhook_allow_private = true;
        // The race is up to --concurrency requests from one agent token at once; the per-token
        // rate limit (a burst of 600) is a defence against one caller, not what the run checks.
        config.rate_limit_per_minute = 0;
        // Short deadlines, so the outage step answers in seconds.
        config.request_timeout_secs = 3;
        config.vapi_deadline_ms = 2000;
        let app = Application::build(config)
            .await
            .map_err(|e| format!("could not start the booking service in-process: {e:#}"))?;
        let running = app.spawn();
        Ok(Self {
            base: running.base_url().to_owned(),
            credentials: Credentials::Key(Signer::hs256(secret)),
            in_process: Some(InProcess { running, database, _dir: dir }),
            mail: Some(sink),
            notifications: Some(peers),
        })
    }

    pub fn mail(&self) -> Option<&SmtpSink> {
        self.mail.as_ref()
    }

    /// The receivers of SMS and webhooks; only for the in-process service.
    pub fn notifications(&self) -> Option<&Peers> {
        self.notifications.as_ref()
    }

    pub fn is_in_process(&self) -> bool {
        self.in_process.is_some()
    }

    /// A token minted with the target's key; `None` when the run was given tokens instead.
    pub fn token(&self, role: Role, org: Option<Uuid>) -> Option<String> {
        let Credentials::Key(signer) = &self.credentials else {
            return None;
        };
        signer.mint(format!("uat-{}", role.as_str()), role, org, 3600).ok()
    }

    /// The tokens of the `index`-th given clinic, when the run was given tokens.
    pub fn given_clinic(&self, index: usize) -> Result<Option<&ClinicTokens>, String> {
        match &self.credentials {
            Credentials::Key(_) => Ok(None),
            Credentials::Given(clinics) => clinics.get(index).map(Some).ok_or_else(|| {
                "this scenario needs a second clinic: pass --other-admin-token, --other-staff-token and --other-agent-token".into()
            }),
        }
    }

    /// Claims the target would take from a valid signature: the `iss` and `aud` of the run's key,
    /// or of the tokens it was given. A token of these refused proves its signature was checked,
    /// not its claims.
    fn impostor_claims(&self, role: Role, org: Option<Uuid>) -> serde_json::Value {
        let (sub, ttl) = ("uat-impostor", 3600);
        match &self.credentials {
            Credentials::Key(signer) => serde_json::to_value(signer.claims(sub, role, org, ttl)).unwrap_or_default(),
            Credentials::Given(clinics) => {
                let mut claims = serde_json::to_value(Claims::new(sub, role, org, ttl)).unwrap_or_default();
                // As given: an `aud` may be a list.
                let given = clinics.first().and_then(|c| claims_of(&c.staff)).unwrap_or_default();
                for name in ["iss", "aud"] {
                    if let Some(value) = given.get(name) {
                        claims[name] = value.clone();
                    }
                }
                claims
            }
        }
    }

    /// A token signed with another key.
    pub fn forged_token(&self, role: Role, org: Option<Uuid>) -> String {
        shared::auth::sign_hs256(&self.impostor_claims(role, org), b"not-the-service-key-but-32-bytes-long!")
            .unwrap_or_default()
    }

    /// A token that says it needs no signature (`alg: none`) and has none.
    pub fn unsigned_token(&self, role: Role, org: Option<Uuid>) -> String {
        let claims = serde_json::to_vec(&self.impostor_claims(role, org)).unwrap_or_default();
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(claims))
    }

    /// A correctly signed token that expired an hour ago; `None` without the target's key.
    pub fn expired_token(&self, role: Role, org: Option<Uuid>) -> Option<String> {
        let Credentials::Key(signer) = &self.credentials else {
            return None;
        };
        signer.mint("uat-expired", role, org, -3600).ok()
    }

    /// Makes the in-process service's database unreachable; `None` for a remote target.
    pub async fn cut_database(&self) -> Option<Result<Outage, String>> {
        let in_process = self.in_process.as_ref()?;
        Some(match &in_process.database {
            Database::Sqlite(url) => {
                async {
                    let mut conn = sqlx::SqliteConnection::connect(url).await.map_err(|e| e.to_string())?;
                    sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.map_err(|e| e.to_string())?;
                    Ok(Outage::Sqlite(Some(conn)))
                }
                .await
            }
            Database::Postgres(proxy) => {
                proxy.cut();
                Ok(Outage::Postgres(proxy.clone()))
            }
        })
    }

    /// Stops the in-process service, giving it ten seconds: a run being stopped must still write
    /// its report.
    pub async fn stop(mut self) {
        const WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
        if let Some(p) = self.in_process.take() {
            match tokio::time::timeout(WITHIN, p.running.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("the in-process service stopped with an error: {e:#}"),
                Err(_) => eprintln!("the in-process service did not stop within {WITHIN:?}; it ends with the run"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The forged and unsigned tokens carry the `iss` and `aud` the target takes (of the run's
    /// key, or of the tokens given), so a refusal of them can only be their signature's.
    #[tokio::test]
    async fn impostor_tokens_carry_the_claims_the_target_takes() {
        let claims = |token: &str| claims_of(token).expect("claims");
        let remote = ["uat-orchestrator", "--target", "http://127.0.0.1:9"];
        let keyed = ["--jwt-secret", "k", "--jwt-issuer", "https://idp", "--jwt-audience", "booking"];
        let target = Target::start(&Cli::parse_from(remote.iter().chain(&keyed))).await.expect("target");
        let org = Uuid::new_v4();
        for token in [target.forged_token(Role::Staff, Some(org)), target.unsigned_token(Role::Staff, Some(org))] {
            let c = claims(&token);
            assert_eq!((&c["iss"], &c["aud"], &c["role"]), (&"https://idp".into(), &"booking".into(), &"staff".into()));
            assert_eq!(c["org_id"], org.to_string());
        }
        assert!(target.unsigned_token(Role::Staff, None).ends_with('.'), "no signature");
        // Given tokens: theirs, an audience list as a list.
        let audiences = serde_json::json!(["booking", "ehr"]);
        let mint = |role: Role| {
            let claims = serde_json::json!({"sub": "x", "role": role.as_str(), "org_id": org, "exp": 4102444800u64,
                                            "iss": "https://given", "aud": audiences});
            shared::auth::sign_hs256(&claims, b"k").expect("minted")
        };
        let (admin, staff, agent) = (mint(Role::Admin), mint(Role::Staff), mint(Role::Agent));
        let given = ["--admin-token", &admin, "--staff-token", &staff, "--agent-token", &agent];
        let target = Target::start(&Cli::parse_from(remote.iter().chain(&given))).await.expect("target");
        for token in [target.forged_token(Role::Staff, Some(org)), target.unsigned_token(Role::Staff, Some(org))] {
            let c = claims(&token);
            assert_eq!(
                (&c["iss"], &c["aud"], &c["sub"]),
                (&"https://given".into(), &audiences, &"uat-impostor".into())
            );
        }
    }
}
