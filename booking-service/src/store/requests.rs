//! What the store's methods take and answer besides its records: filters and pages, a booking
//! and its plan, the outcomes of a booking or a move, a delivery's result, the figures for the
//! metrics.

use super::{Appointment, AppointmentType, Provider, StoreResult};
use crate::domain::{
    AppointmentId, AppointmentTypeId, Email, Notes, OrgId, PatientName, PhoneNumber, Policy, ProviderId, Slot,
};
use crate::links::IssuedLink;
use chrono::{DateTime, Utc};
use shared::api::AppointmentStatus;

#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub provider: Option<ProviderId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<AppointmentStatus>,
    /// Only appointments booked from this number (E.164).
    pub patient_phone: Option<String>,
    pub confirmation_code: Option<String>,
    /// Only appointments that hold their time (pending or confirmed).
    pub active: bool,
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
    pub(super) fn of(mut items: Vec<T>, limit: u32) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Self { items, more }
    }
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

/// Computes the slot of a booking from the provider and the type asked for (`None` without one,
/// or when it is not the organization's) as the transaction sees them.
pub type PlanSlot<'a> = &'a (dyn Fn(&Provider, Option<&AppointmentType>) -> StoreResult<Planned> + Send + Sync);
/// Computes the new slot of an appointment being moved, from its provider, the appointment and the
/// type it moves as, each as the move's transaction reads it: `None` when it moves as no type,
/// `Some(None)` when the type it moves as is not the organization's.
pub type PlanMove<'a> =
    &'a (dyn Fn(&Provider, &Appointment, Option<Option<&AppointmentType>>) -> StoreResult<Planned> + Send + Sync);
/// The answer to remember for an idempotent booking.
pub type Render<'a> = &'a (dyn Fn(&Appointment) -> serde_json::Value + Send + Sync);

#[derive(Debug, Clone, Default)]
pub struct Patient {
    pub name: Option<PatientName>,
    pub phone: Option<PhoneNumber>,
    pub email: Option<Email>,
}

pub struct NewBooking<'a> {
    pub provider: ProviderId,
    /// The type asked for: the store reads it in the booking's transaction for `plan` (`None`
    /// there when it is not the clinic's).
    pub kind: Option<AppointmentTypeId>,
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

#[derive(Debug)]
pub enum BookOutcome {
    Booked(Appointment),
    /// The same idempotency key and body were seen before: their first answer.
    Replayed(serde_json::Value),
    /// The time is taken, outside the provider's hours, inside its notice, or meets time off or
    /// a closed day. `busy`, when the store already read it, holds what is busy for the provider
    /// over `domain::alternatives_window(wanted, now)`.
    Unavailable {
        provider: Provider,
        wanted: Planned,
        busy: Option<Vec<Slot>>,
    },
}

#[derive(Debug)]
pub enum MoveOutcome {
    Moved(Appointment),
    /// With the range the appointment blocks now, which its move need not keep clear of.
    Unavailable {
        provider: Provider,
        wanted: Planned,
        own: Slot,
    },
}

/// Where a confirmation link's token hash leads.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    pub org: OrgId,
    pub appointment: AppointmentId,
    pub expires_at: DateTime<Utc>,
}

/// Who confirms an appointment, and through what.
#[derive(Debug, Clone, Copy)]
pub enum ConfirmedVia<'a> {
    /// The clinic's staff: only before the start (else `InvalidState`: attendance is theirs).
    Staff,
    /// The patient's emailed confirmation link, by its token's hash: `NotFound` when the link is no
    /// longer the appointment's, `Expired` past its expiry, `Started` from the start.
    ConfirmLink(&'a str),
    /// The patient's manage link (its token already resolved): `Started` from the start.
    ManageLink,
}

impl ConfirmedVia<'_> {
    /// As the audit row names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::ConfirmLink(_) => "link",
            Self::ManageLink => "manage_link",
        }
    }
}

#[derive(Debug)]
pub enum Confirmed {
    /// Pending until now.
    Now(Appointment),
    /// Confirmed before: nothing changed.
    Already(Appointment),
}

/// Whether the patient came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attendance {
    Completed,
    NoShow,
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

/// A voice-agent tool's answer, kept under `key` unless another was kept first.
#[derive(Debug, Clone, Copy)]
pub struct KeptAnswer<'a> {
    pub key: ToolCallKey<'a>,
    pub tool_name: &'a str,
    pub outcome: &'a serde_json::Value,
    /// The start of the appointment the answer names, read before the change it is kept with:
    /// kept with that change only while the appointment still starts there (else the answer is
    /// of a time it no longer has, and the tool tells again).
    pub names_start: Option<DateTime<Utc>>,
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
    /// Give up: too many attempts, or a failure no retry can fix. Kept for a person to look at.
    Dead {
        error: String,
    },
    /// Not to be sent, on purpose (its appointment was cancelled, moved or has started, a newer
    /// link replaced it, the phone texted STOP, the webhook was removed): removed from the outbox,
    /// as nothing went wrong that a person could mend.
    Dropped {
        reason: &'static str,
    },
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

/// What a dispatcher asks to claim: due messages of `kinds`, at most `limit`, and of each
/// organization at most `per_org`, none of the organizations in `skip` (those it has enough of in
/// hand), each held until `lease_until`; messages claimed `max_claims` times are not claimed again.
#[derive(Debug, Clone)]
pub struct MailClaim<'a> {
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub limit: i64,
    pub max_claims: i32,
    pub kinds: &'a [&'a str],
    pub per_org: i64,
    pub skip: &'a [OrgId],
    /// How long the claim may take (the dispatcher gives up on it then): on PostgreSQL its
    /// statements are cancelled once they have taken it, so one given up does not keep its
    /// connection waiting.
    pub within: Option<std::time::Duration>,
}

impl MailClaim<'static> {
    /// Every kind this release delivers, of every organization, in due order (`per_org` no tighter
    /// than `limit`). Both lanes at once have no index of their own, so it reads the whole outbox:
    /// for tests and tools, not a dispatcher, whose claims are of one lane.
    pub fn every(now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: i64, max_claims: i32) -> Self {
        let (kinds, skip) = (&super::outbox_kind::ALL[..], &[][..]);
        Self { now, lease_until, limit, max_claims, kinds, per_org: limit, skip, within: None }
    }
}

/// What one claim took: the messages now in this dispatcher's hands, and the kinds of those it
/// gave up on first (claimed as often as they may be tried, the last claim never settled).
#[derive(Debug, Default)]
pub struct ClaimedMail {
    pub jobs: Vec<super::OutboxJob>,
    pub abandoned: Vec<String>,
}
