//! What the booking service and its clients agree on: the JSON on the wire (`api`), the JWT claims
//! and how to mint them (`auth`), and a typed HTTP client over both (`client`).

pub mod api;
pub mod auth;
pub mod client;

pub use auth::{Claims, Role};
pub use client::{ApiClient, ClientError, ClientResult};
