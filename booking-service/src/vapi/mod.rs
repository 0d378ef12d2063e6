//! The Vapi server URL (docs/API.md §4): Vapi's messages read the way Vapi really sends them, the
//! seven tools run against the booking use cases, and every answer a single line an agent can speak.

mod clinic;
mod definitions;
mod server_message;
mod signature;
mod speech;
mod tools;

pub use clinic::opening_hours;
pub use definitions::tool_definitions;
pub use server_message::{CallReport, ToolCall, ToolCalls, VapiMessage};
pub use signature::{SignatureCheck, SignatureError};
pub use speech::assistant_variables;
pub use tools::{answer, calls_run, Tool, ToolAnswer, ToolOutcome, TOOL_KEYS};
