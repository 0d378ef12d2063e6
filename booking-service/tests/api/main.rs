//! One test binary: the real service, started in-process on port 0, against a fresh database per
//! test. Every story runs on the SQLite default and on PostgreSQL.

#[macro_use]
mod helpers;

mod attendance;
mod audit;
mod auth;
mod booking;
mod browser;
mod concurrency;
mod dashboards;
mod docs;
mod email;
mod hardening;
mod idempotency;
mod limits;
mod manage;
mod migrate;
mod notifications;
mod ops;
mod organization;
mod outage;
mod paging;
mod providers;
mod retention;
mod schedule;
mod sms;
mod startup;
mod tenancy;
mod validation;
mod vapi;
mod vapi_clinic;
mod voice_time;
mod webhooks;
