//! The six tools in Vapi's function-tool format, ready to paste into an assistant. Each tool's
//! entry is chosen by an exhaustive match on [`Tool`], so a new tool cannot be left undescribed.

use super::Tool;
use serde_json::{json, Value};

pub fn tool_definitions() -> Value {
    Value::Array(Tool::ALL.into_iter().map(definition).collect())
}

fn definition(tool: Tool) -> Value {
    let provider = json!({
        "provider_id": { "type": "string", "description": format!("The provider's id from {}, if known.", Tool::ListProviders.name()) },
        "provider_name": { "type": "string", "description": "The provider's name as the caller said it, e.g. \"Dr. Smith\"." }
    });
    let date = json!({ "type": "string", "description": "Local date in the clinic's time zone, YYYY-MM-DD." });
    let time = json!({ "type": "string", "description": "Local time, 24-hour HH:MM, e.g. 14:00 for 2 PM." });
    let code = json!({ "type": "string", "description": "The six-character confirmation code the caller reads out." });
    let kind = json!({ "type": "string", "description": "The kind of visit as the caller names it, e.g. \"new patient visit\" or \"follow-up\" (or its id). Leave it out for a standard appointment; its length, buffers and notice then apply." });
    match tool {
        Tool::ListProviders => function(
            tool,
            "Lists the providers (doctors) the caller can book with.",
            json!({}),
            &[],
            "Let me see who is available.",
        ),
        Tool::CheckAvailability => {
            let mut properties = provider;
            properties["appointment_type"] = kind;
            properties["date"] = date;
            function(
                tool,
                "Finds a provider's free appointment times on one day.",
                properties,
                &["date"],
                "Let me check the schedule.",
            )
        }
        Tool::BookAppointment => {
            let mut properties = provider;
            properties["appointment_type"] = kind.clone();
            properties["appointment_date"] = date;
            properties["appointment_time"] = time;
            properties["duration_minutes"] = json!({ "type": "integer", "description": "Length in minutes (5 to 480); the provider's usual length if omitted. Ignored when appointment_type is given." });
            properties["patient_name"] = json!({ "type": "string", "description": "The patient's full name." });
            properties["patient_email"] = json!({ "type": "string", "description": "Email address for the confirmation link, if the caller gives one." });
            properties["notes"] =
                json!({ "type": "string", "description": "Reason for the visit or anything the clinic should know." });
            function(
                tool,
                "Books an appointment for the caller. The caller's phone number is taken from the call.",
                properties,
                &["appointment_date", "appointment_time", "patient_name"],
                "One moment while I book that.",
            )
        }
        Tool::FindAppointments => function(
            tool,
            "Lists the caller's upcoming appointments, found by the number they are calling from.",
            json!({}),
            &[],
            "Let me look up your appointments.",
        ),
        Tool::CancelAppointment => function(
            tool,
            "Cancels one of the caller's appointments by its confirmation code.",
            json!({ "confirmation_code": code }),
            &["confirmation_code"],
            "One moment while I cancel that.",
        ),
        Tool::RescheduleAppointment => function(
            tool,
            "Moves one of the caller's appointments to a new date and time.",
            json!({ "confirmation_code": code, "appointment_type": kind, "appointment_date": date, "appointment_time": time }),
            &["confirmation_code", "appointment_date", "appointment_time"],
            "One moment while I move that.",
        ),
    }
}

/// `async: false`: Vapi must wait for the answer, or the assistant could confirm a booking
/// before it is written.
fn function(tool: Tool, description: &str, properties: Value, required: &[&str], start_message: &str) -> Value {
    json!({
        "type": "function",
        "async": false,
        "function": {
            "name": tool.name(),
            "description": description,
            "parameters": { "type": "object", "properties": properties, "required": required }
        },
        "messages": [
            { "type": "request-start", "content": start_message },
            { "type": "request-response-delayed", "content": "Sorry, this is taking a few more seconds.", "timingMilliseconds": 3000 }
        ]
    })
}
