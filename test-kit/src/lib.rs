//! What the workspace's tests share, kept out of the products: a throwaway database per test on
//! SQLite or PostgreSQL ([`TestDatabase`]), the booking service started in-process on one
//! ([`spawn_app`]), a headless browser ([`browser::Browser`]), and from `local-peers` a mailbox that
//! speaks SMTP ([`smtp::SmtpSink`]), an HTTP endpoint ([`http::HttpSink`]) and a stand-in for
//! Twilio's Messages API ([`twilio::FakeTwilio`]); and a server that never answers
//! ([`silent_server`]).
//!
//! A dev-dependency only. `booking-service` uses it too, for the store's unit tests that need a
//! database of each kind: they get a second build of `booking-service` through this crate, which
//! is harmless because they take nothing from the kit but a database URL.

mod app;
pub mod browser;
mod database;

pub use app::{spawn_app, spawn_app_with, spawn_on, token, TestApp, TestOrg, SECRET};
pub use database::{postgres_admin_url, Backend, TestDatabase};
pub use local_peers::{http, proxy, smtp, twilio};

/// A server that takes every connection and never answers (a hung endpoint or target): its
/// `http://` base URL, and the task holding the connections, which aborting lets go.
pub async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    (url, held)
}
