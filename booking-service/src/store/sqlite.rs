//! The SQLite store, the embedded default. Writes go through one connection and start with
//! `BEGIN IMMEDIATE`, which takes the database's write lock up front: the overlap check and the
//! insert that follows it cannot interleave with another writer, in this process or any other.
//! Instants are stored as integer microseconds (UTC).

use super::*;
use shared::api::WorkingHours;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Many readers (WAL lets them run beside the writer).
    reader: SqlitePool,
    /// One writer: SQLite admits a single writer anyway, and queueing here is fairer than
    /// spinning on `SQLITE_BUSY`.
    writer: SqlitePool,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Internal(format!("stored instant {us} out of range")))
}

fn uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::Internal(format!("stored id {s} is not a UUID")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl SqliteStore {
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = std::path::Path::new(options.get_filename()).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { reader, writer })
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

async fn load_provider(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    id: ProviderId,
) -> StoreResult<Option<Provider>> {
    let row: Option<ProviderRow> = sqlx::query_as(&format!(
        "SELECT {PROVIDER_COLUMNS} WHERE p.org_id = ?1 AND p.id = ?2"
    ))
    .bind(org.to_string())
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(Provider::try_from).transpose()
}

async fn load_appointment(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    id: AppointmentId,
) -> StoreResult<Option<Appointment>> {
    let row: Option<AppointmentRow> = sqlx::query_as(&format!(
        "SELECT {APPOINTMENT_COLUMNS} WHERE a.org_id = ?1 AND a.id = ?2"
    ))
    .bind(org.to_string())
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(Appointment::try_from).transpose()
}

/// Whether an active appointment of the provider other than `except` overlaps the slot.
async fn overlaps(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    provider: ProviderId,
    slot: &Slot,
    except: Option<AppointmentId>,
) -> StoreResult<bool> {
    let taken: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM appointments
         WHERE org_id = ?1 AND provider_id = ?2 AND status IN ('pending', 'confirmed')
           AND starts_at < ?4 AND ends_at > ?3 AND id IS NOT ?5
         LIMIT 1",
    )
    .bind(org.to_string())
    .bind(provider.to_string())
    .bind(micros(slot.start()))
    .bind(micros(slot.end()))
    .bind(except.map(|id| id.to_string()))
    .fetch_optional(conn)
    .await?;
    Ok(taken.is_some())
}

async fn replay(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    idem: &IdempotencyKey,
) -> StoreResult<Option<BookOutcome>> {
    let saved: Option<(String, Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT request_hash, response FROM idempotency_keys WHERE org_id = ?1 AND key = ?2",
    )
    .bind(org.to_string())
    .bind(&idem.key)
    .fetch_optional(conn)
    .await?;
    match saved {
        None => Ok(None),
        Some((hash, _)) if hash != idem.request_hash => Err(StoreError::IdempotencyConflict),
        Some((_, Json(response))) => Ok(Some(BookOutcome::Replayed(response))),
    }
}

async fn audit(
    conn: &mut sqlx::SqliteConnection,
    actor: &Actor,
    id: AppointmentId,
    action: &str,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_log (org_id, appointment_id, action, actor, details, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(actor.org.to_string())
        .bind(id.to_string())
        .bind(action)
        .bind(&actor.sub)
        .bind(Json(details))
        .bind(micros(at))
        .execute(conn)
        .await?;
    Ok(())
}

async fn issue_link(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    id: AppointmentId,
    link: &IssuedLink,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO confirmation_tokens (token_hash, org_id, appointment_id, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(&link.token_hash)
    .bind(org.to_string())
    .bind(id.to_string())
    .bind(micros(link.expires_at))
    .bind(micros(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes the appointment's confirmation link, if any, stop working.
async fn withdraw_link(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    id: AppointmentId,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM confirmation_tokens WHERE org_id = ?1 AND appointment_id = ?2")
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

async fn enqueue(
    conn: &mut sqlx::SqliteConnection,
    org: OrgId,
    id: AppointmentId,
    kind: &str,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(org.to_string())
    .bind(id.to_string())
    .bind(kind)
    .bind(Json(payload))
    .bind(micros(now))
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    org_id: String,
    appointment_id: String,
    kind: String,
    payload: Json<serde_json::Value>,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
    dead_at: Option<i64>,
}

const OUTBOX_COLUMNS: &str =
    "id, org_id, appointment_id, kind, payload, attempts, next_attempt_at, last_error, sent_at, dead_at";

impl TryFrom<OutboxRow> for OutboxJob {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> StoreResult<Self> {
        Ok(OutboxJob {
            id: uuid(&r.id)?,
            org: uuid(&r.org_id)?.into(),
            appointment: uuid(&r.appointment_id)?.into(),
            kind: r.kind,
            payload: r.payload.0,
            attempts: i32::try_from(r.attempts)
                .map_err(|_| StoreError::Internal("attempts out of range".into()))?,
            next_attempt_at: instant(r.next_attempt_at)?,
            last_error: r.last_error,
            sent_at: r.sent_at.map(instant).transpose()?,
            dead_at: r.dead_at.map(instant).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: String,
    name: String,
    timezone: String,
    created_at: i64,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;
    fn try_from(r: OrgRow) -> StoreResult<Self> {
        Ok(Organization {
            id: uuid(&r.id)?.into(),
            name: r.name,
            zone: stored_zone(&r.timezone)?,
            created_at: instant(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: String,
    org_id: String,
    name: String,
    timezone: Option<String>,
    org_timezone: String,
    appointment_minutes: i64,
    working_hours: Json<Vec<WorkingHours>>,
    active: bool,
}

const PROVIDER_COLUMNS: &str = "p.id, p.org_id, p.name, p.timezone, o.timezone AS org_timezone, p.appointment_minutes, p.working_hours, p.active
     FROM providers p JOIN organizations o ON o.id = p.org_id";

impl TryFrom<ProviderRow> for Provider {
    type Error = StoreError;
    fn try_from(r: ProviderRow) -> StoreResult<Self> {
        Ok(Provider {
            id: uuid(&r.id)?.into(),
            org_id: uuid(&r.org_id)?.into(),
            name: r.name,
            own_zone: r.timezone.as_deref().map(stored_zone).transpose()?,
            org_zone: stored_zone(&r.org_timezone)?,
            appointment_minutes: Minutes::parse("appointment_minutes", r.appointment_minutes)?,
            hours: WeeklyHours::parse(&r.working_hours.0)?,
            active: r.active,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AppointmentRow {
    id: String,
    org_id: String,
    provider_id: String,
    timezone: String,
    starts_at: i64,
    ends_at: i64,
    status: String,
    confirmation_code: String,
    patient_name: Option<String>,
    patient_phone: Option<String>,
    patient_email: Option<String>,
    notes: Option<String>,
    created_at: i64,
    updated_at: i64,
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
            id: uuid(&r.id)?.into(),
            org_id: uuid(&r.org_id)?.into(),
            provider_id: uuid(&r.provider_id)?.into(),
            zone: stored_zone(&r.timezone)?,
            slot: Slot::from_bounds(instant(r.starts_at)?, instant(r.ends_at)?)
                .ok_or_else(|| StoreError::Internal("empty appointment range".into()))?,
            status: AppointmentStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Internal(format!("unknown status {}", r.status)))?,
            confirmation_code: r.confirmation_code,
            patient_name: r.patient_name,
            patient_phone: r.patient_phone,
            patient_email: r.patient_email,
            notes: r.notes,
            created_at: instant(r.created_at)?,
            updated_at: instant(r.updated_at)?,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO organizations (id, name, timezone, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(org.zone.name())
        .bind(micros(org.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row: Option<OrgRow> = sqlx::query_as(
            "SELECT id, name, timezone, created_at FROM organizations WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.map(Organization::try_from).transpose()
    }

    async fn delete_organization(&self, id: OrgId) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM organizations WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn create_provider(&self, p: &Provider) -> StoreResult<()> {
        let now = micros(now());
        sqlx::query(
            "INSERT INTO providers (id, org_id, name, timezone, appointment_minutes, working_hours, active, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .bind(p.id.to_string())
        .bind(p.org_id.to_string())
        .bind(&p.name)
        .bind(p.own_zone.map(|z| z.name()))
        .bind(p.appointment_minutes.get())
        .bind(Json(p.hours.to_wire()))
        .bind(p.active)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn providers(&self, org: OrgId) -> StoreResult<Vec<Provider>> {
        let rows: Vec<ProviderRow> = sqlx::query_as(&format!(
            "SELECT {PROVIDER_COLUMNS} WHERE p.org_id = ?1 ORDER BY p.name, p.id"
        ))
        .bind(org.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(Provider::try_from).collect()
    }

    async fn provider(&self, org: OrgId, id: ProviderId) -> StoreResult<Option<Provider>> {
        let mut conn = self.reader.acquire().await?;
        load_provider(&mut conn, org, id).await
    }

    async fn update_provider(
        &self,
        org: OrgId,
        id: ProviderId,
        c: &ProviderChanges,
    ) -> StoreResult<Option<Provider>> {
        let mut tx = self.write().await?;
        let Some(mut p) = load_provider(&mut tx, org, id).await? else {
            return Ok(None);
        };
        p.apply(c);
        sqlx::query(
            "UPDATE providers SET name = ?3, timezone = ?4, appointment_minutes = ?5, working_hours = ?6, active = ?7, updated_at = ?8
             WHERE org_id = ?1 AND id = ?2",
        )
        .bind(org.to_string())
        .bind(id.to_string())
        .bind(&p.name)
        .bind(p.own_zone.map(|z| z.name()))
        .bind(p.appointment_minutes.get())
        .bind(Json(p.hours.to_wire()))
        .bind(p.active)
        .bind(micros(now()))
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
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT starts_at, ends_at FROM appointments
             WHERE org_id = ?1 AND provider_id = ?2 AND status IN ('pending', 'confirmed') AND starts_at < ?4 AND ends_at > ?3
             ORDER BY starts_at",
        )
        .bind(org.to_string())
        .bind(provider.to_string())
        .bind(micros(from))
        .bind(micros(to))
        .fetch_all(&self.reader)
        .await?;
        let mut slots = Vec::with_capacity(rows.len());
        for (s, e) in rows {
            slots.extend(Slot::from_bounds(instant(s)?, instant(e)?));
        }
        Ok(slots)
    }

    async fn book(&self, actor: &Actor, b: NewBooking<'_>) -> StoreResult<BookOutcome> {
        for _ in 0..ATTEMPTS {
            let mut tx = self.write().await?;
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
            if !provider.permits(&wanted)
                || overlaps(&mut tx, actor.org, provider.id, &wanted, None).await?
            {
                return Ok(BookOutcome::Unavailable {
                    provider,
                    wanted,
                    busy: None,
                });
            }
            let now = now();
            let appointment = Appointment::pending(actor, &provider, wanted, &b, now);
            let inserted = sqlx::query(
                "INSERT INTO appointments (id, org_id, provider_id, starts_at, ends_at, status, confirmation_code,
                                           patient_name, patient_phone, patient_email, notes, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
            )
            .bind(appointment.id.to_string())
            .bind(actor.org.to_string())
            .bind(provider.id.to_string())
            .bind(micros(wanted.start()))
            .bind(micros(wanted.end()))
            .bind(&appointment.confirmation_code)
            .bind(&appointment.patient_name)
            .bind(&appointment.patient_phone)
            .bind(&appointment.patient_email)
            .bind(&appointment.notes)
            .bind(micros(now))
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                // A confirmation code collision: draw another.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            let details = action::booked(&wanted);
            audit(&mut tx, actor, appointment.id, action::BOOKED, details, now).await?;
            if let Some(email) = &appointment.patient_email {
                issue_link(&mut tx, actor.org, appointment.id, &b.link, now).await?;
                enqueue(
                    &mut tx,
                    actor.org,
                    appointment.id,
                    message::BOOKING_CONFIRMATION,
                    message::with_link(email, &b.link),
                    now,
                )
                .await?;
            }
            if let Some(idem) = &b.idempotency {
                sqlx::query("INSERT INTO idempotency_keys (org_id, key, request_hash, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .bind(actor.org.to_string())
                    .bind(&idem.key)
                    .bind(&idem.request_hash)
                    .bind(Json((b.render)(&appointment)))
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok(BookOutcome::Booked(appointment));
        }
        Err(StoreError::Internal(
            "could not draw a unique confirmation code".into(),
        ))
    }

    async fn appointment(&self, org: OrgId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
        let mut conn = self.reader.acquire().await?;
        load_appointment(&mut conn, org, id).await
    }

    async fn appointments(
        &self,
        org: OrgId,
        f: &AppointmentFilter,
    ) -> StoreResult<Vec<Appointment>> {
        let rows: Vec<AppointmentRow> = sqlx::query_as(&format!(
            "SELECT {APPOINTMENT_COLUMNS}
             WHERE a.org_id = ?1
               AND (?2 IS NULL OR a.provider_id = ?2)
               AND (?3 IS NULL OR a.ends_at > ?3)
               AND (?4 IS NULL OR a.starts_at < ?4)
               AND (?5 IS NULL OR a.status = ?5)
               AND (?6 IS NULL OR a.patient_phone = ?6)
               AND (?7 IS NULL OR a.confirmation_code = ?7)
             ORDER BY a.starts_at, a.id
             LIMIT 1000"
        ))
        .bind(org.to_string())
        .bind(f.provider.map(|p| p.to_string()))
        .bind(f.from.map(micros))
        .bind(f.to.map(micros))
        .bind(f.status.map(|s| s.as_str()))
        .bind(&f.patient_phone)
        .bind(&f.confirmation_code)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(Appointment::try_from).collect()
    }

    async fn cancel(
        &self,
        actor: &Actor,
        id: AppointmentId,
        reason: Option<&str>,
    ) -> StoreResult<Appointment> {
        let mut tx = self.write().await?;
        let mut appointment = load_appointment(&mut tx, actor.org, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !appointment.status.is_active() {
            return Err(StoreError::InvalidState(
                "the appointment is already cancelled".into(),
            ));
        }
        let now = now();
        sqlx::query("UPDATE appointments SET status = 'cancelled', cancel_reason = ?3, updated_at = ?4 WHERE org_id = ?1 AND id = ?2")
            .bind(actor.org.to_string())
            .bind(id.to_string())
            .bind(reason)
            .bind(micros(now))
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

    async fn reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        plan: PlanMove<'_>,
        link: &IssuedLink,
    ) -> StoreResult<MoveOutcome> {
        let mut tx = self.write().await?;
        let mut appointment = load_appointment(&mut tx, actor.org, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !appointment.status.is_active() {
            return Err(StoreError::InvalidState(
                "a cancelled appointment cannot be rescheduled".into(),
            ));
        }
        let provider = load_provider(&mut tx, actor.org, appointment.provider_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let wanted = plan(&provider, &appointment)?;
        if !provider.active
            || !provider.permits(&wanted)
            || overlaps(&mut tx, actor.org, provider.id, &wanted, Some(id)).await?
        {
            return Ok(MoveOutcome::Unavailable { provider, wanted });
        }
        let now = now();
        sqlx::query("UPDATE appointments SET starts_at = ?3, ends_at = ?4, status = 'pending', updated_at = ?5 WHERE org_id = ?1 AND id = ?2")
            .bind(actor.org.to_string())
            .bind(id.to_string())
            .bind(micros(wanted.start()))
            .bind(micros(wanted.end()))
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
        let details = action::moved(&appointment.slot, &wanted);
        audit(&mut tx, actor, id, action::RESCHEDULED, details, now).await?;
        withdraw_link(&mut tx, actor.org, id).await?;
        if let Some(to) = &appointment.patient_email {
            issue_link(&mut tx, actor.org, id, link, now).await?;
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

    async fn tool_result(
        &self,
        org: OrgId,
        tool_call_id: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        let saved: Option<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT outcome FROM vapi_tool_results WHERE org_id = ?1 AND tool_call_id = ?2",
        )
        .bind(org.to_string())
        .bind(tool_call_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(saved.map(|Json(v)| v))
    }

    async fn save_tool_result(
        &self,
        org: OrgId,
        tool_call_id: &str,
        tool_name: &str,
        outcome: &serde_json::Value,
    ) -> StoreResult<serde_json::Value> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO vapi_tool_results (org_id, tool_call_id, tool_name, outcome, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (org_id, tool_call_id) DO NOTHING",
        )
        .bind(org.to_string())
        .bind(tool_call_id)
        .bind(tool_name)
        .bind(Json(outcome))
        .bind(micros(now()))
        .execute(&mut *tx)
        .await?;
        let Json(standing): Json<serde_json::Value> = sqlx::query_scalar(
            "SELECT outcome FROM vapi_tool_results WHERE org_id = ?1 AND tool_call_id = ?2",
        )
        .bind(org.to_string())
        .bind(tool_call_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(standing)
    }

    async fn link_target(&self, token_hash: &str) -> StoreResult<Option<LinkTarget>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT org_id, appointment_id, expires_at FROM confirmation_tokens WHERE token_hash = ?1",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(org, appointment, expires_at)| {
            Ok(LinkTarget {
                org: uuid(&org)?.into(),
                appointment: uuid(&appointment)?.into(),
                expires_at: instant(expires_at)?,
            })
        })
        .transpose()
    }

    async fn confirm(
        &self,
        actor: &Actor,
        id: AppointmentId,
        token_hash: &str,
    ) -> StoreResult<Confirmed> {
        let mut tx = self.write().await?;
        let mut appointment = load_appointment(&mut tx, actor.org, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let expires_at: Option<i64> = sqlx::query_scalar(
            "SELECT expires_at FROM confirmation_tokens WHERE org_id = ?1 AND appointment_id = ?2 AND token_hash = ?3",
        )
        .bind(actor.org.to_string())
        .bind(id.to_string())
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let now = now();
        match expires_at {
            None => return Err(StoreError::NotFound),
            Some(at) if at <= micros(now) => return Err(StoreError::Expired),
            Some(_) => {}
        }
        match appointment.status {
            AppointmentStatus::Confirmed => return Ok(Confirmed::Already(appointment)),
            AppointmentStatus::Cancelled => {
                return Err(StoreError::InvalidState(
                    "the appointment was cancelled".into(),
                ))
            }
            AppointmentStatus::Pending => {}
        }
        sqlx::query("UPDATE appointments SET status = 'confirmed', updated_at = ?3 WHERE org_id = ?1 AND id = ?2")
            .bind(actor.org.to_string())
            .bind(id.to_string())
            .bind(micros(now))
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

    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxJob>> {
        // One writer at a time (BEGIN IMMEDIATE): no two dispatchers can claim the same message.
        let mut tx = self.write().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "UPDATE outbox SET claimed_until = ?2
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?1
                   AND (claimed_until IS NULL OR claimed_until <= ?1)
                 ORDER BY next_attempt_at
                 LIMIT ?3
             )
             RETURNING {OUTBOX_COLUMNS}"
        ))
        .bind(micros(now))
        .bind(micros(lease_until))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(OutboxJob::try_from).collect()
    }

    async fn record_delivery(&self, job: Uuid, delivery: &Delivery) -> StoreResult<()> {
        let now = micros(now());
        let query = match delivery {
            Delivery::Sent => {
                sqlx::query("UPDATE outbox SET sent_at = ?2, claimed_until = NULL WHERE id = ?1")
                    .bind(job.to_string())
                    .bind(now)
            }
            Delivery::Retry { error, at } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, claimed_until = NULL
                 WHERE id = ?1",
            )
            .bind(job.to_string())
            .bind(error)
            .bind(micros(*at)),
            Delivery::Dead { error } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, dead_at = ?3, claimed_until = NULL
                 WHERE id = ?1",
            )
            .bind(job.to_string())
            .bind(error)
            .bind(now),
        };
        query.execute(&self.writer).await?;
        Ok(())
    }

    async fn outbox(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Vec<OutboxJob>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE org_id = ?1 AND appointment_id = ?2 ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .bind(appointment.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(OutboxJob::try_from).collect()
    }

    async fn audit_trail(
        &self,
        org: OrgId,
        appointment: AppointmentId,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT action, actor, at FROM audit_log WHERE org_id = ?1 AND appointment_id = ?2 ORDER BY id")
                .bind(org.to_string())
                .bind(appointment.to_string())
                .fetch_all(&self.reader)
                .await?;
        rows.into_iter()
            .map(|(action, actor, at)| {
                Ok(AuditEntry {
                    action,
                    actor,
                    at: instant(at)?,
                })
            })
            .collect()
    }
}
