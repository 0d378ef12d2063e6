//! The booking service as a library: `main.rs` only parses the configuration and calls
//! [`startup::Application`], so tests and the test tools start the very same service in-process.

pub mod booking;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod links;
pub mod mail;
pub mod migrate;
pub mod outbox;
pub mod retention;
pub mod server;
pub mod sms;
pub mod spool;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod vapi;
pub mod webhooks;
