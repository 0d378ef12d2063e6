//! From configuration to a listening service: database pool and migrations, authentication
//! (or the announced dev mode), the router, and a shutdown bounded by its grace.

use crate::config::Config;
use crate::domain::{OrgId, Zone};
use crate::http::{self, auth::Authenticator, AppState, VapiSettings};
use crate::links::{LinkKey, Links};
use crate::mail::Transport;
use crate::outbox::{self, Channels, Dispatcher, DispatcherSettings};
use crate::server::{self, Draining, ServerSettings};
use crate::store::{self, DynStore, Organization};
use crate::vapi::SignatureCheck;
use crate::{retention, telemetry};
use anyhow::Context;
use rand::RngCore;
use shared::{Role, Signer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long the tokens printed in dev mode stay valid.
const DEV_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
const MIN_SECRET_BYTES: usize = 32;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    dev: Option<DevMode>,
    dispatcher: Dispatcher,
    mail_target: String,
    retention_days: u32,
    server: ServerSettings,
}

/// What dev mode set up: a generated key kept on disk, a demo organization, and tokens for it.
#[derive(Debug, Clone)]
pub struct DevMode {
    pub secret_file: PathBuf,
    pub org_id: OrgId,
    pub tokens: Vec<(Role, String)>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = config.without_blanks().map_err(anyhow::Error::msg)?;
        config.check().map_err(anyhow::Error::msg)?;
        telemetry::init_metrics();
        // Every setting is checked before the database is opened (and, on SQLite, created), so a
        // refused start says what it can at once and leaves nothing behind; only dev mode's key
        // waits for the database, and the port is bound once the instance can serve.
        let configured = configured_authentication(&config)?;
        if configured.is_none() {
            dev_mode_allowed(&config).await?;
        }
        let link_secret =
            config.confirm_link_secret.as_deref().map(|s| secret_key("CONFIRM_LINK_SECRET", s)).transpose()?;
        let previous_link_key = match config.confirm_link_secret_previous.as_deref() {
            Some(previous) => Some(secret_key("CONFIRM_LINK_SECRET_PREVIOUS", previous)?),
            None => None,
        };
        let transport = Transport::new(
            config.smtp_url.as_deref(),
            config.mail_dir.clone(),
            Duration::from_secs(config.smtp_timeout_secs.max(1)),
        )?;
        let mail_target = transport.describe(config.smtp_url.as_deref());
        let sms = crate::sms::Sms::from_config(&config)?;
        // Every instance on a shared database claims its share of every clinic's messages.
        let to_files = [
            (config.smtp_url.is_none(), "no SMTP_URL", "mail", &config.mail_dir, ""),
            (
                config.twilio_account_sid.is_none(),
                "no Twilio account",
                "SMS",
                &config.sms_dir,
                ", and Twilio's posts of patients' STOP and START to /sms/inbound are refused",
            ),
        ];
        for (_, missing, what, dir, also) in to_files.into_iter().filter(|(unset, ..)| *unset && !config.is_sqlite()) {
            tracing::warn!(
                dir = %dir.display(),
                "{missing} on a shared database: the {what} this instance claims is written to files on its own disk, not sent{also}"
            );
        }
        let from: lettre::message::Mailbox = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM {} is not an address: {e}", config.mail_from))?;
        if let Some(url) = &config.public_base_url {
            // `clinic.example:8443` parses too, as the scheme `clinic.example`: links in messages
            // would lead nowhere and no Twilio signature would match.
            let parsed = url::Url::parse(url).with_context(|| format!("PUBLIC_BASE_URL {url} is not a URL"))?;
            anyhow::ensure!(
                ["http", "https"].contains(&parsed.scheme()) && parsed.host().is_some(),
                "PUBLIC_BASE_URL {url} is not an http:// or https:// URL with a host (as https://clinic.example)"
            );
            // Links are the base and a path: after a query or a fragment they would lead nowhere.
            anyhow::ensure!(
                parsed.query().is_none() && parsed.fragment().is_none(),
                "PUBLIC_BASE_URL {url} has a query or a fragment: links are made by adding a path to it"
            );
        }
        let lease = Duration::from_secs(config.mail_lease_secs.max(1));
        let send_deadline = outbox::send_deadline(Duration::from_secs(config.smtp_timeout_secs.max(1)));
        outbox::lease_fits(lease, send_deadline).map_err(anyhow::Error::msg)?;
        let vapi = vapi_settings(&config)?;
        let metrics_tokens = metrics_tokens(&config)?;
        // Links keyed by a secret the instances share, known before the database is opened (so a
        // misconfigured instance migrates nothing): with a public key there is none to derive.
        if matches!(configured, Some((_, None))) && link_secret.is_none() && !config.is_sqlite() {
            anyhow::bail!(no_link_secret());
        }
        let cannot_listen = || format!("cannot listen on {}", config.bind_addr);
        drop(tokio::net::lookup_host(&config.bind_addr).await.with_context(cannot_listen)?);

        let store = store::connect(&config.database_url, config.pool_size)
            .await
            .with_context(|| format!("cannot open the database {}", crate::config::redact(&config.database_url)))?;
        let (auth, dev, jwt_secret) = match configured {
            Some((auth, secret)) => (auth, None, secret),
            None => {
                let (secret, dev) = dev_mode(&config, &store).await?;
                let auth = Authenticator::hs256(
                    secret.as_bytes(),
                    config.jwt_issuer.as_deref(),
                    config.jwt_audience.as_deref(),
                );
                (auth, Some(dev), Some(secret))
            }
        };
        let listener = TcpListener::bind(&config.bind_addr).await.with_context(cannot_listen)?;
        let address = listener.local_addr()?;
        let ttl = chrono::Duration::hours(i64::from(config.confirm_token_ttl_hours.max(1)));
        let mut links = Links::new(link_key(&config, link_secret, jwt_secret.as_deref())?, ttl);
        if let Some(previous) = previous_link_key {
            links = links.with_previous(previous);
        }
        let links = Arc::new(links);
        let base_url = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"))
            .trim_end_matches('/')
            .to_owned();
        if config.public_base_url.is_none() && !address.ip().is_loopback() {
            // Links in emails and SMS would name this address, and Twilio's signature on
            // /sms/inbound (made over the public URL) would never match it: STOP would be lost.
            tracing::warn!(
                %base_url,
                "PUBLIC_BASE_URL is not set: links sent to patients use the listen address; set it to the public URL"
            );
        }
        let webhooks =
            crate::webhooks::Sender { allow_private: config.webhook_allow_private, timeout: crate::webhooks::TIMEOUT };
        let dispatcher = Dispatcher {
            channels: Channels {
                store: store.clone(),
                mail: transport,
                from,
                base_url,
                links: links.clone(),
                webhooks,
                sms: sms.clone(),
            },
            settings: DispatcherSettings {
                poll: Duration::from_millis(config.mail_poll_ms.max(10)),
                max_attempts: config.mail_max_attempts.max(1),
                retry_base: Duration::from_millis(config.mail_retry_base_ms),
                retry_max: Duration::from_millis(config.mail_retry_max_ms),
                lease,
                send_deadline,
            },
        };
        let state = AppState::new(http::Services {
            store,
            auth: Arc::new(auth),
            request_timeout: config.request_timeout(),
            body_read_timeout: Duration::from_secs(config.body_read_timeout_secs.max(1)),
            draining: Draining::default(),
            readiness: Arc::default(),
            vapi: Arc::new(vapi),
            links,
            lanes: Arc::default(),
            rate_limit: Arc::new(http::RateLimit::per_minute(config.rate_limit_per_minute)),
            link_guesses: Arc::new(http::LinkLimit::per_minute(config.link_guesses_per_minute)),
            link_lookups: Arc::new(http::LinkLimit::per_minute(
                config.rate_limit_per_minute.saturating_mul(http::LINK_LOOKUPS_PER_REQUEST),
            )),
            client_ip: config.client_ip_source.clone(),
            metrics_tokens,
            clock: config.clock.clone().unwrap_or_else(crate::clock::system),
            webhooks,
            sms,
            public_base_url: dispatcher.channels.base_url.as_str().into(),
        });
        let server = ServerSettings {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
            max_connections: crate::server::connection_cap(config.max_connections),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            request_timeout: config.request_timeout(),
        };
        if server.shutdown_grace < server.request_timeout + crate::server::ANSWER_MARGIN {
            tracing::warn!(
                grace_secs = config.shutdown_grace_secs,
                request_timeout_secs = config.request_timeout_secs,
                "SHUTDOWN_GRACE_SECS is shorter than REQUEST_TIMEOUT_SECS plus 2 s: a busy instance that is stopped \
                 takes no new request at all, and one it took may be cut"
            );
        }
        if server.shutdown_grace < send_deadline {
            tracing::warn!(
                grace_secs = config.shutdown_grace_secs,
                send_deadline_secs = send_deadline.as_secs(),
                "SHUTDOWN_GRACE_SECS is shorter than a delivery may take (SMTP_TIMEOUT_SECS, or a webhook's own limit): \
                 a message being sent when the instance is stopped may be cut after it was taken, and go again once \
                 its lease ends"
            );
        }
        let retention_days = config.retention_days;
        Ok(Self { listener, address, state, dev, dispatcher, mail_target, retention_days, server })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn store(&self) -> DynStore {
        self.state.store.clone()
    }

    /// Where SMS go: what the dispatcher sends through.
    pub fn sms(&self) -> &crate::sms::Sms {
        &self.state.sms
    }

    /// The keys of the patient's links, so a caller holding the stored nonce (a test, a tool)
    /// can derive a link's token as the dispatcher does.
    pub fn links(&self) -> Arc<Links> {
        self.state.links.clone()
    }

    pub fn dev_mode(&self) -> Option<&DevMode> {
        self.dev.as_ref()
    }

    /// What to print at start: where it listens and, in dev mode, how to call it.
    pub fn banner(&self) -> String {
        let base = self.base_url();
        let mut out = format!(
            "booking-service listening on {base}\nconfirmation mail: {} (links to {}/confirm/…)\nSMS: {}\n",
            self.mail_target,
            self.dispatcher.channels.base_url,
            self.state.sms.describe()
        );
        if let Some(dev) = &self.dev {
            out.push_str(&format!(
                "\nDEV MODE: no JWT_SECRET or JWT_PUBLIC_KEY_FILE is set, so a key was generated and kept in {}.\n\
                 Do not use dev mode in production. Demo organization: {} (America/New_York).\n\
                 Tokens, valid for 30 days (paste these lines into your shell):\n",
                dev.secret_file.display(),
                dev.org_id
            ));
            for (role, token) in &dev.tokens {
                out.push_str(&format!("  export {}_TOKEN={token}\n", role.as_str().to_uppercase()));
            }
            out.push_str(&format!(
                "\nThen try:\n  \
                 curl -s -X POST {base}/api/providers -H \"Authorization: Bearer $ADMIN_TOKEN\" -H 'Content-Type: application/json' \\\n    \
                 -d '{{\"name\": \"Dr. Smith\", \"working_hours\": [{{\"weekday\": \"fri\", \"start\": \"09:00\", \"end\": \"17:00\"}}]}}'\n  \
                 curl -s {base}/openapi.json   # every route\n"
            ));
        }
        out
    }

    /// Serves and delivers mail until `shutdown` completes; then `/readyz` answers 503 and the
    /// mail dispatcher claims nothing more, while the requests in flight and the messages in hand
    /// finish, all within `SHUTDOWN_GRACE_SECS`: what is still running then is cut.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let dispatcher = self.dispatcher.spawn();
        let retention = (self.retention_days > 0).then(|| {
            retention::spawn(self.state.store.clone(), chrono::Duration::days(i64::from(self.retention_days)))
        });
        let draining = self.state.draining.clone();
        let sampler =
            telemetry::spawn_sampler(self.state.store.clone(), self.state.readiness.clone(), draining.clone());
        // The dispatcher claims nothing more from the moment shutdown begins, not from the end of
        // the drain, which may have used up the grace its messages in hand need.
        let shutdown = {
            let stop_dispatcher = dispatcher.stop_signal();
            let grace = self.server.shutdown_grace;
            async move {
                shutdown.await;
                stop_dispatcher(tokio::time::Instant::now() + grace);
            }
        };
        let router = http::router(self.state);
        let deadline = server::serve(self.listener, router, self.server, draining, shutdown).await;
        sampler.abort();
        if let Some(task) = retention {
            task.abort();
        }
        if !dispatcher.stop_by(deadline).await {
            // Its claimed messages come back to a dispatcher when their lease ends.
            tracing::warn!("shutdown grace over: leaving the mail in hand to be retried");
        }
        Ok(())
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves on a task of the current runtime (as tests and the test tools do) until the
    /// returned handle is stopped or dropped.
    pub fn spawn(self) -> Running {
        let base_url = self.base_url();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until(async {
            let _ = rx.await;
        }));
        Running { base_url, shutdown: Some(tx), task: Some(task) }
    }
}

/// A service serving on a task; dropping it asks it to stop.
#[derive(Debug)]
pub struct Running {
    base_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops accepting requests, finishes those in flight and the mail in hand, and returns how
    /// serving ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn vapi_settings(config: &Config) -> anyhow::Result<VapiSettings> {
    let signature = config
        .vapi_hmac_secret
        .as_deref()
        .map(|secret| {
            SignatureCheck::new(
                secret.as_bytes(),
                &config.vapi_signature_header,
                &config.vapi_timestamp_header,
                config.vapi_hmac_tolerance_secs,
            )
        })
        .transpose()
        .context("VAPI_SIGNATURE_HEADER and VAPI_TIMESTAMP_HEADER must be header names")?;
    Ok(VapiSettings { signature, deadline: std::time::Duration::from_millis(config.vapi_deadline_ms) })
}

/// A fresh 256-bit key from the operating system's random source, hex-encoded: what dev mode,
/// the link key and the test tools' in-process services use when none is configured.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("stop signal received");
}

/// The link key of a configured secret ([`long_enough`]).
fn secret_key(name: &str, secret: &str) -> anyhow::Result<LinkKey> {
    Ok(LinkKey::derive(long_enough(name, secret)?.as_bytes()))
}

/// The digests of `METRICS_TOKEN` and, while scrapers move to it, `METRICS_TOKEN_PREVIOUS`; none:
/// `/metrics` is open.
fn metrics_tokens(config: &Config) -> anyhow::Result<Vec<[u8; 32]>> {
    let previous = config.metrics_token_previous.as_deref();
    anyhow::ensure!(
        previous.is_none() || config.metrics_token.is_some(),
        "METRICS_TOKEN_PREVIOUS is set without METRICS_TOKEN: /metrics would be open to anyone"
    );
    [("METRICS_TOKEN", config.metrics_token.as_deref()), ("METRICS_TOKEN_PREVIOUS", previous)]
        .into_iter()
        .filter_map(|(name, token)| Some((name, token?)))
        .map(|(name, token)| Ok(http::metrics_token_digest(metrics_token(name, token)?)))
        .collect()
}

/// A metrics token: long enough, and of the characters a header carries as they are (a token with
/// a space or a line break in it would never match, and every scrape would fail).
fn metrics_token<'t>(name: &str, token: &'t str) -> anyhow::Result<&'t str> {
    anyhow::ensure!(
        token.bytes().all(|b| b.is_ascii_graphic()),
        "{name} must be printable ASCII without spaces or line breaks"
    );
    long_enough(name, token)
}

/// A configured secret, which must be at least [`MIN_SECRET_BYTES`] long.
fn long_enough<'s>(name: &str, secret: &'s str) -> anyhow::Result<&'s str> {
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_BYTES,
        "{name} must be at least {MIN_SECRET_BYTES} bytes (it is {})",
        secret.len()
    );
    Ok(secret)
}

/// The key confirmation links are derived from: `CONFIRM_LINK_SECRET`, else the HS256 secret
/// (given or generated in dev mode), else, on SQLite only, a secret generated once and kept beside
/// the database file.
fn no_link_secret() -> String {
    format!(
        "set CONFIRM_LINK_SECRET (at least {MIN_SECRET_BYTES} bytes, the same on every instance): \
         with JWT_PUBLIC_KEY_FILE there is no shared secret to derive confirmation links from"
    )
}

fn link_key(config: &Config, configured: Option<LinkKey>, jwt_secret: Option<&str>) -> anyhow::Result<LinkKey> {
    if let Some(key) = configured {
        return Ok(key);
    }
    if let Some(secret) = jwt_secret {
        return Ok(LinkKey::derive(secret.as_bytes()));
    }
    // Every instance on a shared database must derive the same links; a key generated per host
    // would silently break the links another instance issued.
    anyhow::ensure!(config.is_sqlite(), "{}", no_link_secret());
    let file = data_dir(&config.database_url).join("confirm-link-secret");
    tracing::warn!(
        file = %file.display(),
        "no CONFIRM_LINK_SECRET: using a generated one; every instance on this database needs the same"
    );
    let secret = read_or_create(&file, random_secret)?;
    Ok(LinkKey::derive(secret.as_bytes()))
}

/// The authenticator of the configured key, and the HS256 secret if it is one; `None` without a
/// key (dev mode, whose key the database keeps).
fn configured_authentication(config: &Config) -> anyhow::Result<Option<(Authenticator, Option<String>)>> {
    let issuer = config.jwt_issuer.as_deref();
    let audience = config.jwt_audience.as_deref();
    match (&config.jwt_secret, &config.jwt_public_key_file) {
        (Some(secret), key_file) => {
            let mut algorithm = config.jwt_algorithm.as_deref().filter(|a| *a != "HS256");
            if let Some(path) = key_file {
                // JWT_SECRET, when set, is the only key accepted (as midway through a change of
                // keys), and the algorithm pinned for the file is the file's.
                tracing::warn!(file = %path.display(), "JWT_SECRET is set: JWT_PUBLIC_KEY_FILE (and a JWT_ALGORITHM for it) is not used");
                if audience.is_none() {
                    tracing::warn!("without JWT_SECRET this start would stop: JWT_PUBLIC_KEY_FILE needs JWT_AUDIENCE");
                }
                if config.confirm_link_secret.is_none() {
                    tracing::warn!(
                        "the patients' links are derived from JWT_SECRET: set CONFIRM_LINK_SECRET before removing \
                         it, or the links of messages still to go (on PostgreSQL, the start) will fail"
                    );
                }
                algorithm = None;
            }
            if let Some(algorithm) = algorithm {
                anyhow::bail!("JWT_ALGORITHM {algorithm} does not go with JWT_SECRET, an HS256 key (leave it unset)");
            }
            let auth = Authenticator::hs256(long_enough("JWT_SECRET", secret)?.as_bytes(), issuer, audience);
            Ok(Some((auth, Some(secret.clone()))))
        }
        (None, Some(path)) => {
            // A public key is usually an identity provider's, which signs tokens for other
            // services too: without an audience to check, theirs would be taken (RFC 8725, 3.9).
            anyhow::ensure!(
                audience.is_some(),
                "JWT_AUDIENCE must be set with JWT_PUBLIC_KEY_FILE: the key's other services' tokens would be accepted"
            );
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read JWT_PUBLIC_KEY_FILE {}", path.display()))?;
            let algorithm = config
                .jwt_algorithm
                .as_deref()
                .map(|a| {
                    a.parse::<jsonwebtoken::Algorithm>().map_err(|_| anyhow::anyhow!("JWT_ALGORITHM {a} is not known"))
                })
                .transpose()?;
            if algorithm.is_some_and(|a| {
                matches!(
                    a,
                    jsonwebtoken::Algorithm::HS256 | jsonwebtoken::Algorithm::HS384 | jsonwebtoken::Algorithm::HS512
                )
            }) {
                anyhow::bail!("JWT_ALGORITHM must be an asymmetric algorithm with JWT_PUBLIC_KEY_FILE");
            }
            Ok(Some((Authenticator::public_key(&pem, algorithm, issuer, audience)?, None)))
        }
        (None, None) => Ok(None),
    }
}

/// Dev mode prints tokens that work for anyone who can reach the service, so it runs only where
/// nobody else can: on the embedded default database and a loopback address (docs/API.md §1).
async fn dev_mode_allowed(config: &Config) -> anyhow::Result<()> {
    const SET_A_KEY: &str = "no signing key: set JWT_SECRET (HS256, at least 32 bytes) or JWT_PUBLIC_KEY_FILE";
    anyhow::ensure!(
        config.database_url == crate::config::DEFAULT_DATABASE_URL,
        "{SET_A_KEY}. Dev mode, which generates one, runs only on the default database {} \
         (DATABASE_URL is {})",
        crate::config::DEFAULT_DATABASE_URL,
        crate::config::redact(&config.database_url)
    );
    let loopback = match tokio::net::lookup_host(&config.bind_addr).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    };
    anyhow::ensure!(
        loopback,
        "{SET_A_KEY}. Dev mode, which generates one, listens only on a loopback address such as \
         127.0.0.1:8080 (BIND_ADDR is {})",
        config.bind_addr
    );
    Ok(())
}

/// The folder of the SQLite file, where dev mode keeps its key.
fn data_dir(database_url: &str) -> PathBuf {
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() && path != ":memory:" => dir.to_path_buf(),
        _ => PathBuf::from("data"),
    }
}

/// The value kept in `path`, or `create`'s, kept there first. The file appears whole and private
/// (written to a file of its own, mode 0600 from the start, flushed, then linked into place and
/// its folder flushed), and when two processes start at once the first link wins and both use its
/// value. A file that cannot be read, or is empty, refuses the start: replacing it would change a
/// key in use.
fn read_or_create(path: &Path, create: impl FnOnce() -> String) -> anyhow::Result<String> {
    use std::io::{ErrorKind, Write};
    let read = |path: &Path| -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(kept) if kept.trim().is_empty() => {
                anyhow::bail!(
                    "{} is empty: restore it from a backup, or remove it to generate a new one",
                    path.display()
                )
            }
            Ok(kept) => Ok(Some(kept.trim().to_owned())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        }
    };
    if let Some(kept) = read(path)? {
        return Ok(kept);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let draft = path.with_extension(format!("new-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&draft)?;
        file.write_all(create().as_bytes())?;
        file.sync_all()?;
        match std::fs::hard_link(&draft, path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
            // A filesystem without hard links (FAT, some network mounts): renamed instead, the
            // race between two first starts left to chance there.
            Err(_) => std::fs::rename(&draft, path)?,
        }
        // The new name on disk too, before anything is signed with the key.
        match path.parent().map(std::fs::File::open) {
            Some(Ok(dir)) => dir.sync_all(),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&draft);
    written.with_context(|| format!("cannot write {}", path.display()))?;
    read(path)?.with_context(|| format!("{} vanished as it was written", path.display()))
}

/// Returns the generated (or kept) secret and what was set up with it.
async fn dev_mode(config: &Config, store: &DynStore) -> anyhow::Result<(String, DevMode)> {
    let dir = data_dir(&config.database_url);
    let secret_file = dir.join("dev-jwt-secret");
    let secret = read_or_create(&secret_file, random_secret)?;
    let org_id = read_or_create(&dir.join("dev-org-id"), || OrgId::new().to_string())?;
    let org_id = OrgId(org_id.parse().context("data/dev-org-id does not hold a UUID")?);
    if store.organization(org_id).await?.is_none() {
        store
            .create_organization(&Organization {
                id: org_id,
                name: "Dev Clinic".into(),
                zone: Zone::parse("timezone", "America/New_York")?,
                created_at: store::now(),
                vapi: Default::default(),
            })
            .await?;
    }
    let signer = Signer::hs256(&secret).for_service(config.jwt_issuer.clone(), config.jwt_audience.clone());
    let mut tokens = Vec::new();
    for role in [Role::Platform, Role::Admin, Role::Staff, Role::Agent] {
        let org = (role != Role::Platform).then_some(org_id.0);
        tokens.push((role, signer.mint(format!("dev-{}", role.as_str()), role, org, DEV_TOKEN_TTL_SECS)?));
    }
    Ok((secret, DevMode { secret_file, org_id, tokens }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated key is kept whole and private, found again on the next start, and the same for
    /// two processes starting at once; an empty file (a crash mid-write before this was atomic)
    /// refuses the start rather than becoming an empty key.
    #[test]
    fn a_generated_key_is_kept_once_privately_and_never_replaced() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("data").join("dev-jwt-secret");
        let barrier = std::sync::Barrier::new(8);
        let kept: Vec<String> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        read_or_create(&path, random_secret).expect("kept")
                    })
                })
                .collect();
            starts.into_iter().map(|t| t.join().expect("thread")).collect()
        });
        assert!(kept.iter().all(|k| *k == kept[0] && k.len() == 64), "{kept:?}");
        assert_eq!(read_or_create(&path, || "another".into()).expect("read"), kept[0], "found again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(path.parent().expect("dir")).expect("list").collect();
        assert_eq!(left.len(), 1, "no draft left beside it: {left:?}");

        std::fs::write(&path, "").expect("emptied");
        let refused = read_or_create(&path, random_secret).expect_err("an empty key file refuses the start");
        assert!(refused.to_string().contains("is empty"), "{refused}");
        // One that cannot be read (here, not text) is refused and left as it is, not replaced.
        std::fs::write(&path, [0xff, 0xfe]).expect("damaged");
        read_or_create(&path, random_secret).expect_err("an unreadable key file refuses the start");
        assert_eq!(std::fs::read(&path).expect("read"), [0xff, 0xfe], "left as it was");
    }
}
