use booking_service::config::Config;
use booking_service::startup::{Application, Running};
use booking_service::store::DynStore;
pub use booking_service::testing::{Backend, TestDatabase};
use chrono::{Duration, NaiveDate, Utc};
use shared::api::{self, BookingInput, CreateOrganization, CreateProvider, Weekday, WorkingHours};
use shared::{ApiClient, Claims, Role};
use std::sync::Arc;
use uuid::Uuid;

/// Generates, for each story `fn name(backend: Backend)`, one test on SQLite and one on
/// PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if booking_service::testing::postgres_admin_url().is_some() {
                        super::$name(crate::helpers::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}

pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where mail goes when no SMTP server is configured (a folder of this test's own).
    pub mail_dir: Arc<tempfile::TempDir>,
    pub anon: ApiClient,
    pub platform: ApiClient,
    pub store: DynStore,
    pub db: Arc<TestDatabase>,
    running: Running,
}

pub struct TestOrg {
    pub id: Uuid,
    pub admin: ApiClient,
    pub staff: ApiClient,
    pub agent: ApiClient,
}

pub fn token(role: Role, org: Option<Uuid>) -> String {
    Claims::new(format!("test-{}", role.as_str()), role, org, 3600)
        .mint_hs256(SECRET.as_bytes())
        .expect("mint a token")
}

/// Starts the service on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the service on a fresh database of `backend`, configured by `adjust`.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDatabase::create(backend)
        .await
        .expect("a test database");
    spawn_on(Arc::new(db), adjust).await
}

/// Starts the service on `db` with the configuration changed by `adjust`.
pub async fn spawn_on(db: Arc<TestDatabase>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mail_dir = Arc::new(tempfile::tempdir().expect("a mail folder"));
    let mut config = Config::with_database(db.url.clone());
    config.jwt_secret = Some(SECRET.into());
    config.pool_size = 8;
    config.mail_dir = mail_dir.path().to_path_buf();
    // Quick polling and retries, so mail stories take a second, not minutes.
    config.mail_poll_ms = 50;
    config.mail_retry_base_ms = 100;
    config.mail_retry_max_ms = 400;
    config.smtp_timeout_secs = 5;
    adjust(&mut config);
    let app = Application::build(config)
        .await
        .expect("the service starts");
    let store = app.store();
    let running = app.spawn();
    let base = running.base_url().to_owned();
    let anon = ApiClient::new(base.clone());
    TestApp {
        base,
        mail_dir,
        platform: anon.with_token(token(Role::Platform, None)),
        anon,
        store,
        db,
        running,
    }
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

    pub fn client(&self, token: String) -> ApiClient {
        self.anon.with_token(token)
    }

    pub async fn org(&self, timezone: &str) -> TestOrg {
        let org = self
            .platform
            .create_organization(&CreateOrganization {
                name: "Test Clinic".into(),
                timezone: timezone.into(),
            })
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
        self.provider_with(CreateProvider {
            name: "Dr. Smith".into(),
            ..Default::default()
        })
        .await
    }

    pub async fn provider_with(&self, body: CreateProvider) -> api::Provider {
        self.admin
            .create_provider(&body)
            .await
            .expect("create a provider")
    }
}

/// A local date `days` ahead of today (in UTC; tests keep a margin of more than a day).
pub fn days_ahead(days: i64) -> NaiveDate {
    (Utc::now() + Duration::days(days)).date_naive()
}

pub fn date_str(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Weekly hours of 09:00 to 17:00 on every weekday given.
pub fn nine_to_five(days: &[Weekday]) -> Vec<WorkingHours> {
    days.iter()
        .map(|&weekday| WorkingHours {
            weekday,
            start: "09:00".into(),
            end: "17:00".into(),
        })
        .collect()
}

pub fn booking(provider: Uuid, date: NaiveDate, time: &str) -> BookingInput {
    BookingInput {
        provider_id: Some(provider),
        appointment_date: Some(date_str(date)),
        appointment_time: Some(time.into()),
        patient_name: Some("Ada Lovelace".into()),
        patient_phone: Some("+15551234567".into()),
        ..Default::default()
    }
}

/// Asserts an API error's status and code.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, shared::ClientError>,
    status: u16,
    code: &str,
) -> shared::ClientError {
    let err = result.expect_err(&format!("expected {status} {code}"));
    assert_eq!(err.status().map(|s| s.as_u16()), Some(status), "{err}");
    assert_eq!(err.code(), Some(code), "{err}");
    err
}
