//! Throwaway databases for tests, on SQLite or PostgreSQL.
//!
//! PostgreSQL is found from `TEST_DATABASE_URL` (an administrative URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), else at 127.0.0.1:5432, else in a throwaway
//! cluster started from the installed PostgreSQL binaries (`initdb`, `postgres`; also forced with
//! `TEST_POSTGRES_THROWAWAY=1`), stopped and removed when the test process ends. Each test gets a
//! database of its own, dropped when it ends. When none of this works the PostgreSQL tests say so
//! loudly and skip, except under `CI=true`, where they fail.
//!
//! With `TEST_PGBOUNCER_URL` set (a PgBouncer in front of that server, e.g.
//! `postgres://postgres@127.0.0.1:6432/?statement-cache-capacity=0`; `.ci/run` starts one with
//! `deploy/pgbouncer/pgbouncer.sh`), the services the kit starts connect through it, while the
//! scratch databases are created, inspected and dropped directly, as an operator's tools would.

use sqlx::Connection;
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administrative URL of the PostgreSQL server tests use, or `None` (after a loud warning)
/// when there is none. Panics under `CI=true` when there is none.
pub fn postgres_admin_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let forced = std::env::var("TEST_POSTGRES_THROWAWAY").is_ok_and(|v| v == "1");
        let given = std::env::var("TEST_DATABASE_URL").ok();
        let url = given.clone().unwrap_or_else(|| DEFAULT_POSTGRES.to_owned());
        if !forced && reachable(&url) {
            return Some(url);
        }
        let mut why = format!("none answered at {}", booking_service::config::redact(&url));
        if given.is_none() || forced {
            match throwaway::start() {
                Ok(url) if reachable(&url) => return Some(url),
                Ok(url) => why.push_str(&format!("; a throwaway cluster at {url} did not answer")),
                Err(e) => why.push_str(&format!("; no throwaway cluster either: {e}")),
            }
        }
        let message = format!(
            "PostgreSQL tests need a server: {why}. Set TEST_DATABASE_URL, start PostgreSQL (.ci/run does) or install its binaries."
        );
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{message}");
        }
        eprintln!("\n**********\n*** SKIPPING PostgreSQL tests. {message}\n**********\n");
        None
    })
    .clone()
}

/// Whether a PostgreSQL server answers at `url` within 5 s.
fn reachable(url: &str) -> bool {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await.ok()?.ok()
        })
    })
    .join()
    .ok()
    .flatten()
    .is_some()
}

mod throwaway;

/// A database that exists for one test.
pub struct TestDatabase {
    /// The database itself: what a test inspects or changes behind the service's back.
    pub url: String,
    /// What the service connects to: `url`, or the same database through `TEST_PGBOUNCER_URL`.
    pub service_url: String,
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &booking_service::config::redact(&self.url))
            .field("service_url", &booking_service::config::redact(&self.service_url))
            .finish()
    }
}

impl TestDatabase {
    /// Runs one statement as the database's owner, past the service's roles (to set up what no
    /// route can, such as a message of a kind from a newer release); the rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        if self.postgres.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&mut conn).await.expect(sql).rows_affected()
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&mut conn).await.expect(sql).rows_affected()
        }
    }

    /// A fresh, empty database; `None` for PostgreSQL when no server is available (outside CI).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("booking.db").display());
                Some(Self { service_url: url.clone(), url, postgres: None, _dir: Some(dir) })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("booking_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to PostgreSQL");
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create a test database");
                let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                let service_url = match std::env::var("TEST_PGBOUNCER_URL") {
                    Ok(pooler) if !pooler.is_empty() => {
                        let mut pooler = url::Url::parse(&pooler).expect("TEST_PGBOUNCER_URL is a URL");
                        pooler.set_path(&name);
                        pooler.to_string()
                    }
                    _ => url.to_string(),
                };
                Some(Self { url: url.to_string(), service_url, postgres: Some((admin, name)), _dir: None })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, so the clean-up gets a thread and runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.ok()
            })
        })
        .join();
    }
}
