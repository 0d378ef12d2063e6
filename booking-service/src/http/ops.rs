//! Operations routes: liveness, readiness, metrics and the OpenAPI document.

use super::{ApiDoc, AppState};
use crate::telemetry;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shared::api::Health;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use utoipa::OpenApi;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// 200 while the process runs; depends on nothing.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// 200 when the database answers within a second, else 503; 503 from the moment shutdown begins,
/// so load balancers stop sending requests while those in flight finish. The database is asked
/// at most once per [`Readiness::FRESH`], however many probes arrive.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.draining.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "shutting down".into() }));
    }
    let ping = async { matches!(tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await, Ok(Ok(()))) };
    if state.readiness.check(ping).await {
        (StatusCode::OK, Json(Health { status: "ready".into() }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable".into() }))
    }
}

/// The last answer of the database to a readiness probe. Probes take turns, and one arriving
/// within [`Readiness::FRESH`] of the last answer gets that answer: a flood of `/readyz` asks the
/// database once a second instead of queueing on its one readiness connection until the load
/// balancer's own probe times out.
#[derive(Debug, Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    pub const FRESH: Duration = Duration::from_secs(1);

    /// The answer of `ping`, or of the one before it when that is fresh.
    pub async fn check(&self, ping: impl Future<Output = bool>) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last {
            if at.elapsed() < Self::FRESH {
                return ready;
            }
        }
        let ready = ping.await;
        *last = Some((Instant::now(), ready));
        ready
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::render_metrics())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    // Built once: it is the same document for the life of the process.
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A hundred probes at once ask the database once, and all get its answer; a probe after the
    /// answer has aged asks again.
    #[tokio::test]
    async fn concurrent_probes_share_one_database_ping() {
        let readiness = Readiness::default();
        let pings = AtomicUsize::new(0);
        let ping = || async {
            pings.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            true
        };
        let answers = futures::future::join_all((0..100).map(|_| readiness.check(ping()))).await;
        assert!(answers.iter().all(|ready| *ready));
        assert_eq!(pings.load(Ordering::SeqCst), 1, "one ping for the whole flood");

        tokio::time::sleep(Readiness::FRESH).await;
        assert!(readiness.check(ping()).await);
        assert_eq!(pings.load(Ordering::SeqCst), 2, "an aged answer is asked again");
    }
}
