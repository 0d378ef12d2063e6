//! Vapi's server messages, read leniently: everything under `message`; tool calls from
//! `toolCallList`, else `toolCalls`, else `toolWithToolCallList[].toolCall`, de-duplicated by id;
//! the name from `function.name` or `name`; arguments from `function.arguments`, `arguments` or
//! `parameters`, each an object or a JSON string. Unknown fields are ignored.

use crate::domain::PhoneNumber;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// One message Vapi posts to the server URL.
#[derive(Debug)]
pub enum VapiMessage {
    ToolCalls(ToolCalls),
    /// Any other message type (`status-update`, `end-of-call-report`, …): nothing to answer.
    Other(String),
}

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

impl VapiMessage {
    /// Reads a server message; `Err` names what is missing when the body is not one.
    pub fn parse(body: &Value) -> Result<Self, String> {
        let message = body
            .get("message")
            .filter(|m| m.is_object())
            .ok_or("message: a Vapi server message is an object under \"message\"")?;
        let kind = message.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != "tool-calls" {
            return Ok(Self::Other(kind.to_owned()));
        }
        let caller = [&message["call"]["customer"]["number"], &message["customer"]["number"]]
            .into_iter()
            .filter_map(Value::as_str)
            .find_map(|n| PhoneNumber::parse("caller", n).ok());
        let call_id = message["call"]["id"].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(Self::ToolCalls(ToolCalls { calls: tool_calls(message), caller, call_id }))
    }
}

fn tool_calls(message: &Value) -> Vec<ToolCall> {
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
    let mut calls: Vec<ToolCall> = Vec::with_capacity(listed.len());
    // A set, not a scan of `calls`: a message may list thousands of calls before it is refused.
    let mut seen = HashSet::with_capacity(listed.len());
    for raw in listed {
        let Some(id) = raw["id"].as_str().filter(|id| !id.is_empty()) else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let name = raw["function"]["name"].as_str().or_else(|| raw["name"].as_str()).unwrap_or_default();
        let arguments = [&raw["function"]["arguments"], &raw["arguments"], &raw["parameters"]]
            .into_iter()
            .find(|a| !a.is_null())
            .map_or_else(|| Ok(Map::new()), arguments);
        calls.push(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments });
    }
    calls
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
            VapiMessage::Other(kind) => panic!("not tool calls: {kind}"),
        }
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
    }

    #[test]
    fn other_message_types_are_recognised_and_non_messages_refused() {
        assert!(
            matches!(VapiMessage::parse(&json!({"message": {"type": "status-update"}})), Ok(VapiMessage::Other(k)) if k == "status-update")
        );
        assert!(VapiMessage::parse(&json!({"type": "tool-calls"})).is_err());
    }
}
