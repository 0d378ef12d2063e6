//! `book_appointment`: books for the caller, whose number comes from the call, never from the
//! model's arguments.

use super::appointment_types::WhichType;
use super::arguments::{required, text, Length};
use super::providers::WhichProvider;
use super::refusal::{self, Answer};
use super::spoken_time::SpokenStart;
use super::{speech, Context};
use crate::booking::{self, CheckedBooking, LocalStart};
use crate::domain::{spoken, AppointmentId, Email, Notes, PatientName};
use crate::store::{Appointment, IdempotencyKey, Patient, StoreError};
use serde::Deserialize;
use shared::api::BookingResponse;

/// How the keys this tool books under begin: a key of the REST route may not (it would take the
/// tool's key first and have the caller's booking refused as a key reused).
pub const TOOL_KEYS: &str = "vapi-call:";

/// The question for a booking without the patient's name, which the tool's definition requires.
const ASK_NAME: &str = "What name should I book the appointment under?";

/// Times one call may book a slot again after cancelling or moving its booking of it, each found
/// through the key chain (every re-ask walks it).
const MAX_REBOOKINGS: u32 = 5;

#[derive(Debug, Deserialize)]
pub struct BookAppointment {
    #[serde(flatten)]
    provider: WhichProvider,
    #[serde(flatten)]
    kind: WhichType,
    #[serde(flatten)]
    start: SpokenStart,
    duration_minutes: Option<Length>,
    #[serde(default, deserialize_with = "text")]
    patient_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    patient_email: Option<String>,
    #[serde(default, deserialize_with = "text")]
    notes: Option<String>,
}

impl BookAppointment {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let provider = self.provider.find(ctx).await?;
        let kind = self.kind.find(ctx, &provider).await?;
        let (date, time) = self.start.read(
            (&provider.zone(), Some(&provider)),
            ctx.now,
            "Which day would you like the appointment?",
            "What time would you like the appointment?",
        )?;
        // A type decides its own length: a length the model guessed is not held against it.
        let minutes = if kind.is_some() { None } else { Length::minutes(self.duration_minutes)? };
        let when = LocalStart::parse(Some(&date.to_string()), Some(&time), minutes)?;
        let name = required(self.patient_name, ASK_NAME)?;
        let patient = Patient {
            name: PatientName::parse("patient_name", Some(name.as_str()))?,
            phone: ctx.caller.clone(),
            email: self.patient_email.map(|e| Email::parse("patient_email", &e)).transpose()?,
        };
        let notes = Notes::parse("notes", self.notes.as_deref())?;
        // The same slot asked for again within one call for the same patient (the model re-asking
        // under a new tool call id) gives back the booking already made, while it still stands;
        // for another patient (a parent booking two children) it is a booking of its own, which
        // finds the time taken rather than being told the first one's booking.
        let named = patient.name.as_ref().map_or_else(|| "-".to_owned(), |n| spoken::words(n.as_str(), &[]).join(" "));
        let mut key = ctx.call_id.as_ref().map(|call| {
            format!(
                "{TOOL_KEYS}{call}:{}:{}:{date}:{time}:{}:{}:{named}",
                provider.id,
                kind.as_ref().map_or("-".to_owned(), |k| k.id.to_string()),
                minutes.map_or("-".to_owned(), |m| m.to_string()),
                ctx.caller.as_ref().map_or("-", |c| c.as_str())
            )
        });
        let request = CheckedBooking {
            provider: provider.id,
            kind: kind.as_ref().map(|k| k.id),
            when,
            patient,
            notes,
            by_agent: true,
        };
        let mut rebookings = 0;
        let mut kept_as_made = "";
        let booked = loop {
            let idempotency = key.as_ref().map(|k| IdempotencyKey::for_request(k.clone(), k.as_bytes()));
            let booked =
                match booking::book(ctx.store, ctx.links, ctx.lanes, ctx.actor, request.clone(), idempotency).await {
                    Ok(booked) => booked,
                    Err(e) => return Err(refusal::refused(ctx, e).await),
                };
            if !booked.replayed {
                break booked;
            }
            if let Some(standing) = standing(ctx, &booked.answer).await? {
                // Asked again with another email or notes (a typo put right): the booking is
                // the one made, and the caller must not think it was changed.
                if !holds(&standing, &request) {
                    kept_as_made = " That booking stands as first made; to change its email or notes, please ask the clinic's staff.";
                }
                break booked;
            }
            // Cancelled or moved since, earlier in the call: the caller wants that time again. The
            // new booking is kept under a key naming the one it replaces, so that asking once more
            // finds it; past a few such rebookings in one call, a new booking is simply made.
            rebookings += 1;
            key = key
                .filter(|_| rebookings <= MAX_REBOOKINGS)
                .map(|k| format!("{k}:after:{}", booked.answer.appointment_id));
        };
        let what = kind.map_or_else(String::new, |k| format!(" for {}", speech::a(&k.name)));
        // Without the caller's number the appointment cannot be found by phone later: say so now.
        let hidden = if ctx.caller.is_none() {
            " Your number is hidden on this call, so to change it, please ask the clinic's staff."
        } else {
            ""
        };
        Ok(format!(
            "You're booked{what} with {} on {}. Your confirmation code is {}.{kept_as_made}{hidden}",
            provider.name,
            speech::moment(&provider, booked.answer.starts_at.to_utc()),
            speech::code(&booked.answer.confirmation_code)
        ))
    }
}

/// The booking a replayed answer names, while it is still active at the time the answer gives.
async fn standing(ctx: &Context<'_>, answer: &BookingResponse) -> Result<Option<Appointment>, StoreError> {
    let stored = ctx.store.appointment(ctx.actor.org, AppointmentId::from(answer.appointment_id)).await?;
    Ok(stored.filter(|a| a.status.is_active() && a.slot.start() == answer.starts_at))
}

/// Whether `booked` holds the email and notes `asked` gives (those it leaves out, it keeps).
fn holds(booked: &Appointment, asked: &CheckedBooking) -> bool {
    let email = asked.patient.email.as_ref().map(Email::as_str);
    let notes = asked.notes.as_ref().map(Notes::as_str);
    email.is_none_or(|e| booked.patient_email.as_deref() == Some(e))
        && notes.is_none_or(|n| booked.notes.as_deref() == Some(n))
}
