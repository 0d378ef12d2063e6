//! The HTTP surface: one router per feature, merged here under one stack of layers (request id,
//! trace, metrics, deadlines, body limit, `Cache-Control: no-store`).

mod appointment_types;
mod appointments;
mod audit;
pub mod auth;
mod booking;
mod calls;
mod confirm;
mod deadline;
pub mod error;
mod extract;
mod link_limits;
mod manage;
mod openapi;
mod ops;
mod orgs;
mod pages;
mod paging;
mod providers;
mod rate_limit;
mod settings;
mod sms;
mod time_off;
mod vapi;
mod webhooks;
pub(crate) mod wire;

pub use link_limits::LinkLimit;
pub use openapi::ApiDoc;
pub use ops::metrics_token_digest;
pub use rate_limit::RateLimit;
pub use vapi::VapiSettings;

/// Lookups of patients' links an address may make for each request a token subject may.
pub const LINK_LOOKUPS_PER_REQUEST: u32 = 10;

use crate::booking::BookingLanes;
use crate::links::Links;
use crate::server::Draining;
use crate::store::DynStore;
use crate::telemetry;
use auth::Authenticator;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Router;
use error::ApiError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Bodies larger than this are refused with 413 (docs/API.md §3).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares, behind one `Arc`: a request clones it a few times (its handler's
/// `State`, the deadline layer), and a clone is then one counter, not one per field (measured:
/// cloning and dropping the fields one by one was 5% of a 2,000-request burst's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub store: DynStore,
    pub auth: Arc<Authenticator>,
    pub request_timeout: Duration,
    /// The whole body must have arrived this long after the headers, else 408.
    pub body_read_timeout: Duration,
    /// Set when shutdown begins; `/readyz` answers 503 from then on.
    pub draining: Draining,
    /// The database's last answer to `/readyz`, shared by concurrent probes.
    pub readiness: Arc<crate::server::Readiness>,
    pub vapi: Arc<VapiSettings>,
    pub links: Arc<Links>,
    pub lanes: Arc<BookingLanes>,
    pub rate_limit: Arc<RateLimit>,
    /// Guesses at patients' links, per client address (`LINK_GUESSES_PER_MINUTE`).
    pub link_guesses: Arc<LinkLimit>,
    /// Every lookup of a patient's link, found or not, per client address (ten times
    /// `RATE_LIMIT_PER_MINUTE`, for the patients behind one address): one known link sent again
    /// and again, refused by its own limit only after its lookup, costs no lookups past these.
    pub link_lookups: Arc<LinkLimit>,
    /// The SHA-256 of each bearer token `/metrics` takes (`METRICS_TOKEN`, and
    /// `METRICS_TOKEN_PREVIOUS` while scrapers move); none: open.
    pub metrics_tokens: Vec<[u8; 32]>,
    /// Where a client's address is read (`CLIENT_IP_SOURCE`).
    pub client_ip: axum_client_ip::ClientIpSource,
    /// The voice agent's "now" (the system clock outside tests).
    pub clock: crate::clock::SharedClock,
    /// How webhook URLs are checked.
    pub webhooks: crate::webhooks::Sender,
    /// Where SMS go and the key inbound ones are checked with (`POST /sms/inbound`); the mail
    /// dispatcher sends through a clone.
    pub sms: crate::sms::Sms,
    /// `PUBLIC_BASE_URL` without a trailing slash: the URL Twilio signs starts with it.
    pub public_base_url: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    Router::new()
        .merge(ops::router())
        .merge(orgs::router())
        .merge(providers::router())
        .merge(appointment_types::router())
        .merge(time_off::router())
        .merge(booking::router())
        .merge(appointments::router())
        .merge(vapi::router())
        .merge(calls::router())
        .merge(audit::router())
        .merge(settings::router())
        .merge(webhooks::router())
        .merge(confirm::router())
        .merge(sms::router())
        .merge(manage::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            ApiError::BadRequest("this method is not allowed on this route".into())
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(state.client_ip.clone().into_extension())
        .layer(middleware::from_fn_with_state(state.clone(), deadline::deadline))
        .layer(CatchPanicLayer::custom(panic_as_internal_error))
        .layer(middleware::from_fn(pages::secure_links))
        // Answers carry patients' data and change with every booking: no cache keeps one.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %logged_path(req.uri().path(), req.extensions().get::<MatchedPath>()), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::map_request(drop_unfit_request_id))
        .with_state(state)
}

const REQUEST_ID: &str = "x-request-id";

/// A handler that panics answers 500 like any internal error (logged with the request's id and
/// counted in the metrics the alerts read) instead of resetting the connection unseen.
fn panic_as_internal_error(panic: Box<dyn std::any::Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a handler panicked".to_owned());
    ApiError::Internal(format!("panic: {what}")).into_response()
}

/// A client's `x-request-id` goes into every log line of its request and back in the answer, so
/// only a short, plain one is kept; any other is dropped here and a fresh one generated.
async fn drop_unfit_request_id(mut req: Request) -> Request {
    let fit = req.headers().get(REQUEST_ID).is_some_and(|v| {
        let v = v.as_bytes();
        (1..=64).contains(&v.len()) && v.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    });
    if !fit {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// The request's path for the logs, with the credential of a link (`/confirm/{token}`) masked,
/// also in a link's path that matches no route (a segment added to it).
fn logged_path(path: &str, route: Option<&MatchedPath>) -> String {
    match route.map(MatchedPath::as_str) {
        Some(template) if template.contains("{token}") => masked(path, template),
        None if pages::is_link_path(path) => masked(path, "/link/{token}"),
        _ => path.to_owned(),
    }
}

/// `path` with the parts that `template` names `{token}` masked, and every part past the
/// template's end: an unknown path under a link may hold the token again (a relative address
/// resolved one level too deep, `/manage/{token}/{token}/confirm`).
fn masked(path: &str, template: &str) -> String {
    let mut template = template.split('/');
    path.split('/')
        .map(|given| match template.next() {
            Some("{token}") | None => "***",
            Some(_) => given,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Records the request under labels from fixed sets, so no request can add a series: the method
/// if it is a standard one, the route's template (never the path), the status code.
async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    telemetry::record_request(method, &route, response.status(), start.elapsed());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking handler behind the service's layer is a 500 with the API's error body.
    #[tokio::test]
    async fn a_panic_is_answered_500_with_the_error_body() {
        use tower::ServiceExt;
        let app: Router = Router::new()
            .route("/boom", axum::routing::get(|| async { panic!("boom") as &'static str }))
            .layer(CatchPanicLayer::custom(panic_as_internal_error));
        let request = axum::http::Request::get("/boom").body(axum::body::Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("an answer");
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(!body.to_string().contains("boom"), "the panic's text is logged, not answered: {body}");
    }

    #[test]
    fn a_link_token_is_masked_in_the_logged_path() {
        assert_eq!(masked("/confirm/s3cret-token", "/confirm/{token}"), "/confirm/***");
        assert_eq!(masked("/manage/s3cret/cancel", "/manage/{token}/cancel"), "/manage/***/cancel");
        // Matching no route: the segment after the link's prefix is the token all the same, and
        // any later one may be it again.
        assert_eq!(logged_path("/manage/s3cret/nothing/here", None), "/manage/***/***/***");
        assert_eq!(logged_path("/manage/s3cret/s3cret/confirm", None), "/manage/***/***/***");
        assert_eq!(logged_path("/confirm/s3cret/x", None), "/confirm/***/***");
        assert_eq!(logged_path("/api/providers/x", None), "/api/providers/x");
    }
}
