//! `cancel_appointment`: cancels one of the caller's own appointments by its code.

use super::arguments::text;
use super::refusal::Answer;
use super::{caller, speech, Context};
use crate::domain::Cutoff;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct CancelAppointment {
    #[serde(default, deserialize_with = "text")]
    confirmation_code: Option<String>,
}

impl CancelAppointment {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let (appointment, provider) = caller::own_appointment(ctx, self.confirmation_code).await?;
        ctx.store.cancel(ctx.actor, appointment.id, Some("cancelled by the caller"), Some(Cutoff::AT_START)).await?;
        Ok(format!(
            "Your appointment with {} on {} is cancelled.",
            provider.name,
            speech::moment(&provider, appointment.slot.start())
        ))
    }
}
