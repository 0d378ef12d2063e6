//! The six tools. Each answers with one sentence: a `result` on success, an `error` (so the
//! assistant's failure message fires) otherwise. The first answer to a tool call id is kept and
//! given again for a repeated id.

use super::message::{ToolCall, ToolCalls};
use super::speech;
use crate::booking::{self, Booked, BookingError, BookingLanes, BookingRequest, LocalStart};
use crate::domain::{parse_date, ConfirmationCode, Email, PatientName, PhoneNumber, Slot};
use crate::links::Links;
use crate::store::{
    Actor, Appointment, AppointmentFilter, DynStore, IdempotencyKey, Patient, Provider, StoreError,
};
use crate::{store, telemetry};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::api::BookingResponse;
use std::time::Duration;
use uuid::Uuid;

const SORRY: &str =
    "I'm sorry, I can't reach the booking system right now. Please try again in a moment.";
const TOO_SLOW: &str =
    "I'm sorry, the booking system is taking too long to answer. Please try again in a moment.";
const NO_CALLER: &str = "I can only look up appointments when you call from your own phone number.";
/// How many free times of a day are read out.
const SPOKEN_SLOTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Result(String),
    Error(String),
}

/// One entry of Vapi's `results`.
#[derive(Debug, Clone, Serialize)]
pub struct ToolAnswer {
    pub name: String,
    #[serde(rename = "toolCallId")]
    pub tool_call_id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Why a tool gave no result.
enum Refusal {
    /// A final answer about the request: kept for repeated ids.
    Spoken(String),
    /// The service could not work (database down): not kept, so a retry can succeed.
    Transient,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Refusal::Spoken("I couldn't find that.".into()),
            StoreError::Expired => Refusal::Spoken("That link or code has expired.".into()),
            StoreError::InvalidState(m) => Refusal::Spoken(format!("I couldn't do that: {m}.")),
            StoreError::IdempotencyConflict => {
                Refusal::Spoken("That conflicts with an earlier request in this call.".into())
            }
            StoreError::Invalid(d) => Refusal::Spoken(speech::invalid(&d)),
            StoreError::Unavailable(m) | StoreError::Internal(m) => {
                tracing::warn!(error = %m, "a voice-agent tool could not run");
                Refusal::Transient
            }
        }
    }
}

impl From<BookingError> for Refusal {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Store(s) => s.into(),
            BookingError::Unavailable {
                provider,
                wanted,
                alternatives,
            } => Refusal::Spoken(unavailable(&provider, &wanted, &alternatives)),
        }
    }
}

type Answer = Result<String, Refusal>;

struct Context<'a> {
    store: &'a DynStore,
    links: &'a Links,
    lanes: &'a BookingLanes,
    actor: &'a Actor,
    caller: Option<PhoneNumber>,
    call_id: Option<String>,
}

/// Answers every call of the message, concurrently, in the calls' order, each within `deadline`.
pub async fn answer(
    store: &DynStore,
    links: &Links,
    lanes: &BookingLanes,
    actor: &Actor,
    message: ToolCalls,
    deadline: Duration,
) -> Vec<ToolAnswer> {
    let ctx = Context {
        store,
        links,
        lanes,
        actor,
        caller: message.caller,
        call_id: message.call_id,
    };
    join_all(message.calls.iter().map(|call| async {
        let outcome = tokio::time::timeout(deadline, remembered(&ctx, call))
            .await
            .unwrap_or_else(|_| Outcome::Error(TOO_SLOW.into()));
        let outcome = match outcome {
            Outcome::Result(s) => Outcome::Result(speech::one_line(&s)),
            Outcome::Error(s) => Outcome::Error(speech::one_line(&s)),
        };
        telemetry::record_tool_call(&call.name, matches!(outcome, Outcome::Result(_)));
        ToolAnswer {
            name: call.name.clone(),
            tool_call_id: call.id.clone(),
            outcome,
        }
    }))
    .await
}

/// The kept answer of a repeated id, else a fresh one, kept unless transient.
async fn remembered(ctx: &Context<'_>, call: &ToolCall) -> Outcome {
    let org = ctx.actor.org;
    if let Ok(Some(saved)) = ctx.store.tool_result(org, &call.id).await {
        if let Ok(outcome) = serde_json::from_value(saved) {
            return outcome;
        }
    }
    let outcome = match run(ctx, call).await {
        Ok(text) => Outcome::Result(text),
        Err(Refusal::Spoken(text)) => Outcome::Error(text),
        Err(Refusal::Transient) => return Outcome::Error(SORRY.into()),
    };
    let Ok(value) = serde_json::to_value(&outcome) else {
        return outcome;
    };
    match ctx
        .store
        .save_tool_result(org, &call.id, &call.name, &value)
        .await
    {
        Ok(standing) => serde_json::from_value(standing).unwrap_or(outcome),
        Err(e) => {
            tracing::warn!(error = %e, tool_call_id = %call.id, "could not keep a tool answer");
            outcome
        }
    }
}

async fn run(ctx: &Context<'_>, call: &ToolCall) -> Answer {
    let args = match &call.arguments {
        Ok(map) => Args(map),
        Err(why) => {
            return Err(Refusal::Spoken(format!(
                "I couldn't read the details of that request: {why}."
            )))
        }
    };
    match call.name.as_str() {
        "list_providers" => list_providers(ctx).await,
        "check_availability" => check_availability(ctx, &args).await,
        "book_appointment" => book_appointment(ctx, &args).await,
        "find_appointments" => find_appointments(ctx).await,
        "cancel_appointment" => cancel_appointment(ctx, &args).await,
        "reschedule_appointment" => reschedule_appointment(ctx, &args).await,
        "" => Err(Refusal::Spoken(
            "I couldn't tell which action was asked for.".into(),
        )),
        other => Err(Refusal::Spoken(format!(
            "I can't do that: there is no tool called {other}."
        ))),
    }
}

struct Args<'a>(&'a Map<String, Value>);

impl Args<'_> {
    fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    fn required(&self, key: &str, ask: &str) -> Result<String, Refusal> {
        self.text(key)
            .ok_or_else(|| Refusal::Spoken(ask.to_owned()))
    }

    fn minutes(&self, key: &str) -> Result<Option<i64>, Refusal> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                Refusal::Spoken("The length must be a whole number of minutes.".into())
            }),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                Refusal::Spoken("The length must be a whole number of minutes.".into())
            }),
            Some(_) => Err(Refusal::Spoken(
                "The length must be a whole number of minutes.".into(),
            )),
        }
    }
}

async fn active_providers(ctx: &Context<'_>) -> Result<Vec<Provider>, Refusal> {
    Ok(ctx
        .store
        .providers(ctx.actor.org)
        .await?
        .into_iter()
        .filter(|p| p.active)
        .collect())
}

fn names(providers: &[Provider]) -> String {
    speech::join(
        &providers.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "and",
    )
}

/// The provider the arguments mean: by id, else by a forgiving match of the name.
async fn provider(ctx: &Context<'_>, args: &Args<'_>) -> Result<Provider, Refusal> {
    let providers = active_providers(ctx).await?;
    if providers.is_empty() {
        return Err(Refusal::Spoken(
            "There are no providers to book with yet.".into(),
        ));
    }
    let wanted = args
        .text("provider_id")
        .or_else(|| args.text("provider_name"));
    let Some(wanted) = wanted else {
        return Err(Refusal::Spoken(format!(
            "Which provider would you like? We have {}.",
            names(&providers)
        )));
    };
    if let Ok(id) = Uuid::parse_str(&wanted) {
        return providers
            .into_iter()
            .find(|p| p.id.0 == id)
            .ok_or_else(|| Refusal::Spoken("I couldn't find that provider.".into()));
    }
    match_name(providers, &wanted)
}

fn name_tokens(name: &str) -> Vec<String> {
    const TITLES: [&str; 8] = ["dr", "doctor", "doc", "prof", "mr", "mrs", "ms", "miss"];
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && !TITLES.contains(t))
        .map(str::to_owned)
        .collect()
}

fn match_name(providers: Vec<Provider>, wanted: &str) -> Result<Provider, Refusal> {
    let query = name_tokens(wanted);
    if query.is_empty() {
        return Err(Refusal::Spoken(format!(
            "Which provider would you like? We have {}.",
            names(&providers)
        )));
    }
    let exact: Vec<&Provider> = providers
        .iter()
        .filter(|p| name_tokens(&p.name) == query)
        .collect();
    if let [one] = exact.as_slice() {
        return Ok((*one).clone());
    }
    let partial: Vec<Provider> = providers
        .iter()
        .filter(|p| {
            let tokens = name_tokens(&p.name);
            query
                .iter()
                .all(|q| tokens.iter().any(|t| t.starts_with(q.as_str())))
        })
        .cloned()
        .collect();
    match partial.len() {
        1 => Ok(partial.into_iter().next().expect("one match")),
        0 => Err(Refusal::Spoken(format!(
            "I couldn't find a provider called {wanted}. We have {}.",
            names(&providers)
        ))),
        _ => Err(Refusal::Spoken(format!(
            "Did you mean {}?",
            speech::join(
                &partial.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                "or"
            )
        ))),
    }
}

/// Reads the times people and models say ("2 PM", "2:30pm", "14:00", "9:00") as `HH:MM`; anything
/// else is passed on unchanged for the domain to refuse.
fn normalize_time(s: &str) -> String {
    let lower = s.trim().to_lowercase().replace('.', "");
    let (clock, meridiem) = if let Some(c) = lower.strip_suffix("am") {
        (c.trim(), Some(false))
    } else if let Some(c) = lower.strip_suffix("pm") {
        (c.trim(), Some(true))
    } else {
        (lower.as_str(), None)
    };
    let mut parts = clock.split(':');
    let (Some(h), m, s_part, None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return s.to_owned();
    };
    let (Ok(mut hour), Ok(minute)) = (
        h.trim().parse::<u32>(),
        m.map_or(Ok(0), |m| m.trim().parse::<u32>()),
    ) else {
        return s.to_owned();
    };
    if s_part.is_some_and(|sec| sec.trim() != "00") || m.is_some_and(|m| m.trim().len() != 2) {
        return s.to_owned();
    }
    match meridiem {
        Some(pm) if (1..=12).contains(&hour) => hour = hour % 12 + if pm { 12 } else { 0 },
        Some(_) => return s.to_owned(),
        None if m.is_none() => return s.to_owned(),
        None => {}
    }
    format!("{hour:02}:{minute:02}")
}

fn unavailable(provider: &Provider, wanted: &Slot, alternatives: &[Slot]) -> String {
    let zone = provider.zone();
    let when = speech::moment(&zone, wanted.start());
    let first = if provider.permits(wanted) {
        format!("{} is already booked on {when}.", provider.name)
    } else {
        format!("{} isn't available on {when}.", provider.name)
    };
    if alternatives.is_empty() {
        format!("{first} I couldn't find a free time near then. Could you try another day?")
    } else {
        format!(
            "{first} The nearest free times are {}. Would one of those work?",
            speech::slots(&zone, alternatives, "or")
        )
    }
}

async fn list_providers(ctx: &Context<'_>) -> Answer {
    let providers = active_providers(ctx).await?;
    Ok(match providers.as_slice() {
        [] => "There are no providers to book with yet.".to_owned(),
        [one] => format!("We have one provider: {}.", one.name),
        many => format!("We have {} providers: {}.", many.len(), names(many)),
    })
}

async fn check_availability(ctx: &Context<'_>, args: &Args<'_>) -> Answer {
    let provider = provider(ctx, args).await?;
    let date_text = args
        .text("date")
        .or_else(|| args.text("appointment_date"))
        .ok_or_else(|| Refusal::Spoken("Which day would you like me to check?".into()))?;
    let date = parse_date("date", &date_text).map_err(|e| Refusal::Spoken(speech::invalid(&e)))?;
    let zone = provider.zone();
    if date < zone.today() {
        return Err(Refusal::Spoken(
            "That day has already passed. Which day would you like?".into(),
        ));
    }
    let slots = booking::free_slots_on(ctx.store, ctx.actor.org, &provider, date).await?;
    if slots.is_empty() {
        let next = match date.succ_opt() {
            Some(next) => {
                booking::free_slots_over(ctx.store, ctx.actor.org, &provider, next, 14).await?
            }
            None => Vec::new(),
        };
        if let Some(first) = next.first() {
            return Ok(format!(
                "{} has no free times on {}. The next opening is {}.",
                provider.name,
                speech::day(date),
                speech::moment(&zone, first.start())
            ));
        }
        return Ok(format!(
            "{} has no free times on {} or in the two weeks after.",
            provider.name,
            speech::day(date)
        ));
    }
    let spoken: Vec<String> = slots
        .iter()
        .take(SPOKEN_SLOTS)
        .map(|s| speech::time(&zone, s.start()))
        .collect();
    let more = match slots.len().saturating_sub(SPOKEN_SLOTS) {
        0 => String::new(),
        n => format!(", and {n} more later that day"),
    };
    Ok(format!(
        "{} is free on {} at {}{more}.",
        provider.name,
        speech::day(date),
        speech::join(&spoken, "or")
    ))
}

async fn book_appointment(ctx: &Context<'_>, args: &Args<'_>) -> Answer {
    let provider = provider(ctx, args).await?;
    let date = args.required(
        "appointment_date",
        "Which day would you like the appointment?",
    )?;
    let time = normalize_time(&args.required(
        "appointment_time",
        "What time would you like the appointment?",
    )?);
    let when = LocalStart::parse(Some(&date), Some(&time), args.minutes("duration_minutes")?)
        .map_err(|e| Refusal::Spoken(speech::invalid(&e)))?;
    let patient = Patient {
        name: args
            .text("patient_name")
            .map(|n| PatientName::parse("patient_name", &n))
            .transpose()
            .map_err(|e| Refusal::Spoken(speech::invalid(&e)))?
            .flatten(),
        // The caller's number comes from the telephony layer, never from the model.
        phone: ctx.caller.clone(),
        email: args
            .text("patient_email")
            .map(|e| Email::parse("patient_email", &e))
            .transpose()
            .map_err(|e| Refusal::Spoken(speech::invalid(&e)))?,
    };
    let notes = args
        .text("notes")
        .map(|n| crate::domain::Notes::parse("notes", &n))
        .transpose()
        .map_err(|e| Refusal::Spoken(speech::invalid(&e)))?
        .flatten();
    // The same slot asked for again within one call (the model re-asking under a new tool call
    // id) gives back the booking already made.
    let idempotency = ctx.call_id.as_ref().map(|call| {
        let key = format!(
            "vapi-call:{call}:{}:{date}:{time}:{}",
            provider.id,
            ctx.caller.as_ref().map(|c| c.as_str()).unwrap_or("-")
        );
        IdempotencyKey::for_request(key.clone(), key.as_bytes())
    });
    let render =
        |a: &Appointment| serde_json::to_value(crate::http::wire::booking(a)).unwrap_or_default();
    let request = BookingRequest {
        provider: provider.id,
        when,
        patient,
        notes,
    };
    let zone = provider.zone();
    let (start, code) = match booking::book(
        ctx.store,
        ctx.links,
        ctx.lanes,
        ctx.actor,
        request,
        idempotency,
        &render,
    )
    .await?
    {
        Booked::New(a) => (a.slot.start(), a.confirmation_code),
        Booked::Replayed(saved) => {
            let r: BookingResponse =
                serde_json::from_value(saved).map_err(|e| StoreError::Internal(e.to_string()))?;
            (r.starts_at.to_utc(), r.confirmation_code)
        }
    };
    Ok(format!(
        "You're booked with {} on {}. Your confirmation code is {}.",
        provider.name,
        speech::moment(&zone, start),
        speech::code(&code)
    ))
}

/// The caller's active appointment with that code; nothing of other callers is revealed.
async fn own_appointment(
    ctx: &Context<'_>,
    args: &Args<'_>,
) -> Result<(Appointment, Provider), Refusal> {
    let caller = ctx
        .caller
        .as_ref()
        .ok_or_else(|| Refusal::Spoken(NO_CALLER.into()))?;
    let spoken = args.required(
        "confirmation_code",
        "What is the confirmation code of the appointment?",
    )?;
    let code = ConfirmationCode::parse(&spoken).ok_or_else(|| {
        Refusal::Spoken(
            "That doesn't sound like a confirmation code. It has six letters and digits.".into(),
        )
    })?;
    let filter = AppointmentFilter {
        patient_phone: Some(caller.as_str().to_owned()),
        confirmation_code: Some(code.as_str().to_owned()),
        ..Default::default()
    };
    let appointment = ctx
        .store
        .appointments(ctx.actor.org, &filter)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Refusal::Spoken(format!(
            "I couldn't find an appointment with the code {} for the number you're calling from.",
            speech::code(code.as_str())
        ))
        })?;
    if !appointment.status.is_active() {
        return Err(Refusal::Spoken(
            "That appointment is already cancelled.".into(),
        ));
    }
    let provider = ctx
        .store
        .provider(ctx.actor.org, appointment.provider_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok((appointment, provider))
}

async fn find_appointments(ctx: &Context<'_>) -> Answer {
    let caller = ctx
        .caller
        .as_ref()
        .ok_or_else(|| Refusal::Spoken(NO_CALLER.into()))?;
    let filter = AppointmentFilter {
        patient_phone: Some(caller.as_str().to_owned()),
        from: Some(store::now()),
        ..Default::default()
    };
    let upcoming: Vec<Appointment> = ctx
        .store
        .appointments(ctx.actor.org, &filter)
        .await?
        .into_iter()
        .filter(|a| a.status.is_active())
        .collect();
    if upcoming.is_empty() {
        return Ok("You have no upcoming appointments.".into());
    }
    let providers = ctx.store.providers(ctx.actor.org).await?;
    let described: Vec<String> = upcoming
        .iter()
        .take(SPOKEN_SLOTS)
        .map(|a| {
            let name = providers
                .iter()
                .find(|p| p.id == a.provider_id)
                .map_or("your provider", |p| p.name.as_str());
            format!(
                "with {name} on {} (code {}, {})",
                speech::moment(&a.zone, a.slot.start()),
                speech::code(&a.confirmation_code),
                a.status.as_str()
            )
        })
        .collect();
    let count = match upcoming.len() {
        1 => "one upcoming appointment".to_owned(),
        n => format!("{n} upcoming appointments"),
    };
    Ok(format!(
        "You have {count}: {}.",
        speech::join(&described, "and")
    ))
}

async fn cancel_appointment(ctx: &Context<'_>, args: &Args<'_>) -> Answer {
    let (appointment, provider) = own_appointment(ctx, args).await?;
    ctx.store
        .cancel(ctx.actor, appointment.id, Some("cancelled by the caller"))
        .await?;
    Ok(format!(
        "Your appointment with {} on {} is cancelled.",
        provider.name,
        speech::moment(&appointment.zone, appointment.slot.start())
    ))
}

async fn reschedule_appointment(ctx: &Context<'_>, args: &Args<'_>) -> Answer {
    let (appointment, provider) = own_appointment(ctx, args).await?;
    let date = args.required(
        "appointment_date",
        "Which day would you like to move it to?",
    )?;
    let time =
        normalize_time(&args.required("appointment_time", "What time would you like instead?")?);
    let when = LocalStart::parse(Some(&date), Some(&time), None)
        .map_err(|e| Refusal::Spoken(speech::invalid(&e)))?;
    let moved = booking::reschedule(ctx.store, ctx.links, ctx.actor, appointment.id, when).await?;
    Ok(format!(
        "Done: your appointment with {} is now on {}. Your confirmation code stays {}.",
        provider.name,
        speech::moment(&moved.zone, moved.slot.start()),
        speech::code(&moved.confirmation_code)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_times_become_24_hour_clock_times() {
        for (said, meant) in [
            ("2 PM", "14:00"),
            ("2:30pm", "14:30"),
            ("12 am", "00:00"),
            ("12:15 PM", "12:15"),
            ("9:00", "09:00"),
            ("14:00", "14:00"),
            ("14:00:00", "14:00"),
            ("9 a.m.", "09:00"),
        ] {
            assert_eq!(normalize_time(said), meant, "{said}");
        }
        for unusable in ["25:99", "13 pm", "noon", "2", "14:5"] {
            assert!(
                crate::domain::parse_time("t", &normalize_time(unusable)).is_err(),
                "{unusable}"
            );
        }
    }
}
