//! The booking use cases shared by the REST routes and the voice-agent tools: turn a request into
//! domain values, book or move atomically through the store, and find alternatives when the time
//! is not free.

use crate::domain::{
    self, parse_date, parse_time, AppointmentTypeId, Busy, Cutoff, DomainError, Email, Minutes, Notes, PatientName,
    PhoneNumber, Policy, ProviderId, Slot,
};
use crate::links::Links;
use crate::store::{
    self, Actor, Appointment, AppointmentType, BookOutcome, DynStore, IdempotencyKey, MoveOutcome, NewBooking, Patient,
    Planned, Provider, StoreError,
};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use shared::api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

mod lanes;
pub use lanes::{Lanes, SharedFailure};

/// Bookings without an idempotency key queue in one lane per organization, provider, appointment
/// type, requested local date and time (whatever length each asks) and kind of caller, so a burst
/// for one slot asks the database about twice, not once each.
pub type BookingLanes = Lanes<LaneKey, LaneFailure>;

/// Which lane a booking queues in. A voice agent's bookings have lanes of their own: a type only
/// staff book is refused to it (403) where a staff member's refusal, shared, would say the time is
/// taken.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneKey {
    org: domain::OrgId,
    provider: ProviderId,
    kind: Option<AppointmentTypeId>,
    date: NaiveDate,
    time: NaiveTime,
    by_agent: bool,
}

/// A booking's failure as its lane holds it: with the request that met it and, when that request
/// found its time taken, what the store read busy then, so a waiter asking another length judges
/// its own time against that.
#[derive(Debug, Clone)]
pub struct LaneFailure {
    error: BookingError,
    asked: LocalStart,
    taken: Option<Arc<Taken>>,
}

/// What a booking found busy when its time was taken, and what that answers each other length
/// asked at the same start, judged once per length (alternatives cost a scan of the days around;
/// one length's waiters wait for its judgement, other lengths' are judged meanwhile).
#[derive(Debug)]
struct Taken {
    busy: Vec<Slot>,
    judged: Mutex<HashMap<LocalStart, Arc<OnceLock<Option<BookingError>>>>>,
}

impl Taken {
    fn new(busy: Vec<Slot>) -> Self {
        Self { busy, judged: Mutex::default() }
    }

    /// The refusal of a booking without a type for `mine` with `provider`, when its own time meets
    /// what was read busy; `None` when it does not (or cannot be planned), so it must ask itself.
    fn judge(&self, provider: &Provider, mine: LocalStart) -> Option<BookingError> {
        let judgement = self.judged.lock().unwrap_or_else(PoisonError::into_inner).entry(mine).or_default().clone();
        judgement
            .get_or_init(|| {
                let wanted = mine.plan(provider, None, provider.appointment_minutes).ok()?;
                let blocked = wanted.blocked();
                let meets = self.busy.iter().any(|s| s.overlaps(&blocked));
                meets.then(|| refusal(provider.clone(), wanted, self.busy.clone(), None))
            })
            .clone()
    }
}

impl SharedFailure for LaneFailure {
    fn is_shared(&self) -> bool {
        self.error.is_shared()
    }
}

impl LaneFailure {
    fn new(error: impl Into<BookingError>, asked: LocalStart) -> Self {
        Self { error: error.into(), asked, taken: None }
    }

    /// What this failure answers a waiting request for `mine` (of the same lane, `typed` when it
    /// names an appointment type), if anything: the same failure for the same request, and a
    /// database out of reach for anyone. A booking without a type asking another length at the
    /// same start is refused when its own time meets what was read busy, with alternatives of its
    /// own length; else it asks the store itself.
    fn judged_for(&self, mine: LocalStart, typed: bool) -> Option<Self> {
        if self.asked == mine || matches!(self.error, BookingError::Store(StoreError::Unavailable(_))) {
            return Some(self.clone());
        }
        let (BookingError::Unavailable { provider, .. }, Some(taken)) = (&self.error, &self.taken) else {
            return None;
        };
        // A type's length and buffers are its own, not the request's: a differently worded
        // request for one asks for itself.
        if typed {
            return None;
        }
        let error = taken.judge(provider, mine)?;
        Some(Self { error, asked: mine, taken: Some(taken.clone()) })
    }
}

/// How many alternatives a refusal offers.
pub const ALTERNATIVES: usize = 3;

/// A booking request whose every field has been checked.
#[derive(Debug, Clone)]
pub struct CheckedBooking {
    pub provider: ProviderId,
    pub kind: Option<AppointmentTypeId>,
    pub when: LocalStart,
    pub patient: Patient,
    pub notes: Option<Notes>,
    /// Made by a voice agent (the `agent` role), for whoever calls: the caller's number is held to
    /// the clinic's `max_active_per_caller`, and types only staff may book are refused.
    pub by_agent: bool,
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

    /// What booking this start with a provider means: with a type, its length and policy (the
    /// provider must offer it, a length given must be its own, the start within its horizon);
    /// without one, `own_length` unless a length was given, and only its own time blocked.
    pub fn plan(
        &self,
        provider: &Provider,
        kind: Option<&AppointmentType>,
        own_length: Minutes,
    ) -> Result<Planned, DomainError> {
        let Some(kind) = kind else {
            let slot = self.slot(provider, own_length)?;
            let length = self.length.unwrap_or(own_length);
            return Ok(Planned { slot, policy: Policy::plain(length, provider.appointment_minutes), kind: None });
        };
        if !kind.offered_by(provider.id) {
            return Err(DomainError::invalid(
                "appointment_type_id",
                format!("{} does not offer {}", provider.name, kind.name),
            ));
        }
        if self.length.is_some_and(|l| l != kind.duration) {
            return Err(DomainError::invalid(
                "duration_minutes",
                format!("{} lasts {} minutes: leave duration_minutes out or send that", kind.name, kind.duration.get()),
            ));
        }
        let slot = self.slot(provider, kind.duration)?;
        let policy = kind.policy();
        if slot.start() > store::now() + policy.horizon {
            return Err(domain::beyond_horizon(Some(&kind.name), i64::from(kind.max_advance_days)));
        }
        Ok(Planned { slot, policy, kind: Some(kind.id) })
    }
}

impl TryFrom<&api::BookingInput> for CheckedBooking {
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
                name: PatientName::parse("patient_name", input.patient_name.as_deref())?,
                // Blank is absent, as for the name and the notes (a form's empty field).
                phone: given(&input.patient_phone).map(|p| PhoneNumber::parse("patient_phone", p)).transpose()?,
                email: given(&input.patient_email).map(|e| Email::parse("patient_email", e)).transpose()?,
            },
            notes: Notes::parse("notes", input.notes.as_deref())?,
            kind: input.appointment_type_id.map(AppointmentTypeId),
            by_agent: false,
        })
    }
}

/// A field given with more than blanks.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|v| !v.trim().is_empty())
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
/// the request that met it. (So a voice agent's caller over its quota, waiting in a lane, hears
/// of a taken time, where alone it would hear of its quota first: the store checks that first.)
impl SharedFailure for BookingError {
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

/// A type a booking or move asks for, as read (`None`: not one of the clinic's): active, unless it
/// is the appointment's own as it moves (`its_own`: a move is no new booking of it, so it may have
/// been withdrawn since), and bookable by a voice agent when one asks.
pub fn usable(kind: Option<&AppointmentType>, by_agent: bool, its_own: bool) -> Result<&AppointmentType, StoreError> {
    let kind = kind.filter(|t| t.active || its_own).ok_or_else(|| {
        DomainError::invalid("appointment_type_id", "is not an active appointment type of this clinic")
    })?;
    if by_agent && !kind.bookable_by_agent {
        return Err(StoreError::StaffOnly(kind.name.clone()));
    }
    Ok(kind)
}

/// Books through the request's lane, unless it carries an idempotency key: a retry must find its
/// own first answer, never a refusal shared by others.
pub async fn book(
    store: &DynStore,
    links: &Links,
    lanes: &BookingLanes,
    actor: &Actor,
    request: CheckedBooking,
    idempotency: Option<IdempotencyKey>,
) -> Result<Booked, BookingError> {
    let (when, typed) = (request.when, request.kind.is_some());
    let lane = idempotency.is_none().then_some(LaneKey {
        org: actor.org,
        provider: request.provider,
        kind: request.kind,
        date: when.date,
        time: when.time,
        by_agent: request.by_agent,
    });
    let attempt = async move {
        let (by_agent, asked) = (request.by_agent, request.kind);
        // The type is judged (active, bookable by the caller) in the plan, which the store asks
        // only after looking for an earlier answer to the same key: a retry gets its first answer
        // even when the type has changed since.
        let plan = |p: &Provider, kind: Option<&AppointmentType>| {
            let kind = asked.map(|_| usable(kind, by_agent, false)).transpose()?;
            Ok(when.plan(p, kind, p.appointment_minutes)?)
        };
        let booked = store
            .book(
                actor,
                NewBooking {
                    provider: request.provider,
                    kind: asked,
                    plan: &plan,
                    patient: request.patient,
                    notes: request.notes,
                    idempotency,
                    render: &remembered,
                    link: links.issue(),
                    manage: links.issue_manage(),
                    capped: request.by_agent,
                },
            )
            .await;
        match booked.map_err(|e| LaneFailure::new(e, when))? {
            BookOutcome::Booked(a) => Ok(Booked { answer: answer(&a), replayed: false }),
            BookOutcome::Replayed(saved) => Ok(Booked {
                answer: serde_json::from_value(saved).map_err(|e| {
                    LaneFailure::new(StoreError::Internal(format!("stored idempotent answer unreadable: {e}")), when)
                })?,
                replayed: true,
            }),
            BookOutcome::Unavailable { provider, wanted, busy } => {
                // The store read what is busy only when the time was taken (not when it is outside
                // the hours): only then can a waiter of another length be judged by it.
                let taken = busy.clone().map(|busy| Arc::new(Taken::new(busy)));
                let error = unavailable(store, actor, provider, wanted, busy, None).await;
                Err(LaneFailure { taken, ..LaneFailure::new(error.unwrap_or_else(Into::into), when) })
            }
        }
    };
    let booked = match lane {
        Some(lane) => lanes.run(lane, |failure: &LaneFailure| failure.judged_for(when, typed), attempt).await,
        None => attempt.await,
    };
    booked.map_err(|failure| failure.error)
}

/// Moves an appointment to a new local start, as `kind` if given, else as its own type; without
/// a type and a length it keeps its own length. At a new start, a patient with an email address
/// gets a notice with a fresh confirmation link (the old link stops working), and one with a phone
/// an SMS; at the same start (another length or type) nothing is sent.
pub async fn reschedule(
    store: &DynStore,
    links: &Links,
    actor: &Actor,
    id: domain::AppointmentId,
    when: LocalStart,
    kind: Option<AppointmentTypeId>,
    by_agent: bool,
) -> Result<Appointment, BookingError> {
    // The voice agent changes nothing that has begun; staff may (to correct a record).
    let cutoff = by_agent.then_some(Cutoff::AT_START);
    let to = Move { start: NewStart::Local(when), kind, by_agent, cutoff };
    move_appointment(store, links, actor, id, to).await
}

/// Moves an appointment to a start its patient picked on the manage page, keeping its type and
/// length, under the clinic's cut-off: the appointment must start later than the cut-off from now
/// (else `Started` or `InvalidState`), and so must the new start (else unavailable, with
/// alternatives outside the cut-off).
pub async fn reschedule_by_patient(
    store: &DynStore,
    links: &Links,
    actor: &Actor,
    id: domain::AppointmentId,
    start: DateTime<Utc>,
    cutoff: Cutoff,
) -> Result<Appointment, BookingError> {
    let to = Move { start: NewStart::At(start), kind: None, by_agent: false, cutoff: Some(cutoff) };
    move_appointment(store, links, actor, id, to).await
}

/// Where a move goes, as whom, under which cut-off.
struct Move {
    start: NewStart,
    kind: Option<AppointmentTypeId>,
    by_agent: bool,
    cutoff: Option<Cutoff>,
}

/// A new start: a local date and time (staff, the voice agent), or an instant (the manage page,
/// which offered it as one).
#[derive(Debug, Clone, Copy)]
enum NewStart {
    Local(LocalStart),
    At(DateTime<Utc>),
}

impl NewStart {
    /// The move planned with the provider as the transaction reads it. An instant is read as the
    /// provider's wall clock shows it, so it goes through the same checks as a local start; one
    /// the wall clock cannot name (the later pass of an hour the clocks repeat) is refused.
    fn plan(&self, provider: &Provider, kind: Option<&AppointmentType>, own: Minutes) -> Result<Planned, DomainError> {
        match *self {
            Self::Local(when) => when.plan(provider, kind, own),
            Self::At(start) => {
                // Every start is on a whole minute (a local start is HH:MM): seconds past it would
                // run an appointment past closing time, or across two slots of the grid.
                if start.timestamp_subsec_nanos() != 0 || start.timestamp().rem_euclid(60) != 0 {
                    return Err(DomainError::invalid("starts_at", "must be on a whole minute"));
                }
                let local = provider.zone().local(start);
                let when = LocalStart { date: local.date(), time: local.time(), length: None };
                let as_starts_at = |e: DomainError| match e {
                    DomainError::Invalid { message, .. } => DomainError::invalid("starts_at", message),
                };
                let planned = when.plan(provider, kind, own).map_err(as_starts_at)?;
                if planned.slot.start() != start {
                    return Err(DomainError::invalid(
                        "starts_at",
                        "falls in the hour the clocks repeat; pick another time",
                    ));
                }
                Ok(planned)
            }
        }
    }
}

async fn move_appointment(
    store: &DynStore,
    links: &Links,
    actor: &Actor,
    id: domain::AppointmentId,
    to: Move,
) -> Result<Appointment, BookingError> {
    // The type it moves as, the one asked for or else its own, is read in the move's transaction.
    let plan = |p: &Provider, a: &Appointment, kind: Option<Option<&AppointmentType>>| {
        let kind = kind.map(|kind| usable(kind, to.by_agent, to.kind.is_none())).transpose()?;
        Ok(to.start.plan(p, kind, own_length(a)?)?)
    };
    match store.reschedule(actor, id, to.kind, &plan, &links.issue(), to.cutoff).await? {
        MoveOutcome::Moved(a) => Ok(a),
        MoveOutcome::Unavailable { provider, wanted, own } => {
            Err(unavailable(store, actor, provider, wanted, None, Some(own)).await?)
        }
    }
}

/// An appointment's own length.
fn own_length(a: &Appointment) -> Result<Minutes, DomainError> {
    Minutes::parse("duration_minutes", (a.slot.end() - a.slot.start()).num_minutes())
}

/// The free starts an appointment may move to, its patient choosing on the manage page: over the
/// provider's next `days` local days, at most `max`, earliest first; under its type's policy
/// (else its own length at the provider's step), none within the cut-off. None when it could not
/// be moved anyway: its provider inactive or gone, or no longer offering its type.
pub async fn move_options(
    store: &DynStore,
    appointment: &Appointment,
    cutoff: Cutoff,
    days: u32,
    max: usize,
) -> Result<Vec<Slot>, StoreError> {
    let org = appointment.org_id;
    let Some(provider) = store.provider(org, appointment.provider_id).await? else {
        return Ok(Vec::new());
    };
    let policy = match appointment.appointment_type {
        Some(id) => match store.appointment_type(org, id).await? {
            // Its own type, even withdrawn since (`usable`).
            Some(kind) if kind.offered_by(provider.id) => kind.policy(),
            _ => return Ok(Vec::new()),
        },
        None => match own_length(appointment) {
            Ok(length) => Policy::plain(length, provider.appointment_minutes),
            Err(_) => return Ok(Vec::new()),
        },
    };
    let today = provider.zone().local(store::now()).date();
    // What the appointment blocks now is free to it: a start whose range meets only that is offered.
    let own = Some(appointment.blocked);
    let mut slots = free_slots_over(store, org, &provider, &cutoff.bound(policy), today, days, own).await?;
    slots.retain(|s| *s != appointment.slot);
    slots.truncate(max);
    Ok(slots)
}

/// The refusal of `wanted`, with the free slots under the same policy nearest to it: among `busy`
/// when the store already read what is busy around it, else read here (nothing is read for an
/// inactive provider, which has no alternatives). For a move, `own` is the range the appointment
/// blocks now, free to it, and the time it has now no alternative (moving there would change
/// nothing).
async fn unavailable(
    store: &DynStore,
    actor: &Actor,
    provider: Provider,
    wanted: Planned,
    busy: Option<Vec<Slot>>,
    own: Option<Slot>,
) -> Result<BookingError, StoreError> {
    let busy = match busy {
        Some(busy) => busy,
        None if !provider.active => Vec::new(),
        None => {
            let (from, to) = domain::alternatives_window(&wanted.slot, store::now());
            store.busy(actor.org, &[provider.id], from, to).await?.pop().unwrap_or_default()
        }
    };
    Ok(refusal(provider, wanted, busy, own))
}

/// The refusal of `wanted`, with its alternatives among what is busy around it (read over
/// `domain::alternatives_window`); `own` is free to an appointment being moved. An inactive
/// provider takes no bookings: none of its times is an alternative.
fn refusal(provider: Provider, wanted: Planned, busy: Vec<Slot>, own: Option<Slot>) -> BookingError {
    let alternatives = if provider.active {
        let busy = Busy::new(busy, own);
        domain::alternatives(
            &provider.zone(),
            &provider.hours,
            &wanted.slot,
            &wanted.policy,
            &busy,
            store::now(),
            ALTERNATIVES,
        )
    } else {
        Vec::new()
    };
    BookingError::Unavailable { provider: Box::new(provider), wanted: wanted.slot, alternatives }
}

/// The policy availability is listed under: the type's, else the provider's appointment length.
pub fn policy_for(provider: &Provider, kind: Option<&AppointmentType>) -> Policy {
    kind.map(AppointmentType::policy)
        .unwrap_or_else(|| Policy::plain(provider.appointment_minutes, provider.appointment_minutes))
}

/// The free slots of a provider's local day under a policy; none when inactive.
pub async fn free_slots_on(
    store: &DynStore,
    org: domain::OrgId,
    provider: &Provider,
    policy: &Policy,
    date: NaiveDate,
) -> Result<Vec<Slot>, StoreError> {
    free_slots_over(store, org, provider, policy, date, 1, None).await
}

/// The free slots of `days` local days from `first`, in order, read with one query; `own` is the
/// range an appointment being moved blocks now, free to it.
pub async fn free_slots_over(
    store: &DynStore,
    org: domain::OrgId,
    provider: &Provider,
    policy: &Policy,
    first: NaiveDate,
    days: u32,
    own: Option<Slot>,
) -> Result<Vec<Slot>, StoreError> {
    if !provider.active {
        return Ok(Vec::new());
    }
    let busy = busy_over(store, org, &[provider.id], first, days).await?.pop().unwrap_or_default();
    let busy = Busy::new(busy, own);
    let now = store::now();
    Ok(first
        .iter_days()
        .take(days as usize)
        .flat_map(|date| domain::free_slots(&provider.zone(), &provider.hours, date, policy, &busy, now))
        .collect())
}

/// What is busy for each of `providers` over `days` local days from `first` (in any zone), read
/// in one transaction.
pub async fn busy_over(
    store: &DynStore,
    org: domain::OrgId,
    providers: &[ProviderId],
    first: NaiveDate,
    days: u32,
) -> Result<Vec<Vec<Slot>>, StoreError> {
    if days == 0 {
        return Ok(vec![Vec::new(); providers.len()]);
    }
    // Any zone's local day lies within a day either side of the same date in UTC.
    let utc_midnight = first.and_time(NaiveTime::MIN).and_utc();
    let from = (utc_midnight - chrono::Duration::days(1)).max(domain::relevant_since(store::now()));
    let to = utc_midnight + chrono::Duration::days(i64::from(days) + 1);
    store.busy(org, providers, from, to).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrgId, WeeklyHours, Zone};
    use shared::api::{Weekday, WorkingHours};

    fn provider() -> Provider {
        let days = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
        let hours: Vec<_> = days
            .into_iter()
            .map(|weekday| WorkingHours { weekday, start: "08:00".into(), end: "18:00".into() })
            .collect();
        Provider {
            id: ProviderId::new(),
            org_id: OrgId::new(),
            name: "Dr. Lane".into(),
            own_zone: None,
            org_zone: Zone::parse("timezone", "UTC").expect("a zone"),
            appointment_minutes: Minutes::parse("appointment_minutes", 30).expect("a length"),
            hours: WeeklyHours::parse(&hours).expect("hours"),
            active: true,
        }
    }

    /// A booking a week ahead at `time`, `minutes` long.
    fn asking(time: &str, minutes: i64) -> LocalStart {
        let date = (store::now() + chrono::Duration::days(7)).date_naive();
        LocalStart::parse(Some(&date.to_string()), Some(time), Some(minutes)).expect("a start")
    }

    /// The refusal a booking of `asked` met when `taken` was busy.
    fn refused(provider: &Provider, asked: LocalStart, taken: LocalStart) -> LaneFailure {
        let wanted = asked.plan(provider, None, provider.appointment_minutes).expect("a plan");
        let busy = vec![taken.slot(provider, provider.appointment_minutes).expect("a slot")];
        let error = refusal(provider.clone(), wanted, busy.clone(), None);
        LaneFailure { error, asked, taken: Some(Arc::new(Taken::new(busy))) }
    }

    fn alternatives(failure: &LaneFailure) -> &[Slot] {
        match &failure.error {
            BookingError::Unavailable { alternatives, .. } => alternatives,
            other => panic!("not a refusal of the time: {other:?}"),
        }
    }

    #[test]
    fn a_waiter_of_another_length_is_refused_with_alternatives_of_its_own_length() {
        let p = provider();
        let failure = refused(&p, asking("10:00", 30), asking("10:00", 30));
        let same = failure.judged_for(asking("10:00", 30), false).expect("the same request");
        assert_eq!(alternatives(&same), alternatives(&failure));
        let shorter = failure.judged_for(asking("10:00", 20), false).expect("10:00-10:20 meets 10:00-10:30");
        let offered = alternatives(&shorter);
        assert_eq!(offered.len(), ALTERNATIVES);
        assert!(offered.iter().all(|s| s.end() - s.start() == chrono::Duration::minutes(20)), "{offered:?}");
        let taken = asking("10:00", 30).slot(&p, p.appointment_minutes).expect("a slot");
        assert!(offered.iter().all(|s| !s.overlaps(&taken)), "{offered:?}");
    }

    #[test]
    fn a_waiter_whose_own_time_is_clear_of_what_was_read_busy_asks_for_itself() {
        let p = provider();
        // A 60-minute booking at 10:00 refused for 10:30-11:00: 10:00-10:20 is clear of it.
        let failure = refused(&p, asking("10:00", 60), asking("10:30", 30));
        assert!(failure.judged_for(asking("10:00", 20), false).is_none());
        assert!(failure.judged_for(asking("10:00", 45), false).is_some(), "10:00-10:45 meets 10:30");
        // A type's plan is its own: a differently worded request for one asks for itself.
        assert!(failure.judged_for(asking("10:00", 45), true).is_none());
        // Refused without a read of what is busy (outside the hours, say): only the same request.
        let unread = LaneFailure { taken: None, ..failure.clone() };
        assert!(unread.judged_for(asking("10:00", 45), false).is_none());
        assert!(unread.judged_for(asking("10:00", 60), false).is_some());
    }
}
