//! The columns each of the store's types is read from (every type derives `sqlx::FromRow` in
//! `records.rs`, for both databases), and the time ranges read from a pair of columns.

use super::sql::Timestamp;
use super::{StoreError, StoreResult};
use crate::domain::Slot;

pub const ORG_COLUMNS: &str =
    "id, name, timezone, created_at, vapi_assistant_id, vapi_transfer_number FROM organizations";

pub const PROVIDER_COLUMNS: &str = "p.id, p.org_id, p.name, p.timezone, o.timezone AS org_timezone, p.appointment_minutes, p.working_hours, p.active, p.version
     FROM providers p JOIN organizations o ON o.id = p.org_id";

pub const APPOINTMENT_COLUMNS: &str = "a.id, a.org_id, a.provider_id, coalesce(p.timezone, o.timezone) AS timezone, a.starts_at, a.ends_at,
            a.blocked_from, a.blocked_until, a.appointment_type_id, a.status, a.confirmation_code, a.patient_name, a.patient_phone, a.patient_email, a.notes, a.created_at, a.updated_at
     FROM appointments a
     JOIN providers p ON p.org_id = a.org_id AND p.id = a.provider_id
     JOIN organizations o ON o.id = a.org_id";

/// Row types of a time range read from a pair of columns (`start < end` is a table constraint).
macro_rules! range_rows {
    ($($(#[$doc:meta])* $row:ident($from:ident, $until:ident);)*) => {$(
        $(#[$doc])*
        #[derive(sqlx::FromRow)]
        pub struct $row {
            $from: Timestamp,
            $until: Timestamp,
        }

        impl TryFrom<$row> for Slot {
            type Error = StoreError;
            fn try_from(r: $row) -> StoreResult<Self> {
                Slot::from_bounds(r.$from.0, r.$until.0).ok_or_else(|| StoreError::Internal("empty stored time range".into()))
            }
        }
    )*};
}

range_rows! {
    /// An appointment's slot, or the span of time off or a closure.
    SlotRow(starts_at, ends_at);
    /// An appointment's blocked range: its slot widened by its type's buffers.
    BlockedRow(blocked_from, blocked_until);
}

pub const OUTBOX_COLUMNS: &str =
    "id, org_id, appointment_id, kind, payload, attempts, claims, next_attempt_at, last_error, sent_at, dead_at";

pub const APPOINTMENT_TYPE_COLUMNS: &str =
    "id, org_id, name, duration_minutes, buffer_before_minutes, buffer_after_minutes,
            min_notice_minutes, max_advance_days, slot_interval_minutes, bookable_by_agent, provider_ids, active,
            version
     FROM appointment_types";

pub const TIME_OFF_COLUMNS: &str = "id, org_id, provider_id, starts_at, ends_at, reason FROM time_off";

pub const CLOSURE_COLUMNS: &str = "id, org_id, first_day, last_day, starts_at, ends_at, reason FROM closures";

pub const WEBHOOK_COLUMNS: &str = "id, org_id, url, events, secret, created_at FROM webhooks";
