//! The booking use cases shared by the REST routes and the voice-agent tools: turn a request into
//! domain values, book or move atomically through the store, and find alternatives when the time
//! is not free.

use crate::domain::{
    self, parse_date, parse_time, DomainError, Email, Minutes, Notes, PatientName, PhoneNumber, ProviderId, Slot,
};
use crate::links::Links;
use crate::store::{
    self, Actor, Appointment, BookOutcome, DynStore, IdempotencyKey, MoveOutcome, NewBooking, Patient, Provider,
    StoreError,
};
use chrono::{NaiveDate, NaiveTime};
use shared::api;

mod lanes;
pub use lanes::{Lanes, Shared};

/// Identical bookings without an idempotency key queue in one lane per organization, provider and
/// requested local start, so a burst for one slot asks the database about twice, not once each.
pub type BookingLanes = Lanes<(domain::OrgId, ProviderId, LocalStart), BookingError>;

/// How many alternatives a refusal offers.
pub const ALTERNATIVES: usize = 3;

/// A booking request whose every field has been checked.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub provider: ProviderId,
    pub when: LocalStart,
    pub patient: Patient,
    pub notes: Option<Notes>,
    /// Whether the patient's number is held to the clinic's `max_active_per_caller`: a voice agent
    /// (the `agent` role) books for whoever calls.
    pub capped: bool,
}

/// A local date and time, with an optional length (else the provider's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalStart {
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub length: Option<Minutes>,
}

impl LocalStart {
    pub fn parse(date: Option<&str>, time: Option<&str>, minutes: Option<i64>) -> Result<Self, DomainError> {
        let date = date.ok_or_else(|| DomainError::invalid("appointment_date", "is required (YYYY-MM-DD)"))?;
        let time = time.ok_or_else(|| DomainError::invalid("appointment_time", "is required (HH:MM)"))?;
        Ok(Self {
            date: parse_date("appointment_date", date)?,
            time: parse_time("appointment_time", time)?,
            length: minutes.map(|m| Minutes::parse("duration_minutes", m)).transpose()?,
        })
    }

    /// The slot this start means for a provider: read in its zone, its default length unless one
    /// was given, in the bookable future.
    pub fn slot(&self, provider: &Provider, default_length: Minutes) -> Result<Slot, DomainError> {
        let start = provider.zone().resolve(self.date, self.time)?;
        let slot = Slot::new(start, self.length.unwrap_or(default_length));
        slot.check_bookable(store::now())?;
        Ok(slot)
    }
}

impl TryFrom<&api::BookingInput> for BookingRequest {
    type Error = DomainError;

    fn try_from(input: &api::BookingInput) -> Result<Self, DomainError> {
        let provider = input.provider_id.ok_or_else(|| DomainError::invalid("provider_id", "is required"))?;
        Ok(Self {
            provider: provider.into(),
            when: LocalStart::parse(
                input.appointment_date.as_deref(),
                input.appointment_time.as_deref(),
                input.duration_minutes,
            )?,
            patient: Patient {
                name: input
                    .patient_name
                    .as_deref()
                    .map(|n| PatientName::parse("patient_name", n))
                    .transpose()?
                    .flatten(),
                phone: input.patient_phone.as_deref().map(|p| PhoneNumber::parse("patient_phone", p)).transpose()?,
                email: input.patient_email.as_deref().map(|e| Email::parse("patient_email", e)).transpose()?,
            },
            notes: input.notes.as_deref().map(|n| Notes::parse("notes", n)).transpose()?.flatten(),
            capped: false,
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The time is taken or outside the provider's hours; here are the nearest free ones.
    #[error("that time is not available")]
    Unavailable { provider: Box<Provider>, wanted: Slot, alternatives: Vec<Slot> },
}

/// A time that is taken or outside the hours is so for every request for it, and a database that
/// cannot be reached is so for everyone; anything else (a caller's quota above all) answers only
/// the request that met it.
impl Shared for BookingError {
    fn is_shared(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Store(StoreError::Unavailable(_)))
    }
}

impl From<DomainError> for BookingError {
    fn from(e: DomainError) -> Self {
        Self::Store(e.into())
    }
}

/// A booking's answer, the same whether it was just made or is the first answer given again to a
/// retry, so the REST route and the voice-agent tools read one shape.
#[derive(Debug)]
pub struct Booked {
    pub answer: api::BookingResponse,
    /// Given again for a repeated idempotency key; nothing was written.
    pub replayed: bool,
}

/// The booking answer of an appointment; `latency_ms` is filled in when it is sent.
pub fn answer(a: &Appointment) -> api::BookingResponse {
    api::BookingResponse {
        success: true,
        appointment_id: a.id.0,
        status: a.status,
        starts_at: a.zone.localize(a.slot.start()),
        ends_at: a.zone.localize(a.slot.end()),
        confirmation_code: a.confirmation_code.clone(),
        latency_ms: 0.0,
    }
}

/// The answer kept with an idempotency key, so a retry gets the first answer.
fn remembered(a: &Appointment) -> serde_json::Value {
    serde_json::to_value(answer(a)).unwrap_or_default()
}

/// Books through the request's lane, unless it carries an idempotency key: a retry must find its
/// own first answer, never a refusal shared by others.
pub async fn book(
    store: &DynStore,
    links: &Links,
    lanes: &BookingLanes,
    actor: &Actor,
    request: BookingRequest,
    idempotency: Option<IdempotencyKey>,
) -> Result<Booked, BookingError> {
    let lane = idempotency.is_none().then_some((actor.org, request.provider, request.when));
    let attempt = async move {
        let when = request.when;
        let plan = move |p: &Provider| when.slot(p, p.appointment_minutes);
        let outcome = store
            .book(
                actor,
                NewBooking {
                    provider: request.provider,
                    plan: &plan,
                    patient: request.patient,
                    notes: request.notes,
                    idempotency,
                    render: &remembered,
                    link: links.issue(),
                    capped: request.capped,
                },
            )
            .await?;
        match outcome {
            BookOutcome::Booked(a) => Ok(Booked { answer: answer(&a), replayed: false }),
            BookOutcome::Replayed(saved) => Ok(Booked {
                answer: serde_json::from_value(saved)
                    .map_err(|e| StoreError::Internal(format!("stored idempotent answer unreadable: {e}")))?,
                replayed: true,
            }),
            BookOutcome::Unavailable { provider, wanted, busy } => {
                Err(unavailable(store, actor, provider, wanted, busy).await?)
            }
        }
    };
    match lane {
        Some(lane) => lanes.run(lane, attempt).await,
        None => attempt.await,
    }
}

/// Moves an appointment to a new local start; without a length it keeps its own. A patient with
/// an email address gets a notice with a fresh confirmation link; the old link stops working.
pub async fn reschedule(
    store: &DynStore,
    links: &Links,
    actor: &Actor,
    id: domain::AppointmentId,
    when: LocalStart,
) -> Result<Appointment, BookingError> {
    let plan = move |p: &Provider, a: &Appointment| {
        let own = Minutes::parse("duration_minutes", (a.slot.end() - a.slot.start()).num_minutes())?;
        when.slot(p, own)
    };
    match store.reschedule(actor, id, &plan, &links.issue()).await? {
        MoveOutcome::Moved(a) => Ok(a),
        MoveOutcome::Unavailable { provider, wanted } => Err(unavailable(store, actor, provider, wanted, None).await?),
    }
}

async fn unavailable(
    store: &DynStore,
    actor: &Actor,
    provider: Provider,
    wanted: Slot,
    busy: Option<Vec<Slot>>,
) -> Result<BookingError, StoreError> {
    let alternatives = alternatives(store, actor, &provider, &wanted, busy).await?;
    Ok(BookingError::Unavailable { provider: Box::new(provider), wanted, alternatives })
}

/// The free slots of a provider's local day, of its appointment length; none when inactive.
pub async fn free_slots_on(
    store: &DynStore,
    org: domain::OrgId,
    provider: &Provider,
    date: NaiveDate,
) -> Result<Vec<Slot>, StoreError> {
    free_slots_over(store, org, provider, date, 1).await
}

/// The free slots of `days` local days from `first`, in order, read with one query.
pub async fn free_slots_over(
    store: &DynStore,
    org: domain::OrgId,
    provider: &Provider,
    first: NaiveDate,
    days: u32,
) -> Result<Vec<Slot>, StoreError> {
    if !provider.active || days == 0 {
        return Ok(Vec::new());
    }
    // Any zone's local day lies within a day either side of the same date in UTC.
    let utc_midnight = first.and_time(NaiveTime::MIN).and_utc();
    let busy = store
        .busy(
            org,
            provider.id,
            utc_midnight - chrono::Duration::days(1),
            utc_midnight + chrono::Duration::days(i64::from(days) + 1),
        )
        .await?;
    let length = provider.appointment_minutes;
    let now = store::now();
    Ok(first
        .iter_days()
        .take(days as usize)
        .flat_map(|date| domain::free_slots(&provider.zone(), &provider.hours, date, length, length, &busy, now))
        .collect())
}

/// The free slots of the same length nearest to `wanted`, from `busy` when the store already read
/// the provider's appointments around it.
pub async fn alternatives(
    store: &DynStore,
    actor: &Actor,
    provider: &Provider,
    wanted: &Slot,
    busy: Option<Vec<Slot>>,
) -> Result<Vec<Slot>, StoreError> {
    let length = Minutes::parse("duration_minutes", (wanted.end() - wanted.start()).num_minutes())?;
    let busy = match busy {
        Some(busy) => busy,
        None => {
            let (from, to) = domain::alternatives_window(wanted);
            store.busy(actor.org, provider.id, from, to).await?
        }
    };
    Ok(domain::alternatives(
        &provider.zone(),
        &provider.hours,
        wanted,
        length,
        provider.appointment_minutes,
        &busy,
        store::now(),
        ALTERNATIVES,
    ))
}
