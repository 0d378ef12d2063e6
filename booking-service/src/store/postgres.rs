//! What only PostgreSQL does. Each tenant transaction first switches to the `booking_app` role and
//! sets `app.org_id`, both transaction-locally, so row-level security filters every statement that
//! follows. The exclusion constraint `appointments_no_overlap` decides booking conflicts, and a
//! booking is one statement.

use super::rules::{
    appointment_values, busy_sql, channels, closed_sql, planned_provider_sql, quota_sql, BookingWrites, Inserted,
    Scope, Whose, APPOINTMENT_VALUES, EXCLUSION_VIOLATION, INSERT_APPOINTMENT,
};
use super::sql::{sqlstate, Dialect, Key, Then, Timestamp, Tx};
use super::webhooks::wanting;
use super::{action, event, outbox_kind};
use crate::domain::Slot;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// A pooled connection idle this long is checked before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// The role request transactions run as.
pub const REQUEST_ROLE: &str = "booking_app";
/// The role of the mail dispatcher, across organizations, on the outbox only.
pub const WORKER_ROLE: &str = "booking_worker";
/// The role that finds the organization of a confirmation link, on the token tables only, and
/// keeps SMS opt-outs.
pub const LINK_ROLE: &str = "booking_link";
/// The role of the retention job, on the tables it prunes only.
pub const RETENTION_ROLE: &str = "booking_janitor";

#[derive(Debug, Clone)]
pub struct Pg {
    pool: PgPool,
    /// The readiness check's own connection (opened at its first use), so that it does not wait
    /// behind every request queued for the pool: under load the instance stays ready.
    pinger: PgPool,
}

impl Pg {
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("booking-service");
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .min_connections(1.min(pool_size))
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings every connection it hands out by default: one more round trip on every
            // transaction. Only a connection idle long enough to have gone stale is pinged.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await;
        let pool = match pool {
            // The pool retries for its 5 s and then says only that it timed out: one connection
            // of its own says why (refused, no such database, a wrong password).
            Err(sqlx::Error::PoolTimedOut) => {
                let why = tokio::time::timeout(Duration::from_secs(5), sqlx::ConnectOptions::connect(&options)).await;
                return Err(match why {
                    Ok(Err(e)) => anyhow::Error::new(e),
                    _ => anyhow::Error::new(sqlx::Error::PoolTimedOut),
                });
            }
            pool => pool?,
        };
        for migration in crate::migrate::postgres(&pool).await? {
            tracing::info!(%migration, "migration applied");
        }
        let pinger = PgPoolOptions::new().max_connections(1).min_connections(0).connect_lazy_with(options);
        let store = Self { pool, pinger };
        store.check_roles().await?;
        Ok(store)
    }

    /// Refuses to run if a role the service switches to could bypass row-level security. In a
    /// transaction, like every statement of the service, so it runs through PgBouncer's
    /// transaction pooling.
    async fn check_roles(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for role in [REQUEST_ROLE, WORKER_ROLE, LINK_ROLE, RETENTION_ROLE] {
            let (superuser, bypass, owns): (bool, bool, bool) = sqlx::query_as(
                "SELECT r.rolsuper, r.rolbypassrls,
                        EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = current_schema() AND t.tableowner = r.rolname)
                 FROM pg_roles r WHERE r.rolname = $1",
            )
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
            anyhow::ensure!(
                !superuser && !bypass && !owns,
                "the role {role} must not be superuser, BYPASSRLS or a table owner"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ready when the server answers and takes writes (not a standby after a failover). A simple
    /// query: one round trip and no prepared statement, which PgBouncer's transaction pooling
    /// could send to another server connection than the one that prepared it.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        use sqlx::Row;
        let standby: bool = sqlx::raw_sql("SELECT pg_is_in_recovery()").fetch_one(&self.pinger).await?.try_get(0)?;
        if standby {
            return Err(sqlx::Error::Protocol("the server is a read-only standby".into()));
        }
        Ok(())
    }

    pub fn pool_usage(&self) -> Vec<super::PoolUsage> {
        vec![super::usage("main", &self.pool)]
    }

    /// A transaction under the role the scope calls for; a tenant's also names its organization.
    /// The switch travels with the BEGIN in one round trip (a simple query: its values are
    /// constants and a UUID). READ COMMITTED is named, not left to the server's default: the
    /// rules count on each statement seeing what committed before it (the quota counted after
    /// its lock is granted, a deletion's statements after the bookings they waited for).
    pub async fn begin(&self, scope: Scope) -> Result<Tx, sqlx::Error> {
        let switch = match scope {
            Scope::Read(org) | Scope::Write(org) => {
                format!("SET LOCAL ROLE {REQUEST_ROLE}; SET LOCAL app.org_id = '{org}'")
            }
            Scope::WriteLocked(org, key) => format!(
                "SET LOCAL ROLE {REQUEST_ROLE}; SET LOCAL app.org_id = '{org}'; SELECT pg_advisory_xact_lock({key})"
            ),
            Scope::Dispatch | Scope::WorkerRead | Scope::Claim(None) => format!("SET LOCAL ROLE {WORKER_ROLE}"),
            // Its two statements share the time (a cancelled COMMIT only warns: it commits); at
            // least 1 ms, as 0 would mean no timeout at all.
            Scope::Claim(Some(within)) => {
                let ms = (within / 2).as_millis().max(1);
                format!("SET LOCAL ROLE {WORKER_ROLE}; SET LOCAL statement_timeout = {ms}")
            }
            Scope::Links | Scope::OptOuts => format!("SET LOCAL ROLE {LINK_ROLE}"),
            Scope::Retention => format!("SET LOCAL ROLE {RETENTION_ROLE}"),
        };
        let tx = self.pool.begin_with(format!("BEGIN ISOLATION LEVEL READ COMMITTED; {switch}")).await?;
        Ok(Tx::Pg(tx))
    }
}

/// What the booking statement answers: appointments inserted, providers at the planned version,
/// the caller's quota if it is reached, and the busy times around the wanted one when nothing was
/// inserted.
type Answer = (i64, i64, Option<i32>, Option<Json<Vec<(DateTime<Utc>, DateTime<Utc>)>>>);

/// The booking statement: the same text on every booking, built once.
static BOOKING: LazyLock<String> = LazyLock::new(|| {
    let planned = planned_provider_sql(Dialect::Postgres, ["$2", "$3", "$26", "$8", "$42"]);
    let quota = quota_sql(["$2", "$11", "$30", "$14", "$43", "$16"]);
    let closed = closed_sql(Dialect::Postgres, ["$2", "$3", "$6", "$7"]);
    let busy = busy_sql(Dialect::Postgres, ["$2", "= $3", "$28", "$29"], Whose::Unnamed);
    let wanting = wanting(Dialect::Postgres, "$32::text");
    format!(
        "WITH provider AS (
            {planned}
        ), quota AS (
            {quota} AND $27
        ), appt AS (
            {INSERT_APPOINTMENT}
            SELECT {APPOINTMENT_VALUES} FROM provider
            WHERE NOT EXISTS (SELECT FROM quota)
              AND NOT EXISTS ({closed})
            ON CONFLICT DO NOTHING
            RETURNING id, org_id
        ), audit AS (
            INSERT INTO audit_log (org_id, appointment_id, action, actor, details, at, call_id)
            SELECT org_id, id, $15, $16, $17, $14, $30 FROM appt
        ), outbox AS (
            INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
            SELECT $18, org_id, id, $19, $20, $14, $14 FROM appt WHERE $20 IS NOT NULL
        ), token AS (
            INSERT INTO confirmation_tokens (token_hash, org_id, appointment_id, expires_at, created_at)
            SELECT $21, org_id, id, $22, $14 FROM appt WHERE $21 IS NOT NULL
        ), idem AS (
            INSERT INTO idempotency_keys (org_id, key, request_hash, response, created_at)
            SELECT org_id, $23, $24, $25, $14 FROM appt WHERE $23 IS NOT NULL
        ), manage AS (
            INSERT INTO manage_links (token_hash, org_id, appointment_id, nonce, created_at)
            SELECT $34, org_id, id, $35, $14 FROM appt
        ), sms AS (
            INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
            SELECT gen_random_uuid(), org_id, id, $36, $37, $14, $14 FROM appt WHERE $37 IS NOT NULL
        ), reminders AS (
            INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
            SELECT gen_random_uuid(), appt.org_id, appt.id, ch.kind,
                   ch.payload || jsonb_build_object('offset_minutes', m.minutes),
                   $4::timestamptz - make_interval(mins => m.minutes), $14
            FROM appt
            JOIN organizations o ON o.id = appt.org_id
            CROSS JOIN LATERAL (SELECT value::int AS minutes FROM jsonb_array_elements_text(o.reminder_offsets_minutes)) m
            CROSS JOIN (VALUES ($38::text, $40::jsonb), ($39::text, $41::jsonb)) AS ch (kind, payload)
            WHERE ch.payload IS NOT NULL AND $4::timestamptz - make_interval(mins => m.minutes) > $14
        ), hooks AS (
            INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
            SELECT gen_random_uuid(), appt.org_id, appt.id, $31, $33::jsonb || jsonb_build_object('webhook_id', w.id), $14, $14
            FROM appt JOIN webhooks w ON w.org_id = appt.org_id
            WHERE {wanting}
        )
        SELECT (SELECT count(*) FROM appt), (SELECT count(*) FROM provider), (SELECT most FROM quota),
               CASE WHEN NOT EXISTS (SELECT FROM appt) THEN (
                   SELECT coalesce(json_agg(json_build_array(f, u) ORDER BY f), '[]') FROM ({busy}) AS busy (f, u))
               END"
    )
});

/// The booking in one statement: the appointment, only while its provider is the version it was
/// planned from (held in key-share mode, so that time off and closures created meanwhile wait for
/// it, or make it plan again: `store::schedule`), while no time off or closure meets its blocked
/// range and, for a capped caller, while the caller's number holds fewer upcoming active
/// appointments than the organization allows (counted under the caller's lock, taken in BEGIN);
/// and with it its audit row, outbox message, confirmation link, idempotency record, manage link,
/// SMS, reminders and a message to each webhook wanting bookings (as the rules queue them on
/// SQLite), each written only if the appointment was. Every JSON it writes is built in Rust
/// (`store::names`) and bound; the statement only adds what it reads: each reminder's offset from
/// the clinic's settings and each webhook's id. The exclusion constraint decides overlaps with
/// other appointments.
pub async fn insert_booking(tx: &mut Tx, w: &BookingWrites<'_>) -> Result<Inserted, sqlx::Error> {
    let a = w.appointment;
    let (from, to) = crate::domain::alternatives_window(&a.slot, a.created_at);
    let rest = (
        action::BOOKED,
        &w.actor.sub,
        Json(&w.audit),
        Key(Uuid::now_v7()),
        outbox_kind::BOOKING_CONFIRMATION,
        w.message.as_ref().map(Json),
        w.link.map(|l| &l.token_hash),
        w.link.map(|l| Timestamp(l.expires_at)),
        w.idempotency.as_ref().map(|(i, _)| &i.key),
        w.idempotency.as_ref().map(|(i, _)| &i.request_hash),
        w.idempotency.as_ref().map(|(_, response)| Json(response)),
        w.provider_version,
        w.capped,
        Timestamp(from),
        Timestamp(to),
        &w.actor.call,
        outbox_kind::WEBHOOK,
        event::BOOKED,
        Json(event::body(event::BOOKED, a.created_at, a)),
    );
    // Each channel's reminder kind and what its reminders say, where the patient has the address;
    // the statement adds each offset.
    let [(email_kind, email_reminder), (sms_kind, sms_reminder)] = channels(a, outbox_kind::REMINDERS)
        .map(|(kind, to)| (kind, to.map(|to| Json(outbox_kind::reminder_to(to, a.slot.start())))));
    let notifications = (
        &w.manage.token_hash,
        &w.manage.nonce,
        outbox_kind::BOOKING_SMS,
        w.sms.as_ref().map(Json),
        email_kind,
        sms_kind,
        email_reminder,
        sms_reminder,
        w.kind_version,
        Timestamp(a.created_at - chrono::Duration::days(1)),
    );
    let inserted: Result<Answer, sqlx::Error> =
        tx.query(&BOOKING, Then(appointment_values(a), Then(rest, notifications))).fetch_one().await;
    match inserted {
        Ok((1, _, _, _)) => Ok(Inserted::Booked),
        Ok((_, 0, _, _)) => Ok(Inserted::Stale),
        Ok((_, _, Some(most), _)) => Ok(Inserted::over_quota(most)),
        // The exclusion constraint, time off or a closure (or, rarely, the confirmation code)
        // turned the insert into nothing, and the transaction is still usable. What is busy
        // around the wanted time comes back with it, for the alternatives, saving the refusal a
        // round trip.
        Ok((_, _, _, busy)) => Ok(Inserted::Taken(
            busy.map(|Json(busy)| busy.into_iter().filter_map(|(from, to)| Slot::from_bounds(from, to)).collect()),
        )),
        Err(e) if sqlstate(&e).as_deref() == Some(EXCLUSION_VIOLATION) => Ok(Inserted::Refused),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrgId;
    use test_kit::{Backend, TestDatabase};

    async fn role_and_org(tx: &mut Tx) -> (String, Option<String>) {
        tx.query("SELECT current_user::text, nullif(current_setting('app.org_id', true), '')", ())
            .fetch_one()
            .await
            .expect("read the session")
    }

    /// A server that only reads (a standby, or a primary demoted by a failover, until traffic
    /// moves) is unavailable, not a fault: 503, never 500.
    #[tokio::test]
    async fn a_server_that_only_reads_is_unavailable() {
        let Some(db) = TestDatabase::create(Backend::Postgres).await else {
            return;
        };
        let store = Pg::connect(&db.url, 1).await.expect("connect");
        let mut tx = store.pool.begin().await.expect("begin");
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.expect("read only");
        let refused = sqlx::query("CREATE TABLE written (x int)").execute(&mut *tx).await.expect_err("read only");
        let error = crate::store::StoreError::from(refused);
        assert!(matches!(error, crate::store::StoreError::Unavailable(_)), "{error:?}");
    }

    /// The switch that travels with BEGIN takes effect, and ends with the transaction.
    #[tokio::test]
    async fn transactions_run_as_the_role_and_organization_they_name() {
        let Some(db) = TestDatabase::create(Backend::Postgres).await else {
            return;
        };
        let store = Pg::connect(&db.url, 1).await.expect("connect");
        let org = OrgId::new();
        for scope in [Scope::Read(org), Scope::Write(org)] {
            let mut tx = store.begin(scope).await.expect("begin");
            assert_eq!(role_and_org(&mut tx).await, (REQUEST_ROLE.to_owned(), Some(org.to_string())));
            tx.commit().await.expect("commit");
        }
        for (scope, role) in [
            (Scope::Dispatch, WORKER_ROLE),
            (Scope::Claim(Some(std::time::Duration::from_secs(5))), WORKER_ROLE),
            (Scope::WorkerRead, WORKER_ROLE),
            (Scope::Links, LINK_ROLE),
            (Scope::OptOuts, LINK_ROLE),
            (Scope::Retention, RETENTION_ROLE),
        ] {
            let mut tx = store.begin(scope).await.expect("begin");
            assert_eq!(role_and_org(&mut tx).await, (role.to_owned(), None));
            tx.commit().await.expect("commit");
        }
        // The pool's one connection is back to its login role, with no organization.
        let mut tx = Tx::Pg(store.pool.begin().await.expect("begin"));
        let (login, org) = role_and_org(&mut tx).await;
        assert!(
            ![REQUEST_ROLE, WORKER_ROLE, LINK_ROLE, RETENTION_ROLE].contains(&login.as_str()) && org.is_none(),
            "{login} {org:?}"
        );
    }

    async fn statement_timeout(tx: &mut Tx) -> String {
        let (timeout,): (String,) =
            tx.query("SELECT current_setting('statement_timeout')", ()).fetch_one().await.expect("read");
        timeout
    }

    /// A claim's statements are cancelled once they have taken its time (half of it each), and
    /// only the claim's: the connection goes back to the pool without the timeout.
    #[tokio::test]
    async fn a_claims_statements_end_within_its_time() {
        let Some(db) = TestDatabase::create(Backend::Postgres).await else {
            return;
        };
        let store = Pg::connect(&db.url, 1).await.expect("connect");
        let mut tx = store.begin(Scope::Claim(Some(std::time::Duration::from_secs(5)))).await.expect("begin");
        assert_eq!(statement_timeout(&mut tx).await, "2500ms");
        let slept = tx.query("SELECT pg_sleep(3)", ()).execute().await.expect_err("cancelled");
        assert_eq!(sqlstate(&slept).as_deref(), Some("57014"), "{slept}");
        drop(tx);
        let mut tx = store.begin(Scope::Dispatch).await.expect("begin");
        assert_eq!(statement_timeout(&mut tx).await, "0");
    }
}
