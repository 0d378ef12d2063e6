//! Operations routes: liveness, readiness, metrics and the OpenAPI document.

use super::error::ApiError;
use super::{ApiDoc, AppState};
use crate::telemetry;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use shared::api::{ErrorBody, Health};
use std::sync::OnceLock;
use subtle::ConstantTimeEq;
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
/// at most once per [`crate::server::Readiness::FRESH`], however many probes arrive.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.draining.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "shutting down".into() }));
    }
    if state.readiness.database(&state.store).await {
        (StatusCode::OK, Json(Health { status: "ready".into() }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable".into() }))
    }
}

/// Prometheus text exposition; with `METRICS_TOKEN` set, only for a request bearing it (or
/// `METRICS_TOKEN_PREVIOUS`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain"),
              (status = 401, description = "`METRICS_TOKEN` is set and the request bears neither it nor `METRICS_TOKEN_PREVIOUS`", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if !state.metrics_tokens.is_empty() {
        // Digests compared in constant time, each of them: the answer's timing tells nothing of a
        // token, not even its length, nor which one matched.
        let given: [u8; 32] = metrics_token_digest(super::auth::bearer(&headers).unwrap_or_default());
        let matched =
            state.metrics_tokens.iter().fold(subtle::Choice::from(0), |any, wanted| any | given.ct_eq(wanted));
        if !bool::from(matched) {
            return Err(ApiError::Unauthorized("/metrics needs METRICS_TOKEN as a bearer token".into()));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::render_metrics()))
}

/// The digest `/metrics` compares a bearer token by (`AppState::metrics_tokens`).
pub fn metrics_token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    // Built once: it is the same document for the life of the process.
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}
