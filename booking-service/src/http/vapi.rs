//! The Vapi server URL, `POST /api/vapi/tools`, and the tool definitions to paste into an
//! assistant. Vapi ignores any status but 200, so every tool failure is a 200 with an `error`
//! string; only a request that is not Vapi's (bad token or signature, not JSON) gets an error status.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::RawBody;
use super::AppState;
use crate::vapi::{self, SignatureCheck, VapiMessage};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::api::ErrorBody;
use shared::Role;
use std::time::Duration;

/// How the Vapi route checks and times its calls.
#[derive(Debug, Clone)]
pub struct VapiSettings {
    /// Vapi's HMAC credential, required in addition to the bearer token when set.
    pub signature: Option<SignatureCheck>,
    /// Every tool call is answered within this, before Vapi's own timeout.
    pub deadline: Duration,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/vapi/tools", post(tools)).route("/api/vapi/tool-definitions", get(definitions))
}

/// Vapi's server messages: `tool-calls` are answered with one result per call, in order; any
/// other message type with `{}`.
#[utoipa::path(post, path = "/api/vapi/tools", tag = "vapi", security(("bearer" = [])),
    request_body(content = Object, description = "A Vapi server message: {\"message\": {\"type\": \"tool-calls\", \"toolCallList\": [...], \"call\": {...}}}"),
    responses((status = 200, description = "{\"results\": [{\"name\", \"toolCallId\", \"result\" | \"error\"}]}, or {} for other message types"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn tools(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let actor = caller.actor(&[Role::Agent])?;
    if let Some(check) = &state.vapi.signature {
        check
            .verify(&headers, &body, chrono::Utc::now().timestamp())
            .map_err(|e| ApiError::Unauthorized(format!("invalid Vapi signature: {e}")))?;
    }
    let value: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("the request body is not valid JSON".into()))?;
    match VapiMessage::parse(&value).map_err(ApiError::Validation)? {
        VapiMessage::Other(_) => Ok(Json(json!({}))),
        VapiMessage::ToolCalls(message) => {
            let now = state.clock.now();
            let results =
                vapi::answer(&state.store, &state.links, &state.lanes, &actor, message, now, state.vapi.deadline).await;
            Ok(Json(json!({ "results": results })))
        }
    }
}

/// The six tools' function schemas in Vapi's format.
#[utoipa::path(get, path = "/api/vapi/tool-definitions", tag = "vapi", security(("bearer" = [])),
    responses((status = 200, description = "An array of Vapi function tools"), (status = 401, body = ErrorBody)))]
pub async fn definitions(_caller: Caller) -> Json<Value> {
    Json(vapi::tool_definitions())
}
