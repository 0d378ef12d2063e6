//! The HTTP surface: one router per feature, merged here under one stack of layers (request id,
//! trace, metrics, timeout, body limit).

mod appointments;
pub mod auth;
mod booking;
mod confirm;
pub mod error;
mod extract;
mod openapi;
mod ops;
mod orgs;
mod paging;
mod providers;
mod rate_limit;
mod vapi;
pub(crate) mod wire;

pub use openapi::ApiDoc;
pub use rate_limit::RateLimit;
pub use vapi::VapiSettings;

use crate::booking::BookingLanes;
use crate::links::Links;
use crate::store::DynStore;
use crate::telemetry;
use auth::Authenticator;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::ApiError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Bodies larger than this are refused with 413 (docs/API.md §3).
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub auth: Arc<Authenticator>,
    pub request_timeout: Duration,
    pub vapi: Arc<VapiSettings>,
    pub links: Arc<Links>,
    pub lanes: Arc<BookingLanes>,
    pub rate_limit: Arc<RateLimit>,
}

pub fn router(state: AppState) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .merge(ops::router())
        .merge(orgs::router())
        .merge(providers::router())
        .merge(booking::router())
        .merge(appointments::router())
        .merge(vapi::router())
        .merge(confirm::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            ApiError::BadRequest("this method is not allowed on this route".into())
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Answers with the API's 503 body instead of hanging when a request outlives its deadline; the
/// handler's future is dropped, which rolls back any open transaction.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable("request deadline exceeded".into()).into_response(),
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    telemetry::record_request(method.as_str(), &route, response.status().as_u16(), start.elapsed());
    response
}
