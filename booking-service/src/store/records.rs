//! What the store keeps: a type for the rows of each table the rest of the service reads (each
//! derives `sqlx::FromRow` for both databases, its columns listed in `rows.rs`), with the rules that
//! belong to the record itself, and the limits on how many a clinic may have.

use super::{rows, sql, Actor, NewBooking, Patient, Planned};
use crate::domain::{
    bounded, AppointmentId, AppointmentTypeId, ClosureId, ConfirmationCode, DomainError, Minutes, OrgId, Policy,
    ProviderId, Slot, TimeOffId, WebhookId, WeeklyHours, Zone,
};
use chrono::{DateTime, NaiveDate, Utc};
use shared::api::AppointmentStatus;

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

/// What a clinic changes of itself; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub zone: Option<Zone>,
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
            let (least, most) = Self::REMINDER_MINUTES.into_inner();
            let says = format!("at most {} offsets, each from {least} to {most} minutes", Self::MAX_REMINDERS);
            return Err(DomainError::invalid("reminder_offsets_minutes", says));
        }
        bounded("manage_cutoff_minutes", self.manage_cutoff_minutes.into(), Self::CUTOFF_MINUTES)?;
        bounded("max_active_per_caller", self.max_active_per_caller.into(), Self::MAX_ACTIVE)?;
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

    /// Its own zone when that is not its clinic's: its times are then not the clinic's clock.
    pub fn other_zone(&self) -> Option<Zone> {
        self.own_zone.filter(|zone| *zone != self.org_zone)
    }

    pub fn permits(&self, slot: &Slot) -> bool {
        self.hours.permits(&self.zone(), slot)
    }

    pub fn apply(&mut self, c: &ProviderChanges) {
        take!(self, c, name, own_zone, appointment_minutes, hours, active);
    }
}

#[derive(Debug, Clone)]
pub struct ProviderChanges {
    pub name: Option<String>,
    pub own_zone: Option<Option<Zone>>,
    pub appointment_minutes: Option<Minutes>,
    pub hours: Option<WeeklyHours>,
    pub active: Option<bool>,
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

/// A provider named `name` of a clinic in `clinic`, keeping `own` zone when given, working every
/// hour, for the unit tests of what is said about one.
#[cfg(test)]
impl Provider {
    pub fn sample(name: &str, clinic: &str, own: Option<&str>) -> Self {
        Provider {
            id: ProviderId::new(),
            org_id: OrgId::new(),
            name: name.into(),
            own_zone: own.map(|zone| Zone::parse("timezone", zone).expect("a zone")),
            org_zone: Zone::parse("timezone", clinic).expect("a zone"),
            appointment_minutes: Minutes::parse("appointment_minutes", 30).expect("minutes"),
            hours: WeeklyHours::default(),
            active: true,
        }
    }
}

/// A half-hour appointment at `start` in `zone` with a phone, for the unit tests of what is
/// said about one (its messages, whether they may still go).
#[cfg(test)]
impl Appointment {
    pub fn sample(zone: &str, start: DateTime<Utc>, status: AppointmentStatus) -> Self {
        let slot = Slot::from_bounds(start, start + chrono::Duration::minutes(30)).expect("a slot");
        Appointment {
            id: AppointmentId::new(),
            org_id: OrgId::new(),
            provider_id: ProviderId::new(),
            zone: Zone::parse("zone", zone).expect("a zone"),
            slot,
            blocked: slot,
            appointment_type: None,
            status,
            confirmation_code: "K7P2QX".into(),
            patient_name: None,
            patient_phone: Some("+15551234567".into()),
            patient_email: None,
            notes: None,
            created_at: start - chrono::Duration::days(3),
            updated_at: start - chrono::Duration::days(3),
        }
    }
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
    /// Raised by every change: a booking planned from this copy is made only while it is stored.
    pub version: i64,
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

    /// Refuses a type no time could be booked as: its notice as long as its horizon or longer.
    pub fn check_bookable(&self) -> Result<(), DomainError> {
        let horizon = u64::from(self.max_advance_days) * 24 * 60;
        if u64::from(self.min_notice_minutes) >= horizon {
            return Err(DomainError::invalid(
                "min_notice_minutes",
                format!(
                    "{} minutes is not less than max_advance_days ({} days, {horizon} minutes): no time could be booked",
                    self.min_notice_minutes, self.max_advance_days
                ),
            ));
        }
        Ok(())
    }

    /// Applies the changes. A new duration moves an interval that was the old duration along
    /// with it (the interval left out at creation is "its duration"), unless an interval is given.
    pub fn apply(&mut self, c: &AppointmentTypeChanges) {
        if let (Some(duration), None) = (c.duration, c.slot_interval) {
            if self.slot_interval == self.duration {
                self.slot_interval = duration;
            }
        }
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

/// The most time off one provider, or closures one clinic, may have ahead: bounds what every
/// booking and availability query reads.
pub const MAX_UPCOMING_BLOCKS: i64 = 500;

/// The most appointments one caller (a number, or a voice call without one) may book through the
/// voice agent in a clinic limiting its callers (`max_active_per_caller` above 0) over a day,
/// cancelled ones included: each booking and cancellation texts and emails the patient, so a
/// loop of them would be a flood the clinic pays for.
pub const MAX_BOOKINGS_PER_CALLER_PER_DAY: i64 = 10;

/// The most active providers, and the most active appointment types, one clinic may have: the
/// voice agent reads each list whole and tells its names apart.
pub const MAX_ACTIVE_NAMED: usize = 200;

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

/// The most webhooks one clinic may have: every change is queued once per endpoint.
pub const MAX_WEBHOOKS: i64 = 10;

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
    /// Times claimed by a dispatcher, the claim that returned it included.
    pub claims: i32,
    #[sqlx(try_from = "sql::Timestamp")]
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    #[sqlx(try_from = "sql::MaybeTimestamp")]
    pub sent_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "sql::MaybeTimestamp")]
    pub dead_at: Option<DateTime<Utc>>,
}

/// What an audit row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Appointment(AppointmentId),
    TimeOff(TimeOffId),
    Closure(ClosureId),
    Provider(ProviderId),
    AppointmentType(AppointmentTypeId),
    Webhook(WebhookId),
    /// The organization's settings (its clinic and Vapi settings).
    Settings(OrgId),
}

impl Subject {
    pub(super) fn parts(self) -> (&'static str, uuid::Uuid) {
        match self {
            Subject::Appointment(id) => ("appointment", id.0),
            Subject::TimeOff(id) => ("time_off", id.0),
            Subject::Closure(id) => ("closure", id.0),
            Subject::Provider(id) => ("provider", id.0),
            Subject::AppointmentType(id) => ("appointment_type", id.0),
            Subject::Webhook(id) => ("webhook", id.0),
            Subject::Settings(id) => ("settings", id.0),
        }
    }
}

impl From<AppointmentId> for Subject {
    fn from(id: AppointmentId) -> Self {
        Subject::Appointment(id)
    }
}

/// A change the clinic makes to itself (a provider, an appointment type, a webhook, its
/// settings): who makes it and what they asked for, kept in the audit log with it.
#[derive(Debug, Clone)]
pub struct AuditNote<'a> {
    pub actor: &'a Actor,
    pub details: serde_json::Value,
}

impl<'a> AuditNote<'a> {
    /// The change `actor` makes, with `details`: what the API was sent, or what it answers.
    pub fn new(actor: &'a Actor, details: &impl serde::Serialize) -> Self {
        // The API's own types, whose maps all have string keys, are always a JSON value.
        Self { actor, details: serde_json::to_value(details).unwrap_or_default() }
    }
}

/// One row of the audit log: what was done, by whom, when, and with what details.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    /// Its place, from 1: in its subject's trail (the order of the changes), the key the trail is
    /// paged by; read from the whole log, among its clinic's rows written at the same instant,
    /// with `at` the key the whole log is paged by. Neither says anything of other clinics' rows,
    /// as the id, one sequence for every clinic's rows, would (how many they wrote in between).
    #[sqlx(default)]
    pub position: i64,
    /// The row's id, increasing as rows are written: the order of rows written at one instant.
    pub id: i64,
    /// What it is about (`Subject`'s names: `appointment`, `provider`, `settings`, …) and its id
    /// (the organization's for `settings`).
    pub subject: String,
    #[sqlx(rename = "appointment_id", try_from = "sql::Key")]
    pub subject_id: uuid::Uuid,
    pub action: String,
    pub actor: String,
    #[sqlx(try_from = "sql::Timestamp")]
    pub at: DateTime<Utc>,
    #[sqlx(json)]
    pub details: serde_json::Value,
    /// The voice agent's call whose tool call made the change.
    pub call_id: Option<String>,
}
