//! How long the dispatcher's claim takes behind a backlog: 200 clinics with 5 messages due each and
//! reminders queued ahead (1,000 per clinic), then one clinic's backlog of due messages grown to
//! 100,000, as after an outage of the mail relay; and beside many clinics, 1,000 and then 5,000
//! with reminders queued ahead (20 each) and 500 messages due in all, one each, a deployment's ordinary day.
//! Each step times 20 claims of 10 messages (a lane's places, 5 of a clinic at most) through the
//! store itself, and 20 of the webhooks' lane (none due), on SQLite and, when `TEST_DATABASE_URL`
//! names a server, on PostgreSQL, and prints the median and the slowest.
//!
//! `cargo bench -p booking-service --bench claim_backlog` (figures in bench/README.md).

use booking_service::store::{self, outbox_kind, DynStore, MailClaim};
use std::time::{Duration, Instant};
use test_kit::{Backend, TestDatabase};

const CLAIMS: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("| database | due of the busiest clinic | patients' lane: median / slowest | webhooks' lane (none due) |");
    println!("|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDatabase::create(backend).await else {
            println!("| PostgreSQL | (no TEST_DATABASE_URL: not measured) | | |");
            continue;
        };
        let store = store::connect(&db.url, 4).await?;
        let fill = Fill(backend);
        db.execute(&fill.clinics(200)).await;
        db.execute(&fill.messages(1, "1 + n % 200", 5 * 200, "booking_sms", -300)).await;
        db.execute(&fill.messages(2, "1 + n % 200", 1000 * 200, "reminder_email", 86_400)).await;
        let mut due = 0;
        for backlog in [0, 10_000, 100_000] {
            if backlog > due {
                let more = backlog - due;
                db.execute(&fill.messages(3 + backlog, "1", more, "booking_confirmation", -86_400)).await;
                due = backlog;
            }
            let (patients, webhooks) = both_lanes(&db, &store, backend).await?;
            println!("| {} | {backlog} | {patients} | {webhooks} |", fill.name());
        }
    }
    println!();
    println!(
        "| database | clinics with reminders queued | patients' lane: median / slowest | webhooks' lane (none due) |"
    );
    println!("|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDatabase::create(backend).await else { continue };
        let store = store::connect(&db.url, 4).await?;
        let fill = Fill(backend);
        db.execute(&fill.clinics(5_000)).await;
        db.execute(&fill.messages(1, "1 + n * 97 % 1000", 500, "booking_sms", -300)).await;
        db.execute(&fill.messages(2, "1 + n % 1000", 20 * 1_000, "reminder_email", 86_400)).await;
        for clinics in [1_000, 5_000] {
            if clinics > 1_000 {
                db.execute(&fill.messages(3, "1001 + n % 4000", 20 * 4_000, "reminder_email", 86_400)).await;
            }
            let (patients, webhooks) = both_lanes(&db, &store, backend).await?;
            println!("| {} | {clinics} | {patients} | {webhooks} |", fill.name());
        }
    }
    Ok(())
}

/// The claims of both lanes timed, as [`timed`] tells them, once the outbox is as a database
/// running for a while keeps it: PostgreSQL's autovacuum counted the rows anew (a claim would plan
/// on stale counts), SQLite moved its write-ahead log into the database (each claim's commit would
/// copy it again).
async fn both_lanes(db: &TestDatabase, store: &DynStore, backend: Backend) -> anyhow::Result<(String, String)> {
    match backend {
        Backend::Postgres => db.execute("ANALYZE outbox").await,
        Backend::Sqlite => db.execute("PRAGMA wal_checkpoint(TRUNCATE)").await,
    };
    Ok((timed(store, &outbox_kind::TO_PATIENTS, 10).await?, timed(store, &outbox_kind::TO_WEBHOOKS, 0).await?))
}

/// The median and the slowest of `CLAIMS` claims of a lane's `kinds`, each taking `expected` messages.
async fn timed(store: &DynStore, kinds: &'static [&'static str], expected: usize) -> anyhow::Result<String> {
    let mut took = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS {
        let now = store::now();
        let claim =
            MailClaim { kinds, per_org: 5, ..MailClaim::every(now, now + chrono::Duration::minutes(2), 10, 10) };
        let start = Instant::now();
        let claimed = store.claim_mail(&claim).await?;
        took.push(start.elapsed());
        anyhow::ensure!(claimed.jobs.len() == expected, "a claim took {} messages", claimed.jobs.len());
    }
    took.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    Ok(format!("{} / {}", ms(took[CLAIMS / 2]), ms(took[CLAIMS - 1])))
}

/// The rows of the backlog, inserted behind the service's back in one statement each.
struct Fill(Backend);

impl Fill {
    fn name(&self) -> &'static str {
        match self.0 {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }

    fn clinic_id(&self, n: &str) -> String {
        match self.0 {
            Backend::Postgres => {
                format!("CAST(format('00000000-0000-4000-8000-%s', lpad(CAST({n} AS text), 12, '0')) AS uuid)")
            }
            Backend::Sqlite => format!("printf('00000000-0000-4000-8000-%012d', {n})"),
        }
    }

    /// `seconds` from now, as the database keeps an instant.
    fn instant(&self, seconds: i64) -> String {
        match self.0 {
            Backend::Postgres => format!("now() + make_interval(secs => {seconds})"),
            Backend::Sqlite => {
                format!("CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) + {seconds} * 1000000")
            }
        }
    }

    fn clinics(&self, count: u32) -> String {
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count})
             INSERT INTO organizations (id, name, timezone, created_at) SELECT {}, 'clinic ' || n, 'UTC', {} FROM g",
            self.clinic_id("n"),
            self.instant(0)
        )
    }

    /// `count` messages of `kind` due from `seconds` from now on, a millisecond apart, of the clinic
    /// `clinic` (an expression of `n`), their ids told apart by `tag`.
    fn messages(&self, tag: u32, clinic: &str, count: u32, kind: &str, seconds: i64) -> String {
        let id = match self.0 {
            Backend::Postgres => {
                format!("CAST(format('{tag:08x}-0000-4000-8000-%s', lpad(CAST(n AS text), 12, '0')) AS uuid)")
            }
            Backend::Sqlite => format!("printf('{tag:08x}-0000-4000-8000-%012d', n)"),
        };
        let (org, at) = (self.clinic_id(clinic), self.instant(seconds));
        let step = match self.0 {
            Backend::Postgres => "make_interval(secs => n / 1000.0)",
            Backend::Sqlite => "n * 1000",
        };
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count})
             INSERT INTO outbox (id, org_id, appointment_id, kind, next_attempt_at, created_at)
             SELECT {id}, {org}, {org}, '{kind}', {at} + {step}, {now} FROM g",
            now = self.instant(0)
        )
    }
}
