//! Real network peers that the tests and the acceptance tool stand up on 127.0.0.1: an SMTP
//! server and an HTTP server that keep what they receive (a mail server, a webhook endpoint),
//! Twilio's Messages API on that HTTP server, and a TCP proxy that can cut a database away.
//!
//! A crate of its own because two kinds of user need them: the tests (through `test-kit`), and the
//! acceptance tool, which uses them at run time.

pub mod http;
pub mod proxy;
pub mod smtp;
pub mod twilio;
