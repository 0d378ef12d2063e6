//! The first booking call, kept for the voice agents built on it: `POST /api/vapi/booking`, with
//! an optional `Idempotency-Key`.

use super::auth::{Allowed, Readers};
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::AppState;
use crate::booking;
use crate::store::IdempotencyKey;
use crate::telemetry;
use crate::vapi::{Tool, TOOL_KEYS};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use shared::api::{BookingRequest, BookingResponse, ErrorBody};
use shared::Role;
use std::time::Instant;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/vapi/booking", post(book))
}

/// The key of a retry-safe request and the fingerprint of its body. Keys are 1 to 255 visible
/// ASCII characters; a quoted key (an RFC 8941 string, as the IETF's draft has it) is taken
/// without its pair of quotes, and may hold no quote or backslash of its own (no escapes to
/// undo). Any other key is taken as sent: `abc"` is not `abc`.
fn idempotency_key(headers: &HeaderMap, body: &BookingRequest) -> ApiResult<Option<IdempotencyKey>> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let unquoted = |k: &str| match k.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
        Some(inner) => (!inner.contains(['"', '\\'])).then(|| inner.to_owned()),
        None => Some(k.to_owned()),
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|k| unquoted(k.trim()))
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::Validation(
                "Idempotency-Key: must be 1 to 255 visible ASCII characters, or those in quotes (none a quote or backslash)"
                    .into(),
            )
        })?;
    if key.starts_with(TOOL_KEYS) {
        return Err(ApiError::Validation(format!(
            "Idempotency-Key: keys beginning {TOOL_KEYS} are the voice tools' own"
        )));
    }
    let canonical = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Some(IdempotencyKey::for_request(key, &canonical)))
}

/// Books a slot. Local date and time are read in the provider's zone.
#[utoipa::path(post, path = "/api/vapi/booking", tag = "booking", request_body = BookingRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first answer")),
    responses((status = 201, body = BookingResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "slot_unavailable, with alternatives", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn book(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
    headers: HeaderMap,
    Json(body): Json<BookingRequest>,
) -> ApiResult<(StatusCode, axum::Json<BookingResponse>)> {
    let started = Instant::now();
    let actor = caller.actor()?;
    let result = async {
        let tool = Tool::BookAppointment.name();
        if body.tool_name != tool {
            return Err(ApiError::Validation(format!("tool_name: must be {tool}")));
        }
        let idempotency = idempotency_key(&headers, &body)?;
        let mut request = booking::CheckedBooking::try_from(&body.tool_input)?;
        request.by_agent = caller.caller.role == Role::Agent;
        let booked = booking::book(&state.store, &state.links, &state.lanes, &actor, request, idempotency).await?;
        let outcome = if booked.replayed { "replayed" } else { "booked" };
        Ok((outcome, booked.answer))
    }
    .await;
    match result {
        Ok((outcome, mut response)) => {
            telemetry::record_booking(outcome);
            response.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok((StatusCode::CREATED, axum::Json(response)))
        }
        Err(e) => {
            telemetry::record_booking(e.code());
            Err(e)
        }
    }
}
