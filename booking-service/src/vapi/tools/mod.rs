//! The seven tools, one file each, in the manner of mini-redis's commands: [`Tool`] names them once
//! (dispatch, the definitions and the metrics all read it), each tool reads its own typed
//! arguments, and each answers with one sentence: a `result` on success, an `error` (so the
//! assistant's failure message fires) otherwise. The concerns around them live in their own
//! modules: refusals, remembered answers, argument reading, provider matching, spoken times.

mod appointment_types;
mod arguments;
mod book_appointment;
mod caller;
mod cancel_appointment;
mod check_availability;
mod find_appointments;
mod get_clinic_info;
mod list_providers;
mod providers;
mod refusal;
mod remembered;
mod reschedule_appointment;
mod spoken_date;
mod spoken_time;

use self::arguments::read;
use self::book_appointment::BookAppointment;
pub use self::book_appointment::TOOL_KEYS;
use self::cancel_appointment::CancelAppointment;
use self::check_availability::CheckAvailability;
use self::find_appointments::FindAppointments;
use self::get_clinic_info::GetClinicInfo;
use self::list_providers::ListProviders;
use self::refusal::{Answer, Refusal};
use self::remembered::Keeping;
use self::reschedule_appointment::RescheduleAppointment;
use super::server_message::{ToolCall, ToolCalls};
use super::speech;
use crate::booking::BookingLanes;
use crate::domain::PhoneNumber;
use crate::links::Links;
use crate::store::{Actor, DynStore};
use crate::telemetry;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::future::Future;
use tokio::time::Instant;

/// The tools an assistant can call, in the order the definitions list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    ListProviders,
    CheckAvailability,
    BookAppointment,
    FindAppointments,
    CancelAppointment,
    RescheduleAppointment,
    GetClinicInfo,
}

impl Tool {
    pub const ALL: [Tool; 7] = [
        Tool::ListProviders,
        Tool::CheckAvailability,
        Tool::BookAppointment,
        Tool::FindAppointments,
        Tool::CancelAppointment,
        Tool::RescheduleAppointment,
        Tool::GetClinicInfo,
    ];

    /// The name on the wire: in the definitions, in Vapi's calls and in the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Tool::ListProviders => "list_providers",
            Tool::CheckAvailability => "check_availability",
            Tool::BookAppointment => "book_appointment",
            Tool::FindAppointments => "find_appointments",
            Tool::CancelAppointment => "cancel_appointment",
            Tool::RescheduleAppointment => "reschedule_appointment",
            Tool::GetClinicInfo => "get_clinic_info",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether it changes the caller's appointments, so that a later call of the same message
    /// may depend on it ("cancel Tuesday's and book Thursday"), and its answer is kept for a
    /// repeated request (remembered.rs).
    fn writes(self) -> bool {
        matches!(self, Tool::BookAppointment | Tool::CancelAppointment | Tool::RescheduleAppointment)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolOutcome {
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
    pub outcome: ToolOutcome,
}

/// What every tool may use: the clinic's store and the call's facts.
struct Context<'a> {
    store: &'a DynStore,
    links: &'a Links,
    lanes: &'a BookingLanes,
    actor: &'a Actor,
    /// The number the patient calls from; never taken from the model's arguments.
    caller: Option<PhoneNumber>,
    call_id: Option<String>,
    /// When the message arrived, from the service's clock: every "today" a tool uses is this
    /// instant read in the provider's zone (else the clinic's).
    now: DateTime<Utc>,
}

/// The most tool calls one message may hold (docs/API.md, limits): with more, every call is
/// answered with an `error` and none runs, so one message cannot queue unbounded work.
pub const MAX_CALLS_PER_MESSAGE: usize = 16;
/// How many of a message's calls run: every one, or none when it holds more than
/// [`MAX_CALLS_PER_MESSAGE`].
pub fn calls_run(message: &ToolCalls) -> usize {
    Some(message.calls.len()).filter(|&n| n <= MAX_CALLS_PER_MESSAGE).unwrap_or(0)
}

/// How many calls of one message that only reads run at once. A few overlap a slow database
/// round trip; more would let one message hold many connections of a pool every clinic shares.
const CALLS_AT_ONCE: usize = 4;

/// Answers every call of the message, all by `until` (a call still waiting then is answered as
/// too slow), in the calls' order: a few at a time when none of them writes, else one after the
/// other, each seeing what those before it changed (the voice agent sends "cancel Tuesday's, book
/// Thursday" as one message, and at the caller's limit the booking must follow the cancellation).
pub async fn answer(
    store: &DynStore,
    links: &Links,
    lanes: &BookingLanes,
    actor: &Actor,
    message: ToolCalls,
    now: DateTime<Utc>,
    until: Instant,
) -> Vec<ToolAnswer> {
    if calls_run(&message) < message.calls.len() {
        let refusal = refusal::too_many(message.calls.len(), MAX_CALLS_PER_MESSAGE);
        return message
            .calls
            .iter()
            .map(|call| {
                telemetry::record_tool_call(Tool::from_name(&call.name).map_or("unknown", Tool::name), "error");
                ToolAnswer {
                    name: call.name.clone(),
                    tool_call_id: call.id.clone(),
                    outcome: ToolOutcome::Error(refusal.clone()),
                }
            })
            .collect();
    }
    let ctx = Context { store, links, lanes, actor, caller: message.caller, call_id: message.call_id, now };
    let ctx = &ctx;
    // Made up front and only run as `buffered` polls them: a closure kept inside the stream would
    // tie the route's future to a lifetime the router cannot name.
    let writes = message.calls.iter().any(|call| Tool::from_name(&call.name).is_some_and(Tool::writes));
    let answers: Vec<_> = message.calls.iter().map(|call| answer_one(ctx, call, until)).collect();
    at_most_at_once(if writes { 1 } else { CALLS_AT_ONCE }, answers).await
}

/// Runs the futures at most `n` at a time; their outputs in the futures' order.
async fn at_most_at_once<F: Future>(n: usize, futures: Vec<F>) -> Vec<F::Output> {
    stream::iter(futures).buffered(n).collect().await
}

/// One call: its kept answer or a fresh one, by `until`, as one line.
async fn answer_one(ctx: &Context<'_>, call: &ToolCall, until: Instant) -> ToolAnswer {
    let tool = Tool::from_name(&call.name);
    let keeping = remembered::keeping(ctx, call);
    let fresh = run(ctx, tool, call, keeping.as_ref());
    // `failed`: the service could not answer (its database, or too slow), as opposed to an
    // answer that is a refusal; what operators are alerted on.
    let remembered = remembered::remembered(ctx, keeping.as_ref(), fresh);
    let (outcome, label) = match tokio::time::timeout_at(until, remembered).await {
        Ok(Some(ToolOutcome::Result(s))) => (ToolOutcome::Result(speech::one_line(&s)), "result"),
        Ok(Some(ToolOutcome::Error(s))) => (ToolOutcome::Error(speech::one_line(&s)), "error"),
        Ok(None) => (ToolOutcome::Error(refusal::SORRY.into()), "failed"),
        Err(_) => (ToolOutcome::Error(refusal::TOO_SLOW.into()), "failed"),
    };
    // Names outside the enum share one label, so a model inventing names cannot grow the metric
    // without bound.
    telemetry::record_tool_call(tool.map_or("unknown", Tool::name), label);
    ToolAnswer { name: call.name.clone(), tool_call_id: call.id.clone(), outcome }
}

/// Runs one call. Unreadable arguments are refused before the name is looked at, whatever tool
/// was asked for. A cancellation keeps its answer itself, as `keeping` says.
async fn run(ctx: &Context<'_>, tool: Option<Tool>, call: &ToolCall, keeping: Option<&Keeping<'_>>) -> Answer {
    let args = call.arguments.as_ref().map_err(|why| arguments::unreadable(why))?;
    let Some(tool) = tool else {
        return Err(match call.name.as_str() {
            "" => Refusal::spoken("I couldn't tell which action was asked for."),
            other => Refusal::spoken(format!("I can't do that: there is no tool called {}.", speech::quoted(other))),
        });
    };
    match tool {
        Tool::ListProviders => read::<ListProviders>(args)?.run(ctx).await,
        Tool::CheckAvailability => read::<CheckAvailability>(args)?.run(ctx).await,
        Tool::BookAppointment => read::<BookAppointment>(args)?.run(ctx).await,
        Tool::FindAppointments => read::<FindAppointments>(args)?.run(ctx).await,
        Tool::CancelAppointment => read::<CancelAppointment>(args)?.run(ctx, keeping).await,
        Tool::RescheduleAppointment => read::<RescheduleAppointment>(args)?.run(ctx).await,
        Tool::GetClinicInfo => read::<GetClinicInfo>(args)?.run(ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_calls_of_a_message_run_a_few_at_a_time_and_answer_in_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let calls: Vec<_> = (0..MAX_CALLS_PER_MESSAGE)
            .map(|i| {
                let (running, most) = (&running, &most);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Later calls finish sooner, so an answer in order is not an accident.
                    tokio::time::sleep(Duration::from_millis(2 * (MAX_CALLS_PER_MESSAGE - i) as u64)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            })
            .collect();
        let answered = at_most_at_once(CALLS_AT_ONCE, calls).await;
        assert_eq!(answered, (0..MAX_CALLS_PER_MESSAGE).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), CALLS_AT_ONCE, "never more at once, and not one by one");
    }

    #[test]
    fn every_tool_is_found_by_its_own_name_only() {
        for tool in Tool::ALL {
            assert_eq!(Tool::from_name(tool.name()), Some(tool));
        }
        assert_eq!(Tool::from_name("List_Providers"), None);
        assert_eq!(Tool::from_name(""), None);
    }
}
