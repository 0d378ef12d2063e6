//! The Vapi server URL (docs/API.md §4): Vapi's messages read the way Vapi really sends them, the
//! seven tools run against the booking use cases, and every answer a single line an agent can speak.

pub(crate) mod clinic;
mod definitions;
mod server_message;
mod signature;
mod speech;
mod tools;

pub use clinic::{assistant_variables, clinic_opening_hours, opening_hours};
pub use definitions::tool_definitions;
pub use server_message::{ToolCall, ToolCalls, VapiMessage};
pub use signature::{SignatureCheck, SignatureError};
pub use tools::{answer, Tool, ToolAnswer, ToolOutcome};
