//! Vapi's server messages, read leniently: everything under `message`; tool calls from
//! `toolCallList`, else `toolCalls`, else `toolWithToolCallList[].toolCall`, de-duplicated by id;
//! the name from `function.name` or `name`; arguments from `function.arguments`, `arguments` or
//! `parameters`, each an object or a JSON string. Unknown fields are ignored.

use super::tools::MAX_CALLS_PER_MESSAGE;
use crate::domain::PhoneNumber;
use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// One message Vapi posts to the server URL.
#[derive(Debug)]
pub enum VapiMessage {
    ToolCalls(ToolCalls),
    /// A call is starting: which assistant takes it, with the clinic's variables.
    AssistantRequest,
    /// The assistant is transferring the call: to which number.
    TransferDestinationRequest,
    /// A call has ended; `None` when the report names no usable call id.
    EndOfCallReport(Option<CallReport>),
    /// Any other message type (`status-update`, …): nothing to answer.
    Other(String),
}

/// What an end-of-call report tells of the call, bounded: a report is kept as sent, never grown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub call_id: String,
    pub customer_number: Option<PhoneNumber>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
    pub summary: Option<String>,
}

/// The most tool calls (after removing repeated ids) a message may list and still be answered one
/// result per call: one with more than [`MAX_CALLS_PER_MESSAGE`] is answered with a refusal for
/// each, and past this it is refused whole (422). Otherwise a 1 MiB message of bare ids
/// would be answered with a refusal for each of tens of thousands, an answer ten times its size.
pub const MAX_LISTED_CALLS: usize = 64;

/// The longest call id kept; Vapi's are UUIDs.
const MAX_CALL_ID: usize = 200;
const MAX_ENDED_REASON: usize = 200;
const MAX_SUMMARY: usize = 4000;

#[derive(Debug)]
pub struct ToolCalls {
    pub calls: Vec<ToolCall>,
    /// The number the patient calls from, as the telephony layer reported it.
    pub caller: Option<PhoneNumber>,
    /// Vapi's id of the phone call.
    pub call_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments object, or why there is none usable.
    pub arguments: Result<Map<String, Value>, String>,
}

/// What the telephony layer reports as the number of a caller who withheld it: words spelled on
/// a keypad (ANONYMOUS, RESTRICTED, UNAVAILABLE), the same for every such caller. Read as no
/// number: else every hidden caller would share one, and hear the others' appointments. (UNKNOWN,
/// BLOCKED and PRIVATE spell seven digits, too few for a phone number anyway.)
const WITHHELD: [&str; 3] = ["+266696687", "+7378742833", "+86282452253"];

impl VapiMessage {
    /// Reads a server message; `Err` names what is missing when the body is not one.
    pub fn parse(body: &Value) -> Result<Self, String> {
        let message = body
            .get("message")
            .filter(|m| m.is_object())
            .ok_or("message: a Vapi server message is an object under \"message\"")?;
        let kind = message.get("type").and_then(Value::as_str).unwrap_or_default();
        // A web call has no caller's number: one in its customer is what the page that started
        // it said, anyone's, and would open that number's appointments.
        let web = matches!(message["call"]["type"].as_str(), Some("webCall" | "vapi.websocketCall"));
        let caller = [&message["call"]["customer"]["number"], &message["customer"]["number"]]
            .into_iter()
            .filter(|_| !web)
            .filter_map(Value::as_str)
            .find_map(|n| PhoneNumber::parse("caller", n).ok())
            .filter(|n| !WITHHELD.contains(&n.as_str()));
        // An id longer than any of Vapi's is no id: it names the audit rows of the call's changes.
        let call_id =
            message["call"]["id"].as_str().filter(|id| an_id(id) && id.len() <= MAX_CALL_ID).map(str::to_owned);
        Ok(match kind {
            "tool-calls" => Self::ToolCalls(ToolCalls { calls: tool_calls(message)?, caller, call_id }),
            "assistant-request" => Self::AssistantRequest,
            "transfer-destination-request" => Self::TransferDestinationRequest,
            "end-of-call-report" => Self::EndOfCallReport(call_id.map(|call_id| {
                CallReport {
                    call_id,
                    customer_number: caller,
                    started_at: instant(&message["startedAt"]),
                    ended_at: instant(&message["endedAt"]),
                    ended_reason: bounded(&message["endedReason"], MAX_ENDED_REASON),
                    summary: bounded(&message["analysis"]["summary"], MAX_SUMMARY)
                        .or_else(|| bounded(&message["summary"], MAX_SUMMARY)),
                }
            })),
            other => Self::Other(other.to_owned()),
        })
    }
}

/// An instant as Vapi writes it: an RFC 3339 string, or milliseconds since the epoch; none outside
/// the years a call can have (PostgreSQL would refuse some of them).
fn instant(value: &Value) -> Option<DateTime<Utc>> {
    let at = match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    };
    at.filter(|t| (1970..=9999).contains(&t.year()))
}

/// A text field, trimmed, on one line (line breaks and other control characters as spaces) and cut
/// to `max` characters; none when empty.
fn bounded(value: &Value, max: usize) -> Option<String> {
    let words = value.as_str()?.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty());
    let text = words.collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then(|| text.chars().take(max).collect())
}

/// Whether `id` can be one of Vapi's ids (of a call, of a tool call): not empty, no control
/// characters (which no id of theirs has, and PostgreSQL cannot store a NUL of).
fn an_id(id: &str) -> bool {
    !id.is_empty() && !id.chars().any(char::is_control)
}

/// The calls a message lists, or why it is refused: more than [`MAX_LISTED_CALLS`] of them (read no
/// further than one past it).
fn tool_calls(message: &Value) -> Result<Vec<ToolCall>, String> {
    let listed: Vec<&Value> = if let Some(list) = message["toolCallList"].as_array().filter(|l| !l.is_empty()) {
        list.iter().collect()
    } else if let Some(list) = message["toolCalls"].as_array().filter(|l| !l.is_empty()) {
        list.iter().collect()
    } else {
        message["toolWithToolCallList"]
            .as_array()
            .map(|l| l.iter().map(|t| &t["toolCall"]).filter(|c| c.is_object()).collect())
            .unwrap_or_default()
    };
    let mut calls: Vec<ToolCall> = Vec::new();
    let mut seen = HashSet::new();
    for raw in listed {
        let Some(id) = raw["id"].as_str().filter(|id| an_id(id)) else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        if calls.len() == MAX_LISTED_CALLS {
            return Err(format!(
                "message: lists more than {MAX_LISTED_CALLS} tool calls (a message holds at most {MAX_CALLS_PER_MESSAGE})"
            ));
        }
        let name = raw["function"]["name"].as_str().or_else(|| raw["name"].as_str()).unwrap_or_default();
        let arguments = [&raw["function"]["arguments"], &raw["arguments"], &raw["parameters"]]
            .into_iter()
            .find(|a| !a.is_null())
            .map_or_else(|| Ok(Map::new()), arguments);
        calls.push(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments });
    }
    Ok(calls)
}

fn arguments(value: &Value) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::String(s) if s.trim().is_empty() => Ok(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err("the arguments are not a JSON object".into()),
        },
        _ => Err("the arguments are not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calls_of(body: Value) -> Vec<ToolCall> {
        match VapiMessage::parse(&body).expect("a message") {
            VapiMessage::ToolCalls(t) => t.calls,
            other => panic!("not tool calls: {other:?}"),
        }
    }

    /// Every spelling Twilio uses for a withheld number is no caller, whichever field carries it.
    #[test]
    fn a_withheld_number_is_no_caller() {
        let caller_of = |message: Value| match VapiMessage::parse(&json!({ "message": message })) {
            Ok(VapiMessage::ToolCalls(t)) => t.caller,
            other => panic!("not tool calls: {other:?}"),
        };
        for withheld in ["+266696687", "+7378742833", "+86282452253", "+8656696", "+2562533", "+7748283", "anonymous"] {
            let on_call = json!({"type": "tool-calls", "call": {"customer": {"number": withheld}}});
            let on_message = json!({"type": "tool-calls", "customer": {"number": withheld}});
            assert_eq!((caller_of(on_call), caller_of(on_message)), (None, None), "{withheld}");
        }
        let real = caller_of(json!({"type": "tool-calls", "call": {"customer": {"number": "+15551234567"}}}));
        assert_eq!(real.map(|n| n.as_str().to_owned()).as_deref(), Some("+15551234567"));
    }

    #[test]
    fn all_three_list_forms_are_read_and_deduplicated() {
        let call = json!({"id": "c1", "type": "function", "function": {"name": "list_providers", "arguments": {}}});
        let body = json!({"message": {"type": "tool-calls", "toolCallList": [call.clone(), call.clone()], "toolCalls": [call.clone()],
            "toolWithToolCallList": [{"type": "function", "toolCall": call.clone()}]}});
        assert_eq!(calls_of(body).len(), 1);
        let legacy = json!({"message": {"type": "tool-calls", "toolCalls": [call.clone()]}});
        assert_eq!(calls_of(legacy)[0].name, "list_providers");
        let nested = json!({"message": {"type": "tool-calls", "toolWithToolCallList": [{"toolCall": call}]}});
        assert_eq!(calls_of(nested)[0].id, "c1");
    }

    /// Up to 64 distinct calls are listed (repeats not counted); one more and the message is
    /// refused whole, however many follow.
    #[test]
    fn a_message_listing_more_than_sixty_four_calls_is_refused_whole() {
        let listing = |n: usize| {
            let calls: Vec<Value> = (0..n).map(|i| json!({"id": format!("c{i}"), "name": "list_providers"})).collect();
            let listed = [&calls[..], &calls[..n.min(10)]].concat();
            json!({"message": {"type": "tool-calls", "toolCallList": listed}})
        };
        assert_eq!(calls_of(listing(MAX_LISTED_CALLS)).len(), MAX_LISTED_CALLS);
        for n in [MAX_LISTED_CALLS + 1, 60_000] {
            let refused = VapiMessage::parse(&listing(n)).expect_err("refused");
            assert!(refused.contains("more than 64 tool calls"), "{refused}");
        }
    }

    #[test]
    fn arguments_come_as_objects_strings_or_parameters() {
        let body = json!({"message": {"type": "tool-calls", "toolCallList": [
            {"id": "a", "function": {"name": "x", "arguments": {"date": "2027-01-15"}}},
            {"id": "b", "function": {"name": "x", "arguments": "{\"date\": \"2027-01-15\"}"}},
            {"id": "c", "name": "x", "parameters": {"date": "2027-01-15"}},
            {"id": "d", "name": "x", "arguments": "{not json"},
        ]}});
        let calls = calls_of(body);
        for c in &calls[..3] {
            assert_eq!(c.arguments.as_ref().expect("args")["date"], "2027-01-15", "{}", c.id);
        }
        assert!(calls[3].arguments.is_err());
    }

    #[test]
    fn the_caller_comes_from_the_call_or_the_customer() {
        let body = json!({"message": {"type": "tool-calls", "toolCallList": [], "call": {"id": "call-1", "customer": {"number": "+15551234567"}}}});
        let Ok(VapiMessage::ToolCalls(t)) = VapiMessage::parse(&body) else { panic!("tool calls") };
        assert_eq!(t.caller.map(|p| p.as_str().to_owned()).as_deref(), Some("+15551234567"));
        assert_eq!(t.call_id.as_deref(), Some("call-1"));
        let body = json!({"message": {"type": "tool-calls", "customer": {"number": "+447700900123"}}});
        let Ok(VapiMessage::ToolCalls(t)) = VapiMessage::parse(&body) else { panic!("tool calls") };
        assert!(t.caller.is_some());
        // An id longer than the audit log keeps is no call id.
        let body = json!({"message": {"type": "tool-calls", "call": {"id": "x".repeat(201)}}});
        let Ok(VapiMessage::ToolCalls(t)) = VapiMessage::parse(&body) else { panic!("tool calls") };
        assert_eq!(t.call_id, None);
    }

    #[test]
    fn an_end_of_call_report_is_read_and_bounded() {
        let long = "word ".repeat(2000);
        let body = json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
            "startedAt": "2027-01-15T14:00:00.000Z", "endedAt": 1800020000000u64,
            "analysis": {"summary": long}, "summary": "fallback",
            "call": {"id": "call-9", "customer": {"number": "+15551234567"}}}});
        let Ok(VapiMessage::EndOfCallReport(Some(r))) = VapiMessage::parse(&body) else { panic!("a report") };
        assert_eq!(r.call_id, "call-9");
        assert_eq!(r.started_at.map(|t| t.to_rfc3339()).as_deref(), Some("2027-01-15T14:00:00+00:00"));
        assert!(r.ended_at.is_some() && r.customer_number.is_some());
        assert_eq!(r.summary.map(|s| s.chars().count()), Some(MAX_SUMMARY));
        let body =
            json!({"message": {"type": "end-of-call-report", "summary": "short", "call": {"id": "x".repeat(201)}}});
        assert!(matches!(VapiMessage::parse(&body), Ok(VapiMessage::EndOfCallReport(None))));
        let body = json!({"message": {"type": "end-of-call-report", "summary": "kept", "call": {"id": "c"},
            "startedAt": -300_000_000_000_000i64, "endedAt": "+262142-01-01T00:00:00Z"}});
        let Ok(VapiMessage::EndOfCallReport(Some(r))) = VapiMessage::parse(&body) else { panic!("a report") };
        assert_eq!(r.summary.as_deref(), Some("kept"));
        assert_eq!((r.started_at, r.ended_at), (None, None), "instants no call can have");
    }

    #[test]
    fn other_message_types_are_recognised_and_non_messages_refused() {
        assert!(
            matches!(VapiMessage::parse(&json!({"message": {"type": "status-update"}})), Ok(VapiMessage::Other(k)) if k == "status-update")
        );
        assert!(VapiMessage::parse(&json!({"type": "tool-calls"})).is_err());
    }
}
