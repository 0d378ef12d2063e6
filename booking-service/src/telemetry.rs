//! Logs (tracing) and Prometheus metrics.

use crate::server::{Draining, Readiness};
use axum::http::StatusCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const REQUEST_SECONDS: &str = "http_request_duration_seconds";

/// The filter when `RUST_LOG` is unset, empty, or not a filter.
const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// Pretty lines for people (coloured on a terminal, unless `NO_COLOR` is set), JSON lines for log
/// collectors. `RUST_LOG` filters; an empty one (`RUST_LOG=` from a template left blank) would log
/// nothing at all, errors included, so it counts as unset, and one that does not parse is said so
/// on stderr before the default is used.
pub fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let given = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = match given.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            eprintln!("RUST_LOG is not a log filter ({e}); logging with {DEFAULT_FILTER}");
            EnvFilter::new(DEFAULT_FILTER)
        }
        None => EnvFilter::new(DEFAULT_FILTER),
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// The process-wide recorder; several in-process services (tests, tools) share it.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_SECONDS.into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            )
            .expect("static bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours stays unused.
        let _ = metrics::set_global_recorder(recorder);
        // Set once per process, as Prometheus' client libraries do: a change between two scrapes
        // is a restart even when the counters have grown back past their old values.
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        metrics::gauge!("process_start_time_seconds").set(started.as_secs_f64());
        handle
    })
}

pub fn init_metrics() {
    handle();
    // Every channel's counters exported from the start, so that dashboards and alerts read 0
    // before the first delivery of a kind, not "no data" (added to, not set: an instance started
    // in the same process does not take back what another counted).
    for counter in DELIVERY_COUNTERS {
        for outcome in DELIVERY_OUTCOMES {
            metrics::counter!(counter, "outcome" => outcome).increment(0);
        }
    }
    // So too the tool calls the service could not answer, which an alert counts from 0.
    for tool in crate::vapi::Tool::ALL {
        record_tool_call_n(tool.name(), "failed", 0);
    }
}

/// The delivery counters, one per channel, each by `outcome`.
const DELIVERY_COUNTERS: [&str; 3] = ["emails_total", "sms_total", "webhooks_total"];
const DELIVERY_OUTCOMES: [&str; 4] = ["sent", "retry", "dead", "dropped"];

/// One delivery attempt of an outbox message, counted by its channel and how it went.
pub fn record_delivery(channel: Option<crate::outbox::Channel>, delivery: &crate::store::Delivery) {
    use crate::store::Delivery;
    let [sent, retry, dead, dropped] = DELIVERY_OUTCOMES;
    let outcome = match delivery {
        Delivery::Sent => sent,
        Delivery::Retry { .. } => retry,
        Delivery::Dead { .. } => dead,
        Delivery::Dropped { .. } => dropped,
    };
    count_delivery(channel, outcome);
}

/// A message given up on with no delivery of its own to record (claimed as often as it may be
/// tried, no outcome ever recorded): counted as dead, as a delivery that gave up would be.
pub fn record_given_up(channel: Option<crate::outbox::Channel>) {
    let [_, _, dead, _] = DELIVERY_OUTCOMES;
    count_delivery(channel, dead);
}

/// Counts one `outcome` in its channel's counter (a kind of none, which no dispatcher claims, with
/// the emails).
fn count_delivery(channel: Option<crate::outbox::Channel>, outcome: &'static str) {
    use crate::outbox::Channel;
    let [emails, sms, webhooks] = DELIVERY_COUNTERS;
    let counter = match channel {
        Some(Channel::Webhook) => webhooks,
        Some(Channel::Sms) => sms,
        Some(Channel::Email(_)) | None => emails,
    };
    metrics::counter!(counter, "outcome" => outcome).increment(1);
}

pub fn render_metrics() -> String {
    handle().render()
}

/// `method` and `route` must come from fixed sets (`http::record_metrics` folds the rest), since
/// every distinct label value is a series kept for the life of the process.
pub fn record_request(method: &'static str, route: &str, status: StatusCode, elapsed: Duration) {
    let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.as_str().to_owned())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!(REQUEST_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// `booked`, `replayed`, or the error code that refused the booking.
pub fn record_booking(outcome: &str) {
    metrics::counter!("bookings_total", "outcome" => outcome.to_owned()).increment(1);
}

/// One voice-agent tool call: `outcome` is `result`, `error` (a refusal, spoken: a taken slot,
/// an unknown appointment) or `failed` (the service could not answer: its database, or too
/// slow). `tool` is a known tool's name or `unknown`, never the name a caller sent.
pub fn record_tool_call(tool: &'static str, outcome: &'static str) {
    record_tool_call_n(tool, outcome, 1);
}

fn record_tool_call_n(tool: &'static str, outcome: &'static str, n: u64) {
    metrics::counter!("vapi_tool_calls_total", "tool" => tool, "outcome" => outcome).increment(n);
}

/// How often the service samples what no request measures: readiness, the database pools and the
/// outbox backlog (docs/OPERATIONS.md lists every metric).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples readiness, the pools and the outbox into gauges every [`SAMPLE_EVERY`] until the task
/// is aborted: ready as `/readyz` answers, from the same [`Readiness`] and [`Draining`]. Also folds
/// the histograms' recorded samples into their buckets (the recorder's upkeep), which otherwise
/// only a scrape does: with no scrape (no Prometheus, or a wrong `METRICS_TOKEN`), every
/// request's latency sample was kept, memory growing with the traffic until the process died.
pub fn spawn_sampler(
    store: crate::store::DynStore,
    readiness: Arc<Readiness>,
    draining: Draining,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outbox_sampled = true;
        loop {
            every.tick().await;
            handle().run_upkeep();
            outbox_sampled = sample(&store, &readiness, &draining, outbox_sampled).await;
        }
    })
}

/// One sample. Each database read has a second: a slow database shows as not ready, not as a
/// sampler that stops. Whether the outbox was sampled: its gauges stay at their last values when
/// it was not, so the first failure after a success is a warning (the readiness ping may pass
/// while the backlog query fails, for a grant missing or a backlog too large to count in time).
async fn sample(store: &crate::store::DynStore, readiness: &Readiness, draining: &Draining, was_sampled: bool) -> bool {
    for pool in store.pool_usage() {
        let busy = pool.open.saturating_sub(pool.idle);
        metrics::gauge!("db_pool_connections", "pool" => pool.pool, "state" => "in_use").set(f64::from(busy));
        metrics::gauge!("db_pool_connections", "pool" => pool.pool, "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!("db_pool_max_connections", "pool" => pool.pool).set(f64::from(pool.max));
    }
    let ready = !draining.is_draining() && readiness.database(store).await;
    metrics::gauge!("service_ready").set(if ready { 1.0 } else { 0.0 });
    let failed = match tokio::time::timeout(Duration::from_secs(1), store.outbox_backlog(crate::store::now())).await {
        Ok(Ok(backlog)) => {
            metrics::gauge!("outbox_due_messages").set(backlog.due as f64);
            metrics::gauge!("outbox_oldest_due_seconds").set(backlog.oldest_due_seconds);
            metrics::gauge!("outbox_dead_messages").set(backlog.dead as f64);
            if !was_sampled {
                tracing::info!("the outbox is sampled again");
            }
            return true;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "it took over a second".to_owned(),
    };
    if was_sampled {
        tracing::warn!(error = %failed, "cannot sample the outbox: its gauges keep their last values until it can");
    } else {
        tracing::debug!(error = %failed, "cannot sample the outbox");
    }
    false
}
