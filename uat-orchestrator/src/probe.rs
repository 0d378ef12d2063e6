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

    /// Sends while the database is deliberately unreachable: 503s there are expected, so they do
    /// not count as server errors (nor their latency).
    pub async fn send_during_outage(&self, label: &str, request: RequestBuilder) -> Result<Reply, String> {
        self.send_inner(label, request, Counted::Nothing).await
    }

    async fn send_inner(&self, label: &str, request: RequestBuilder, counted: Counted) -> Result<Reply, String> {
        let counts = counted != Counted::Nothing;
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
                if counts && status >= 500 {
                    tally.server_errors.push(format!("{label}: HTTP {status}"));
                }
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Ok(Reply { status, body, latency })
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
    /// Nothing: a request during the deliberate outage.
    Nothing,
}
