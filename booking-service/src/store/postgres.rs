//! The PostgreSQL store. Each tenant transaction first switches to the `booking_app` role and sets
//! `app.org_id`, both transaction-locally, so row-level security filters every statement that
//! follows. The exclusion constraint `appointments_no_overlap` decides booking conflicts.

use super::*;
use shared::api::WorkingHours;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// A pooled connection idle this long is checked before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// The role request transactions run as.
pub const REQUEST_ROLE: &str = "booking_app";
/// The role of the mail dispatcher, across organizations, on the outbox only.
pub const WORKER_ROLE: &str = "booking_worker";
/// The role that finds the organization of a confirmation link, on the token table only.
pub const LINK_ROLE: &str = "booking_link";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Why one attempt of a transaction ended without an answer.
enum Fault {
    /// Lost a race the database resolves by aborting: try the whole transaction again.
    Retry,
    Fail(StoreError),
}

impl From<sqlx::Error> for Fault {
    fn from(e: sqlx::Error) -> Self {
        match sqlstate(&e).as_deref() {
            Some("40001" | "40P01") => Fault::Retry,
            _ => Fault::Fail(e.into()),
        }
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Fail(e)
    }
}

impl From<DomainError> for Fault {
    fn from(e: DomainError) -> Self {
        Fault::Fail(e.into())
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Runs `attempt` until it answers, retrying serialization and deadlock aborts a bounded number
/// of times.
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut outcome = Err(StoreError::Internal(
            "transaction kept losing serialization races".into(),
        ));
        for _ in 0..ATTEMPTS {
            match $attempt.await {
                Ok(v) => {
                    outcome = Ok(v);
                    break;
                }
                Err(Fault::Fail(e)) => {
                    outcome = Err(e);
                    break;
                }
                Err(Fault::Retry) => continue,
            }
        }
        outcome
    }};
}

impl PgStore {
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
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        let store = Self { pool };
        store.check_request_role().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Refuses to run if a role the service switches to could bypass row-level security.
    async fn check_request_role(&self) -> anyhow::Result<()> {
        for role in [REQUEST_ROLE, WORKER_ROLE, LINK_ROLE] {
            let (superuser, bypass, owns): (bool, bool, bool) = sqlx::query_as(
                "SELECT r.rolsuper, r.rolbypassrls,
                        EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = current_schema() AND t.tableowner = r.rolname)
                 FROM pg_roles r WHERE r.rolname = $1",
            )
            .bind(role)
            .fetch_one(&self.pool)
            .await?;
            anyhow::ensure!(
                !superuser && !bypass && !owns,
                "the role {role} must not be superuser, BYPASSRLS or a table owner"
            );
        }
        Ok(())
    }

    /// A transaction across organizations, running as one of the narrow roles (`WORKER_ROLE`,
    /// `LINK_ROLE`) whose policies and grants say exactly what it may touch.
    async fn begin_as(
        &self,
        role: &'static str,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool
            .begin_with(format!("BEGIN; SET LOCAL ROLE {role}"))
            .await
    }

    /// A transaction scoped to one organization, running as the request role. The switch travels
    /// with the BEGIN in one round trip (a simple query: its values are a constant and a UUID).
    async fn begin(&self, org: OrgId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool
            .begin_with(format!(
                "BEGIN; SET LOCAL ROLE {REQUEST_ROLE}; SET LOCAL app.org_id = '{org}'"
            ))
            .await
    }

    async fn try_book(&self, actor: &Actor, b: &NewBooking<'_>) -> Result<BookOutcome, Fault> {
        let mut tx = self.begin(actor.org).await?;
        if let Some(idem) = &b.idempotency {
            if let Some(replayed) = replay(&mut tx, actor.org, idem).await? {
                return Ok(replayed);
            }
        }
        let provider = load_provider(&mut tx, actor.org, b.provider)
            .await?
            .filter(|p| p.active)
            .ok_or(StoreError::NotFound)?;
        let wanted = (b.plan)(&provider)?;
        if !provider.permits(&wanted) {
            return Ok(BookOutcome::Unavailable {
                provider,
                wanted,
                busy: None,
            });
        }
        let now = now();
        let appointment = Appointment::pending(actor, &provider, wanted, b, now);
        let response = b
            .idempotency
            .as_ref()
            .map(|_| Json((b.render)(&appointment)));
        let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "WITH appt AS (
                INSERT INTO appointments (id, org_id, provider_id, starts_at, ends_at, status, confirmation_code,
                                          patient_name, patient_phone, patient_email, notes, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9::text, $10, $11, $11)
                ON CONFLICT DO NOTHING
                RETURNING id, org_id
            ), audit AS (
                INSERT INTO audit_log (org_id, appointment_id, action, actor, details, at)
                SELECT org_id, id, 'booked', $12, jsonb_build_object('starts_at', $4, 'ends_at', $5), $11 FROM appt
            ), outbox AS (
                INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
                SELECT $13, org_id, id, $14, jsonb_build_object('to', $9::text, 'nonce', $18::text), $11, $11 FROM appt WHERE $9::text IS NOT NULL
            ), token AS (
                INSERT INTO confirmation_tokens (token_hash, org_id, appointment_id, expires_at, created_at)
                SELECT $19, org_id, id, $20, $11 FROM appt WHERE $9::text IS NOT NULL
            ), idem AS (
                INSERT INTO idempotency_keys (org_id, key, request_hash, response, created_at)
                SELECT org_id, $15::text, $16, $17, $11 FROM appt WHERE $15::text IS NOT NULL
            )
            SELECT count(*) FROM appt",
        )
        .bind(appointment.id.0)
        .bind(actor.org.0)
        .bind(provider.id.0)
        .bind(wanted.start())
        .bind(wanted.end())
        .bind(&appointment.confirmation_code)
        .bind(&appointment.patient_name)
        .bind(&appointment.patient_phone)
        .bind(&appointment.patient_email)
        .bind(&appointment.notes)
        .bind(now)
        .bind(&actor.sub)
        .bind(Uuid::now_v7())
        .bind(message::BOOKING_CONFIRMATION)
        .bind(b.idempotency.as_ref().map(|i| &i.key))
        .bind(b.idempotency.as_ref().map(|i| &i.request_hash))
        .bind(response)
        .bind(&b.link.nonce)
        .bind(&b.link.token_hash)
        .bind(b.link.expires_at)
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(1) => {
                tx.commit().await?;
                Ok(BookOutcome::Booked(appointment))
            }
            // The exclusion constraint (or, rarely, the confirmation code) turned the insert into
            // nothing, and the transaction is still usable: answer from within it.
            Ok(_) => {
                if let Some(idem) = &b.idempotency {
                    if let Some(replayed) = replay(&mut tx, actor.org, idem).await? {
                        return Ok(replayed);
                    }
                }
                let (from, to) = crate::domain::alternatives_window(&wanted);
                let busy = busy_in(&mut tx, actor.org, provider.id, from, to).await?;
                if !busy.iter().any(|s| s.overlaps(&wanted)) {
                    // A confirmation code collision, or the conflicting booking was just cancelled.
                    return Err(Fault::Retry);
                }
                tx.commit().await?;
                Ok(BookOutcome::Unavailable {
                    provider,
                    wanted,
                    busy: Some(busy),
                })
            }
            Err(e) if sqlstate(&e).as_deref() == Some("23P01") => {
                drop(tx);
                // A concurrent request with the same key may be the one that took the slot.
                if let Some(idem) = &b.idempotency {
                    let mut tx = self.begin(actor.org).await?;
                    if let Some(replayed) = replay(&mut tx, actor.org, idem).await? {
                        return Ok(replayed);
                    }
                }
                Ok(BookOutcome::Unavailable {
                    provider,
                    wanted,
                    busy: None,
                })
            }
            // A confirmation code collision, or a concurrent request with the same idempotency
            // key committed first: the next attempt draws a new code or replays that request.
            Err(e) if sqlstate(&e).as_deref() == Some("23505") => Err(Fault::Retry),
            Err(e) => Err(e.into()),
        }
    }

    async fn try_cancel(
        &self,
        actor: &Actor,
        id: AppointmentId,
        reason: Option<&str>,
    ) -> Result<Appointment, Fault> {
        let mut tx = self.begin(actor.org).await?;
        let mut appointment = lock_appointment(&mut tx, actor.org, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !appointment.status.is_active() {
            return Err(
                StoreError::InvalidState("the appointment is already cancelled".into()).into(),
            );
        }
        let now = now();
        sqlx::query("UPDATE appointments SET status = 'cancelled', cancel_reason = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
            .bind(actor.org.0)
            .bind(id.0)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            id,
            action::CANCELLED,
            serde_json::json!({ "reason": reason }),
            now,
        )
        .await?;
        withdraw_link(&mut tx, actor.org, id).await?;
        if let Some(to) = &appointment.patient_email {
            enqueue(
                &mut tx,
                actor.org,
                id,
                message::CANCELLATION_NOTICE,
                message::plain(to),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        appointment.status = AppointmentStatus::Cancelled;
        appointment.updated_at = now;
        Ok(appointment)
    }

    async fn try_reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        plan: PlanMove<'_>,
        link: &IssuedLink,
    ) -> Result<MoveOutcome, Fault> {
        let mut tx = self.begin(actor.org).await?;
        let mut appointment = lock_appointment(&mut tx, actor.org, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !appointment.status.is_active() {
            return Err(StoreError::InvalidState(
                "a cancelled appointment cannot be rescheduled".into(),
            )
            .into());
        }
        let provider = load_provider(&mut tx, actor.org, appointment.provider_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let wanted = plan(&provider, &appointment)?;
        if !provider.permits(&wanted) || !provider.active {
            return Ok(MoveOutcome::Unavailable { provider, wanted });
        }
        let now = now();
        let moved = sqlx::query(
            "UPDATE appointments SET starts_at = $3, ends_at = $4, status = 'pending', updated_at = $5
             WHERE org_id = $1 AND id = $2",
        )
        .bind(actor.org.0)
        .bind(id.0)
        .bind(wanted.start())
        .bind(wanted.end())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(_) => {}
            Err(e) if sqlstate(&e).as_deref() == Some("23P01") => {
                return Ok(MoveOutcome::Unavailable { provider, wanted })
            }
            Err(e) => return Err(e.into()),
        }
        let details = action::moved(&appointment.slot, &wanted);
        audit(&mut tx, actor, id, action::RESCHEDULED, details, now).await?;
        withdraw_link(&mut tx, actor.org, id).await?;
        if let Some(to) = &appointment.patient_email {
            sqlx::query(
                "INSERT INTO confirmation_tokens (token_hash, org_id, appointment_id, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&link.token_hash)
            .bind(actor.org.0)
            .bind(id.0)
            .bind(link.expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            enqueue(
                &mut tx,
                actor.org,
                id,
                message::RESCHEDULE_NOTICE,
                message::with_link(to, link),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        appointment.slot = wanted;
        appointment.status = AppointmentStatus::Pending;
        appointment.updated_at = now;
        Ok(MoveOutcome::Moved(appointment))
    }
}

/// Makes the appointment's confirmation link, if any, stop working.
async fn withdraw_link(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    id: AppointmentId,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM confirmation_tokens WHERE org_id = $1 AND appointment_id = $2")
        .bind(org.0)
        .bind(id.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn enqueue(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    id: AppointmentId,
    kind: &str,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(org.0)
    .bind(id.0)
    .bind(kind)
    .bind(Json(payload))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: Uuid,
    org_id: Uuid,
    appointment_id: Uuid,
    kind: String,
    payload: Json<serde_json::Value>,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    dead_at: Option<DateTime<Utc>>,
}

const OUTBOX_COLUMNS: &str =
    "id, org_id, appointment_id, kind, payload, attempts, next_attempt_at, last_error, sent_at, dead_at";

impl From<OutboxRow> for OutboxJob {
    fn from(r: OutboxRow) -> Self {
        OutboxJob {
            id: r.id,
            org: r.org_id.into(),
            appointment: r.appointment_id.into(),
            kind: r.kind,
            payload: r.payload.0,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            sent_at: r.sent_at,
            dead_at: r.dead_at,
        }
    }
}

impl PgStore {
    async fn try_confirm(
        &self,
        actor: &Actor,
        id: AppointmentId,
        token_hash: &str,
    ) -> Result<Confirmed, Fault> {
        let mut tx = self.begin(actor.org).await?;
        let mut appointment = lock_appointment(&mut tx, actor.org, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let expires_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT expires_at FROM confirmation_tokens WHERE org_id = $1 AND appointment_id = $2 AND token_hash = $3",
        )
        .bind(actor.org.0)
        .bind(id.0)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let now = now();
        match expires_at {
            None => return Err(StoreError::NotFound.into()),
            Some(at) if at <= now => return Err(StoreError::Expired.into()),
            Some(_) => {}
        }
        match appointment.status {
            AppointmentStatus::Confirmed => return Ok(Confirmed::Already(appointment)),
            AppointmentStatus::Cancelled => {
                return Err(StoreError::InvalidState("the appointment was cancelled".into()).into())
            }
            AppointmentStatus::Pending => {}
        }
        sqlx::query("UPDATE appointments SET status = 'confirmed', updated_at = $3 WHERE org_id = $1 AND id = $2")
            .bind(actor.org.0)
            .bind(id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            id,
            action::CONFIRMED,
            serde_json::json!({ "via": "link" }),
            now,
        )
        .await?;
        tx.commit().await?;
        appointment.status = AppointmentStatus::Confirmed;
        appointment.updated_at = now;
        Ok(Confirmed::Now(appointment))
    }
}

async fn replay(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    idem: &IdempotencyKey,
) -> Result<Option<BookOutcome>, Fault> {
    let saved: Option<(String, Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT request_hash, response FROM idempotency_keys WHERE org_id = $1 AND key = $2",
    )
    .bind(org.0)
    .bind(&idem.key)
    .fetch_optional(&mut **tx)
    .await?;
    match saved {
        None => Ok(None),
        Some((hash, _)) if hash != idem.request_hash => Err(StoreError::IdempotencyConflict.into()),
        Some((_, Json(response))) => Ok(Some(BookOutcome::Replayed(response))),
    }
}

async fn audit(
    tx: &mut Transaction<'static, Postgres>,
    actor: &Actor,
    id: AppointmentId,
    action: &str,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (org_id, appointment_id, action, actor, details, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(actor.org.0)
        .bind(id.0)
        .bind(action)
        .bind(&actor.sub)
        .bind(Json(details))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: Uuid,
    name: String,
    timezone: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;
    fn try_from(r: OrgRow) -> StoreResult<Self> {
        Ok(Organization {
            id: r.id.into(),
            name: r.name,
            zone: stored_zone(&r.timezone)?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    timezone: Option<String>,
    org_timezone: String,
    appointment_minutes: i32,
    working_hours: Json<Vec<WorkingHours>>,
    active: bool,
}

const PROVIDER_COLUMNS: &str = "p.id, p.org_id, p.name, p.timezone, o.timezone AS org_timezone, p.appointment_minutes, p.working_hours, p.active
     FROM providers p JOIN organizations o ON o.id = p.org_id";

impl TryFrom<ProviderRow> for Provider {
    type Error = StoreError;
    fn try_from(r: ProviderRow) -> StoreResult<Self> {
        Ok(Provider {
            id: r.id.into(),
            org_id: r.org_id.into(),
            name: r.name,
            own_zone: r.timezone.as_deref().map(stored_zone).transpose()?,
            org_zone: stored_zone(&r.org_timezone)?,
            appointment_minutes: Minutes::parse(
                "appointment_minutes",
                i64::from(r.appointment_minutes),
            )?,
            hours: WeeklyHours::parse(&r.working_hours.0)?,
            active: r.active,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AppointmentRow {
    id: Uuid,
    org_id: Uuid,
    provider_id: Uuid,
    timezone: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: String,
    confirmation_code: String,
    patient_name: Option<String>,
    patient_phone: Option<String>,
    patient_email: Option<String>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const APPOINTMENT_COLUMNS: &str = "a.id, a.org_id, a.provider_id, coalesce(p.timezone, o.timezone) AS timezone, a.starts_at, a.ends_at,
            a.status, a.confirmation_code, a.patient_name, a.patient_phone, a.patient_email, a.notes, a.created_at, a.updated_at
     FROM appointments a
     JOIN providers p ON p.org_id = a.org_id AND p.id = a.provider_id
     JOIN organizations o ON o.id = a.org_id";

impl TryFrom<AppointmentRow> for Appointment {
    type Error = StoreError;
    fn try_from(r: AppointmentRow) -> StoreResult<Self> {
        Ok(Appointment {
            id: r.id.into(),
            org_id: r.org_id.into(),
            provider_id: r.provider_id.into(),
            zone: stored_zone(&r.timezone)?,
            slot: Slot::from_bounds(r.starts_at, r.ends_at)
                .ok_or_else(|| StoreError::Internal("empty appointment range".into()))?,
            status: AppointmentStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Internal(format!("unknown status {}", r.status)))?,
            confirmation_code: r.confirmation_code,
            patient_name: r.patient_name,
            patient_phone: r.patient_phone,
            patient_email: r.patient_email,
            notes: r.notes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The active appointments of a provider overlapping `[from, to)`.
async fn busy_in(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    provider: ProviderId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Slot>, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM appointments
         WHERE org_id = $1 AND provider_id = $2 AND status IN ('pending', 'confirmed')
           AND tstzrange(starts_at, ends_at, '[)') && tstzrange($3, $4, '[)')
         ORDER BY starts_at",
    )
    .bind(org.0)
    .bind(provider.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, e)| Slot::from_bounds(s, e))
        .collect())
}

async fn load_provider(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    id: ProviderId,
) -> Result<Option<Provider>, Fault> {
    let row: Option<ProviderRow> = sqlx::query_as(&format!(
        "SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 AND p.id = $2"
    ))
    .bind(org.0)
    .bind(id.0)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Provider::try_from).transpose()?)
}

async fn lock_appointment(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    id: AppointmentId,
) -> Result<Option<Appointment>, Fault> {
    let row: Option<AppointmentRow> = sqlx::query_as(&format!(
        "SELECT {APPOINTMENT_COLUMNS} WHERE a.org_id = $1 AND a.id = $2 FOR UPDATE OF a"
    ))
    .bind(org.0)
    .bind(id.0)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Appointment::try_from).transpose()?)
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let mut tx = self.begin(org.id).await?;
        sqlx::query(
            "INSERT INTO organizations (id, name, timezone, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org.id.0)
        .bind(&org.name)
        .bind(org.zone.name())
        .bind(org.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let mut tx = self.begin(id).await?;
        let row: Option<OrgRow> = sqlx::query_as(
            "SELECT id, name, timezone, created_at FROM organizations WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(Organization::try_from).transpose()
    }

    async fn delete_organization(&self, id: OrgId) -> StoreResult<bool> {
        let mut tx = self.begin(id).await?;
        let deleted = sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn create_provider(&self, p: &Provider) -> StoreResult<()> {
        let mut tx = self.begin(p.org_id).await?;
        let now = now();
        sqlx::query(
            "INSERT INTO providers (id, org_id, name, timezone, appointment_minutes, working_hours, active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(p.id.0)
        .bind(p.org_id.0)
        .bind(&p.name)
        .bind(p.own_zone.map(|z| z.name()))
        .bind(p.appointment_minutes.get() as i32)
        .bind(Json(p.hours.to_wire()))
        .bind(p.active)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn providers(&self, org: OrgId) -> StoreResult<Vec<Provider>> {
        let mut tx = self.begin(org).await?;
        let rows: Vec<ProviderRow> = sqlx::query_as(&format!(
            "SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 ORDER BY p.name, p.id"
        ))
        .bind(org.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Provider::try_from).collect()
    }

    async fn provider(&self, org: OrgId, id: ProviderId) -> StoreResult<Option<Provider>> {
        let mut tx = self.begin(org).await?;
        let provider = load_provider(&mut tx, org, id).await.map_err(fail)?;
        tx.commit().await?;
        Ok(provider)
    }

    async fn update_provider(
        &self,
        org: OrgId,
        id: ProviderId,
        c: &ProviderChanges,
    ) -> StoreResult<Option<Provider>> {
        let mut tx = self.begin(org).await?;
        let row: Option<ProviderRow> = sqlx::query_as(&format!(
            "SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 AND p.id = $2 FOR UPDATE OF p"
        ))
        .bind(org.0)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut p) = row.map(Provider::try_from).transpose()? else {
            return Ok(None);
        };
        p.apply(c);
        sqlx::query(
            "UPDATE providers SET name = $3, timezone = $4, appointment_minutes = $5, working_hours = $6, active = $7, updated_at = $8
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org.0)
        .bind(id.0)
        .bind(&p.name)
        .bind(p.own_zone.map(|z| z.name()))
        .bind(p.appointment_minutes.get() as i32)
        .bind(Json(p.hours.to_wire()))
        .bind(p.active)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(p))
    }

    async fn busy(
        &self,
        org: OrgId,
        provider: ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Slot>> {
        let mut tx = self.begin(org).await?;
        let busy = busy_in(&mut tx, org, provider, from, to).await?;
        tx.commit().await?;
        Ok(busy)
    }

    async fn book(&self, actor: &Actor, booking: NewBooking<'_>) -> StoreResult<BookOutcome> {
        retrying!(self.try_book(actor, &booking))
    }

    async fn appointment(&self, org: OrgId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
        let mut tx = self.begin(org).await?;
        let row: Option<AppointmentRow> = sqlx::query_as(&format!(
            "SELECT {APPOINTMENT_COLUMNS} WHERE a.org_id = $1 AND a.id = $2"
        ))
        .bind(org.0)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(Appointment::try_from).transpose()
    }

    async fn appointments(
        &self,
        org: OrgId,
        f: &AppointmentFilter,
    ) -> StoreResult<Vec<Appointment>> {
        let mut tx = self.begin(org).await?;
        let rows: Vec<AppointmentRow> = sqlx::query_as(&format!(
            "SELECT {APPOINTMENT_COLUMNS}
             WHERE a.org_id = $1
               AND ($2::uuid IS NULL OR a.provider_id = $2)
               AND ($3::timestamptz IS NULL OR a.ends_at > $3)
               AND ($4::timestamptz IS NULL OR a.starts_at < $4)
               AND ($5::text IS NULL OR a.status = $5)
               AND ($6::text IS NULL OR a.patient_phone = $6)
               AND ($7::text IS NULL OR a.confirmation_code = $7)
             ORDER BY a.starts_at, a.id
             LIMIT 1000"
        ))
        .bind(org.0)
        .bind(f.provider.map(|p| p.0))
        .bind(f.from)
        .bind(f.to)
        .bind(f.status.map(|s| s.as_str()))
        .bind(&f.patient_phone)
        .bind(&f.confirmation_code)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Appointment::try_from).collect()
    }

    async fn cancel(
        &self,
        actor: &Actor,
        id: AppointmentId,
        reason: Option<&str>,
    ) -> StoreResult<Appointment> {
        retrying!(self.try_cancel(actor, id, reason))
    }

    async fn reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        plan: PlanMove<'_>,
        link: &IssuedLink,
    ) -> StoreResult<MoveOutcome> {
        retrying!(self.try_reschedule(actor, id, plan, link))
    }

    async fn link_target(&self, token_hash: &str) -> StoreResult<Option<LinkTarget>> {
        let mut tx = self.begin_as(LINK_ROLE).await?;
        let row: Option<(Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
            "SELECT org_id, appointment_id, expires_at FROM confirmation_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.map(|(org, appointment, expires_at)| LinkTarget {
            org: org.into(),
            appointment: appointment.into(),
            expires_at,
        }))
    }

    async fn confirm(
        &self,
        actor: &Actor,
        id: AppointmentId,
        token_hash: &str,
    ) -> StoreResult<Confirmed> {
        retrying!(self.try_confirm(actor, id, token_hash))
    }

    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxJob>> {
        let mut tx = self.begin_as(WORKER_ROLE).await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "UPDATE outbox SET claimed_until = $2
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1
                   AND (claimed_until IS NULL OR claimed_until <= $1)
                 ORDER BY next_attempt_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED
             )
             RETURNING {OUTBOX_COLUMNS}"
        ))
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(OutboxJob::from).collect())
    }

    async fn record_delivery(&self, job: Uuid, delivery: &Delivery) -> StoreResult<()> {
        let mut tx = self.begin_as(WORKER_ROLE).await?;
        let now = now();
        let query = match delivery {
            Delivery::Sent => {
                sqlx::query("UPDATE outbox SET sent_at = $2, claimed_until = NULL WHERE id = $1")
                    .bind(job)
                    .bind(now)
            }
            Delivery::Retry { error, at } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, claimed_until = NULL
                 WHERE id = $1",
            )
            .bind(job)
            .bind(error)
            .bind(*at),
            Delivery::Dead { error } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_at = $3, claimed_until = NULL
                 WHERE id = $1",
            )
            .bind(job)
            .bind(error)
            .bind(now),
        };
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn outbox(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Vec<OutboxJob>> {
        let mut tx = self.begin(org).await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE org_id = $1 AND appointment_id = $2 ORDER BY created_at, id"
        ))
        .bind(org.0)
        .bind(appointment.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(OutboxJob::from).collect())
    }

    async fn tool_result(
        &self,
        org: OrgId,
        tool_call_id: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        let mut tx = self.begin(org).await?;
        let saved: Option<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT outcome FROM vapi_tool_results WHERE org_id = $1 AND tool_call_id = $2",
        )
        .bind(org.0)
        .bind(tool_call_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(saved.map(|Json(v)| v))
    }

    async fn save_tool_result(
        &self,
        org: OrgId,
        tool_call_id: &str,
        tool_name: &str,
        outcome: &serde_json::Value,
    ) -> StoreResult<serde_json::Value> {
        let mut tx = self.begin(org).await?;
        sqlx::query(
            "INSERT INTO vapi_tool_results (org_id, tool_call_id, tool_name, outcome) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id, tool_call_id) DO NOTHING",
        )
        .bind(org.0)
        .bind(tool_call_id)
        .bind(tool_name)
        .bind(Json(outcome))
        .execute(&mut *tx)
        .await?;
        let Json(standing): Json<serde_json::Value> = sqlx::query_scalar(
            "SELECT outcome FROM vapi_tool_results WHERE org_id = $1 AND tool_call_id = $2",
        )
        .bind(org.0)
        .bind(tool_call_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(standing)
    }

    async fn audit_trail(
        &self,
        org: OrgId,
        appointment: AppointmentId,
    ) -> StoreResult<Vec<AuditEntry>> {
        let mut tx = self.begin(org).await?;
        let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT action, actor, at FROM audit_log WHERE org_id = $1 AND appointment_id = $2 ORDER BY id",
        )
        .bind(org.0)
        .bind(appointment.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(action, actor, at)| AuditEntry { action, actor, at })
            .collect())
    }
}

fn fail(f: Fault) -> StoreError {
    match f {
        Fault::Fail(e) => e,
        Fault::Retry => StoreError::Internal("serialization failure".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_kit::{Backend, TestDatabase};

    async fn role_and_org(tx: &mut Transaction<'static, Postgres>) -> (String, Option<String>) {
        sqlx::query_as("SELECT current_user::text, nullif(current_setting('app.org_id', true), '')")
            .fetch_one(&mut **tx)
            .await
            .expect("read the session")
    }

    /// The switch that travels with BEGIN takes effect, and ends with the transaction.
    #[tokio::test]
    async fn transactions_run_as_the_role_and_organization_they_name() {
        let Some(db) = TestDatabase::create(Backend::Postgres).await else {
            return;
        };
        let store = PgStore::connect(&db.url, 1).await.expect("connect");
        let org = OrgId::new();
        let mut tx = store.begin(org).await.expect("begin");
        assert_eq!(
            role_and_org(&mut tx).await,
            (REQUEST_ROLE.to_owned(), Some(org.to_string()))
        );
        tx.commit().await.expect("commit");
        for role in [WORKER_ROLE, LINK_ROLE] {
            let mut tx = store.begin_as(role).await.expect("begin");
            assert_eq!(role_and_org(&mut tx).await, (role.to_owned(), None));
            tx.rollback().await.expect("rollback");
        }
        // The pool's one connection is back to its login role, with no organization.
        let mut tx = store.pool.begin().await.expect("begin");
        let (login, org) = role_and_org(&mut tx).await;
        assert!(
            ![REQUEST_ROLE, WORKER_ROLE, LINK_ROLE].contains(&login.as_str()) && org.is_none(),
            "{login} {org:?}"
        );
    }
}
