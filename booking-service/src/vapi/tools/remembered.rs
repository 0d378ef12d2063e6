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
use crate::store::ToolCallKey;
use crate::vapi::ToolCall;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::future::Future;

/// Longer ids are answered but not kept: no Vapi id comes near it, and the key stays within what
/// a database index holds.
const MAX_ID_LEN: usize = 256;

/// The kept answer of this same request, else the `fresh` one, kept; `None` when the service
/// could not work (transient: nothing kept).
pub async fn remembered(
    ctx: &Context<'_>,
    call: &ToolCall,
    fresh: impl Future<Output = Answer>,
) -> Option<ToolOutcome> {
    let org = ctx.actor.org;
    let fingerprint = fingerprint(call, ctx.caller.as_ref());
    let key = ToolCallKey {
        call_id: ctx.call_id.as_deref().unwrap_or_default(),
        tool_call_id: &call.id,
        fingerprint: &fingerprint,
    };
    // The tool whose answer is kept, if it is kept.
    let kept = Tool::from_name(&call.name).filter(|t| t.writes() && keepable(&key, ctx.caller.is_some()));
    if kept.is_some() {
        if let Ok(Some(saved)) = ctx.store.tool_result(org, &key).await {
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
    let (Some(tool), Ok(value)) = (kept, serde_json::to_value(&outcome)) else {
        return Some(outcome);
    };
    // Two instances may answer the same request at once: the answer the store kept first wins, so
    // both give the same one.
    Some(match ctx.store.save_tool_result(org, &key, tool.name(), &value).await {
        Ok(standing) => serde_json::from_value(standing).unwrap_or(outcome),
        Err(e) => {
            tracing::warn!(error = %e, tool_call_id = %call.id, "could not keep a tool answer");
            outcome
        }
    })
}

/// Whether an answer may be kept under `key`. Without a call id or a caller's number nothing
/// ties it to one conversation: two anonymous messages reusing an id and arguments would share
/// it, so it is not kept (Vapi names the call in every message, so its retries are still caught).
fn keepable(key: &ToolCallKey<'_>, has_caller: bool) -> bool {
    (!key.call_id.is_empty() || has_caller) && key.call_id.len() <= MAX_ID_LEN && key.tool_call_id.len() <= MAX_ID_LEN
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
        let key = |call_id, tool_call_id| ToolCallKey { call_id, tool_call_id, fingerprint: "f" };
        assert!(keepable(&key("call-1", "t1"), false));
        assert!(keepable(&key("", "t1"), true));
        assert!(!keepable(&key("", "t1"), false), "nothing ties it to one conversation");
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(!keepable(&key("call-1", &long), true));
        assert!(!keepable(&key(&long, "t1"), true));
    }
}
