//! The rows as both databases return them, and their conversion into the store's types. The
//! types whose columns map one to one derive `sqlx::FromRow` themselves (in `mod.rs`), reading
//! their columns through the conversions here.

use super::known::Known;
use super::sql::{Key, Timestamp};
use super::{Appointment, CallRecord, OutboxJob, Provider, StoreError, StoreResult};
use crate::domain::{
    AppointmentId, AppointmentTypeId, DomainError, Minutes, OrgId, ProviderId, Slot, WeeklyHours, Zone,
};
use shared::api::{AppointmentStatus, WorkingHours};
use sqlx::types::Json;

/// A zone read back from storage, where only valid names are ever written.
impl TryFrom<String> for Zone {
    type Error = StoreError;
    fn try_from(name: String) -> StoreResult<Self> {
        Zone::parse("timezone", &name).map_err(|_| StoreError::Internal(format!("stored time zone {name} is unknown")))
    }
}

/// An appointment type's length or step read back from storage, where table constraints keep it
/// in range.
impl TryFrom<i32> for Minutes {
    type Error = DomainError;
    fn try_from(n: i32) -> Result<Self, DomainError> {
        Minutes::parse("minutes", i64::from(n))
    }
}

/// A range read back from storage, where `start < end` is a table constraint.
fn stored_range(start: Timestamp, end: Timestamp) -> StoreResult<Slot> {
    Slot::from_bounds(start.0, end.0).ok_or_else(|| StoreError::Internal("empty stored time range".into()))
}

pub const ORG_COLUMNS: &str =
    "id, name, timezone, created_at, vapi_assistant_id, vapi_transfer_number FROM organizations";

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
            own_zone: r.timezone.map(Zone::try_from).transpose()?,
            org_zone: Zone::try_from(r.org_timezone)?,
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
    blocked_from: Timestamp,
    blocked_until: Timestamp,
    appointment_type_id: Option<AppointmentTypeId>,
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
            a.blocked_from, a.blocked_until, a.appointment_type_id, a.status, a.confirmation_code, a.patient_name, a.patient_phone, a.patient_email, a.notes, a.created_at, a.updated_at
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
            zone: Zone::try_from(r.timezone)?,
            slot: stored_range(r.starts_at, r.ends_at)?,
            blocked: stored_range(r.blocked_from, r.blocked_until)?,
            appointment_type: r.appointment_type_id,
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

/// A range as `starts_at` and `ends_at`.
#[derive(sqlx::FromRow)]
pub struct SlotRow {
    starts_at: Timestamp,
    ends_at: Timestamp,
}

impl TryFrom<SlotRow> for Slot {
    type Error = StoreError;
    fn try_from(r: SlotRow) -> StoreResult<Self> {
        stored_range(r.starts_at, r.ends_at)
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

pub const APPOINTMENT_TYPE_COLUMNS: &str =
    "id, org_id, name, duration_minutes, buffer_before_minutes, buffer_after_minutes,
            min_notice_minutes, max_advance_days, slot_interval_minutes, bookable_by_agent, provider_ids, active
     FROM appointment_types";

pub const TIME_OFF_COLUMNS: &str = "id, org_id, provider_id, starts_at, ends_at, reason FROM time_off";

pub const CLOSURE_COLUMNS: &str = "id, org_id, first_day, last_day, starts_at, ends_at, reason FROM closures";

pub const WEBHOOK_COLUMNS: &str = "id, org_id, url, events, secret, created_at FROM webhooks";

#[derive(sqlx::FromRow)]
pub struct CallRow {
    call_id: String,
    customer_number: Option<String>,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    ended_reason: Option<String>,
    summary: Option<String>,
    appointment_ids: Json<Vec<uuid::Uuid>>,
}

impl From<CallRow> for CallRecord {
    fn from(r: CallRow) -> Self {
        CallRecord {
            call_id: r.call_id,
            customer_number: r.customer_number,
            started_at: r.started_at.0,
            ended_at: r.ended_at.map(Into::into),
            ended_reason: r.ended_reason,
            summary: r.summary,
            appointment_ids: r.appointment_ids.0.into_iter().map(AppointmentId).collect(),
        }
    }
}
