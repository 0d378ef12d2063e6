//! Settings from flags or environment variables (README.md, Configuration). Secrets never print.

use clap::builder::BoolishValueParser;
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/booking.db";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_MAIL_DIR: &str = "data/mail";
pub const DEFAULT_MAIL_FROM: &str = "bookings@localhost";
pub const DEFAULT_TWILIO_API_BASE: &str = "https://api.twilio.com";
pub const DEFAULT_SMS_DIR: &str = "data/sms";
/// About four per core of a small machine: more connections only queue inside PostgreSQL (see
/// bench/README.md).
pub const DEFAULT_POOL_SIZE: u32 = 8;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_VAPI_SIGNATURE_HEADER: &str = "x-signature";
pub const DEFAULT_VAPI_TIMESTAMP_HEADER: &str = "x-timestamp";
pub const DEFAULT_VAPI_HMAC_TOLERANCE_SECS: i64 = 300;
pub const DEFAULT_VAPI_DEADLINE_MS: u64 = 8000;
pub const DEFAULT_CONFIRM_TOKEN_TTL_HOURS: u32 = 72;
pub const DEFAULT_MAIL_POLL_MS: u64 = 1_000;
pub const DEFAULT_MAIL_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_MAIL_RETRY_BASE_MS: u64 = 30_000;
pub const DEFAULT_MAIL_RETRY_MAX_MS: u64 = 3_600_000;
pub const DEFAULT_MAIL_LEASE_SECS: u64 = 120;
pub const DEFAULT_SMTP_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;
pub const DEFAULT_LINK_GUESSES_PER_MINUTE: u32 = 30;
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// A client has this long to send a request's line and headers once it has begun.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Longer than the 60 s idle timeout of common load balancers, so the balancer closes a kept-alive
/// connection first and never sends a request down one this side has just closed.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 75;
/// 64 KiB in 10 s is 6.4 KB/s: only a client holding the request open on purpose is slower.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;
/// Below the open-file limit the service raises itself to at start (up to the hard limit; fewer
/// connections where that is lower), so sockets never starve the database pool and the mail
/// dispatcher of descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// As long as Kubernetes' default termination grace period, which must then be raised to hold it,
/// a `preStop` sleep and a few seconds more (docs/OPERATIONS.md, Rollback).
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// The command line: with no command the service migrates the database and serves. (No `Debug`:
/// the database URL may hold a password.)
#[derive(Parser)]
#[command(
    name = "booking-service",
    version,
    about = "Appointment booking API for clinics' voice agents",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

/// The longest any of the timings may be set to: a day, as seconds and as milliseconds (longer
/// ones overflow the clock arithmetic, and mean nothing a deployment wants).
const DAY_SECS: u64 = 86_400;
const DAY_MS: u64 = DAY_SECS * 1_000;

/// A number of seconds from 1 to a day.
fn seconds() -> RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=DAY_SECS)
}

/// A path, empty too (clap's own refuses that): an empty key file is unset
/// ([`Config::without_blanks`]).
fn path(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

/// A number of milliseconds from `least` to a day.
fn millis(least: u64) -> RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(least..=DAY_MS)
}

/// A `CLIENT_IP_SOURCE`: one of axum-client-ip's sources, by its name.
fn client_ip_source(name: &str) -> Result<axum_client_ip::ClientIpSource, String> {
    name.parse().map_err(|_| {
        "one of ConnectInfo, RightmostXForwardedFor, XRealIp, CfConnectingIp, TrueClientIp, FlyClientIp, \
         CloudFrontViewerAddress, XEnvoyExternalAddress"
            .to_owned()
    })
}

#[derive(Subcommand)]
pub enum Command {
    /// Applies the pending database migrations, prints them and exits (a deploy step run as the
    /// schema owner before new instances start; see docs/OPERATIONS.md).
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// `postgres://…` for PostgreSQL, `sqlite://PATH` for the embedded SQLite file.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LOG_JSON", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub log_json: bool,
}

#[derive(Clone, Parser)]
#[command(name = "booking-service", version, about = "Appointment booking API for clinics' voice agents")]
pub struct Config {
    /// `postgres://…` for PostgreSQL, `sqlite://PATH` for the embedded SQLite file.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Listen address; port 0 picks a free port.
    #[arg(long, env = "BIND_ADDR", default_value = DEFAULT_BIND_ADDR)]
    pub bind_addr: String,

    /// HS256 key, at least 32 bytes. When set, it is the only key accepted.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM public key for RS256, ES256 or EdDSA tokens (instead of JWT_SECRET); needs JWT_AUDIENCE.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", value_parser = path)]
    pub jwt_public_key_file: Option<PathBuf>,

    /// Pins the algorithm of JWT_PUBLIC_KEY_FILE (RS256, RS384, RS512, PS256, PS384, PS512, ES256,
    /// ES384, EdDSA); unset, RS256 for an RSA key, ES256 for an EC key (set ES384 for a P-384 one),
    /// EdDSA for an Ed25519 key. With JWT_SECRET only HS256 (or unset) is accepted.
    #[arg(long, env = "JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,

    /// When set, tokens must carry this `iss`.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// When set, tokens must carry this `aud`; required with JWT_PUBLIC_KEY_FILE (an identity
    /// provider's key signs other services' tokens too).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Base of the links sent to patients (email, SMS) and the URL Twilio signs for `/sms/inbound`;
    /// `http://` + the bound address by default.
    #[arg(long, env = "PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,

    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:port` (TLS; a password is warned about over a connection that may
    /// be plain); without it mail goes to MAIL_DIR.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Folder for mail written as `.eml` files when no SMTP server is set.
    #[arg(long, env = "MAIL_DIR", default_value = DEFAULT_MAIL_DIR)]
    pub mail_dir: PathBuf,

    /// Sender address of outgoing mail.
    #[arg(long, env = "MAIL_FROM", default_value = DEFAULT_MAIL_FROM)]
    pub mail_from: String,

    /// Twilio account that sends SMS (with TWILIO_AUTH_TOKEN); without both, SMS go to SMS_DIR.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,

    /// Twilio auth token: the password of its API and the key of the `X-Twilio-Signature` that
    /// `POST /sms/inbound` then requires (without it, only a request made on this machine, that
    /// no proxy relayed, is taken there).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,

    /// Base URL of Twilio's REST API (a test double's in tests).
    #[arg(long, env = "TWILIO_API_BASE", default_value = DEFAULT_TWILIO_API_BASE)]
    pub twilio_api_base: String,

    /// Sender number (E.164) of SMS, for clinics without their own `sms_from` setting.
    #[arg(long, env = "SMS_FROM")]
    pub sms_from: Option<String>,

    /// Folder for SMS written as JSON files: without Twilio, or for a message without a sender.
    #[arg(long, env = "SMS_DIR", default_value = DEFAULT_SMS_DIR)]
    pub sms_dir: PathBuf,

    /// Hours a confirmation link stays valid.
    #[arg(long, env = "CONFIRM_TOKEN_TTL_HOURS", default_value_t = DEFAULT_CONFIRM_TOKEN_TTL_HOURS)]
    #[arg(value_parser = clap::value_parser!(u32).range(1..=8_760))]
    pub confirm_token_ttl_hours: u32,

    /// Secret (at least 32 bytes) that confirmation links are derived from; every instance on one
    /// database needs the same. Default: derived from JWT_SECRET (or the dev-mode key); with
    /// JWT_PUBLIC_KEY_FILE: required on PostgreSQL, generated once beside the SQLite file.
    #[arg(long, env = "CONFIRM_LINK_SECRET", hide_env_values = true)]
    pub confirm_link_secret: Option<String>,

    /// The secret links were derived from before the current one (a former CONFIRM_LINK_SECRET
    /// or JWT_SECRET): messages about appointments booked before a rotation keep working links.
    #[arg(long, env = "CONFIRM_LINK_SECRET_PREVIOUS", hide_env_values = true)]
    pub confirm_link_secret_previous: Option<String>,

    /// How often the outbox dispatcher (email, SMS, webhooks) looks for due messages, in milliseconds.
    #[arg(long, env = "MAIL_POLL_MS", value_parser = millis(10), default_value_t = DEFAULT_MAIL_POLL_MS)]
    pub mail_poll_ms: u64,

    /// Delivery attempts of one outbox message (email, SMS, webhook) before it is marked dead.
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value_t = DEFAULT_MAIL_MAX_ATTEMPTS)]
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub mail_max_attempts: u32,

    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "MAIL_RETRY_BASE_MS", value_parser = millis(100), default_value_t = DEFAULT_MAIL_RETRY_BASE_MS)]
    pub mail_retry_base_ms: u64,

    /// Longest retry delay in milliseconds (at least the first).
    #[arg(long, env = "MAIL_RETRY_MAX_MS", value_parser = millis(100), default_value_t = DEFAULT_MAIL_RETRY_MAX_MS)]
    pub mail_retry_max_ms: u64,

    /// Seconds a claimed message is reserved for its dispatcher; after a crash it comes back then.
    #[arg(long, env = "MAIL_LEASE_SECS", value_parser = seconds(), default_value_t = DEFAULT_MAIL_LEASE_SECS)]
    pub mail_lease_secs: u64,

    /// Seconds one SMTP delivery may take.
    #[arg(long, env = "SMTP_TIMEOUT_SECS", value_parser = seconds(), default_value_t = DEFAULT_SMTP_TIMEOUT_SECS)]
    pub smtp_timeout_secs: u64,

    /// Database connections of this process (on SQLite its readers, beside one writer and one
    /// readiness check).
    #[arg(long = "database-pool-size", visible_alias = "pool-size", env = "DATABASE_POOL_SIZE")]
    #[arg(default_value_t = DEFAULT_POOL_SIZE)]
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub pool_size: u32,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", value_parser = seconds(), default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,

    /// Seconds a client may take to send a request's line and headers, from its first byte.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    #[arg(value_parser = seconds())]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection may sit with no request in flight and nothing sent before it is closed.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", value_parser = seconds(), default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,

    /// Seconds a client may take to send a request's body, from its headers; then 408.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = DEFAULT_BODY_READ_TIMEOUT_SECS)]
    #[arg(value_parser = seconds())]
    pub body_read_timeout_secs: u64,

    /// Open client connections at most; a client arriving when all are taken has an idle kept-alive
    /// one closed for it, else waits in the listen queue.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    #[arg(value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: usize,

    /// Seconds from SIGTERM within which requests in flight finish (new ones are taken until it
    /// less the request timeout and 2 s); then the process exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", value_parser = seconds(), default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,

    /// When set, `POST /api/vapi/tools` also requires Vapi's HMAC signature made with this secret.
    #[arg(long, env = "VAPI_HMAC_SECRET", hide_env_values = true)]
    pub vapi_hmac_secret: Option<String>,

    /// When set (at least 32 printable ASCII bytes, no spaces), `/metrics` answers only a request
    /// bearing it (`Authorization: Bearer …`, as Prometheus' `authorization` scrape setting sends it).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// A metrics token still taken beside `METRICS_TOKEN` while scrapers move to the new one
    /// (empty: none).
    #[arg(long, env = "METRICS_TOKEN_PREVIOUS", hide_env_values = true)]
    pub metrics_token_previous: Option<String>,

    /// Header carrying Vapi's HMAC signature.
    #[arg(long, env = "VAPI_SIGNATURE_HEADER", default_value = DEFAULT_VAPI_SIGNATURE_HEADER)]
    pub vapi_signature_header: String,

    /// Header carrying the signature's timestamp.
    #[arg(long, env = "VAPI_TIMESTAMP_HEADER", default_value = DEFAULT_VAPI_TIMESTAMP_HEADER)]
    pub vapi_timestamp_header: String,

    /// Largest accepted difference, in seconds, between the signature's timestamp and now.
    #[arg(long, env = "VAPI_HMAC_TOLERANCE_SECS", default_value_t = DEFAULT_VAPI_HMAC_TOLERANCE_SECS)]
    #[arg(value_parser = clap::value_parser!(i64).range(1..=DAY_SECS as i64))]
    pub vapi_hmac_tolerance_secs: i64,

    /// Milliseconds within which every tool call is answered (below Vapi's own timeout and below
    /// REQUEST_TIMEOUT_SECS).
    #[arg(long, env = "VAPI_DEADLINE_MS", value_parser = millis(100), default_value_t = DEFAULT_VAPI_DEADLINE_MS)]
    pub vapi_deadline_ms: u64,

    /// Lets webhooks go to loopback, private and link-local addresses (a clinic's own network;
    /// tests). Off: such URLs are refused when created and when delivered.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    #[arg(value_parser = BoolishValueParser::new())]
    pub webhook_allow_private: bool,

    /// Requests per minute of one token subject in one organization (0: no limit); beyond it 429.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = DEFAULT_RATE_LIMIT_PER_MINUTE)]
    #[arg(value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_per_minute: u32,

    /// Unknown patient-link tokens one client address may try a minute (0: no limit); while it has
    /// none left, every link it opens is 429, before any lookup. An IPv6 client is its /64.
    #[arg(long, env = "LINK_GUESSES_PER_MINUTE", default_value_t = DEFAULT_LINK_GUESSES_PER_MINUTE)]
    #[arg(value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub link_guesses_per_minute: u32,

    /// Where a client's address is read: `ConnectInfo` (the connection's peer: no proxy in front),
    /// or the header the deployment's own proxy sets (`RightmostXForwardedFor`, `XRealIp`,
    /// `CfConnectingIp`, `TrueClientIp`, `FlyClientIp`, `CloudFrontViewerAddress`,
    /// `XEnvoyExternalAddress`). Behind a proxy, `ConnectInfo` sees every client as the proxy.
    #[arg(long, env = "CLIENT_IP_SOURCE", default_value = "ConnectInfo", value_parser = client_ip_source)]
    pub client_ip_source: axum_client_ip::ClientIpSource,

    /// Days idempotency records, remembered tool answers and delivered or dead outbox messages are
    /// kept (0: kept forever).
    #[arg(long, env = "RETENTION_DAYS", default_value_t = DEFAULT_RETENTION_DAYS)]
    #[arg(value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retention_days: u32,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LOG_JSON", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub log_json: bool,

    /// Where the voice agent's "now" comes from: the system clock unless a test sets one.
    #[arg(skip)]
    pub clock: Option<crate::clock::SharedClock>,
}

impl Config {
    /// The defaults with another database, listening on a free port: what tests and the test
    /// tools start from. Unlike `Config::parse`, it reads no environment variable.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            bind_addr: "127.0.0.1:0".into(),
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_algorithm: None,
            jwt_issuer: None,
            jwt_audience: None,
            public_base_url: None,
            smtp_url: None,
            mail_dir: DEFAULT_MAIL_DIR.into(),
            mail_from: DEFAULT_MAIL_FROM.into(),
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_api_base: DEFAULT_TWILIO_API_BASE.into(),
            sms_from: None,
            sms_dir: DEFAULT_SMS_DIR.into(),
            confirm_token_ttl_hours: DEFAULT_CONFIRM_TOKEN_TTL_HOURS,
            confirm_link_secret: None,
            confirm_link_secret_previous: None,
            mail_poll_ms: DEFAULT_MAIL_POLL_MS,
            mail_max_attempts: DEFAULT_MAIL_MAX_ATTEMPTS,
            mail_retry_base_ms: DEFAULT_MAIL_RETRY_BASE_MS,
            mail_retry_max_ms: DEFAULT_MAIL_RETRY_MAX_MS,
            mail_lease_secs: DEFAULT_MAIL_LEASE_SECS,
            smtp_timeout_secs: DEFAULT_SMTP_TIMEOUT_SECS,
            pool_size: DEFAULT_POOL_SIZE,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            body_read_timeout_secs: DEFAULT_BODY_READ_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE_SECS,
            vapi_hmac_secret: None,
            metrics_token: None,
            metrics_token_previous: None,
            vapi_signature_header: DEFAULT_VAPI_SIGNATURE_HEADER.into(),
            vapi_timestamp_header: DEFAULT_VAPI_TIMESTAMP_HEADER.into(),
            vapi_hmac_tolerance_secs: DEFAULT_VAPI_HMAC_TOLERANCE_SECS,
            vapi_deadline_ms: DEFAULT_VAPI_DEADLINE_MS,
            webhook_allow_private: false,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            link_guesses_per_minute: DEFAULT_LINK_GUESSES_PER_MINUTE,
            client_ip_source: axum_client_ip::ClientIpSource::ConnectInfo,
            retention_days: DEFAULT_RETENTION_DAYS,
            log_json: false,
            clock: None,
        }
    }

    /// Optional settings given empty (`VAR=`, as a deployment template whose value was left out
    /// writes them): one whose absence only leaves a check or a default as it is (an issuer, an
    /// algorithm, a previous key, a sender) is unset; one whose absence would quietly weaken the
    /// service (a key, the mail or SMS server, the metrics token, the Vapi secret: links keyed
    /// otherwise, messages written to files, `/metrics` open, Vapi's signature unchecked) stops
    /// the start, naming it.
    pub fn without_blanks(mut self) -> Result<Self, String> {
        let blank = |value: &Option<String>| value.as_ref().is_some_and(|v| v.trim().is_empty());
        let refused = [
            ("JWT_SECRET", &self.jwt_secret),
            ("SMTP_URL", &self.smtp_url),
            ("TWILIO_ACCOUNT_SID", &self.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", &self.twilio_auth_token),
            ("CONFIRM_LINK_SECRET", &self.confirm_link_secret),
            ("METRICS_TOKEN", &self.metrics_token),
            ("VAPI_HMAC_SECRET", &self.vapi_hmac_secret),
        ];
        // The folders have defaults: one given empty would write patients' messages to the
        // working directory and fail to send each (retried to the end).
        let folders = [("MAIL_DIR", &self.mail_dir), ("SMS_DIR", &self.sms_dir)];
        let blank_folder = folders.iter().find(|(_, dir)| dir.to_str().is_some_and(|d| d.trim().is_empty()));
        let blank_secret = refused.iter().find(|(_, value)| blank(value));
        if let Some(name) = blank_secret.map(|(name, _)| name).or(blank_folder.map(|(name, _)| name)) {
            return Err(format!("{name} is set but empty: give it a value, or leave it unset for its default"));
        }
        for setting in [
            &mut self.jwt_algorithm,
            &mut self.jwt_issuer,
            &mut self.jwt_audience,
            &mut self.public_base_url,
            &mut self.sms_from,
            &mut self.confirm_link_secret_previous,
            &mut self.metrics_token_previous,
        ] {
            setting.take_if(|value| value.trim().is_empty());
        }
        self.jwt_public_key_file.take_if(|path| path.as_os_str().is_empty());
        // Settings with a default: set empty, the default.
        for (setting, default) in [
            (&mut self.twilio_api_base, DEFAULT_TWILIO_API_BASE),
            (&mut self.vapi_signature_header, DEFAULT_VAPI_SIGNATURE_HEADER),
            (&mut self.vapi_timestamp_header, DEFAULT_VAPI_TIMESTAMP_HEADER),
        ] {
            if setting.trim().is_empty() {
                *setting = default.to_owned();
            }
        }
        Ok(self)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The settings that must agree with each other, each within its own range already: a tool
    /// call's deadline inside the request's (else every slow call ends as a bare 503 that Vapi
    /// cannot speak), the longest retry delay no shorter than the first.
    pub fn check(&self) -> Result<(), String> {
        if self.vapi_deadline_ms >= self.request_timeout_secs.saturating_mul(1000) {
            return Err(format!(
                "VAPI_DEADLINE_MS ({}) must be below REQUEST_TIMEOUT_SECS ({} s)",
                self.vapi_deadline_ms, self.request_timeout_secs
            ));
        }
        if self.mail_retry_max_ms < self.mail_retry_base_ms {
            return Err(format!(
                "MAIL_RETRY_MAX_MS ({}) must be at least MAIL_RETRY_BASE_MS ({})",
                self.mail_retry_max_ms, self.mail_retry_base_ms
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact(&self.database_url))
            .field("bind_addr", &self.bind_addr)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("public_base_url", &self.public_base_url)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact))
            .field("mail_dir", &self.mail_dir)
            .field("mail_from", &self.mail_from)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &self.twilio_auth_token.as_ref().map(|_| "***"))
            .field("twilio_api_base", &redact(&self.twilio_api_base))
            .field("sms_from", &self.sms_from)
            .field("sms_dir", &self.sms_dir)
            .field("confirm_link_secret", &self.confirm_link_secret.as_ref().map(|_| "***"))
            .field("confirm_link_secret_previous", &self.confirm_link_secret_previous.as_ref().map(|_| "***"))
            .field("confirm_token_ttl_hours", &self.confirm_token_ttl_hours)
            .field("pool_size", &self.pool_size)
            .field("vapi_hmac_secret", &self.vapi_hmac_secret.as_ref().map(|_| "***"))
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("metrics_token_previous", &self.metrics_token_previous.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// A URL safe to print: its password and the value of every query parameter whose name looks
/// secret (`password`, `sslpassword`, `token`, `api_key`...) are masked. Text that is not a URL is
/// printed only when it is plainly a file path (a common mistake for `sqlite://PATH`), since
/// nothing can tell where a secret in other text begins.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        let path_like = (url.starts_with(['/', '.'])
            || [".db", ".sqlite", ".sqlite3"].iter().any(|e| url.ends_with(e)))
            && !url.contains([':', '@', '?', '=', ' ']);
        let lower = url.to_ascii_lowercase();
        if path_like && !SECRET_MARKS.iter().any(|m| lower.contains(m)) {
            return format!("{url} (not a valid URL; a SQLite file is sqlite://PATH)");
        }
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let scheme = if scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) { scheme } else { "" };
        return format!("{scheme}:*** (not a valid URL)");
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(name, _)| secret_name(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret_name(&name) { "***".to_owned() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Whether a query parameter of this name may carry a credential.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_MARKS.iter().any(|mark| name.contains(mark))
}

/// What a name or text that may carry a credential contains.
const SECRET_MARKS: [&str; 8] = ["pass", "pwd", "secret", "token", "key", "auth", "credential", "signature"];

#[cfg(test)]
mod tests {
    use super::*;

    /// A setting with a default, set empty, takes its default (as the README says of every
    /// optional one), rather than an empty Twilio address or Vapi header name.
    #[test]
    fn settings_with_a_default_set_empty_take_it() {
        let empty = ["--twilio-api-base", " ", "--vapi-signature-header", "", "--vapi-timestamp-header", ""];
        let config = Config::try_parse_from([&["booking-service"], &empty[..]].concat()).expect("parsed");
        let config = config.without_blanks().expect("no setting refused");
        assert_eq!(config.twilio_api_base, DEFAULT_TWILIO_API_BASE);
        assert_eq!(config.vapi_signature_header, DEFAULT_VAPI_SIGNATURE_HEADER);
        assert_eq!(config.vapi_timestamp_header, DEFAULT_VAPI_TIMESTAMP_HEADER);
    }

    /// Settings that would overflow the clock arithmetic, or leave no connection, are refused by
    /// name when the service starts, and a password in DATABASE_URL stays out of `--help`.
    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let parse = |args: &[&str]| Config::try_parse_from([&["booking-service"], args].concat());
        assert!(parse(&[]).is_ok());
        for (flag, value) in [
            ("--database-pool-size", "0"),
            ("--confirm-token-ttl-hours", "3000000000"),
            ("--mail-retry-max-ms", "9000000000000000"),
            ("--idle-timeout-secs", "18446744073709551615"),
            ("--shutdown-grace-secs", "0"),
            ("--max-connections", "0"),
            ("--mail-retry-base-ms", "0"),
            ("--vapi-deadline-ms", "1"),
            ("--mail-poll-ms", "5"),
        ] {
            let refused = parse(&[flag, value]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains(flag), "{flag} {value}: {refused}");
        }
        let command = <Config as clap::CommandFactory>::command();
        let url = command.get_arguments().find(|a| a.get_id() == "database_url").expect("the argument");
        assert!(url.is_hide_env_values_set(), "DATABASE_URL's value (with its password) would show in --help");
    }

    /// Settings each within its range but not with each other are refused, naming both.
    #[test]
    fn settings_that_contradict_each_other_are_refused_by_name() {
        let parse = |args: &[&str]| Config::try_parse_from([&["booking-service"], args].concat()).expect("parsed");
        assert_eq!(parse(&[]).check(), Ok(()));
        for (args, names) in [
            (&["--vapi-deadline-ms", "12000"][..], ["VAPI_DEADLINE_MS", "REQUEST_TIMEOUT_SECS"]),
            (&["--request-timeout-secs", "8"][..], ["VAPI_DEADLINE_MS", "REQUEST_TIMEOUT_SECS"]),
            (
                &["--mail-retry-base-ms", "5000", "--mail-retry-max-ms", "1000"][..],
                ["MAIL_RETRY_MAX_MS", "MAIL_RETRY_BASE_MS"],
            ),
        ] {
            let refused = parse(args).check().expect_err("refused");
            assert!(names.iter().all(|name| refused.contains(name)), "{args:?}: {refused}");
        }
    }

    /// A yes-or-no setting reads the words people write for it, not only `true` and `false`.
    #[test]
    fn a_yes_or_no_setting_takes_the_usual_words() {
        let allows = |value: &str| {
            Config::try_parse_from(["booking-service", "--webhook-allow-private", value])
                .map(|c| c.webhook_allow_private)
        };
        for (value, meant) in [("true", true), ("1", true), ("yes", true), ("on", true), ("0", false), ("no", false)] {
            assert_eq!(allows(value).ok(), Some(meant), "{value}");
        }
        assert!(allows("maybe").is_err());
        let json = Config::try_parse_from(["booking-service", "--log-json"]).expect("parsed");
        assert!(json.log_json, "the bare flag");
    }

    #[test]
    fn the_password_of_a_url_is_masked() {
        assert_eq!(redact("postgres://app:hunter2@db:5432/booking"), "postgres://app:***@db:5432/booking");
    }

    #[test]
    fn secret_query_parameters_are_masked_and_the_others_kept() {
        let shown = redact(
            "postgres://app@db/booking?sslmode=verify-full&password=hunter2&sslpassword=pem-pass\
             &PASS=x1&auth_token=t0k&api_key=k3y&client_secret=s3c&application_name=booking",
        );
        for secret in ["hunter2", "pem-pass", "x1", "t0k", "k3y", "s3c"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(shown.contains("sslmode=verify-full"), "{shown}");
        assert!(shown.contains("application_name=booking"), "{shown}");
        assert!(shown.contains("password=***") || shown.contains("password=%2A%2A%2A"), "{shown}");
    }

    #[test]
    fn a_password_in_both_places_is_masked_in_both() {
        let shown = redact("smtps://mailer:in-userinfo@smtp.example:465?password=in-query");
        assert!(!shown.contains("in-userinfo") && !shown.contains("in-query"), "{shown}");
        assert!(shown.starts_with("smtps://mailer:"), "{shown}");
    }

    #[test]
    fn text_that_is_not_a_url_is_not_printed_when_it_may_hold_a_credential() {
        let shown = redact("postgres://app:hunter2@db:notaport/booking");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.starts_with("postgres:"), "{shown}");
        for dsn in ["host=db password=hunter2", "db?sslpassword=hunter2", "/data/hunter2 token"] {
            assert!(!redact(dsn).contains("hunter2"), "{dsn}");
        }
        // A path or a word is shown as typed, so the message names the mistake.
        assert_eq!(redact("/tmp/booking.db"), "/tmp/booking.db (not a valid URL; a SQLite file is sqlite://PATH)");
        for not_a_path in ["hunter2", "postgres//app:hunter2/booking", "hunter2.example"] {
            assert!(!redact(not_a_path).contains("hunter2"), "{not_a_path}");
        }
    }

    #[test]
    fn a_url_without_secrets_prints_as_given() {
        assert_eq!(redact("sqlite://data/booking.db"), "sqlite://data/booking.db");
        assert_eq!(redact("sqlite://data/booking.db?mode=rwc"), "sqlite://data/booking.db?mode=rwc");
    }
}
