//! A stand-in for Twilio's Messages API, speaking real HTTP on an [`HttpSink`]: it answers
//! `POST /2010-04-01/Accounts/{sid}/Messages.json` as Twilio does (basic auth `sid:token`, form
//! fields `To`, `From`, `Body`; 201 with the message's JSON, Twilio's error bodies otherwise), keeps
//! every request, can fail the next ones with 500 to exercise retries, and refuses a phone that
//! opted out of a sender (error 21610), as Twilio's own STOP list does. [`sign`] signs an
//! inbound request the way Twilio does, written apart from the service's own check so that each
//! tests the other.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use local_peers::twilio::FakeTwilio;
//! let twilio = FakeTwilio::start("AC0123", "token").await?;
//! let base = twilio.base_url(); // for TWILIO_API_BASE
//! let sent = twilio.wait_for(1, std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use crate::http::{Answer, HttpSink, ReceivedRequest};
use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message as Twilio's API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub to: String,
    pub from: String,
    pub body: String,
}

/// A running fake; it stops when dropped.
pub struct FakeTwilio {
    sink: HttpSink,
    /// How many of the next well-formed, authenticated requests to fail.
    failures: Arc<AtomicU32>,
    /// (From, To) pairs whose phone opted out at Twilio: sending is refused with error 21610.
    opted_out: Arc<Mutex<HashSet<(String, String)>>>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio").field("url", &self.sink.url()).finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Listens on a free port of 127.0.0.1 for the account `account_sid`, whose API password is
    /// `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), account_sid, auth_token).await
    }

    /// The same on `address`.
    pub async fn start_on(address: SocketAddr, account_sid: &str, auth_token: &str) -> std::io::Result<Self> {
        let messages = format!("/2010-04-01/Accounts/{account_sid}/Messages.json");
        let authorization = format!("Basic {}", STANDARD.encode(format!("{account_sid}:{auth_token}")));
        let (sid, sent) = (account_sid.to_owned(), AtomicU64::new(0));
        let failures = Arc::new(AtomicU32::new(0));
        let opted_out = Arc::new(Mutex::new(HashSet::new()));
        let (fail, blocked) = (failures.clone(), opted_out.clone());
        let sink = HttpSink::answering_on(address, move |request| {
            answer(request, &messages, &authorization, &sid, &sent, &fail, &blocked)
        })
        .await?;
        Ok(Self { sink, failures, opted_out })
    }

    /// `http://127.0.0.1:PORT`, for `TWILIO_API_BASE`.
    pub fn base_url(&self) -> String {
        self.sink.url()
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<SentSms> {
        self.sink.taken().iter().filter_map(sent).collect()
    }

    /// Answers the next `count` well-formed, authenticated requests with Twilio's 500, as Twilio
    /// does when it is in trouble.
    pub fn fail_next(&self, count: u32) {
        self.failures.store(count, Ordering::Relaxed);
    }

    /// Keeps `to` opted out of SMS from `from`, as Twilio does when the phone texts it STOP (also
    /// before anyone else hears of it): sending is then refused with 400 and error 21610.
    pub fn opt_out(&self, from: &str, to: &str) {
        self.opted_out.lock().unwrap_or_else(|e| e.into_inner()).insert((from.to_owned(), to.to_owned()));
    }

    /// Waits until at least `count` messages were accepted and returns them all, or returns what
    /// was accepted when `timeout` passes first (`Err`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Result<Vec<SentSms>, Vec<SentSms>> {
        let messages: Vec<SentSms> = self.sink.wait_for(count, timeout).await.iter().filter_map(sent).collect();
        if messages.len() >= count {
            Ok(messages)
        } else {
            Err(messages)
        }
    }
}

/// The `X-Twilio-Signature` Twilio sends with a POST of the form `params` to `url`: base64 of the
/// HMAC-SHA1, keyed with the auth token, of the URL and each parameter's name and value, sorted.
pub fn sign(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A message the fake accepted.
fn sent(request: &ReceivedRequest) -> Option<SentSms> {
    Some(SentSms { to: request.form("To")?, from: request.form("From")?, body: request.form("Body")? })
}

/// Twilio's error body.
fn error(status: StatusCode, code: u32, message: &str) -> Answer {
    let body = json!({ "code": code, "message": message, "status": status.as_u16() });
    (status, "application/json", body.to_string())
}

/// What Twilio answers `request`: the route, then the account's credentials, then the form; a
/// failure on demand.
fn answer(
    request: &ReceivedRequest,
    messages: &str,
    authorization: &str,
    sid: &str,
    sent: &AtomicU64,
    failures: &AtomicU32,
    opted_out: &Mutex<HashSet<(String, String)>>,
) -> Answer {
    if request.method != "POST" || request.path != messages {
        return error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found");
    }
    if request.header("authorization") != Some(authorization) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let is_form = request
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return error(StatusCode::BAD_REQUEST, 21601, "The request is not a form");
    }
    let field = |name: &str| request.form(name).filter(|v| !v.is_empty());
    let (Some(to), Some(from), Some(body)) = (field("To"), field("From"), field("Body")) else {
        return error(StatusCode::BAD_REQUEST, 21604, "A 'To', 'From' and 'Body' are required.");
    };
    if !to.starts_with('+') {
        return error(StatusCode::BAD_REQUEST, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    if opted_out.lock().unwrap_or_else(|e| e.into_inner()).contains(&(from.clone(), to.clone())) {
        return error(StatusCode::BAD_REQUEST, 21610, "Attempt to send to unsubscribed recipient");
    }
    if failures.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error");
    }
    let n = sent.fetch_add(1, Ordering::Relaxed);
    let answer = json!({
        "sid": format!("SM{n:032x}"), "account_sid": sid, "to": to, "from": from, "body": body,
        "status": "queued", "num_segments": "1", "direction": "outbound-api", "error_code": null, "error_message": null,
    });
    (StatusCode::CREATED, "application/json", answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's documented example (auth token 12345).
    #[test]
    fn signs_like_twilios_documented_example() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ];
        assert_eq!(
            sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[tokio::test]
    async fn it_takes_only_the_accounts_authenticated_forms() {
        let twilio = FakeTwilio::start("AC1", "secret").await.expect("a fake");
        let client = reqwest::Client::new();
        let url = format!("{}/2010-04-01/Accounts/AC1/Messages.json", twilio.base_url());
        let post = |password: &'static str, form: &'static [(&'static str, &'static str)]| {
            client.post(&url).basic_auth("AC1", Some(password)).form(form).send()
        };
        let full = &[("To", "+15550002000"), ("From", "+15550001000"), ("Body", "hi")];
        assert_eq!(post("wrong", full).await.expect("sent").status(), 401);
        assert_eq!(post("secret", &[("To", "+15550002000")]).await.expect("sent").status(), 400);
        let created = post("secret", full).await.expect("sent");
        assert_eq!(created.status(), 201);
        let body: serde_json::Value = created.json().await.expect("JSON");
        assert!(body["sid"].as_str().is_some_and(|s| s.starts_with("SM")), "{body}");
        let other = client.post(url.replace("AC1", "AC2")).basic_auth("AC1", Some("secret")).form(full).send();
        assert_eq!(other.await.expect("sent").status(), 404);
        let sent = twilio.wait_for(1, Duration::from_secs(5)).await.expect("one message");
        assert_eq!(sent, [SentSms { to: "+15550002000".into(), from: "+15550001000".into(), body: "hi".into() }]);
    }
}
