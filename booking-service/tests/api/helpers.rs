//! The API suite's vocabulary over the test kit: stories on both databases, dates, bookings and
//! error assertions.

use chrono::{Duration, NaiveDate, Utc};
use shared::api::{BookingInput, RescheduleRequest, Weekday, WorkingHours};
use uuid::Uuid;

pub use test_kit::{spawn_app, spawn_app_with, spawn_on, token, Backend, TestApp, TestDatabase, TestOrg, SECRET};

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
                    if test_kit::postgres_admin_url().is_some() {
                        super::$name(crate::helpers::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}

/// Tests of what only PostgreSQL has (its locks, roles and policies), each run when a PostgreSQL
/// server is configured, as `on_both_backends!` runs its PostgreSQL half.
macro_rules! on_postgres_only {
    ($($name:ident),* $(,)?) => {
        mod postgres_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if test_kit::postgres_admin_url().is_some() {
                        super::$name().await;
                    }
                }
            )*
        }
    };
}

/// A local date `days` ahead of today (in UTC; tests keep a margin of more than a day).
/// A client that asks for pages as a browser does (`Accept: text/html…`): the patient's links
/// answer it pages, their errors too; to any other client they answer errors in the API's body.
pub fn browser() -> reqwest::Client {
    let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let headers = [(reqwest::header::ACCEPT, reqwest::header::HeaderValue::from_static(accept))];
    reqwest::Client::builder().default_headers(headers.into_iter().collect()).build().expect("a client")
}

pub fn days_ahead(days: i64) -> NaiveDate {
    (Utc::now() + Duration::days(days)).date_naive()
}

pub fn date_str(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Weekly hours of 09:00 to 17:00 on every weekday given.
pub fn nine_to_five(days: &[Weekday]) -> Vec<WorkingHours> {
    days.iter().map(|&weekday| WorkingHours { weekday, start: "09:00".into(), end: "17:00".into() }).collect()
}

/// A move to `time` on `date`, keeping the appointment's length and type.
pub fn move_to(date: NaiveDate, time: &str) -> RescheduleRequest {
    RescheduleRequest {
        appointment_date: Some(date_str(date)),
        appointment_time: Some(time.into()),
        ..Default::default()
    }
}

/// A booking for a patient of its own: each has another phone number, so that no story runs into
/// the per-caller quota (docs/API.md §6) unless it means to.
pub fn booking(provider: Uuid, date: NaiveDate, time: &str) -> BookingInput {
    static PATIENTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let patient = PATIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    BookingInput {
        provider_id: Some(provider),
        appointment_date: Some(date_str(date)),
        appointment_time: Some(time.into()),
        patient_name: Some("Ada Lovelace".into()),
        patient_phone: Some(format!("+1555{:07}", patient % 10_000_000)),
        ..Default::default()
    }
}

/// Lets one caller hold any number of upcoming appointments in the clinic (the setting
/// `max_active_per_caller` = 0).
pub async fn lift_caller_quota(org: &TestOrg) {
    let settings = org.admin.settings().await.expect("settings");
    org.admin.set_settings(&shared::api::Settings { max_active_per_caller: 0, ..settings }).await.expect("saved");
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

/// The SQLSTATE a PostgreSQL statement was refused with, or its message when it failed otherwise
/// (a statement that succeeded fails the test).
#[track_caller]
pub fn sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> String {
    let err = result.expect_err("expected the database to refuse it");
    err.as_database_error().and_then(|e| e.code()).map_or_else(|| err.to_string(), |code| code.into_owned())
}

/// The first page of the most a page holds: the whole of a short list (an appointment's trail).
pub fn every<K>() -> booking_service::store::PageRequest<K> {
    booking_service::store::PageRequest::first(booking_service::store::MAX_PAGE)
}

/// Holds the database's write lock for `hold` (on PostgreSQL, writes to `table`), so they have to
/// wait; the receiver hears when the lock is taken.
pub fn hold_the_write_lock(
    backend: Backend,
    url: String,
    table: &'static str,
    hold: std::time::Duration,
) -> (tokio::task::JoinHandle<()>, tokio::sync::oneshot::Receiver<()>) {
    use sqlx::Connection;
    let (taken, locked) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect");
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("lock");
                let _ = taken.send(());
                tokio::time::sleep(hold).await;
                sqlx::query("COMMIT").execute(&mut conn).await.expect("unlock");
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                let mut tx = conn.begin().await.expect("begin");
                sqlx::query(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE")).execute(&mut *tx).await.expect("lock");
                let _ = taken.send(());
                tokio::time::sleep(hold).await;
                tx.commit().await.expect("unlock");
            }
        }
    });
    (task, locked)
}

/// Waits until `sessions` sessions of the test's PostgreSQL database wait on a lock (the requests
/// under test, held back), or fails after 10 s: a request merely slow to arrive is not taken for
/// one held.
pub async fn until_waiting_on_locks(watcher: &mut sqlx::PgConnection, sessions: i64) {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(sql).fetch_one(&mut *watcher).await.expect("pg_stat_activity");
        if waiting >= sessions {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "fewer than {sessions} requests waited on a lock");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
