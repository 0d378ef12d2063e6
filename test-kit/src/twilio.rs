//! A stand-in for Twilio's Messages API on 127.0.0.1, speaking real HTTP: it answers
//! `POST /2010-04-01/Accounts/{sid}/Messages.json` as Twilio does (basic auth `sid:token`, form
//! fields `To`, `From`, `Body`; 201 with the message's JSON), keeps every message it accepts, and
//! can be told to fail the next requests with 500 to exercise retries. [`sign`] signs an inbound
//! request the way Twilio does, written apart from the service's own check so each tests the other.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use test_kit::twilio::FakeTwilio;
//! let twilio = FakeTwilio::start("AC0123", "token").await?;
//! let base = twilio.base_url(); // for TWILIO_API_BASE
//! let sent = twilio.wait_for(1, std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One message as Twilio's API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub to: String,
    pub from: String,
    pub body: String,
}

struct Shared {
    account_sid: String,
    auth_token: String,
    messages: Mutex<Vec<SentSms>>,
    failures: Mutex<usize>,
    requests: Mutex<usize>,
    arrived: Notify,
}

/// A running fake; it stops when dropped.
pub struct FakeTwilio {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio").field("address", &self.address).finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Listens on a free port of 127.0.0.1 for the account `account_sid`, whose API password is
    /// `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            messages: Mutex::default(),
            failures: Mutex::default(),
            requests: Mutex::default(),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, shared, task })
    }

    /// `http://127.0.0.1:PORT`, for `TWILIO_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<SentSms> {
        lock(&self.shared.messages).clone()
    }

    /// Every request that reached the Messages route, accepted or not.
    pub fn requests(&self) -> usize {
        *lock(&self.shared.requests)
    }

    /// Answers the next `count` well-formed, authenticated requests with 500, as Twilio does when
    /// it is in trouble.
    pub fn fail_next(&self, count: usize) {
        *lock(&self.shared.failures) = count;
    }

    /// Waits until at least `count` messages were accepted and returns them all, or returns what
    /// was accepted when `timeout` passes first (`Err`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Result<Vec<SentSms>, Vec<SentSms>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return Ok(messages);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(self.messages());
            }
        }
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.task.abort();
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Twilio's error body.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message, "status": status.as_u16() }))).into_response()
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    *lock(&shared.requests) += 1;
    let expected = format!("Basic {}", STANDARD.encode(format!("{}:{}", shared.account_sid, shared.auth_token)));
    let authorized = headers.get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if sid != shared.account_sid || !authorized {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Ok(Form(form)) = form else {
        return error(StatusCode::BAD_REQUEST, 21601, "The request is not a form");
    };
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty()).cloned();
    let (Some(to), Some(from), Some(body)) = (field("To"), field("From"), field("Body")) else {
        return error(StatusCode::BAD_REQUEST, 21604, "A 'To', 'From' and 'Body' are required.");
    };
    {
        let mut failures = lock(&shared.failures);
        if *failures > 0 {
            *failures -= 1;
            return error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error");
        }
    }
    let message_sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let answer = json!({
        "sid": message_sid, "account_sid": sid, "to": to, "from": from, "body": body, "status": "queued",
        "num_segments": "1", "direction": "outbound-api", "error_code": null, "error_message": null,
    });
    lock(&shared.messages).push(SentSms { to, from, body });
    shared.arrived.notify_waiters();
    (StatusCode::CREATED, Json(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use super::sign;

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
}
