//! `book_appointment`: books for the caller, whose number comes from the call, never from the
//! model's arguments.

use super::arguments::{text, Length};
use super::providers::WhichProvider;
use super::refusal::Answer;
use super::spoken_time::SpokenStart;
use super::{speech, Context};
use crate::booking::{self, BookingRequest, LocalStart};
use crate::domain::{Email, Notes, PatientName};
use crate::store::{IdempotencyKey, Patient};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct BookAppointment {
    #[serde(flatten)]
    provider: WhichProvider,
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
        let (date, time) = self
            .start
            .read("Which day would you like the appointment?", "What time would you like the appointment?")?;
        let minutes = Length::minutes(self.duration_minutes)?;
        let when = LocalStart::parse(Some(&date), Some(&time), minutes)?;
        let patient = Patient {
            name: self.patient_name.map(|n| PatientName::parse("patient_name", &n)).transpose()?.flatten(),
            phone: ctx.caller.clone(),
            email: self.patient_email.map(|e| Email::parse("patient_email", &e)).transpose()?,
        };
        let notes = self.notes.map(|n| Notes::parse("notes", &n)).transpose()?.flatten();
        // The same slot asked for again within one call (the model re-asking under a new tool
        // call id) gives back the booking already made.
        let idempotency = ctx.call_id.as_ref().map(|call| {
            let key = format!(
                "vapi-call:{call}:{}:{date}:{time}:{}",
                provider.id,
                ctx.caller.as_ref().map_or("-", |c| c.as_str())
            );
            IdempotencyKey::for_request(key.clone(), key.as_bytes())
        });
        let request = BookingRequest { provider: provider.id, when, patient, notes, capped: true };
        let booked = booking::book(ctx.store, ctx.links, ctx.lanes, ctx.actor, request, idempotency).await?;
        Ok(format!(
            "You're booked with {} on {}. Your confirmation code is {}.",
            provider.name,
            speech::moment(&provider.zone(), booked.answer.starts_at.to_utc()),
            speech::code(&booked.answer.confirmation_code)
        ))
    }
}
