//! An HTTP server on 127.0.0.1 that keeps every request it gets and answers what it is told: the
//! stand-in for a clinic's webhook endpoint, and what [`crate::twilio::FakeTwilio`] is built on.
//! It can fail its next requests with 500 to exercise retries.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use local_peers::http::HttpSink;
//! let hooks = HttpSink::start().await?;
//! let url = format!("{}/hook", hooks.url()); // http://127.0.0.1:PORT/hook
//! let got = hooks.wait_for(1, std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request as received, and what it was answered.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered: 2xx taken, 500 refused on purpose.
    pub status: u16,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The headers as `http` keeps them, for libraries that check a request's headers.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                map.append(name, value);
            }
        }
        map
    }

    /// The value of a field of an `application/x-www-form-urlencoded` body.
    pub fn form(&self, field: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body).find(|(k, _)| k == field).map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn taken(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<ReceivedRequest>>,
    failures: Mutex<u32>,
    arrived: Notify,
}

/// A running sink; it stops when dropped.
pub struct HttpSink {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a sink answers a request it does not refuse on purpose: status, content type, body.
pub type Answer = (StatusCode, &'static str, String);

impl HttpSink {
    /// A sink answering every request `204 No Content` (a webhook endpoint).
    pub async fn start() -> std::io::Result<Self> {
        Self::answering(|_| (StatusCode::NO_CONTENT, "text/plain", String::new())).await
    }

    /// A sink on a free port of 127.0.0.1 answering each request (its `status` not yet set) with
    /// `answer`.
    pub async fn answering(
        answer: impl Fn(&ReceivedRequest) -> Answer + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::answering_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), answer).await
    }

    /// The same on `address`, e.g. one a remote service can reach.
    pub async fn answering_on(
        address: SocketAddr,
        answer: impl Fn(&ReceivedRequest) -> Answer + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (shared, answer) = (state.clone(), answer.clone());
            async move {
                let refuse = {
                    let mut failures = shared.failures.lock().unwrap_or_else(|e| e.into_inner());
                    let refuse = *failures > 0;
                    *failures = failures.saturating_sub(1);
                    refuse
                };
                let mut request = ReceivedRequest {
                    method: method.to_string(),
                    path: uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                        .collect(),
                    body: body.to_vec(),
                    status: 0,
                };
                let (status, content_type, text) = if refuse {
                    (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "refused on purpose".to_owned())
                } else {
                    answer(&request)
                };
                request.status = status.as_u16();
                shared.got.lock().unwrap_or_else(|e| e.into_inner()).push(request);
                shared.arrived.notify_waiters();
                (status, [("content-type", content_type)], text)
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, shared, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Answers the next `n` requests 500.
    pub fn fail_next(&self, n: u32) {
        *self.shared.failures.lock().unwrap_or_else(|e| e.into_inner()) = n;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The requests taken (answered 2xx) so far.
    pub fn taken(&self) -> Vec<ReceivedRequest> {
        self.requests().into_iter().filter(ReceivedRequest::taken).collect()
    }

    /// Waits until `count` requests were taken, or `timeout`; returns those taken by then.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        self.wait_until(|taken| taken.len() >= count, timeout).await
    }

    /// Waits until the requests taken satisfy `done`, or `timeout`; returns those taken by then.
    pub async fn wait_until(
        &self,
        done: impl Fn(&[ReceivedRequest]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let taken = self.taken();
            if done(&taken) || tokio::time::Instant::now() >= deadline {
                return taken;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_keeps_requests_and_fails_on_demand() {
        let sink = HttpSink::answering(|r| (StatusCode::CREATED, "text/plain", format!("{} bytes", r.body.len())))
            .await
            .expect("a sink");
        sink.fail_next(1);
        let client = reqwest::Client::new();
        let post = || {
            client
                .post(format!("{}/2010-04-01/Accounts/AC1/Messages.json", sink.url()))
                .form(&[("To", "+15551234567"), ("Body", "hi")])
                .send()
        };
        assert_eq!(post().await.expect("sent").status(), 500);
        let answer = post().await.expect("sent");
        assert_eq!(answer.status(), 201);
        assert_eq!(answer.text().await.expect("body"), "25 bytes");
        let taken = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].form("To").as_deref(), Some("+15551234567"));
        assert_eq!(sink.requests().len(), 2);
    }
}
