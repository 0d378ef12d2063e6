//! The rows as both databases return them, and their conversion into the store's types.

use super::known::Known;
use super::sql::{Key, Timestamp};
use super::{Appointment, Organization, OutboxJob, Provider, StoreError, StoreResult};
use crate::domain::{AppointmentId, Minutes, OrgId, ProviderId, Slot, WeeklyHours, Zone};
use shared::api::{AppointmentStatus, WorkingHours};
use sqlx::types::Json;

/// A zone read back from storage, where only valid names are ever written.
fn stored_zone(name: &str) -> StoreResult<Zone> {
    Zone::parse("timezone", name).map_err(|_| StoreError::Internal(format!("stored time zone {name} is unknown")))
}

#[derive(sqlx::FromRow)]
pub struct OrgRow {
    id: OrgId,
    name: String,
    timezone: String,
    created_at: Timestamp,
}

pub const ORG_COLUMNS: &str = "id, name, timezone, created_at FROM organizations";

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;
    fn try_from(r: OrgRow) -> StoreResult<Self> {
        Ok(Organization { id: r.id, name: r.name, zone: stored_zone(&r.timezone)?, created_at: r.created_at.0 })
    }
}

#[derive(sqlx::FromRow)]
pub struct ProviderRow {
    id: ProviderId,
    org_id: OrgId,
    name: String,
    timezone: Option<String>,
    org_timezone: String,
    appointment_minutes: i32,
    working_hours: Json<Vec<WorkingHours>>,
    active: bool,
    version: i64,
}

pub const PROVIDER_COLUMNS: &str = "p.id, p.org_id, p.name, p.timezone, o.timezone AS org_timezone, p.appointment_minutes, p.working_hours, p.active, p.version
     FROM providers p JOIN organizations o ON o.id = p.org_id";

impl TryFrom<ProviderRow> for Provider {
    type Error = StoreError;
    fn try_from(r: ProviderRow) -> StoreResult<Self> {
        Known::try_from(r).map(|k| k.provider)
    }
}

impl TryFrom<ProviderRow> for Known {
    type Error = StoreError;
    fn try_from(r: ProviderRow) -> StoreResult<Self> {
        let provider = Provider {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            own_zone: r.timezone.as_deref().map(stored_zone).transpose()?,
            org_zone: stored_zone(&r.org_timezone)?,
            appointment_minutes: Minutes::parse("appointment_minutes", i64::from(r.appointment_minutes))?,
            hours: WeeklyHours::stored(&r.working_hours.0)?,
            active: r.active,
        };
        Ok(Known { provider, version: r.version })
    }
}

#[derive(sqlx::FromRow)]
pub struct AppointmentRow {
    id: AppointmentId,
    org_id: OrgId,
    provider_id: ProviderId,
    timezone: String,
    starts_at: Timestamp,
    ends_at: Timestamp,
    status: String,
    confirmation_code: String,
    patient_name: Option<String>,
    patient_phone: Option<String>,
    patient_email: Option<String>,
    notes: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

pub const APPOINTMENT_COLUMNS: &str = "a.id, a.org_id, a.provider_id, coalesce(p.timezone, o.timezone) AS timezone, a.starts_at, a.ends_at,
            a.status, a.confirmation_code, a.patient_name, a.patient_phone, a.patient_email, a.notes, a.created_at, a.updated_at
     FROM appointments a
     JOIN providers p ON p.org_id = a.org_id AND p.id = a.provider_id
     JOIN organizations o ON o.id = a.org_id";

impl TryFrom<AppointmentRow> for Appointment {
    type Error = StoreError;
    fn try_from(r: AppointmentRow) -> StoreResult<Self> {
        Ok(Appointment {
            id: r.id,
            org_id: r.org_id,
            provider_id: r.provider_id,
            zone: stored_zone(&r.timezone)?,
            slot: Slot::from_bounds(r.starts_at.0, r.ends_at.0)
                .ok_or_else(|| StoreError::Internal("empty appointment range".into()))?,
            status: AppointmentStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Internal(format!("unknown status {}", r.status)))?,
            confirmation_code: r.confirmation_code,
            patient_name: r.patient_name,
            patient_phone: r.patient_phone,
            patient_email: r.patient_email,
            notes: r.notes,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SlotRow {
    starts_at: Timestamp,
    ends_at: Timestamp,
}

impl SlotRow {
    pub fn slot(self) -> Option<Slot> {
        Slot::from_bounds(self.starts_at.0, self.ends_at.0)
    }
}

#[derive(sqlx::FromRow)]
pub struct OutboxRow {
    id: Key,
    org_id: OrgId,
    appointment_id: AppointmentId,
    kind: String,
    payload: Json<serde_json::Value>,
    attempts: i32,
    next_attempt_at: Timestamp,
    last_error: Option<String>,
    sent_at: Option<Timestamp>,
    dead_at: Option<Timestamp>,
}

pub const OUTBOX_COLUMNS: &str =
    "id, org_id, appointment_id, kind, payload, attempts, next_attempt_at, last_error, sent_at, dead_at";

impl From<OutboxRow> for OutboxJob {
    fn from(r: OutboxRow) -> Self {
        OutboxJob {
            id: r.id.0,
            org: r.org_id,
            appointment: r.appointment_id,
            kind: r.kind,
            payload: r.payload.0,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.0,
            last_error: r.last_error,
            sent_at: r.sent_at.map(Into::into),
            dead_at: r.dead_at.map(Into::into),
        }
    }
}
