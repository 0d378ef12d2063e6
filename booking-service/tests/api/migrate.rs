//! `booking-service migrate` and the roles of a deployment: the owner migrates, a login role that
//! owns nothing serves (docs/OPERATIONS.md, "Roles").

use crate::helpers::*;
use booking_service::config::Config;
use booking_service::startup::Application;
use shared::api::{CreateOrganization, CreateProvider};
use shared::{ApiClient, Role};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

/// The versions of the migrations the binary carries for one database.
fn carried(database: &str) -> Vec<i64> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(database);
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .expect("the migrations folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.ends_with(".sql").then(|| name.split('_').next()?.parse().ok()).flatten()
        })
        .collect();
    versions.sort_unstable();
    assert!(!versions.is_empty(), "no migrations in {}", dir.display());
    versions
}

/// Runs the built binary's `migrate` command with only `DATABASE_URL` set.
async fn migrate_command(database_url: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_booking-service"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the binary runs")
}

/// The versions a `migrate` run says it applied, after checking it succeeded.
fn applied_by(output: &Output) -> Vec<i64> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "migrate failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().filter_map(|line| line.strip_prefix("applied ")?.split_whitespace().next()?.parse().ok()).collect()
}

/// What `_sqlx_migrations` records: version → succeeded (the version is its primary key, so each
/// is recorded once at most; a second application would fail its command instead).
async fn recorded_postgres(url: &str) -> BTreeMap<i64, bool> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let rows: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations").fetch_all(&mut conn).await.expect("read");
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrate_commands_and_starts_apply_each_migration_once_on_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else { return };
    let db = Arc::new(db);
    // Four deploy steps and three instances on one fresh database, all at once (through PgBouncer
    // when TEST_PGBOUNCER_URL is set).
    let commands = futures::future::join_all((0..4).map(|_| migrate_command(&db.service_url)));
    let starts = futures::future::join_all((0..3).map(|_| spawn_on(db.clone(), |_| {})));
    let (outputs, apps) = tokio::join!(commands, starts);

    let mut printed: Vec<i64> = outputs.iter().flat_map(applied_by).collect();
    let expected = carried("postgres");
    let recorded = recorded_postgres(&db.url).await;
    assert_eq!(recorded.keys().copied().collect::<Vec<_>>(), expected, "every migration is recorded");
    for (version, succeeded) in &recorded {
        assert!(succeeded, "migration {version} succeeded");
    }
    let announced = printed.len();
    printed.sort_unstable();
    printed.dedup();
    assert_eq!(printed.len(), announced, "no two commands say they applied the same migration");
    for app in &apps {
        app.anon.readyz().await.expect("every instance serves");
    }
    // Once applied, a later deploy step has nothing to do and says so.
    let again = migrate_command(&db.service_url).await;
    assert_eq!(applied_by(&again), Vec::<i64>::new());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to apply"));
}

/// A migration that would wait for a table another session holds (a backup, a long query) gives
/// up after `LOCK_TIMEOUT_SECS` and changes nothing, instead of queueing every booking behind its
/// wait; run again once the table is free, it applies.
#[tokio::test]
async fn a_migration_blocked_by_another_session_gives_up_and_applies_later() {
    use booking_service::migrate::{self, MigrateError, LOCK_TIMEOUT_SECS};
    let Some(db) = TestDatabase::create(Backend::Postgres).await else { return };
    migrate::database(&db.url).await.expect("migrated");
    // Migration 14 (a unique index on organizations) as if it were pending.
    let mut owner = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for undo in ["DROP INDEX organizations_sms_from", "DELETE FROM _sqlx_migrations WHERE version = 14"] {
        sqlx::query(undo).execute(&mut owner).await.expect(undo);
    }
    let mut other = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let mut writing = other.begin().await.expect("begin");
    sqlx::query("UPDATE organizations SET name = name").execute(&mut *writing).await.expect("a long write");

    let waited = u64::from(LOCK_TIMEOUT_SECS) + 10;
    let blocked = tokio::time::timeout(std::time::Duration::from_secs(waited), migrate::database(&db.url)).await;
    let refused = blocked.expect("the migration gave up instead of waiting on").expect_err("refused");
    assert!(matches!(refused, MigrateError::LockTimeout(_)), "{refused}");
    assert!(refused.to_string().contains("run `booking-service migrate` again"), "{refused}");
    assert!(!recorded_postgres(&db.url).await.contains_key(&14), "nothing applied");

    writing.rollback().await.expect("the write ends");
    let applied = migrate::database(&db.url).await.expect("applied once the table is free");
    assert_eq!(applied.iter().map(|a| a.version).collect::<Vec<_>>(), [14]);
}

#[tokio::test]
async fn the_migrate_command_creates_a_sqlite_database_and_applies_each_migration_once() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("nested/booking.db").display());
    let first = migrate_command(&url).await;
    assert_eq!(applied_by(&first), carried("sqlite"), "the first run applies every migration, in order");
    assert!(dir.path().join("nested/booking.db").exists());
    let second = migrate_command(&url).await;
    assert_eq!(applied_by(&second), Vec::<i64>::new());
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing to apply"));
    // The service starts on what the command made.
    let mut config = Config::with_database(url);
    config.jwt_secret = Some(SECRET.into());
    let running = Application::build(config).await.expect("the service starts").spawn();
    ApiClient::new(running.base_url()).readyz().await.expect("ready");
}

#[tokio::test]
async fn the_migrate_command_refuses_an_unknown_database_url() {
    let output = migrate_command("mysql://localhost/booking").await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("postgres://") && stderr.contains("sqlite://"), "{stderr}");
}

/// A database and two login roles made for one test, dropped when it ends.
struct Deployment {
    admin: String,
    database: String,
    owner: String,
    server: String,
}

impl Deployment {
    async fn create(admin: &str) -> Self {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let deployment = Self {
            admin: admin.to_owned(),
            database: format!("booking_roles_{suffix}"),
            owner: format!("booking_owner_{suffix}"),
            server: format!("booking_login_{suffix}"),
        };
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect as the administrator");
        for sql in [
            // The owner creates the schema and the roles the service switches to.
            format!("CREATE ROLE {} LOGIN CREATEROLE PASSWORD 'owner-password'", deployment.owner),
            format!("CREATE ROLE {} LOGIN PASSWORD 'server-password'", deployment.server),
            format!("CREATE DATABASE {} OWNER {}", deployment.database, deployment.owner),
        ] {
            sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        deployment
    }

    /// `base` (the server or PgBouncer) with this deployment's database and the role `role`.
    fn url(&self, base: &str, role: &str, password: &str) -> String {
        let mut url = url::Url::parse(base).expect("a URL");
        url.set_path(&self.database);
        url.set_username(role).expect("a user");
        url.set_password(Some(password)).expect("a password");
        url.to_string()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let statements = [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
            format!("DROP ROLE IF EXISTS {}", self.server),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ];
        let admin = self.admin.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                for sql in statements {
                    sqlx::raw_sql(&sql).execute(&mut conn).await.ok()?;
                }
                Some(())
            })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_role_that_owns_nothing_serves_once_the_owner_has_migrated() {
    let Some(admin) = test_kit::postgres_admin_url() else { return };
    let deployment = Deployment::create(&admin).await;
    let pooler = std::env::var("TEST_PGBOUNCER_URL").ok().filter(|u| !u.is_empty());
    let service_base = pooler.as_deref().unwrap_or(&admin);
    let owner_url = deployment.url(&admin, &deployment.owner, "owner-password");
    let server_url = deployment.url(service_base, &deployment.server, "server-password");
    let config = || {
        let mut config = Config::with_database(server_url.clone());
        config.jwt_secret = Some(SECRET.into());
        config
    };

    // Before the owner migrated, the serving role cannot, and says what to do.
    let refused = Application::build(config()).await.err().expect("an unmigrated database is refused");
    let message = format!("{refused:#}");
    assert!(message.contains("booking-service migrate"), "{message}");

    let applied = applied_by(&migrate_command(&owner_url).await);
    assert_eq!(applied, carried("postgres"));
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect as the administrator");
    let grant = format!("GRANT booking_app, booking_worker, booking_link, booking_janitor TO {}", deployment.server);
    sqlx::raw_sql(&grant).execute(&mut conn).await.expect("grant the service roles");

    let running = Application::build(config()).await.expect("the serving role starts the service").spawn();
    let anon = ApiClient::new(running.base_url());
    anon.readyz().await.expect("ready");
    let org = anon
        .with_token(token(Role::Platform, None))
        .create_organization(&CreateOrganization { name: "Role Clinic".into(), timezone: "UTC".into() })
        .await
        .expect("an organization");
    let provider = anon
        .with_token(token(Role::Admin, Some(org.id)))
        .create_provider(&CreateProvider { name: "Dr. Role".into(), ..Default::default() })
        .await
        .expect("a provider");
    anon.with_token(token(Role::Agent, Some(org.id)))
        .book(&booking(provider.id, days_ahead(3), "10:00"))
        .await
        .expect("a booking by the serving role");

    let mut db = sqlx::PgConnection::connect(&owner_url).await.expect("connect as the owner");
    let owners: Vec<(String, i64)> =
        sqlx::query_as("SELECT tableowner::text, count(*) FROM pg_tables WHERE schemaname = 'public' GROUP BY 1")
            .fetch_all(&mut db)
            .await
            .expect("owners");
    assert_eq!(owners.len(), 1, "one role owns every table: {owners:?}");
    assert_eq!(owners[0].0, deployment.owner, "the owner, not the serving role");
}
