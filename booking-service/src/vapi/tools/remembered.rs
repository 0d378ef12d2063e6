//! Remembered answers. Vapi and the model may send a tool call again under the same
//! `toolCallId` (a retry, another instance of this service): the first answer is kept in the
//! store and given again, so a booking or a cancellation is neither done twice nor answered
//! differently the second time.

use super::refusal::{Answer, Refusal, SORRY};
use super::{Context, ToolOutcome};
use crate::vapi::ToolCall;
use std::future::Future;

/// The kept answer of a repeated id, else the `fresh` one, kept unless transient.
pub async fn remembered(ctx: &Context<'_>, call: &ToolCall, fresh: impl Future<Output = Answer>) -> ToolOutcome {
    let org = ctx.actor.org;
    if let Ok(Some(saved)) = ctx.store.tool_result(org, &call.id).await {
        if let Ok(outcome) = serde_json::from_value(saved) {
            return outcome;
        }
    }
    let outcome = match fresh.await {
        Ok(text) => ToolOutcome::Result(text),
        Err(Refusal::Spoken(text)) => ToolOutcome::Error(text),
        Err(Refusal::Transient) => return ToolOutcome::Error(SORRY.into()),
    };
    let Ok(value) = serde_json::to_value(&outcome) else {
        return outcome;
    };
    // Two instances may answer the same id at once: the answer the store kept first wins, so
    // both give the same one.
    match ctx.store.save_tool_result(org, &call.id, &call.name, &value).await {
        Ok(standing) => serde_json::from_value(standing).unwrap_or(outcome),
        Err(e) => {
            tracing::warn!(error = %e, tool_call_id = %call.id, "could not keep a tool answer");
            outcome
        }
    }
}
