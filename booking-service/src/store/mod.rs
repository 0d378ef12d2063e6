//! Persistence behind one trait, [`Store`], kept by one implementation, [`SqlStore`], on
//! PostgreSQL or SQLite: the rules are written once (`rules.rs`) over a transaction on either
//! database (`sql.rs`), and only what truly differs lives in `postgres.rs` and `sqlite.rs`.

mod known;
mod postgres;
mod rows;
mod rules;
mod schedule;
mod sql;
mod sqlite;
mod webhooks;

pub use crate::links::IssuedLink;
pub use sqlite::options as sqlite_options;

use crate::domain::{
    AppointmentId, AppointmentTypeId, ClosureId, ConfirmationCode, Cutoff, DomainError, Email, Minutes, Notes, OrgId,
    PatientName, PhoneNumber, Policy, ProviderId, Reach, Slot, TimeOffId, WebhookId, WeeklyHours, Zone,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use shared::api::AppointmentStatus;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    InvalidState(String),
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    /// A confirmation link past its expiry.
    #[error("this confirmation link has expired")]
    Expired,
    /// The patient's manage link after the appointment's start: it changes nothing any more.
    #[error("the appointment has already started")]
    Started,
    /// A voice agent asked for an appointment type (named) only staff may book.
    #[error("{0} is booked by the clinic's staff")]
    StaffOnly(String),
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_connection_loss(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// Whether the database went away rather than refused the statement: a lost or refused
/// connection, an administrator's shutdown or termination, or too many connections. The request
/// did not happen (or its outcome is unknown) and a later one can succeed: 503, never 500.
fn is_connection_loss(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
        // cannot connect now), 53300 (too many connections).
        sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300"))
        }
        // A connection closed under a statement surfaces as a protocol error.
        sqlx::Error::Protocol(m) => m.contains("closed") || m.contains("unexpected end"),
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who acts, and in which organization: every tenant query is scoped by it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub org: OrgId,
    pub sub: String,
    /// The Vapi call whose tool call acts, named on the audit rows of what it changes.
    pub call: Option<String>,
}

impl Actor {
    pub fn new(org: OrgId, sub: impl Into<String>) -> Self {
        Self { org, sub: sub.into(), call: None }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    #[sqlx(rename = "timezone")]
    pub zone: Zone,
    #[sqlx(try_from = "sql::Timestamp")]
    pub created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub vapi: VapiSettings,
}

/// A clinic's notification and limit settings, each checked by [`ClinicSettings::check`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClinicSettings {
    #[sqlx(json)]
    pub reminder_offsets_minutes: Vec<u32>,
    #[sqlx(try_from = "i32")]
    pub manage_cutoff_minutes: u32,
    #[sqlx(try_from = "i32")]
    pub max_active_per_caller: u32,
    /// E.164.
    pub sms_from: Option<String>,
}

impl ClinicSettings {
    pub const MAX_REMINDERS: usize = 5;
    pub const REMINDER_MINUTES: std::ops::RangeInclusive<u32> = 5..=43_200;
    pub const CUTOFF_MINUTES: std::ops::RangeInclusive<u32> = 0..=10_080;
    pub const MAX_ACTIVE: std::ops::RangeInclusive<u32> = 0..=100;

    /// The settings as given, offsets each once from the latest to the soonest, or the field
    /// that breaks a rule.
    pub fn check(mut self) -> Result<Self, DomainError> {
        self.reminder_offsets_minutes.sort_unstable_by(|a, b| b.cmp(a));
        self.reminder_offsets_minutes.dedup();
        if self.reminder_offsets_minutes.len() > Self::MAX_REMINDERS
            || !self.reminder_offsets_minutes.iter().all(|m| Self::REMINDER_MINUTES.contains(m))
        {
            return Err(DomainError::invalid(
                "reminder_offsets_minutes",
                format!("at most {} offsets, each from 5 to 43200 minutes", Self::MAX_REMINDERS),
            ));
        }
        if !Self::CUTOFF_MINUTES.contains(&self.manage_cutoff_minutes) {
            return Err(DomainError::invalid("manage_cutoff_minutes", "must be from 0 to 10080"));
        }
        if !Self::MAX_ACTIVE.contains(&self.max_active_per_caller) {
            return Err(DomainError::invalid("max_active_per_caller", "must be from 0 to 100"));
        }
        Ok(self)
    }
}

/// A clinic's Vapi assistant and the number its calls are transferred to.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct VapiSettings {
    #[sqlx(rename = "vapi_assistant_id")]
    pub assistant_id: Option<String>,
    /// E.164.
    #[sqlx(rename = "vapi_transfer_number")]
    pub transfer_number: Option<String>,
}

/// One phone call with the voice agent, as its end-of-call report told it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallRecord {
    pub call_id: String,
    pub customer_number: Option<String>,
    #[sqlx(try_from = "sql::Timestamp")]
    pub started_at: DateTime<Utc>,
    #[sqlx(try_from = "sql::MaybeTimestamp")]
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
    pub summary: Option<String>,
    /// The appointments its tool calls booked, moved or cancelled (read from the audit log).
    #[sqlx(json)]
    pub appointment_ids: Vec<AppointmentId>,
}

/// Sets each field of `$target` that `$changes` gives (`Some`) to the value given.
macro_rules! take {
    ($target:expr, $changes:expr, $($field:ident),*) => {$(
        if let Some(v) = &$changes.$field {
            $target.$field = v.clone();
        }
    )*};
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Provider {
    pub id: ProviderId,
    pub org_id: OrgId,
    pub name: String,
    /// Its own zone, if it has one.
    #[sqlx(rename = "timezone")]
    pub own_zone: Option<Zone>,
    /// The organization's zone, used when it has none.
    #[sqlx(rename = "org_timezone")]
    pub org_zone: Zone,
    pub appointment_minutes: Minutes,
    #[sqlx(rename = "working_hours")]
    pub hours: WeeklyHours,
    pub active: bool,
}

impl Provider {
    /// The zone its local times are read in.
    pub fn zone(&self) -> Zone {
        self.own_zone.unwrap_or(self.org_zone)
    }

    pub fn permits(&self, slot: &Slot) -> bool {
        self.hours.permits(&self.zone(), slot)
    }

    pub fn apply(&mut self, c: &ProviderChanges) {
        take!(self, c, name, own_zone, appointment_minutes, hours, active);
    }
}

#[derive(Debug, Clone, Default)]
pub struct Patient {
    pub name: Option<PatientName>,
    pub phone: Option<PhoneNumber>,
    pub email: Option<Email>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Appointment {
    pub id: AppointmentId,
    pub org_id: OrgId,
    pub provider_id: ProviderId,
    /// The provider's zone, in which the API shows its times.
    #[sqlx(rename = "timezone")]
    pub zone: Zone,
    #[sqlx(flatten, try_from = "rows::SlotRow")]
    pub slot: Slot,
    /// The slot widened by its type's buffers: no other active appointment of the provider
    /// overlaps it.
    #[sqlx(flatten, try_from = "rows::BlockedRow")]
    pub blocked: Slot,
    #[sqlx(rename = "appointment_type_id")]
    pub appointment_type: Option<AppointmentTypeId>,
    #[sqlx(try_from = "String")]
    pub status: AppointmentStatus,
    pub confirmation_code: String,
    pub patient_name: Option<String>,
    pub patient_phone: Option<String>,
    pub patient_email: Option<String>,
    pub notes: Option<String>,
    #[sqlx(try_from = "sql::Timestamp")]
    pub created_at: DateTime<Utc>,
    #[sqlx(try_from = "sql::Timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl Appointment {
    /// The appointment as the API shows it (and webhooks send it), times in its provider's zone.
    pub fn to_api(&self) -> shared::api::Appointment {
        shared::api::Appointment {
            id: self.id.0,
            org_id: self.org_id.0,
            provider_id: self.provider_id.0,
            starts_at: self.zone.localize(self.slot.start()),
            ends_at: self.zone.localize(self.slot.end()),
            status: self.status,
            confirmation_code: self.confirmation_code.clone(),
            patient: shared::api::Patient {
                name: self.patient_name.clone(),
                phone: self.patient_phone.clone(),
                email: self.patient_email.clone(),
            },
            notes: self.notes.clone(),
            appointment_type_id: self.appointment_type.map(|t| t.0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The pending appointment a booking creates, with a fresh id and confirmation code.
    pub fn pending(
        actor: &Actor,
        provider: &Provider,
        planned: &Planned,
        booking: &NewBooking<'_>,
        now: DateTime<Utc>,
    ) -> Self {
        let Patient { name, phone, email } = &booking.patient;
        let text = |s: Option<&str>| s.map(str::to_owned);
        Self {
            id: AppointmentId::new(),
            org_id: actor.org,
            provider_id: provider.id,
            zone: provider.zone(),
            slot: planned.slot,
            blocked: planned.blocked(),
            appointment_type: planned.kind,
            status: AppointmentStatus::Pending,
            confirmation_code: ConfirmationCode::generate().into_string(),
            patient_name: text(name.as_ref().map(|n| n.as_str())),
            patient_phone: text(phone.as_ref().map(|p| p.as_str())),
            patient_email: text(email.as_ref().map(|e| e.as_str())),
            notes: text(booking.notes.as_ref().map(|n| n.as_str())),
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub provider: Option<ProviderId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<AppointmentStatus>,
    /// Only appointments booked from this number (E.164).
    pub patient_phone: Option<String>,
    pub confirmation_code: Option<String>,
}

/// The longest page a list gives.
pub const MAX_PAGE: u32 = 500;

/// Where a page of a list starts and how long it is: the rows after the one whose sort key and id
/// are `after` (keyset paging: no offset to scan past, and stable while rows are added).
#[derive(Debug, Clone)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<(K, uuid::Uuid)>,
}

impl<K> PageRequest<K> {
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }
}

/// One page of a list, in its order; `more` when rows follow it.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows: the extra row only tells that more follow.
    fn of(mut items: Vec<T>, limit: u32) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Self { items, more }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// A retry-safe request: the key (scoped by organization) and the fingerprint of its body.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// The key of a request whose identity is `request` (its canonical bytes): the fingerprint is
    /// their SHA-256, so a reuse with other bytes is told apart.
    pub fn for_request(key: impl Into<String>, request: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self { key: key.into(), request_hash: hex::encode(Sha256::digest(request)) }
    }
}

/// A slot to book, the policy it is booked under and the type that policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub slot: Slot,
    pub policy: Policy,
    pub kind: Option<AppointmentTypeId>,
}

impl Planned {
    /// The range the appointment keeps from others.
    pub fn blocked(&self) -> Slot {
        self.policy.blocked(&self.slot)
    }

    /// Whether the provider's hours and the policy's notice and horizon allow it at `now`.
    pub fn allowed_by(&self, provider: &Provider, now: DateTime<Utc>) -> bool {
        provider.permits(&self.slot) && self.policy.admits(&self.slot, now)
    }
}

/// Computes the slot of a booking from the provider as the transaction sees it.
pub type PlanSlot<'a> = &'a (dyn Fn(&Provider) -> Result<Planned, DomainError> + Send + Sync);
/// Computes the new slot of an appointment being moved, from its provider, the appointment and the
/// type it moves as, each as the move's transaction reads it: `None` when it moves as no type,
/// `Some(None)` when the type it moves as is not the organization's.
pub type PlanMove<'a> =
    &'a (dyn Fn(&Provider, &Appointment, Option<Option<&AppointmentType>>) -> StoreResult<Planned> + Send + Sync);
/// The answer to remember for an idempotent booking.
pub type Render<'a> = &'a (dyn Fn(&Appointment) -> serde_json::Value + Send + Sync);

pub struct NewBooking<'a> {
    pub provider: ProviderId,
    pub plan: PlanSlot<'a>,
    pub patient: Patient,
    pub notes: Option<Notes>,
    pub idempotency: Option<IdempotencyKey>,
    pub render: Render<'a>,
    /// The confirmation link to issue when the patient has an email address.
    pub link: IssuedLink,
    /// The patient's manage link (every appointment has one).
    pub manage: IssuedLink,
    /// Whether the patient's number is held to the organization's `max_active_per_caller` (a
    /// voice agent books for the caller).
    pub capped: bool,
}

/// Where a confirmation link's token hash leads.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    pub org: OrgId,
    pub appointment: AppointmentId,
    pub expires_at: DateTime<Utc>,
}

/// Whether the patient came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attendance {
    Completed,
    NoShow,
}

#[derive(Debug)]
pub enum Confirmed {
    /// Pending until now.
    Now(Appointment),
    /// Confirmed before: nothing changed.
    Already(Appointment),
}

/// One message of the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxJob {
    #[sqlx(try_from = "sql::Key")]
    pub id: uuid::Uuid,
    #[sqlx(rename = "org_id")]
    pub org: OrgId,
    #[sqlx(rename = "appointment_id")]
    pub appointment: AppointmentId,
    pub kind: String,
    #[sqlx(json)]
    pub payload: serde_json::Value,
    /// Failed deliveries so far.
    pub attempts: i32,
    #[sqlx(try_from = "sql::Timestamp")]
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    #[sqlx(try_from = "sql::MaybeTimestamp")]
    pub sent_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "sql::MaybeTimestamp")]
    pub dead_at: Option<DateTime<Utc>>,
}

/// What became of a delivery attempt.
#[derive(Debug, Clone)]
pub enum Delivery {
    Sent,
    /// Try again at this instant.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// Give up: too many attempts, or a failure no retry can fix.
    Dead {
        error: String,
    },
}

#[derive(Debug)]
pub enum BookOutcome {
    Booked(Appointment),
    /// The same idempotency key and body were seen before: their first answer.
    Replayed(serde_json::Value),
    /// The time is taken, outside the provider's hours, inside its notice, or meets time off or
    /// a closed day. `busy`, when the store already read it, holds what is busy for the provider
    /// over `domain::alternatives_window(wanted)`.
    Unavailable {
        provider: Provider,
        wanted: Planned,
        busy: Option<Vec<Slot>>,
    },
}

#[derive(Debug)]
pub enum MoveOutcome {
    Moved(Appointment),
    Unavailable { provider: Provider, wanted: Planned },
}

#[derive(Debug, Clone)]
pub struct ProviderChanges {
    pub name: Option<String>,
    pub own_zone: Option<Option<Zone>>,
    pub appointment_minutes: Option<Minutes>,
    pub hours: Option<WeeklyHours>,
    pub active: Option<bool>,
}

/// A kind of visit a clinic offers, and what booking it must respect.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppointmentType {
    pub id: AppointmentTypeId,
    pub org_id: OrgId,
    pub name: String,
    #[sqlx(rename = "duration_minutes")]
    pub duration: Minutes,
    #[sqlx(try_from = "i32")]
    pub buffer_before_minutes: u32,
    #[sqlx(try_from = "i32")]
    pub buffer_after_minutes: u32,
    #[sqlx(try_from = "i32")]
    pub min_notice_minutes: u32,
    #[sqlx(try_from = "i32")]
    pub max_advance_days: u32,
    #[sqlx(rename = "slot_interval_minutes")]
    pub slot_interval: Minutes,
    pub bookable_by_agent: bool,
    /// The providers offering it; empty: every provider.
    #[sqlx(json)]
    pub provider_ids: Vec<ProviderId>,
    pub active: bool,
}

impl AppointmentType {
    pub fn policy(&self) -> Policy {
        let minutes = |m: u32| chrono::Duration::minutes(i64::from(m));
        Policy {
            length: self.duration,
            step: self.slot_interval,
            buffer_before: minutes(self.buffer_before_minutes),
            buffer_after: minutes(self.buffer_after_minutes),
            notice: minutes(self.min_notice_minutes),
            horizon: chrono::Duration::days(i64::from(self.max_advance_days)),
        }
    }

    pub fn offered_by(&self, provider: ProviderId) -> bool {
        self.provider_ids.is_empty() || self.provider_ids.contains(&provider)
    }
}

/// Fields of an appointment type to change; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct AppointmentTypeChanges {
    pub name: Option<String>,
    pub duration: Option<Minutes>,
    pub buffer_before_minutes: Option<u32>,
    pub buffer_after_minutes: Option<u32>,
    pub min_notice_minutes: Option<u32>,
    pub max_advance_days: Option<u32>,
    pub slot_interval: Option<Minutes>,
    pub bookable_by_agent: Option<bool>,
    pub provider_ids: Option<Vec<ProviderId>>,
    pub active: Option<bool>,
}

impl AppointmentType {
    pub fn apply(&mut self, c: &AppointmentTypeChanges) {
        take!(
            self,
            c,
            name,
            duration,
            buffer_before_minutes,
            buffer_after_minutes,
            min_notice_minutes,
            max_advance_days,
            slot_interval,
            bookable_by_agent,
            provider_ids,
            active
        );
    }
}

/// A provider's time away: no booking's blocked range may meet it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TimeOff {
    pub id: TimeOffId,
    pub org_id: OrgId,
    pub provider_id: ProviderId,
    #[sqlx(flatten, try_from = "rows::SlotRow")]
    pub span: Slot,
    pub reason: Option<String>,
}

/// Whole local days a clinic is closed, and the instants they span in its zone.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Closure {
    pub id: ClosureId,
    pub org_id: OrgId,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    #[sqlx(flatten, try_from = "rows::SlotRow")]
    pub span: Slot,
    pub reason: Option<String>,
}

/// What an audit row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Appointment(AppointmentId),
    TimeOff(TimeOffId),
    Closure(ClosureId),
}

impl Subject {
    fn parts(self) -> (&'static str, uuid::Uuid) {
        match self {
            Subject::Appointment(id) => ("appointment", id.0),
            Subject::TimeOff(id) => ("time_off", id.0),
            Subject::Closure(id) => ("closure", id.0),
        }
    }
}

impl From<AppointmentId> for Subject {
    fn from(id: AppointmentId) -> Self {
        Subject::Appointment(id)
    }
}

/// The most time off one provider, or closures one clinic, may have ahead: bounds what every
/// booking and availability query reads.
pub const MAX_UPCOMING_BLOCKS: i64 = 500;

/// A clinic's webhook endpoint: the events it wants (empty: every one) and its signing secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub url: String,
    #[sqlx(json)]
    pub events: Vec<String>,
    /// `whsec_` and the base64 of the key.
    pub secret: String,
    #[sqlx(try_from = "sql::Timestamp")]
    pub created_at: DateTime<Utc>,
}

impl Webhook {
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

/// The most webhooks one clinic may have: every change is queued once per endpoint.
pub const MAX_WEBHOOKS: i64 = 10;

/// The events webhooks announce (Standard Webhooks' `type`).
pub mod event {
    pub const BOOKED: &str = "appointment.booked";
    pub const CONFIRMED: &str = "appointment.confirmed";
    pub const CANCELLED: &str = "appointment.cancelled";
    pub const RESCHEDULED: &str = "appointment.rescheduled";
    pub const COMPLETED: &str = "appointment.completed";
    pub const NO_SHOW: &str = "appointment.no_show";
    pub const ALL: [&str; 6] = [BOOKED, CONFIRMED, CANCELLED, RESCHEDULED, COMPLETED, NO_SHOW];

    /// The payload of a webhook's outbox message: which endpoint, and the body it is sent.
    pub fn payload(
        webhook: crate::domain::WebhookId,
        kind: &str,
        at: chrono::DateTime<chrono::Utc>,
        data: &serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({ "webhook_id": webhook, "type": kind, "timestamp": at, "data": data })
    }
}

/// What a remembered voice-agent answer is kept under: it is given again only to a request with
/// all three the same.
#[derive(Debug, Clone, Copy)]
pub struct ToolCallKey<'a> {
    /// Vapi's id of the phone call; empty when the message names none.
    pub call_id: &'a str,
    pub tool_call_id: &'a str,
    /// The SHA-256 (hex) of the tool name, the canonical arguments and the caller's number.
    pub fingerprint: &'a str,
}

/// A connection pool's use at one instant, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// `main` (every connection on PostgreSQL; SQLite's readers) or `writer` (SQLite's one writer).
    pub pool: &'static str,
    pub open: u32,
    pub idle: u32,
    /// The most connections it opens.
    pub max: u32,
}

/// The outbox at one instant, for the metrics: messages due and not yet handed to a dispatcher,
/// how long the oldest of them has been due, and messages given up on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxBacklog {
    pub due: i64,
    pub oldest_due_seconds: f64,
    pub dead: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// The connection pools' use (no database round trip).
    fn pool_usage(&self) -> Vec<PoolUsage>;

    /// The outbox's backlog at `now`, across organizations.
    async fn outbox_backlog(&self, now: DateTime<Utc>) -> StoreResult<OutboxBacklog>;

    async fn create_organization(&self, org: &Organization) -> StoreResult<()>;
    async fn settings(&self, org: OrgId) -> StoreResult<Option<ClinicSettings>>;
    /// Replaces the organization's settings; false when there is no such organization.
    async fn set_settings(&self, org: OrgId, settings: &ClinicSettings) -> StoreResult<bool>;
    /// Replaces the organization's Vapi settings; false when there is no such organization.
    async fn set_vapi_settings(&self, org: OrgId, settings: &VapiSettings) -> StoreResult<bool>;
    /// Keeps a call's record unless one is kept already (a repeated report changes nothing);
    /// true when this one was kept.
    async fn record_call(&self, org: OrgId, call: &CallRecord) -> StoreResult<bool>;
    /// The organization's calls started within `[from, to)`, by start and call id (the sort key;
    /// the UUID of the page request is not used), a page at a time.
    async fn calls(
        &self,
        org: OrgId,
        within: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        page: &PageRequest<(DateTime<Utc>, String)>,
    ) -> StoreResult<Page<CallRecord>>;
    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>>;
    /// Removes the organization and everything of it; false when there was none.
    async fn delete_organization(&self, id: OrgId) -> StoreResult<bool>;

    async fn create_provider(&self, provider: &Provider) -> StoreResult<()>;
    /// The organization's providers by name, a page at a time.
    async fn providers(&self, org: OrgId, page: &PageRequest<String>) -> StoreResult<Page<Provider>>;
    async fn provider(&self, org: OrgId, id: ProviderId) -> StoreResult<Option<Provider>>;
    async fn update_provider(
        &self,
        org: OrgId,
        id: ProviderId,
        changes: &ProviderChanges,
    ) -> StoreResult<Option<Provider>>;

    async fn create_appointment_type(&self, kind: &AppointmentType) -> StoreResult<()>;
    /// The organization's appointment types by name, a page at a time.
    async fn appointment_types(&self, org: OrgId, page: &PageRequest<String>) -> StoreResult<Page<AppointmentType>>;
    async fn appointment_type(&self, org: OrgId, id: AppointmentTypeId) -> StoreResult<Option<AppointmentType>>;
    async fn update_appointment_type(
        &self,
        org: OrgId,
        id: AppointmentTypeId,
        changes: &AppointmentTypeChanges,
    ) -> StoreResult<Option<AppointmentType>>;

    /// Adds time off, with its audit row, once no booking of the provider is in flight: the
    /// active appointments it overlaps, committed before it, are listed; none can follow it.
    /// `NotFound` without such a provider.
    async fn create_time_off(&self, actor: &Actor, time_off: &TimeOff) -> StoreResult<Vec<AppointmentId>>;
    /// The provider's time off overlapping `[from, to)` by start, a page at a time.
    async fn time_off(
        &self,
        org: OrgId,
        provider: ProviderId,
        within: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<TimeOff>>;
    /// Removes time off, with its audit row; false when there was none.
    async fn delete_time_off(&self, actor: &Actor, id: TimeOffId) -> StoreResult<bool>;
    /// Closes whole days, with the audit row, as `create_time_off` does for every provider of the
    /// organization.
    async fn create_closure(&self, actor: &Actor, closure: &Closure) -> StoreResult<Vec<AppointmentId>>;
    /// The organization's closures by first day, a page at a time.
    async fn closures(&self, org: OrgId, page: &PageRequest<NaiveDate>) -> StoreResult<Page<Closure>>;
    async fn delete_closure(&self, actor: &Actor, id: ClosureId) -> StoreResult<bool>;

    /// What no booking of the provider may meet over `[from, to)`: the blocked ranges of its active
    /// appointments, its time off and the organization's closed days.
    async fn busy(
        &self,
        org: OrgId,
        provider: ProviderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Slot>>;

    /// Books atomically: the slot is free and inside the provider's hours when the transaction
    /// commits, with its audit row and outbox message, or nothing is written.
    async fn book(&self, actor: &Actor, booking: NewBooking<'_>) -> StoreResult<BookOutcome>;

    async fn appointment(&self, org: OrgId, id: AppointmentId) -> StoreResult<Option<Appointment>>;
    /// The appointments matching `filter` by start, a page at a time.
    async fn appointments(
        &self,
        org: OrgId,
        filter: &AppointmentFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<Appointment>>;
    /// Cancels, withdraws its confirmation link and queues the notice, in one transaction. With
    /// the patient's `cutoff` (the manage link), checked against the appointment as locked:
    /// `Started` from its start on, `InvalidState` within the cut-off.
    async fn cancel(
        &self,
        actor: &Actor,
        id: AppointmentId,
        reason: Option<&str>,
        cutoff: Option<Cutoff>,
    ) -> StoreResult<Appointment>;
    /// Moves an active appointment as the type `kind` (else as its own), re-checking overlap and
    /// hours atomically; replaces its confirmation link with `link` and queues the notice in the
    /// same transaction. With the patient's `cutoff`, the appointment is checked as `cancel` does
    /// and the new start must be outside the cut-off too (else `Unavailable`, its alternatives
    /// outside it).
    async fn reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        kind: Option<AppointmentTypeId>,
        plan: PlanMove<'_>,
        link: &IssuedLink,
        cutoff: Option<Cutoff>,
    ) -> StoreResult<MoveOutcome>;

    /// The answer first given to exactly this voice-agent tool call (same call, id and
    /// fingerprint), if any.
    async fn tool_result(&self, org: OrgId, key: &ToolCallKey<'_>) -> StoreResult<Option<serde_json::Value>>;
    /// Keeps `outcome` as the answer to the tool call unless another was kept first, and returns
    /// the answer that stands.
    async fn save_tool_result(
        &self,
        org: OrgId,
        key: &ToolCallKey<'_>,
        tool_name: &str,
        outcome: &serde_json::Value,
    ) -> StoreResult<serde_json::Value>;
    /// Which organization and appointment a token hash belongs to (any organization: the token is
    /// the credential).
    async fn link_target(&self, token_hash: &str) -> StoreResult<Option<LinkTarget>>;
    /// Which organization and appointment a manage link's token hash belongs to (any
    /// organization: the token is the credential).
    async fn manage_target(&self, token_hash: &str) -> StoreResult<Option<(OrgId, AppointmentId)>>;
    /// The nonce of an appointment's manage link, from which the link key recomputes its token.
    async fn manage_nonce(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Option<String>>;
    /// Marks a pending or confirmed appointment that has started as attended or not, with its
    /// audit row (`completed` or `no_show`); `InvalidState` before its start or when it is over.
    async fn attend(&self, actor: &Actor, id: AppointmentId, outcome: Attendance) -> StoreResult<Appointment>;
    /// Confirms a pending appointment through its link, with its audit row; `NotFound` when the
    /// link is no longer the appointment's, `Expired` past its expiry.
    async fn confirm(&self, actor: &Actor, id: AppointmentId, token_hash: &str) -> StoreResult<Confirmed>;

    /// Claims up to `limit` due messages of every organization until `lease_until`: no other
    /// dispatcher takes them before then, and they come back if this one dies.
    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxJob>>;
    /// Records how a claimed message's delivery went.
    async fn record_delivery(&self, job: uuid::Uuid, delivery: &Delivery) -> StoreResult<()>;
    /// The messages queued for an appointment, oldest first.
    async fn outbox(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Vec<OutboxJob>>;

    /// Adds a webhook; `InvalidState` when the clinic has [`MAX_WEBHOOKS`] already.
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// The organization's webhooks by creation, a page at a time.
    async fn webhooks(&self, org: OrgId, page: &PageRequest<DateTime<Utc>>) -> StoreResult<Page<Webhook>>;
    async fn webhook(&self, org: OrgId, id: WebhookId) -> StoreResult<Option<Webhook>>;
    async fn delete_webhook(&self, org: OrgId, id: WebhookId) -> StoreResult<bool>;

    /// Stops SMS from `sender` to `phone` (the phone texted STOP); already stopped is no change.
    async fn sms_opt_out(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<()>;
    /// Resumes SMS from `sender` to `phone` (the phone texted START); true when it had stopped them.
    async fn sms_opt_in(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<bool>;
    /// Whether `phone` stopped SMS from `sender` (both E.164, as stored): the dispatcher asks
    /// before each SMS.
    async fn sms_opted_out(&self, sender: &str, phone: &str) -> StoreResult<bool>;

    /// Deletes, from each table, up to `batch` rows that have served their time before `before`:
    /// idempotency records, remembered tool answers, delivered outbox messages. The number deleted.
    async fn prune(&self, before: DateTime<Utc>, batch: i64) -> StoreResult<u64>;

    async fn audit_trail(&self, org: OrgId, subject: Subject) -> StoreResult<Vec<AuditEntry>>;
}

pub type DynStore = Arc<dyn Store>;

/// The store on either database.
pub struct SqlStore {
    backend: Backend,
    known: known::KnownProviders,
}

enum Backend {
    Postgres(postgres::Pg),
    Sqlite(sqlite::Lite),
}

/// `$body` with `$db` the store's database, whichever it is (the two arms differ only in their
/// types).
macro_rules! on_backend {
    ($store:expr, |$db:ident| $body:expr) => {
        match &$store.backend {
            Backend::Postgres($db) => $body,
            Backend::Sqlite($db) => $body,
        }
    };
}
use on_backend;

impl SqlStore {
    /// Connects to the database a URL names and applies its migrations.
    pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let backend = if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Backend::Postgres(postgres::Pg::connect(database_url, pool_size).await?)
        } else if database_url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::Lite::connect(database_url, pool_size).await?)
        } else {
            anyhow::bail!(
                "DATABASE_URL must start with postgres:// or sqlite:// (got {})",
                crate::config::redact(database_url)
            )
        };
        Ok(Self { backend, known: Default::default() })
    }

    fn dialect(&self) -> sql::Dialect {
        match &self.backend {
            Backend::Postgres(_) => sql::Dialect::Postgres,
            Backend::Sqlite(_) => sql::Dialect::Sqlite,
        }
    }

    async fn begin(&self, scope: rules::Scope) -> Result<sql::Tx, sqlx::Error> {
        on_backend!(self, |db| db.begin(scope).await)
    }
}

/// A pool's use for the metrics (either database).
fn usage<DB: sqlx::Database>(pool: &'static str, of: &sqlx::Pool<DB>) -> PoolUsage {
    let open = of.size();
    let idle = u32::try_from(of.num_idle()).unwrap_or(open).min(open);
    PoolUsage { pool, open, idle, max: of.options().get_max_connections() }
}

/// Connects to the database a URL names and applies its migrations.
pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<DynStore> {
    Ok(Arc::new(SqlStore::connect(database_url, pool_size).await?))
}

/// The current instant at the precision both databases keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// How many times a transaction that lost a serialization or deadlock race is tried in all.
pub const ATTEMPTS: usize = 5;

/// What an action writes to the audit log.
pub mod action {
    use crate::domain::Slot;
    use serde_json::{json, Value};

    pub const BOOKED: &str = "booked";
    pub const CANCELLED: &str = "cancelled";
    pub const RESCHEDULED: &str = "rescheduled";
    pub const CONFIRMED: &str = "confirmed";
    pub const TIME_OFF_ADDED: &str = "time_off_added";
    pub const TIME_OFF_REMOVED: &str = "time_off_removed";
    pub const CLOSURE_ADDED: &str = "closure_added";
    pub const CLOSURE_REMOVED: &str = "closure_removed";

    /// The details of a `booked` row.
    pub fn booked(slot: &Slot) -> Value {
        json!({ "starts_at": slot.start(), "ends_at": slot.end() })
    }

    /// The details of a `rescheduled` row.
    pub fn moved(from: &Slot, to: &Slot) -> Value {
        json!({ "from": booked(from), "to": booked(to) })
    }
}

/// The kinds of outbox message, and their payloads.
pub mod outbox_kind {
    pub const BOOKING_CONFIRMATION: &str = "booking_confirmation";
    /// A Standard Webhooks message to one endpoint (`store::event::payload`).
    pub const WEBHOOK: &str = "webhook";
    pub const RESCHEDULE_NOTICE: &str = "reschedule_notice";
    pub const CANCELLATION_NOTICE: &str = "cancellation_notice";
    /// The SMS a booking sends to the patient's phone: the code and the manage link.
    pub const BOOKING_SMS: &str = "booking_sms";
    /// Reminders, due at `starts_at − offset` (`store::rules::queue_reminders`).
    pub const REMINDER_EMAIL: &str = "reminder_email";
    pub const REMINDER_SMS: &str = "reminder_sms";
    pub const REMINDERS: [&str; 2] = [REMINDER_EMAIL, REMINDER_SMS];
    /// The SMS a reschedule or a cancellation sends to the patient's phone.
    pub const RESCHEDULE_SMS: &str = "reschedule_sms";
    pub const CANCELLATION_SMS: &str = "cancellation_sms";
    /// Every kind that goes by SMS.
    pub const SMS: [&str; 4] = [BOOKING_SMS, REMINDER_SMS, RESCHEDULE_SMS, CANCELLATION_SMS];
    /// The kinds that tell of a cancellation, so go out for a cancelled appointment.
    pub const CANCELLATIONS: [&str; 2] = [CANCELLATION_NOTICE, CANCELLATION_SMS];

    /// A reminder's payload: the recipient, the offset it was queued for and the start it was
    /// queued for (so a reminder already claimed when its appointment moved is recognised).
    pub fn reminder(to: &str, offset_minutes: u32, starts_at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
        serde_json::json!({ "to": to, "offset_minutes": offset_minutes, "starts_at": starts_at })
    }

    /// The payload of a message carrying a confirmation link: the recipient and the link's nonce.
    pub fn with_link(to: &str, link: &super::IssuedLink) -> serde_json::Value {
        serde_json::json!({ "to": to, "nonce": link.nonce })
    }

    pub fn plain(to: &str) -> serde_json::Value {
        serde_json::json!({ "to": to })
    }
}
