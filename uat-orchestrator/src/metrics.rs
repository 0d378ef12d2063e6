//! The service's `/metrics` (Prometheus text format) read over a window: a small parser of the
//! sample lines, the increase of each counter between scrapes (surviving restarts), and the
//! figures the canary gate and the daily report judge.
//!
//! The metric names are the booking service's own: `http_requests_total` and
//! `http_request_duration_seconds` (labels `method`, `route`, `status`), `bookings_total`
//! (`outcome`) and `vapi_tool_calls_total` (`tool`, `outcome`).

use serde::{Deserialize, Serialize};
use shared::duration::seconds;
use std::collections::BTreeMap;
use std::time::Duration;

pub const REQUESTS: &str = "http_requests_total";
pub const LATENCY_BUCKETS: &str = "http_request_duration_seconds_bucket";
pub const BOOKINGS: &str = "bookings_total";
pub const TOOL_CALLS: &str = "vapi_tool_calls_total";
/// When the process started (a gauge): read to notice restarts, not counted.
pub const STARTED: &str = "process_start_time_seconds";
/// The booking route, as the `route` label names it.
pub const BOOKING_ROUTE: &str = "/api/vapi/booking";
/// Routes of the operations surface (probes and scrapes), left out of the traffic figures.
const OPERATIONS: [&str; 4] = ["/metrics", "/healthz", "/readyz", "/openapi.json"];

/// One sample line: `name{label="value",…} value [timestamp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Scrapes the metrics at `url` within `timeout`, bearing `token` (the service's `METRICS_TOKEN`)
/// when given.
pub async fn scrape(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Vec<Sample>, String> {
    let request = http.get(url).timeout(timeout);
    // An empty token (an unset CI secret) is no token.
    let request = match token.filter(|t| !t.is_empty()) {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.map_err(|e| format!("{url}: {}", shared::client::with_causes(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    parse(&text).map_err(|e| format!("{url} is not Prometheus text: {e}"))
}

/// Parses the sample lines of a Prometheus text exposition; comments (`# HELP`, `# TYPE`) and
/// blank lines are skipped. `Err` names the first line that is not a sample.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_line(line).map_err(|why| format!("line {}: {why}: {line}", number + 1))?);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err("not a metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let mut chars = inside.char_indices().peekable();
        loop {
            while chars.next_if(|(_, c)| c.is_whitespace() || *c == ',').is_some() {}
            let Some(&(start, c)) = chars.peek() else { return Err("unclosed label set") };
            if c == '}' {
                rest = &inside[start + 1..];
                break;
            }
            let mut key = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                key.push(c);
            }
            let key = key.trim().to_owned();
            if key.is_empty() || chars.next().is_none() || chars.next().map(|(_, c)| c) != Some('"') {
                return Err("a label is not name=\"value\"");
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("unclosed label value"),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err("unclosed label value"),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "the value is not a number")?,
    };
    Ok(Sample { name: name.to_owned(), labels, value })
}

type Series = (String, BTreeMap<String, String>);

/// How much each counter grew over a window of scrapes. A start time that changed, a counter that
/// went down, or a series that vanished, means the process restarted: every series then counts
/// from zero again (as Prometheus' `increase` does), so a restart in the window loses only what
/// happened between the last scrape before it and the restart.
#[derive(Debug, Default)]
pub struct Window {
    last: Option<BTreeMap<Series, f64>>,
    increase: BTreeMap<Series, f64>,
    /// Scrapes that answered.
    pub scrapes: u32,
    /// Restarts seen between scrapes.
    pub restarts: u32,
    /// Whether any scrape held the service's request counter.
    pub saw_service_metrics: bool,
}

impl Window {
    pub fn observe(&mut self, samples: Vec<Sample>) {
        let now: BTreeMap<Series, f64> = relevant(samples).into_iter().map(|s| ((s.name, s.labels), s.value)).collect();
        self.saw_service_metrics |= now.keys().any(|(name, _)| name == REQUESTS);
        if let Some(last) = &self.last {
            let restarted = last.iter().any(|(series, before)| match now.get(series) {
                // An instance without the gauge (an older release) says nothing by its absence. A
                // millisecond apart at least: a value read back from a report's JSON may differ in
                // its last bit.
                now if series.0 == STARTED => now.is_some_and(|v| (v - before).abs() >= 1e-3),
                now => now.is_none_or(|v| v < before),
            });
            self.restarts += u32::from(restarted);
            for (series, value) in now.iter().filter(|((name, _), _)| name != STARTED) {
                let grew = match last.get(series) {
                    Some(before) if !restarted => value - before,
                    // New since the last scrape (the exporter adds a series at its first event),
                    // or counting again from a restart.
                    _ => *value,
                };
                if grew > 0.0 {
                    *self.increase.entry(series.clone()).or_default() += grew;
                }
            }
        }
        self.last = Some(now);
        self.scrapes += 1;
    }

    /// The figures over the window (needs two scrapes to say anything).
    pub fn figures(&self) -> Figures {
        Figures::from_samples(self.increases())
    }

    /// How much each series grew over the window.
    pub fn increases(&self) -> impl Iterator<Item = Sample> + '_ {
        self.increase.iter().map(|((name, labels), value)| Sample {
            name: name.clone(),
            labels: labels.clone(),
            value: *value,
        })
    }
}

/// The samples the figures are made of (the service's request, latency, booking and tool-call
/// series), with finite values: what a report keeps to compare a later scrape with.
pub fn relevant(samples: Vec<Sample>) -> Vec<Sample> {
    samples
        .into_iter()
        .filter(|s| {
            [REQUESTS, LATENCY_BUCKETS, BOOKINGS, TOOL_CALLS, STARTED].contains(&s.name.as_str()) && s.value.is_finite()
        })
        .collect()
}

/// Traffic figures of one instance, from counter values (or their increase over a window).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Requests outside the operations routes (probes and scrapes).
    pub requests: u64,
    /// Of those, answered with a 5xx.
    pub server_errors: u64,
    /// `POST /api/vapi/booking` answered 2xx: booked (or a replay of a booking).
    pub bookings_succeeded: u64,
    /// Answered 409: the slot was taken or outside the working hours (offered alternatives), or
    /// the caller's limit was reached. The service did its job; not counted as an attempt.
    pub bookings_refused: u64,
    /// Any other answer: 4xx (validation, auth, unknown provider) or 5xx.
    pub bookings_failed: u64,
    /// `bookings_total` by `outcome` (booked, replayed, or the error code).
    pub booking_outcomes: BTreeMap<String, u64>,
    /// Voice-agent `book_appointment` tool calls answered with a result, and with an error
    /// (which is also how a taken slot is spoken: never counted as failures; the canary gate
    /// compares their share with the baseline's).
    pub voice_bookings: u64,
    pub voice_booking_errors: u64,
    /// `[upper bound in seconds, cumulative count]` of the request latency histogram, summed over
    /// the routes outside the operations ones; the last bound is `"+Inf"` in JSON.
    #[serde(serialize_with = "bounds_as_prometheus_writes_them")]
    pub latency_buckets: Vec<(f64, u64)>,
}

/// JSON has no infinity (serde would write `null`): the last bucket's bound is written `"+Inf"`.
fn bounds_as_prometheus_writes_them<S: serde::Serializer>(buckets: &[(f64, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(buckets.len()))?;
    for &(le, count) in buckets {
        if le.is_finite() {
            seq.serialize_element(&(le, count))?;
        } else {
            seq.serialize_element(&("+Inf", count))?;
        }
    }
    seq.end()
}

impl Figures {
    pub fn from_samples(samples: impl IntoIterator<Item = Sample>) -> Self {
        let mut f = Figures::default();
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let count = |v: f64| v.round().max(0.0) as u64;
        for s in samples {
            let operations = OPERATIONS.contains(&s.label("route"));
            match s.name.as_str() {
                REQUESTS if !operations => {
                    let status = s.label("status");
                    f.requests += count(s.value);
                    if status.starts_with('5') {
                        f.server_errors += count(s.value);
                    }
                    if s.label("route") == BOOKING_ROUTE && s.label("method") == "POST" {
                        match status.as_bytes().first() {
                            Some(b'2') => f.bookings_succeeded += count(s.value),
                            _ if status == "409" => f.bookings_refused += count(s.value),
                            _ => f.bookings_failed += count(s.value),
                        }
                    }
                }
                LATENCY_BUCKETS if !operations => {
                    let le = match s.label("le") {
                        "+Inf" => f64::INFINITY,
                        le => match le.parse::<f64>() {
                            Ok(v) => v,
                            Err(_) => continue,
                        },
                    };
                    // Keyed by the bound's bits, so equal bounds of different series add up.
                    buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
                }
                BOOKINGS => *f.booking_outcomes.entry(s.label("outcome").to_owned()).or_default() += count(s.value),
                TOOL_CALLS if s.label("tool") == "book_appointment" => match s.label("outcome") {
                    "result" => f.voice_bookings += count(s.value),
                    _ => f.voice_booking_errors += count(s.value),
                },
                _ => {}
            }
        }
        let mut bounds: Vec<(f64, f64)> = buckets.into_values().collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        f.latency_buckets = bounds.into_iter().map(|(le, c)| (le, count(c))).collect();
        f
    }

    /// Booking attempts the success rate counts: succeeded and failed (refusals left out).
    pub fn booking_attempts(&self) -> u64 {
        self.bookings_succeeded + self.bookings_failed
    }

    /// Every answer of the booking route: succeeded, refused and failed.
    pub fn booking_requests(&self) -> u64 {
        self.booking_attempts() + self.bookings_refused
    }

    /// Percent of booking attempts that succeeded; `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        let attempts = self.booking_attempts();
        (attempts > 0).then(|| self.bookings_succeeded as f64 * 100.0 / attempts as f64)
    }

    /// Percent of requests answered with a 5xx; `None` without requests.
    pub fn server_error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.server_errors as f64 * 100.0 / self.requests as f64)
    }

    /// The 95th percentile latency, interpolated within its histogram bucket as Prometheus'
    /// `histogram_quantile` does; `None` without requests.
    pub fn p95(&self) -> Option<Duration> {
        quantile(&self.latency_buckets, 0.95)
    }
}

/// The `q` quantile of cumulative buckets `[upper bound, count]`. Within a bucket it assumes an
/// even spread; in the last (`+Inf`) bucket it answers the highest finite bound.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<Duration> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(upper, cumulative) in buckets {
        if cumulative as f64 >= rank {
            if !upper.is_finite() {
                return Some(seconds(lower));
            }
            let within = (cumulative - below).max(1) as f64;
            return Some(seconds(lower + (upper - lower) * ((rank - below as f64) / within).clamp(0.0, 1.0)));
        }
        (lower, below) = (upper, cumulative);
    }
    Some(seconds(lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# TYPE http_requests_total counter
http_requests_total{method="POST",route="/api/vapi/booking",status="201"} 90
http_requests_total{method="POST",route="/api/vapi/booking",status="409"} 5
http_requests_total{method="POST",route="/api/vapi/booking",status="503"} 10
http_requests_total{method="GET",route="/metrics",status="200"} 7
bookings_total{outcome="booked"} 90
bookings_total{outcome="slot_unavailable"} 5
vapi_tool_calls_total{tool="book_appointment",outcome="error"} 2
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="POST",route="/api/vapi/booking",status="201",le="0.01"} 80
http_request_duration_seconds_bucket{method="POST",route="/api/vapi/booking",status="201",le="0.1"} 90
http_request_duration_seconds_bucket{method="POST",route="/api/vapi/booking",status="201",le="+Inf"} 90
http_request_duration_seconds_bucket{method="POST",route="/api/vapi/booking",status="503",le="0.01"} 0
http_request_duration_seconds_bucket{method="POST",route="/api/vapi/booking",status="503",le="0.1"} 0
http_request_duration_seconds_bucket{method="POST",route="/api/vapi/booking",status="503",le="+Inf"} 15
http_request_duration_seconds_sum{method="POST",route="/api/vapi/booking",status="201"} 1.5
odd{path="C:\\dir, \"quoted\"",x="a}b"} 1 1700000000000
"#;

    #[test]
    fn samples_with_escaped_labels_and_timestamps_are_read() {
        let samples = parse(EXPOSITION).expect("parses");
        let odd = samples.iter().find(|s| s.name == "odd").expect("odd");
        assert_eq!(odd.label("path"), "C:\\dir, \"quoted\"");
        assert_eq!(odd.label("x"), "a}b");
        assert_eq!(odd.value, 1.0);
        assert!(parse("metric{a=\"b\" 1").is_err());
        assert!(parse("metric{a=b} 1").is_err());
        assert!(parse("metric").is_err());
    }

    #[test]
    fn figures_split_bookings_and_leave_out_the_operations_routes() {
        let f = Figures::from_samples(parse(EXPOSITION).expect("parses"));
        assert_eq!(f.requests, 105);
        assert_eq!(f.server_errors, 10);
        assert_eq!((f.bookings_succeeded, f.bookings_refused, f.bookings_failed), (90, 5, 10));
        assert_eq!(f.success_rate().map(|r| (r * 10.0).round()), Some(900.0));
        assert_eq!(f.booking_outcomes["slot_unavailable"], 5);
        assert_eq!(f.voice_booking_errors, 2);
        assert_eq!(f.latency_buckets, vec![(0.01, 80), (0.1, 90), (f64::INFINITY, 105)]);
        let json = serde_json::to_value(&f).expect("serializes");
        assert_eq!(json["latency_buckets"], serde_json::json!([[0.01, 80], [0.1, 90], ["+Inf", 105]]));
        // Rank 99.75 of 105 falls in the +Inf bucket: the highest finite bound.
        assert_eq!(f.p95(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn the_quantile_is_interpolated_within_its_bucket() {
        let buckets = [(0.1, 50), (0.5, 100), (f64::INFINITY, 100)];
        let p95 = quantile(&buckets, 0.95).expect("p95").as_secs_f64();
        assert!((p95 - 0.46).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(&[(0.1, 0), (f64::INFINITY, 0)], 0.95), None);
    }

    fn requests(ok: u64, failed: u64) -> Vec<Sample> {
        parse(&format!(
            "http_requests_total{{method=\"POST\",route=\"/api/vapi/booking\",status=\"201\"}} {ok}\n\
             http_requests_total{{method=\"POST\",route=\"/api/vapi/booking\",status=\"503\"}} {failed}\n"
        ))
        .expect("parses")
    }

    #[test]
    fn a_window_counts_increases_and_survives_a_restart() {
        let mut w = Window::default();
        w.observe(requests(100, 0));
        w.observe(requests(130, 2));
        // Restarted: the counters start again from zero.
        w.observe(requests(5, 1));
        w.observe(requests(15, 1));
        let f = w.figures();
        assert_eq!(w.scrapes, 4);
        assert_eq!(w.restarts, 1);
        assert!(w.saw_service_metrics);
        assert_eq!((f.bookings_succeeded, f.bookings_failed), (30 + 5 + 10, 2 + 1));
    }

    /// A restart whose counters grew back past their old values before the next scrape is told
    /// by the start time: what the new process counted is counted whole.
    #[test]
    fn a_changed_start_time_is_a_restart_even_when_the_counters_grew_back() {
        let started = |at: f64| parse(&format!("{STARTED} {at}")).expect("parses");
        let mut w = Window::default();
        w.observe(requests(100, 0).into_iter().chain(started(1_764_950_000.123_456)).collect());
        // The same start, read back from JSON with its last bit changed.
        let same = f64::from_bits(1_764_950_000.123_456_f64.to_bits() + 1);
        w.observe(requests(130, 2).into_iter().chain(started(same)).collect());
        w.observe(requests(150, 3).into_iter().chain(started(1_764_950_000.125)).collect());
        // A scrape without the gauge (an older release) is not a restart by itself.
        w.observe(requests(160, 3));
        assert_eq!(w.restarts, 1);
        let f = w.figures();
        assert_eq!((f.bookings_succeeded, f.bookings_failed), (30 + 150 + 10, 2 + 3));
        assert!(w.increases().all(|s| s.name != STARTED), "the start time is not a counter");
    }

    #[test]
    fn a_series_that_appears_mid_window_counts_from_zero() {
        let mut w = Window::default();
        w.observe(parse("http_requests_total{route=\"/x\",status=\"200\"} 10").expect("parses"));
        w.observe(
            requests(3, 1)
                .into_iter()
                .chain(parse("http_requests_total{route=\"/x\",status=\"200\"} 12").expect("parses"))
                .collect(),
        );
        let f = w.figures();
        assert_eq!((f.requests, f.bookings_succeeded, f.bookings_failed, f.server_errors), (6, 3, 1, 1));
        assert_eq!(w.restarts, 0);
    }
}
