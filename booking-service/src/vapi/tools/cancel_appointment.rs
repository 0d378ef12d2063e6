//! `cancel_appointment`: cancels one of the caller's own appointments by its code.

use super::arguments::text;
use super::refusal::Answer;
use super::remembered::Keeping;
use super::{caller, speech, Context, ToolOutcome};
use crate::domain::Cutoff;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct CancelAppointment {
    #[serde(default, deserialize_with = "text")]
    confirmation_code: Option<String>,
}

impl CancelAppointment {
    pub async fn run(self, ctx: &Context<'_>, keeping: Option<&Keeping<'_>>) -> Answer {
        let (appointment, provider) = caller::own_appointment(ctx, self.confirmation_code).await?;
        let said = |start| {
            format!("Your appointment with {} on {} is cancelled.", provider.name, speech::moment(&provider, start))
        };
        let read_start = appointment.slot.start();
        // Kept with the cancellation: a retry of this call after it committed (the answer lost on
        // its way, or another instance answering at once) hears this, not "already cancelled".
        let outcome = serde_json::to_value(ToolOutcome::Result(said(read_start))).ok();
        let answer = keeping.zip(outcome.as_ref()).map(|(keeping, outcome)| keeping.answer(outcome, Some(read_start)));
        let reason = Some("cancelled by the caller");
        let cancelled =
            ctx.store.cancel(ctx.actor, appointment.id, reason, Some(Cutoff::AT_START), answer.as_ref()).await?;
        // Moved since it was read (by the staff, or the patient's link): the time it had is told,
        // and kept afterwards as any answer is.
        Ok(said(cancelled.slot.start()))
    }
}
