//! What is tested: the service started in-process (on a temporary SQLite file or a given
//! database), or a running service at a URL, and the credentials to call it with.

use anyhow::Context;
use booking_service::config::Config;
use booking_service::startup::{Application, Running};
use shared::{Role, Signer};
use tempfile::TempDir;
use uuid::Uuid;

/// How long minted tokens stay valid: longer than any run, its load (`--duration`, an hour at
/// most), read-back (waiting out rate limits) and clean-up together.
const TOKEN_TTL_SECS: i64 = 4 * 3600;

/// How the tool gets its tokens.
#[derive(Clone)]
pub enum Credentials {
    /// The target's HS256 secret (and the `iss` and `aud` it takes): any role can be minted, so the
    /// tool creates its own organization.
    Secret(Signer),
    /// Given tokens of an existing organization: `admin` and `agent` of it. The tool works there
    /// and creates no organization (it could not act in a new one without its admin and agent
    /// tokens), so `platform`, optional, is kept but not used.
    Tokens { platform: Option<String>, admin: String, agent: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(***)"),
            Self::Tokens { .. } => f.write_str("Tokens(***)"),
        }
    }
}

impl Credentials {
    pub fn mint(signer: &Signer, role: Role, org: Option<Uuid>) -> anyhow::Result<String> {
        signer
            .mint(format!("smoke-test-{}", role.as_str()), role, org, TOKEN_TTL_SECS)
            .context("cannot sign a token with the given secret")
    }
}

/// The service under test.
pub struct Target {
    pub base_url: String,
    /// `in-process (sqlite temporary)`, `in-process (postgres)` or `remote`.
    pub description: String,
    pub credentials: Credentials,
    server: Option<InProcess>,
}

struct InProcess {
    running: Running,
    _dir: TempDir,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Whether the service runs in this process (and holds the far end of every connection).
    pub fn runs_here(&self) -> bool {
        self.server.is_some()
    }

    /// Starts the booking service in this process on port 0: on `database_url`, else on a
    /// temporary SQLite file; with a generated secret, and room for `connections` at once.
    pub async fn in_process(database_url: Option<&str>, connections: usize) -> anyhow::Result<Self> {
        // The run's own folder, removed when it stops: the temporary database's, and the mail and
        // SMS the service writes (a folder shared between runs would keep every run's).
        let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let (url, kind) = match database_url {
            Some(url) => (url.to_owned(), if url.starts_with("postgres") { "postgres" } else { "sqlite" }),
            None => (format!("sqlite://{}", dir.path().join("smoke.db").display()), "sqlite, temporary"),
        };
        let secret = booking_service::startup::random_secret();
        let mut config = Config::with_database(url);
        config.jwt_secret = Some(secret.clone());
        // The race is thousands of requests from one agent token; the per-token rate limit is a
        // defence against one caller, not what this run measures.
        config.rate_limit_per_minute = 0;
        // Past its connection cap the service closes an idle connection for each new one: a race
        // of more racers would see warmed connections closed and opened again at the release.
        config.max_connections = config.max_connections.max(connections + 64);
        config.mail_dir = dir.path().join("mail");
        // The racers' confirmation SMS go beside the mail, not into the folder the tool runs in.
        config.sms_dir = config.mail_dir.join("sms");
        let app = Application::build(config).await.context("the in-process booking service did not start")?;
        let running = app.spawn();
        Ok(Self {
            base_url: running.base_url().to_owned(),
            description: format!("in-process ({kind})"),
            credentials: Credentials::Secret(Signer::hs256(secret)),
            server: Some(InProcess { running, _dir: dir }),
        })
    }

    /// A running service at `base_url`.
    pub fn remote(base_url: &str, credentials: Credentials) -> anyhow::Result<Self> {
        shared::client::http_url(base_url).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            description: "remote".into(),
            credentials,
            server: None,
        })
    }

    /// Stops the in-process service (after its requests in flight) and removes its temporary files.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server.running.stop()).await;
        }
    }
}
