//! Remembered answers. Vapi may send a tool call again under the same `toolCallId` (a retry,
//! another instance of this service): the first answer is kept in the store and given again, so a
//! booking or a cancellation is neither done twice nor answered differently the second time.
//! Only the answers of the tools that change appointments are kept: a tool that only reads
//! changes nothing when run again, and its kept answer could be stale (a model that numbers its
//! calls `call_0`, `call_1` asks `find_appointments` as `call_0` again after a cancellation, and
//! must not hear the cancelled appointment).
//!
//! A `toolCallId` is the model's, not ours: it is unique neither across calls nor across clinics'
//! callers (some models number their calls `call_0`, `call_1`, and an agent token may send any id).
//! So an answer is given again only to the same request: it is kept under the phone call's id, the
//! `toolCallId` and a fingerprint of the tool name, the arguments and the caller's number. A
//! request that differs in any of them finds nothing kept and runs afresh, answered as if its id
//! were new. We run it rather than refuse it: it is a question of its own and deserves its own
//! answer (a refusal would break a caller whose model reuses ids), and what it would otherwise
//! have been given (another caller's appointments or confirmation code) cannot be reached, since
//! the lookup itself names the fingerprint.

use super::refusal::{Answer, Refusal};
use super::{Context, Tool, ToolOutcome};
use crate::domain::PhoneNumber;
use crate::store::{KeptAnswer, ToolCallKey};
use crate::vapi::ToolCall;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::future::Future;

/// Longer ids are answered but not kept: no Vapi id comes near it, and the key stays within what
/// a database index holds.
const MAX_ID_LEN: usize = 256;

/// What the answer to one call is kept under, when it is kept ([`keeping`]).
pub struct Keeping<'a> {
    tool: Tool,
    call_id: &'a str,
    tool_call_id: &'a str,
    fingerprint: String,
}

impl Keeping<'_> {
    fn key(&self) -> ToolCallKey<'_> {
        ToolCallKey { call_id: self.call_id, tool_call_id: self.tool_call_id, fingerprint: &self.fingerprint }
    }

    /// `outcome` (a serialised [`ToolOutcome`]) as the answer to keep for this call: a tool that
    /// writes keeps it in the transaction of its change, so that a retry of the call hears it even
    /// when the change committed and nothing after it ran; `names_start` as [`KeptAnswer`] says.
    pub fn answer<'k>(&'k self, outcome: &'k Value, names_start: Option<DateTime<Utc>>) -> KeptAnswer<'k> {
        KeptAnswer { key: self.key(), tool_name: self.tool.name(), outcome, names_start }
    }
}

/// How the answer to `call` is kept, if it is: only a tool's that changes appointments, and only
/// where [`keepable`].
pub fn keeping<'a>(ctx: &'a Context<'_>, call: &'a ToolCall) -> Option<Keeping<'a>> {
    let tool = Tool::from_name(&call.name).filter(|t| t.writes())?;
    let call_id = ctx.call_id.as_deref().unwrap_or_default();
    keepable(call_id, &call.id, ctx.caller.is_some()).then(|| Keeping {
        tool,
        call_id,
        tool_call_id: &call.id,
        fingerprint: fingerprint(call, ctx.caller.as_ref()),
    })
}

/// The kept answer of this same request, else the `fresh` one, kept when `keeping`; `None` when
/// the service could not work (transient: nothing kept).
pub async fn remembered(
    ctx: &Context<'_>,
    keeping: Option<&Keeping<'_>>,
    fresh: impl Future<Output = Answer>,
) -> Option<ToolOutcome> {
    let org = ctx.actor.org;
    if let Some(keeping) = keeping {
        if let Ok(Some(saved)) = ctx.store.tool_result(org, &keeping.key()).await {
            if let Ok(outcome) = serde_json::from_value(saved) {
                return Some(outcome);
            }
        }
    }
    let outcome = match fresh.await {
        Ok(text) => ToolOutcome::Result(text),
        Err(Refusal::Spoken(text)) => ToolOutcome::Error(text),
        Err(Refusal::Transient) => return None,
    };
    let (Some(keeping), Ok(value)) = (keeping, serde_json::to_value(&outcome)) else {
        return Some(outcome);
    };
    // Two instances may answer the same request at once: the answer the store kept first wins, so
    // both give the same one.
    Some(match ctx.store.save_tool_result(org, &keeping.answer(&value, None)).await {
        Ok(standing) => serde_json::from_value(standing).unwrap_or(outcome),
        Err(e) => {
            tracing::warn!(error = %e, tool_call_id = %keeping.tool_call_id, "could not keep a tool answer");
            outcome
        }
    })
}

/// Whether an answer may be kept under these ids. Without a call id or a caller's number nothing
/// ties it to one conversation: two anonymous messages reusing an id and arguments would share
/// it, so it is not kept (Vapi names the call in every message, so its retries are still caught).
fn keepable(call_id: &str, tool_call_id: &str, has_caller: bool) -> bool {
    (!call_id.is_empty() || has_caller) && call_id.len() <= MAX_ID_LEN && tool_call_id.len() <= MAX_ID_LEN
}

/// The SHA-256 (hex) of what makes a request the same request: the tool name as asked, the
/// arguments in canonical form (keys sorted at every depth) and the caller's number. Serialised
/// as one JSON array, so no two different requests share the hashed text.
fn fingerprint(call: &ToolCall, caller: Option<&PhoneNumber>) -> String {
    let arguments = match &call.arguments {
        Ok(map) => canonical_map(map),
        // Unreadable arguments are refused for why they cannot be read, whatever they held.
        Err(why) => json!({ "unreadable": why }),
    };
    let request = json!([call.name, arguments, caller.map(PhoneNumber::as_str)]);
    hex::encode(Sha256::digest(request.to_string().as_bytes()))
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => canonical_map(map),
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The map with its keys in sorted order, whether or not serde_json keeps insertion order.
fn canonical_map(map: &Map<String, Value>) -> Value {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: Value) -> ToolCall {
        let Value::Object(map) = arguments else { panic!("an object") };
        ToolCall { id: "shared-1".into(), name: name.into(), arguments: Ok(map) }
    }

    fn phone(n: &str) -> PhoneNumber {
        PhoneNumber::parse("caller", n).expect("a number")
    }

    #[test]
    fn the_fingerprint_ignores_key_order_but_nothing_else() {
        let a = phone("+15551234567");
        let args = json!({"appointment_date": "2027-01-15", "nested": {"b": 1, "a": [2, {"y": 1, "x": 0}]}});
        let reordered = json!({"nested": {"a": [2, {"x": 0, "y": 1}], "b": 1}, "appointment_date": "2027-01-15"});
        let base = fingerprint(&call("book_appointment", args.clone()), Some(&a));
        assert_eq!(base.len(), 64);
        assert_eq!(base, fingerprint(&call("book_appointment", reordered), Some(&a)));
        assert_ne!(base, fingerprint(&call("find_appointments", args.clone()), Some(&a)), "another tool");
        assert_ne!(base, fingerprint(&call("book_appointment", args.clone()), Some(&phone("+15559876543"))));
        assert_ne!(base, fingerprint(&call("book_appointment", args.clone()), None), "no caller");
        let other_day = json!({"appointment_date": "2027-01-16", "nested": {"b": 1, "a": [2, {"y": 1, "x": 0}]}});
        assert_ne!(base, fingerprint(&call("book_appointment", other_day), Some(&a)), "other arguments");
        let unreadable = ToolCall { id: "x".into(), name: "book_appointment".into(), arguments: Err("bad".into()) };
        assert_ne!(base, fingerprint(&unreadable, Some(&a)));
    }

    #[test]
    fn only_answers_tied_to_a_call_or_a_caller_and_of_sane_ids_are_kept() {
        assert!(keepable("call-1", "t1", false));
        assert!(keepable("", "t1", true));
        assert!(!keepable("", "t1", false), "nothing ties it to one conversation");
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(!keepable("call-1", &long, true));
        assert!(!keepable(&long, "t1", true));
    }
}
