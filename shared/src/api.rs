//! Request and response bodies of docs/API.md §3–§4, exactly as they travel as JSON.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Every error answer: `{"success": false, "error": {"code", "message"}}`, plus the free
/// alternatives when a slot is unavailable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ErrorBody {
    pub success: bool,
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<Slot>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ErrorDetail {
    /// One of the codes of docs/API.md §3, e.g. `slot_unavailable`.
    pub code: String,
    pub message: String,
}

/// A time range in RFC 3339 with the provider's local offset; `ends_at` is exclusive.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Slot {
    pub starts_at: DateTime<FixedOffset>,
    pub ends_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    pub name: String,
    /// The IANA name of a place (Area/Location, not under `Etc/`), e.g. `America/New_York`, or UTC.
    pub timezone: String,
}

/// `PATCH /api/org`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// As for `POST /api/orgs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
    /// The answer to a `PATCH /api/org` that sent `timezone`: the active appointments its closed
    /// days, moved to the new zone, now meet. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<Uuid>>,
}

/// The JSON answer of `POST /confirm/{token}` (with `Accept: application/json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ConfirmationResponse {
    pub success: bool,
    pub appointment_id: Uuid,
    pub status: AppointmentStatus,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// One opening of a provider on a weekday, local wall-clock `HH:MM` (end may be `24:00`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    pub weekday: Weekday,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    pub name: String,
    /// The IANA name of a place, or UTC (as the organization's); the organization's zone when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub appointment_minutes: Option<i64>,
    /// Absent or empty: bookable at any time.
    #[serde(default)]
    pub working_hours: Option<Vec<WorkingHours>>,
}

/// Fields to change; absent fields stay as they are. `timezone: null` falls back to the
/// organization's zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<Vec<WorkingHours>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().and_then(|inner| inner.as_ref()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Provider {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// The zone its local times are read in (its own, else the organization's).
    pub timezone: String,
    pub appointment_minutes: i64,
    pub working_hours: Vec<WorkingHours>,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    /// Local date `YYYY-MM-DD` in the provider's zone.
    pub date: String,
    /// List this type's free starts (its length, interval, buffers and notice); without it, the
    /// provider's appointment length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_type_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Availability {
    pub provider_id: Uuid,
    pub date: NaiveDate,
    pub timezone: String,
    pub slots: Vec<Slot>,
}

/// The first booking call, kept for the voice agents built on it: `POST /api/vapi/booking`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BookingRequest {
    pub tool_name: String,
    pub tool_input: BookingInput,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct BookingInput {
    #[serde(default)]
    pub provider_id: Option<Uuid>,
    /// Local date `YYYY-MM-DD`.
    #[serde(default)]
    pub appointment_date: Option<String>,
    /// Local time `HH:MM` (24-hour).
    #[serde(default)]
    pub appointment_time: Option<String>,
    #[serde(default)]
    pub duration_minutes: Option<i64>,
    #[serde(default)]
    pub patient_name: Option<String>,
    /// E.164, e.g. `+15551234567`.
    #[serde(default)]
    pub patient_phone: Option<String>,
    #[serde(default)]
    pub patient_email: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    /// Books this appointment type: its length, buffers, notice and horizon apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_type_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct BookingResponse {
    pub success: bool,
    pub appointment_id: Uuid,
    pub status: AppointmentStatus,
    pub starts_at: DateTime<FixedOffset>,
    pub ends_at: DateTime<FixedOffset>,
    pub confirmation_code: String,
    /// Time the service spent on this request, in milliseconds.
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Pending,
    Confirmed,
    Cancelled,
    /// The patient came (marked after the start).
    Completed,
    /// The patient did not come (marked after the start).
    NoShow,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 5] =
        [Self::Pending, Self::Confirmed, Self::Cancelled, Self::Completed, Self::NoShow];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::NoShow => "no_show",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Pending and confirmed appointments hold their time; the others are over.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }
}

/// A status by its name, as stored and as the API spells it.
impl TryFrom<String> for AppointmentStatus {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name).ok_or_else(|| format!("unknown appointment status {name}"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Patient {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Appointment {
    pub id: Uuid,
    pub org_id: Uuid,
    pub provider_id: Uuid,
    pub starts_at: DateTime<FixedOffset>,
    pub ends_at: DateTime<FixedOffset>,
    pub status: AppointmentStatus,
    pub confirmation_code: String,
    pub patient: Patient,
    pub notes: Option<String>,
    /// Its appointment type; null without one.
    pub appointment_type_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AppointmentQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<Uuid>,
    /// RFC 3339 instant; appointments ending after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339 instant; appointments starting before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `pending`, `confirmed`, `cancelled`, `completed` or `no_show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Appointments per page: 1 to 500, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Paging of a list route without other filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page: 1 to 500, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One page of a list. `next`, when not null, is the cursor of the page that follows; nothing is
/// left out between pages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    #[serde(default)]
    pub appointment_date: Option<String>,
    #[serde(default)]
    pub appointment_time: Option<String>,
    #[serde(default)]
    pub duration_minutes: Option<i64>,
    /// Moves it as this type; without it, it keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_type_id: Option<Uuid>,
}

/// `POST /manage/{token}/reschedule`, as JSON or as the manage page's form: the new start, one of
/// the free slots the page offered (any free start outside the clinic's cut-off is taken).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageRescheduleRequest {
    /// RFC 3339 instant with its offset, e.g. `2027-01-15T14:00:00+01:00`.
    pub starts_at: String,
}

/// `POST /api/appointment-types`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppointmentType {
    pub name: String,
    pub duration_minutes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_before_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_after_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_notice_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_advance_days: Option<i64>,
    /// Its duration when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_interval_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookable_by_agent: Option<bool>,
    /// The providers offering it; absent or empty: every provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ids: Option<Vec<Uuid>>,
}

/// `PATCH /api/appointment-types/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAppointmentType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_before_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_after_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_notice_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_advance_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_interval_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookable_by_agent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AppointmentType {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub duration_minutes: i64,
    pub buffer_before_minutes: i64,
    pub buffer_after_minutes: i64,
    pub min_notice_minutes: i64,
    pub max_advance_days: i64,
    pub slot_interval_minutes: i64,
    pub bookable_by_agent: bool,
    pub provider_ids: Vec<Uuid>,
    pub active: bool,
}

/// `POST /api/providers/{id}/time-off`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTimeOff {
    /// RFC 3339 instant.
    pub starts_at: String,
    /// RFC 3339 instant, after `starts_at`.
    pub ends_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct TimeOff {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub starts_at: DateTime<FixedOffset>,
    pub ends_at: DateTime<FixedOffset>,
    pub reason: Option<String>,
    /// When just created: the active appointments it overlaps (the clinic decides what to do with
    /// them). Absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TimeOffQuery {
    /// RFC 3339 instant; time off ending after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339 instant; time off starting before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Items per page: 1 to 500, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `POST /api/closures`: whole local days of the clinic's zone, `date` to `end_date` inclusive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClosure {
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Closure {
    pub id: Uuid,
    pub date: NaiveDate,
    pub end_date: NaiveDate,
    pub reason: Option<String>,
    /// When just created: the active appointments it overlaps. Absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<Uuid>>,
}

/// `POST /api/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An http(s) URL resolving to public addresses (unless the service allows private ones).
    pub url: String,
    /// The events wanted, e.g. `appointment.booked`; absent or empty: every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The signing secret (`whsec_…`): in the answer to `POST` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `GET`/`PUT /api/settings`: the clinic's notification and limit settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Settings {
    /// Minutes before an appointment's start at which reminders are due (at most 5, each 5 to
    /// 43200).
    pub reminder_offsets_minutes: Vec<i64>,
    /// Until how many minutes before the start a patient may cancel or move through the manage
    /// link (0 to 10080).
    pub manage_cutoff_minutes: i64,
    /// Upcoming active appointments one caller's number may hold when a voice agent books (0: no
    /// limit; at most 100).
    pub max_active_per_caller: i64,
    /// The SMS sender number (E.164), else (null) the service's `SMS_FROM`. Left out of a `PUT`,
    /// the clinic's is kept.
    #[serde(default)]
    pub sms_from: Option<String>,
}

/// `GET`/`PUT /api/vapi/settings`: the clinic's Vapi assistant and front-desk number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct VapiSettings {
    /// The Vapi assistant an `assistant-request` is answered with.
    #[serde(default)]
    pub assistant_id: Option<String>,
    /// E.164; where a `transfer-destination-request` sends the call.
    #[serde(default)]
    pub transfer_number: Option<String>,
}

/// A call with the voice agent, from its end-of-call report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Call {
    pub call_id: String,
    pub customer_number: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
    pub summary: Option<String>,
    /// The appointments its tool calls booked, moved or cancelled.
    pub appointment_ids: Vec<Uuid>,
}

/// One row of the audit log (an appointment's trail, or the clinic's whole log): what was done
/// to what, by whom (the token's `sub`, `patient` for the patient's links), when, with its details
/// (a move's times, a cancellation's reason, what a change to the clinic asked for).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AuditEntry {
    /// What the change was to: `appointment`, `time_off`, `closure`, `provider`,
    /// `appointment_type`, `webhook` or `settings` (the clinic's, and its Vapi settings).
    pub subject: String,
    /// Its id (the organization's for `settings`).
    pub subject_id: Uuid,
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// The voice agent's call whose tool call made the change.
    pub call_id: Option<String>,
}

/// A list read by time (`GET /api/calls` by start, `GET /api/audit` by when each change was made).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// RFC 3339 instant; at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339 instant; before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Items per page: 1 to 500, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}
