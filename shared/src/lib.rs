//! What the booking service and its clients agree on: the JSON on the wire (`api`), the JWT claims
//! and how to mint them (`auth`), and a typed HTTP client over both (`client`); for the test
//! tools, how their flags read durations (`duration`), and with the feature `tools` how their
//! report files are written (`report_file`) and how they learn they are being stopped
//! (`interrupt`).

pub mod api;
pub mod auth;
pub mod client;
pub mod duration;
#[cfg(any(test, feature = "tools"))]
pub mod interrupt;
#[cfg(any(test, feature = "tools"))]
pub mod report_file;

pub use auth::{Claims, Role, Signer};
pub use client::{ApiClient, ClientError, ClientResult};
