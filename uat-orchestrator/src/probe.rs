//! Every request of the run goes through here, so its status and any transport error count toward
//! the verdict, and, but for the run's own arranging of clinics and providers, its latency.

use hdrhistogram::Histogram;
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use shared::ApiClient;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latencies above this force NO-GO.
pub const SLOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub latency: Duration,
}

impl Reply {
    /// The API's error code, if the body is an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Tally {
    /// Microseconds, three significant figures.
    pub latencies: Histogram<u64>,
    pub server_errors: Vec<String>,
    pub transport_errors: Vec<String>,
    pub slow: Vec<String>,
}

/// Builds requests with the shared client (without a token: each request carries its own) and
/// sends them itself, because it keeps every answer, not only what the typed methods decode.
#[derive(Clone)]
pub struct Probe {
    api: ApiClient,
    tally: Arc<Mutex<Tally>>,
}

impl Probe {
    pub fn new(base: &str) -> Self {
        Self {
            api: ApiClient::new(base),
            tally: Arc::new(Mutex::new(Tally {
                latencies: Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds are valid"),
                server_errors: Vec::new(),
                transport_errors: Vec::new(),
                slow: Vec::new(),
            })),
        }
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.api.request(method, path);
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// A request to an absolute URL (such as a link from an email).
    pub fn request_url(&self, method: Method, url: &str) -> RequestBuilder {
        self.api.http().request(method, url)
    }

    /// Sends and records. `Err` is a transport error (already counted).
    pub async fn send(&self, label: &str, request: RequestBuilder) -> Result<Reply, String> {
        self.send_inner(label, request, Counted::Everything).await
    }

    /// Sends one of the run's own arrangements (creating and removing its clinics and providers):
    /// a server or transport error counts, its latency does not, so the p95 judged is the
    /// scenarios' requests', not an organization's deletion.
    pub async fn send_arranging(&self, label: &str, request: RequestBuilder) -> Result<Reply, String> {
        self.send_inner(label, request, Counted::Errors).await
    }

    /// Sends while the database is deliberately unreachable, or just back: a 503 `unavailable` is
    /// expected there, so it does not count as a server error (nor does any latency); any other
    /// 5xx does (the contract: a lost database is 503, never 500).
    pub async fn send_during_outage(&self, label: &str, request: RequestBuilder) -> Result<Reply, String> {
        self.send_inner(label, request, Counted::OtherServerErrors).await
    }

    /// Sends what the verdict does not judge: the wait for `/readyz` before the run (a target not
    /// ready yet answers 503), the check of the credentials, the clean-up after an interruption.
    pub async fn send_uncounted(&self, label: &str, request: RequestBuilder) -> Result<Reply, String> {
        self.send_inner(label, request, Counted::Nothing).await
    }

    async fn send_inner(&self, label: &str, request: RequestBuilder, counted: Counted) -> Result<Reply, String> {
        let counts = matches!(counted, Counted::Everything | Counted::Errors);
        let started = Instant::now();
        let outcome = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let latency = started.elapsed();
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok((status, bytes)) => {
                if counted == Counted::Everything {
                    let _ = tally.latencies.record((latency.as_micros() as u64).max(1));
                    if latency > SLOW {
                        tally.slow.push(format!("{label}: {} ms", latency.as_millis()));
                    }
                }
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reply = Reply { status, body, latency };
                let unavailable = status == 503 && reply.code() == "unavailable";
                let excused = counted == Counted::Nothing || (counted == Counted::OtherServerErrors && unavailable);
                if status >= 500 && !excused {
                    tally.server_errors.push(format!("{label}: HTTP {status} {}", reply.code()));
                }
                Ok(reply)
            }
            Err(e) => {
                let why = format!("{label}: {}", shared::client::with_causes(&e));
                if counts {
                    tally.transport_errors.push(why.clone());
                }
                Err(why)
            }
        }
    }

    pub fn snapshot(&self) -> Tally {
        let tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        Tally {
            latencies: tally.latencies.clone(),
            server_errors: tally.server_errors.clone(),
            transport_errors: tally.transport_errors.clone(),
            slow: tally.slow.clone(),
        }
    }
}

/// What of a request goes into the run's tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// Its latency, server and transport errors: a scenario's request.
    Everything,
    /// Its server and transport errors only: the run's own arranging.
    Errors,
    /// Server errors other than 503 `unavailable`: a request during the deliberate outage.
    OtherServerErrors,
    /// Nothing: a request the verdict does not judge.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{http::StatusCode, routing::get, Json, Router};

    /// During an outage a 503 `unavailable` is the contract's answer and not counted; a 500 (or a
    /// 503 of another kind) is a server error all the same, and the verdict hears of it.
    #[tokio::test]
    async fn an_outage_excuses_only_the_contracts_503() {
        let error = |status: StatusCode, code: &'static str| {
            move || async move { (status, Json(serde_json::json!({"error": {"code": code, "message": "m"}}))) }
        };
        let site = Router::new()
            .route("/unavailable", get(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable")))
            .route("/internal", get(error(StatusCode::INTERNAL_SERVER_ERROR, "internal")))
            .route("/other", get(error(StatusCode::SERVICE_UNAVAILABLE, "rate_limited")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, site).await });
        let probe = Probe::new(&base);
        for path in ["/unavailable", "/internal", "/other"] {
            let reply = probe.send_during_outage(path, probe.request(Method::GET, path, None)).await;
            assert!(reply.is_ok_and(|r| r.status >= 500), "{path}");
        }
        let tally = probe.snapshot();
        assert_eq!(tally.server_errors, ["/internal: HTTP 500 internal", "/other: HTTP 503 rate_limited"]);
        assert_eq!(tally.latencies.len(), 0, "no latency of an outage is judged");
        // Before the run (a target not ready yet), nothing counts.
        let reply = probe.send_uncounted("/internal", probe.request(Method::GET, "/internal", None)).await;
        assert!(reply.is_ok_and(|r| r.status == 500));
        assert_eq!(probe.snapshot().server_errors.len(), 2);
    }
}
