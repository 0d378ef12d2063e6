//! The service started in-process on port 0 for one test, on a database of its own, with clients
//! holding tokens minted with the test key.

use crate::database::{Backend, TestDatabase};
use booking_service::config::Config;
use booking_service::domain::{AppointmentId, OrgId};
use booking_service::links::Links;
use booking_service::startup::{Application, Running};
use booking_service::store::DynStore;
use shared::api::{self, CreateOrganization, CreateProvider};
use shared::{ApiClient, Claims, Role};
use std::sync::Arc;
use tempfile::TempDir;
use uuid::Uuid;

/// The HS256 key every test service trusts.
pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// A token for `role` (in organization `org`), signed with [`SECRET`], valid for an hour.
pub fn token(role: Role, org: Option<Uuid>) -> String {
    Claims::new(format!("test-{}", role.as_str()), role, org, 3600).mint_hs256(SECRET.as_bytes()).expect("mint a token")
}

/// A running service; it stops when dropped.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where mail goes when no SMTP server is configured (a folder of this test's own).
    pub mail_dir: Arc<TempDir>,
    pub anon: ApiClient,
    pub platform: ApiClient,
    pub store: DynStore,
    pub db: Arc<TestDatabase>,
    /// The service's link keys: tests derive a manage link's token from its stored nonce.
    pub links: Arc<Links>,
    running: Running,
}

/// An organization with a client for each of its roles.
pub struct TestOrg {
    pub id: Uuid,
    pub admin: ApiClient,
    pub staff: ApiClient,
    pub agent: ApiClient,
}

/// Starts the service on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the service on a fresh database of `backend`, configured by `adjust`.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDatabase::create(backend).await.expect("a test database");
    spawn_on(Arc::new(db), adjust).await
}

/// Starts the service on `db` with the configuration changed by `adjust`.
pub async fn spawn_on(db: Arc<TestDatabase>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mail_dir = Arc::new(tempfile::tempdir().expect("a mail folder"));
    let mut config = Config::with_database(db.service_url.clone());
    config.jwt_secret = Some(SECRET.into());
    config.pool_size = 8;
    config.mail_dir = mail_dir.path().to_path_buf();
    // SMS files (when a test sets a sender but no Twilio) stay in the test's folder too.
    config.sms_dir = mail_dir.path().join("sms");
    // Quick polling and retries, so mail stories take a second, not minutes.
    config.mail_poll_ms = 50;
    config.mail_retry_base_ms = 100;
    config.mail_retry_max_ms = 400;
    config.smtp_timeout_secs = 5;
    // Stories race hundreds of requests from one token; the rate limit's own tests turn it on.
    config.rate_limit_per_minute = 0;
    adjust(&mut config);
    let app = Application::build(config).await.expect("the service starts");
    let store = app.store();
    let links = app.links();
    let running = app.spawn();
    let base = running.base_url().to_owned();
    let anon = ApiClient::new(base.clone());
    TestApp { base, mail_dir, platform: anon.with_token(token(Role::Platform, None)), anon, store, db, links, running }
}

impl TestApp {
    /// A second service process on the same database.
    pub async fn another_instance(&self) -> TestApp {
        spawn_on(self.db.clone(), |_| {}).await
    }

    /// A second service process on the same database, configured by `adjust`.
    pub async fn another_instance_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        spawn_on(self.db.clone(), adjust).await
    }

    /// Asks the service to stop and waits until it has finished its requests.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await
    }

    /// The patient's manage link of an appointment (`{base}/manage/{token}`), derived from its
    /// stored nonce as the messages that carry it do.
    pub async fn manage_link(&self, org: Uuid, appointment: Uuid) -> String {
        let nonce = self
            .store
            .manage_nonce(OrgId(org), AppointmentId(appointment))
            .await
            .expect("read the manage link")
            .expect("every booking has a manage link");
        format!("{}/manage/{}", self.base, self.links.manage.token(&nonce).as_str())
    }

    pub fn client(&self, token: String) -> ApiClient {
        self.anon.with_token(token)
    }

    /// A new organization named "Test Clinic" in `timezone`.
    pub async fn org(&self, timezone: &str) -> TestOrg {
        self.org_named("Test Clinic", timezone).await
    }

    pub async fn org_named(&self, name: &str, timezone: &str) -> TestOrg {
        let org = self
            .platform
            .create_organization(&CreateOrganization { name: name.into(), timezone: timezone.into() })
            .await
            .expect("create an organization");
        TestOrg {
            id: org.id,
            admin: self.client(token(Role::Admin, Some(org.id))),
            staff: self.client(token(Role::Staff, Some(org.id))),
            agent: self.client(token(Role::Agent, Some(org.id))),
        }
    }
}

impl TestOrg {
    /// A provider bookable at any time.
    pub async fn provider(&self) -> api::Provider {
        self.provider_with(CreateProvider { name: "Dr. Smith".into(), ..Default::default() }).await
    }

    pub async fn provider_with(&self, body: CreateProvider) -> api::Provider {
        self.admin.create_provider(&body).await.expect("create a provider")
    }
}
