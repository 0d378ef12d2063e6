//! The Vapi server URL (docs/API.md §4): Vapi's messages read the way Vapi really sends them, the
//! six tools run against the booking use cases, and every answer a single line an agent can speak.

mod definitions;
mod message;
mod signature;
mod speech;
mod tools;

pub use definitions::tool_definitions;
pub use message::{parse, Inbound, ToolCall, ToolCalls};
pub use signature::{SignatureCheck, SignatureError};
pub use tools::{answer, Outcome, ToolAnswer};
