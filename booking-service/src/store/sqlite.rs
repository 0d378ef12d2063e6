//! What only SQLite does: the embedded default. Writes go through one connection and start with
//! `BEGIN IMMEDIATE`, which takes the database's write lock up front: the checks for overlaps,
//! time off and closures and the insert that follows them cannot interleave with another writer,
//! in this process or any other.

use super::rules::{
    appointment_values, audit, closed, enqueue, issue_link, issue_manage_link, overlapping, planned_provider_sql,
    queue_reminders, quota_sql, remember, BookingWrites, Inserted, Scope, APPOINTMENT_VALUES, INSERT_APPOINTMENT,
};
use super::sql::{Dialect, Timestamp, Tx};
use super::webhooks::fire;
use super::{action, event, outbox_kind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Lite {
    /// Many readers (WAL lets them run beside the writer).
    reader: SqlitePool,
    /// One writer: SQLite admits a single writer anyway, and queueing here is fairer than
    /// spinning on `SQLITE_BUSY`.
    writer: SqlitePool,
    /// The readiness check's own connection (opened at its first use), so that it waits for the
    /// write lock itself, held a few milliseconds per transaction, not behind every request queued
    /// for the writer: under load the instance stays ready.
    pinger: SqlitePool,
    /// When the writer last took the write lock: taken a moment ago, the database is writable,
    /// and a check of its own might wait in vain for a lock the queued writes keep taking back
    /// (SQLite queues no waiter: it retries now and then, and under load finds it taken).
    locked_at: Arc<Mutex<Option<Instant>>>,
}

/// How lately the writer must have taken the write lock for the readiness check to count it.
const LOCKED_LATELY: Duration = Duration::from_secs(1);

/// How every connection to a SQLite file is opened (the service's and `booking-service migrate`'s),
/// the file and its folder created when missing.
pub fn options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the booking is acknowledged (NORMAL in WAL mode may
        // lose the last commits on power loss).
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if let Some(dir) = std::path::Path::new(options.get_filename()).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(options)
}

impl Lite {
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options = options(url)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        for migration in crate::migrate::sqlite(&writer).await? {
            tracing::info!(%migration, "migration applied");
        }
        let pinger = SqlitePoolOptions::new().max_connections(1).connect_lazy_with(options.clone());
        let reader = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { reader, writer, pinger, locked_at: Arc::default() })
    }

    /// Ready when the database reads and a writer can take the write lock, or took it lately.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let locked_at = *self.locked_at.lock().unwrap_or_else(PoisonError::into_inner);
        if locked_at.is_some_and(|at| at.elapsed() < LOCKED_LATELY) {
            // On its own connection still, not behind the requests' reads.
            sqlx::query("SELECT 1").execute(&self.pinger).await?;
            return Ok(());
        }
        let mut tx = self.pinger.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("SELECT 1").execute(&mut *tx).await?;
        tx.rollback().await
    }

    pub fn pool_usage(&self) -> Vec<super::PoolUsage> {
        vec![super::usage("main", &self.reader), super::usage("writer", &self.writer)]
    }

    /// Readers take a pooled read-only connection; everything that writes queues for the writer.
    pub async fn begin(&self, scope: Scope) -> Result<Tx, sqlx::Error> {
        let tx = match scope {
            Scope::Read(_) | Scope::Links | Scope::WorkerRead => self.reader.begin().await?,
            Scope::Write(_)
            | Scope::WriteLocked(..)
            | Scope::Dispatch
            | Scope::Claim(_)
            | Scope::Retention
            | Scope::OptOuts => {
                let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
                *self.locked_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                tx
            }
        };
        Ok(Tx::Lite(tx))
    }
}

/// The insert's first two questions (the rules' text, with this statement's placeholders), built
/// once like PostgreSQL's booking statement.
static PLANNED: LazyLock<String> =
    LazyLock::new(|| planned_provider_sql(Dialect::Sqlite, ["$1", "$2", "$3", "$4", "$5"]));
static QUOTA: LazyLock<String> = LazyLock::new(|| quota_sql(["$1", "$2", "$3", "$4", "$5", "$6"]));

/// The booking as a few statements in the write transaction: no other writer can book between
/// the overlap check and the insert.
pub async fn insert_booking(tx: &mut Tx, w: &BookingWrites<'_>) -> Result<Inserted, sqlx::Error> {
    let (a, org) = (w.appointment, w.actor.org);
    let planned = (org, a.provider_id, w.provider_version, a.appointment_type, w.kind_version);
    let current: Option<(i32,)> = tx.query(&PLANNED, planned).fetch_optional().await?;
    if current.is_none() {
        return Ok(Inserted::Stale);
    }
    if w.capped {
        let day_ago = Timestamp(a.created_at - chrono::Duration::days(1));
        let values = (org, &a.patient_phone, &w.actor.call, Timestamp(a.created_at), day_ago, &w.actor.sub);
        let most: Option<(i32,)> = tx.query(&QUOTA, values).fetch_optional().await?;
        if let Some((most,)) = most {
            return Ok(Inserted::over_quota(most));
        }
    }
    if overlapping(tx, org, a.provider_id, &a.blocked, None).await?
        || closed(tx, org, a.provider_id, &a.blocked).await?
    {
        return Ok(Inserted::Taken(None));
    }
    let sql = format!("{INSERT_APPOINTMENT} VALUES ({APPOINTMENT_VALUES})");
    tx.query(&sql, appointment_values(a)).execute().await?;
    audit(tx, w.actor, a.id.into(), action::BOOKED, &w.audit, a.created_at).await?;
    if let Some(link) = w.link {
        issue_link(tx, a, link, a.created_at).await?;
    }
    if let Some(payload) = &w.message {
        enqueue(tx, a, outbox_kind::BOOKING_CONFIRMATION, payload, a.created_at, a.created_at).await?;
    }
    issue_manage_link(tx, a, w.manage, a.created_at).await?;
    if let Some(payload) = &w.sms {
        enqueue(tx, a, outbox_kind::BOOKING_SMS, payload, a.created_at, a.created_at).await?;
    }
    queue_reminders(tx, a, a.created_at).await?;
    if let Some((idem, response)) = &w.idempotency {
        remember(tx, org, idem, response, a.created_at).await?;
    }
    fire(tx, a, event::BOOKED, a.created_at).await?;
    Ok(Inserted::Booked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_kit::{Backend, TestDatabase};

    /// SQLite's write lock held by another process past the busy timeout, or a file it cannot
    /// write, is unavailable, not a fault: 503, never 500.
    #[tokio::test]
    async fn a_write_lock_held_elsewhere_or_a_read_only_file_is_unavailable() {
        use sqlx::{ConnectOptions, Connection};
        let db = TestDatabase::create(Backend::Sqlite).await.expect("a database");
        let options: SqliteConnectOptions = db.url.parse().expect("url");
        let options = options.create_if_missing(true).busy_timeout(Duration::ZERO);
        let mut holder = options.connect().await.expect("connect");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("the other writer");
        let mut writer = options.connect().await.expect("connect");
        let refused = sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.expect_err("busy");
        let error = crate::store::StoreError::from(refused);
        assert!(matches!(error, crate::store::StoreError::Unavailable(_)), "{error:?}");
        holder.close().await.expect("close");
        // A file that cannot be written (SQLITE_READONLY) is unavailable too.
        let mut reader = options.read_only(true).connect().await.expect("connect");
        let refused =
            sqlx::query("CREATE TABLE written (x INTEGER)").execute(&mut reader).await.expect_err("read only");
        let error = crate::store::StoreError::from(refused);
        assert!(matches!(error, crate::store::StoreError::Unavailable(_)), "{error:?}");
    }

    /// Under writes that keep the lock taken the instance stays ready (the writer took the lock a
    /// moment ago); a lock held by another past that moment, with no write of ours, is not ready.
    #[tokio::test]
    async fn a_write_lock_the_writer_took_lately_is_ready_one_held_elsewhere_is_not() {
        use sqlx::{ConnectOptions, Connection};
        let db = TestDatabase::create(Backend::Sqlite).await.expect("a database");
        let store = Lite::connect(&db.url, 2).await.expect("connect");
        let ready =
            || async { matches!(tokio::time::timeout(Duration::from_millis(500), store.ping()).await, Ok(Ok(()))) };
        let write = store.begin(Scope::Retention).await.expect("the writer takes the lock");
        assert!(ready().await, "the writer holds the lock it just took");
        drop(write);
        tokio::time::sleep(LOCKED_LATELY).await;
        assert!(ready().await, "no one holds it");
        let options: SqliteConnectOptions = db.url.parse().expect("url");
        let mut holder = options.connect().await.expect("connect");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("another writer");
        assert!(!ready().await, "held elsewhere, not by a write of ours");
        holder.close().await.expect("close");
    }

    /// Every write connection syncs each commit to disk before it is acknowledged (FULL is 2):
    /// NORMAL, in WAL mode, may lose the last commits on power loss.
    #[tokio::test]
    async fn a_commit_is_on_disk_before_it_is_acknowledged() {
        let db = TestDatabase::create(Backend::Sqlite).await.expect("a database");
        let store = Lite::connect(&db.url, 2).await.expect("connect");
        let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous").fetch_one(&store.writer).await.expect("read");
        assert_eq!(synchronous, 2);
    }
}
