//! `reschedule_appointment`: moves one of the caller's own appointments, keeping its code and its
//! type (or its length without one), unless a type is named.

use super::appointment_types::WhichType;
use super::arguments::text;
use super::refusal::{self, Answer};
use super::spoken_time::SpokenStart;
use super::{caller, speech, Context};
use crate::booking::{self, LocalStart};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct RescheduleAppointment {
    #[serde(default, deserialize_with = "text")]
    confirmation_code: Option<String>,
    #[serde(flatten)]
    kind: WhichType,
    #[serde(flatten)]
    start: SpokenStart,
}

impl RescheduleAppointment {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let (appointment, provider) = caller::own_appointment(ctx, self.confirmation_code).await?;
        let (date, time) = self.start.read(
            (&provider.zone(), Some(&provider)),
            ctx.now,
            "Which day would you like to move it to?",
            "What time would you like instead?",
        )?;
        let when = LocalStart::parse(Some(&date.to_string()), Some(&time), None)?;
        let kind = self.kind.find(ctx, &provider).await?.map(|k| k.id);
        let moved = match booking::reschedule(ctx.store, ctx.links, ctx.actor, appointment.id, when, kind, true).await {
            Ok(moved) => moved,
            Err(e) => return Err(refusal::refused(ctx, e).await),
        };
        Ok(format!(
            "Done: your appointment with {} is now on {}. Your confirmation code stays {}.",
            provider.name,
            speech::moment(&provider, moved.slot.start()),
            speech::code(&moved.confirmation_code)
        ))
    }
}
