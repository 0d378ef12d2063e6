//! The seven tools in Vapi's function-tool format, ready to paste into an assistant. Each tool's
//! entry is chosen by an exhaustive match on [`Tool`], so a new tool cannot be left undescribed.

use super::Tool;
use serde_json::{json, Value};

/// How every date argument is described: the caller's words are sent as said, and the backend
/// resolves them in the provider's time zone (else the clinic's), so the model never has to work
/// out a date or a year.
const DATE: &str = "The day as the caller said it, in English: \"today\", \"tomorrow\", a weekday such as \"friday\" or \"next friday\" (the nearest one after today: when the caller names today's weekday, ask whether they mean today, and send \"today\" if so), \"in 3 days\", \"January 15\", or \"the 15th\". Prefer the caller's own words. Only write YYYY-MM-DD when you are sure of it, counting from today's date {{today}} ({{weekday}}); never guess a year, and never send a date before today.";
/// How every time argument is described.
const TIME: &str =
    "The local time in digits, with AM or PM as the caller meant it: \"2 PM\", \"2:30 pm\", \"noon\", or 24-hour HH:MM such as 14:00. Write \"two thirty in the afternoon\" as \"2:30 PM\"; if the caller did not say which half of the day, ask.";

pub fn tool_definitions() -> Value {
    Value::Array(Tool::ALL.into_iter().map(definition).collect())
}

fn definition(tool: Tool) -> Value {
    let provider = json!({
        "provider_id": { "type": "string", "description": "The provider's id, only if the clinic's instructions give it; else provider_name." },
        "provider_name": { "type": "string", "description": "The provider's name as the caller said it, e.g. \"Dr. Smith\"." }
    });
    let date = json!({ "type": "string", "description": DATE });
    let time = json!({ "type": "string", "description": TIME });
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
            properties["date"] = json!({ "type": "string", "description": format!("{DATE} Leave it out to hear the earliest free times of the next two weeks.") });
            properties["appointment_time"] = json!({ "type": "string", "description": format!("{TIME} Only when the caller asks about one time (\"is 2 PM free?\"), with date: the answer says whether it is free, else the nearest free times that day.") });
            properties["time_window"] = json!({
                "type": "string",
                "enum": ["morning", "afternoon", "evening"],
                "description": "Only times in this part of the day, if the caller asked for one: morning (before noon), afternoon (noon to 5 PM) or evening (from 5 PM)."
            });
            function(
                tool,
                "Finds free appointment times: on one day, or the earliest ones when no day is given. Leave the provider out to search every provider of the clinic; each time then names its provider.",
                properties,
                &[],
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
            "Cancels one of the caller's appointments by its confirmation code. Without the code (few callers keep it), the answer lists the caller's appointments with their codes to ask which.",
            json!({ "confirmation_code": code }),
            &[],
            "One moment while I cancel that.",
        ),
        Tool::RescheduleAppointment => function(
            tool,
            "Moves one of the caller's appointments to a new date and time. Without the code (few callers keep it), the answer lists the caller's appointments with their codes to ask which.",
            json!({ "confirmation_code": code, "appointment_type": kind, "appointment_date": date, "appointment_time": time }),
            &["appointment_date", "appointment_time"],
            "One moment while I move that.",
        ),
        Tool::GetClinicInfo => function(
            tool,
            "Tells the clinic's name, today's date and the time there, and the opening hours. Use it whenever you are unsure what day it is.",
            json!({}),
            &[],
            "Let me check.",
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
