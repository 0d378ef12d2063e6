//! Throwaway databases for tests, on SQLite or PostgreSQL, shared by this crate's tests and the
//! test tools' own tests.
//!
//! PostgreSQL is found from `TEST_DATABASE_URL` (an administrative URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), else at 127.0.0.1:5432, else in a throwaway
//! cluster started from the installed PostgreSQL binaries (`initdb`, `postgres`; also forced with
//! `TEST_POSTGRES_THROWAWAY=1`), stopped and removed when the test process ends. Each test gets a
//! database of its own, dropped when it ends. When none of this works the PostgreSQL tests say so
//! loudly and skip, except under `CI=true`, where they fail.

pub mod smtp;

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
        let mut why = format!("none answered at {}", crate::store::redact(&url));
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url))
                .await
                .ok()?
                .ok()
        })
    })
    .join()
    .ok()
    .flatten()
    .is_some()
}

/// A PostgreSQL cluster of the test process's own, from the installed binaries.
mod throwaway {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// The folder holding `initdb` and `postgres`: on `PATH`, else Debian's newest.
    fn binaries() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
        on_path.or_else(|| {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|bin| bin.join("initdb").is_file())
                .collect();
            versions.sort();
            versions.pop()
        })
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    }

    /// `initdb` and `postgres` refuse to run as root: then they run as the `postgres` user.
    fn as_cluster_owner(program: &Path, root: bool) -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn free_port() -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    /// Starts the cluster and a watchdog that stops and removes it when this process ends;
    /// returns its administrative URL.
    pub fn start() -> Result<String, String> {
        let bin = binaries().ok_or("initdb and postgres are not installed")?;
        let root = is_root();
        let dir = std::env::temp_dir().join(format!("booking-test-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if root {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status();
            if !owned.is_ok_and(|s| s.success()) {
                return Err(
                    "running as root, and the postgres user cannot own the cluster folder".into(),
                );
            }
        }
        let data = dir.join("data");
        let init = as_cluster_owner(&bin.join("initdb"), root)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("initdb: {e}"))?;
        if !init.success() {
            return Err(format!("initdb failed ({init})"));
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let mut postgres = as_cluster_owner(&bin.join("postgres"), root);
        postgres.arg("-D").arg(&data).arg("-k").arg(&dir).args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=300",
        ]);
        // The watchdog: a shell that runs the server, and stops it and removes the folder once
        // this process is gone.
        let pg_ctl = bin.join("pg_ctl");
        let stop = if root {
            format!(
                "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!(
                "'{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            )
        };
        let program = format!("{:?}", postgres.get_program());
        let args: Vec<String> = postgres
            .get_args()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        let script = format!(
            "{program} {} >/dev/null 2>&1 & while kill -0 {parent} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            args.join(" "),
            parent = std::process::id(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err("the throwaway cluster did not start within 30 s".into())
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &crate::store::redact(&self.url))
            .finish()
    }
}

impl TestDatabase {
    /// A fresh, empty database; `None` for PostgreSQL when no server is available (outside CI).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("booking.db").display());
                Some(Self {
                    url,
                    postgres: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("booking_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create a test database");
                let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                Some(Self {
                    url: url.to_string(),
                    postgres: Some((admin, name)),
                    _dir: None,
                })
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
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
