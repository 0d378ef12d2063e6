//! The six tools in Vapi's function-tool format, ready to paste into an assistant.

use serde_json::{json, Value};

fn tool(
    name: &str,
    description: &str,
    properties: Value,
    required: &[&str],
    start_message: &str,
) -> Value {
    json!({
        "type": "function",
        "async": false,
        "function": {
            "name": name,
            "description": description,
            "parameters": { "type": "object", "properties": properties, "required": required }
        },
        "messages": [
            { "type": "request-start", "content": start_message },
            { "type": "request-response-delayed", "content": "Sorry, this is taking a few more seconds.", "timingMilliseconds": 3000 }
        ]
    })
}

pub fn tool_definitions() -> Value {
    let provider = json!({
        "provider_id": { "type": "string", "description": "The provider's id from list_providers, if known." },
        "provider_name": { "type": "string", "description": "The provider's name as the caller said it, e.g. \"Dr. Smith\"." }
    });
    let date = json!({ "type": "string", "description": "Local date in the clinic's time zone, YYYY-MM-DD." });
    let time = json!({ "type": "string", "description": "Local time, 24-hour HH:MM, e.g. 14:00 for 2 PM." });
    let code = json!({ "type": "string", "description": "The six-character confirmation code the caller reads out." });
    let mut availability = provider.clone();
    availability["date"] = date.clone();
    let mut booking = provider;
    booking["appointment_date"] = date.clone();
    booking["appointment_time"] = time.clone();
    booking["duration_minutes"] = json!({ "type": "integer", "description": "Length in minutes (5 to 480); the provider's usual length if omitted." });
    booking["patient_name"] =
        json!({ "type": "string", "description": "The patient's full name." });
    booking["patient_email"] = json!({ "type": "string", "description": "Email address for the confirmation link, if the caller gives one." });
    booking["notes"] = json!({ "type": "string", "description": "Reason for the visit or anything the clinic should know." });
    json!([
        tool("list_providers", "Lists the providers (doctors) the caller can book with.", json!({}), &[], "Let me see who is available."),
        tool(
            "check_availability",
            "Finds a provider's free appointment times on one day.",
            availability,
            &["date"],
            "Let me check the schedule."
        ),
        tool(
            "book_appointment",
            "Books an appointment for the caller. The caller's phone number is taken from the call.",
            booking,
            &["appointment_date", "appointment_time", "patient_name"],
            "One moment while I book that."
        ),
        tool(
            "find_appointments",
            "Lists the caller's upcoming appointments, found by the number they are calling from.",
            json!({}),
            &[],
            "Let me look up your appointments."
        ),
        tool(
            "cancel_appointment",
            "Cancels one of the caller's appointments by its confirmation code.",
            json!({ "confirmation_code": code.clone() }),
            &["confirmation_code"],
            "One moment while I cancel that."
        ),
        tool(
            "reschedule_appointment",
            "Moves one of the caller's appointments to a new date and time.",
            json!({ "confirmation_code": code, "appointment_date": date, "appointment_time": time }),
            &["confirmation_code", "appointment_date", "appointment_time"],
            "One moment while I move that."
        ),
    ])
}
