//! The Vapi server URL, `POST /api/vapi/tools`, and the tool definitions to paste into an
//! assistant. Vapi ignores any status but 200, so every tool failure is a 200 with an `error`
//! string, and an assistant request the service cannot answer a sentence to speak. An error status
//! goes only to a request that is not Vapi's (bad token or signature, not JSON), to one over the
//! rate limit (429, which the VoiceAgentRateLimited alert counts) and to a transfer request or call
//! report the database did not take (503).

use super::auth::{Admins, Agents, Allowed, Caller, VapiMessages};
use super::deadline::Arrived;
use super::error::{ApiError, ApiResult};
use super::extract::{self, RawJson};
use super::AppState;
use crate::domain::PhoneNumber;
use crate::store::{self, Actor, AuditNote, CallRecord};
use crate::vapi::{self, CallReport, SignatureCheck, VapiMessage};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use shared::api::{self, ErrorBody};
use std::time::Duration;

/// The Vapi route's body limit: an end-of-call report carries the call's transcript and messages,
/// which outgrow the 64 KiB of the other routes on a long call.
pub const VAPI_BODY_LIMIT: usize = 1024 * 1024;

/// An `assistant-request` is answered within this (Vapi's own limit is 7.5 s), or with a sentence.
pub const ASSISTANT_REQUEST_DEADLINE: Duration = Duration::from_millis(6_000);

/// How the Vapi route checks and times its calls.
#[derive(Debug, Clone)]
pub struct VapiSettings {
    /// Vapi's HMAC credential, required in addition to the bearer token when set.
    pub signature: Option<SignatureCheck>,
    /// Every tool call is answered within this, before Vapi's own timeout.
    pub deadline: Duration,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/vapi/tools", post(tools).layer(DefaultBodyLimit::max(VAPI_BODY_LIMIT)))
        .route("/api/vapi/tool-definitions", get(definitions))
        .route("/api/vapi/settings", get(settings).put(set_settings))
}

/// Vapi's server messages: `tool-calls` are answered with one result per call, in order,
/// `assistant-request` with the clinic's assistant, `transfer-destination-request` with its
/// number; any other message type with `{}`.
#[utoipa::path(post, path = "/api/vapi/tools", tag = "vapi", security(("bearer" = [])),
    request_body(content = Object, description = "A Vapi server message: {\"message\": {\"type\": \"tool-calls\", \"toolCallList\": [...], \"call\": {...}}}"),
    responses((status = 200, description = "{\"results\": [{\"name\", \"toolCallId\", \"result\" | \"error\"}]}, the assistant or transfer destination asked for, or {} for other message types"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "rate_limited: the token's requests, or its informational messages", body = ErrorBody),
              (status = 503, description = "unavailable: a transfer request or call report the database did not take", body = ErrorBody)))]
pub async fn tools(
    State(state): State<AppState>,
    caller: Allowed<Agents, VapiMessages>,
    arrived: Option<Extension<Arrived>>,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> ApiResult<Json<Value>> {
    let actor = caller.actor()?;
    // Charged before the signature is checked, which reads the whole body too: a token's bodies
    // refused for their signature spend the allowance by their size as well.
    state.rate_limit.charge_vapi_body(&caller.caller, body.len())?;
    if let Some(check) = &state.vapi.signature {
        check
            .verify(&headers, &body, chrono::Utc::now().timestamp())
            .map_err(|e| ApiError::Unauthorized(format!("invalid Vapi signature: {e}")))?;
    }
    // The parsed body (up to about 16 times the 1 MiB it came in) and the body itself are dropped
    // before the tools run: a request holds only what its message says while it waits on the
    // database, so memory grows with the cores parsing, not with the requests in flight.
    let message = {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| ApiError::BadRequest("the request body is not valid JSON".into()))?;
        VapiMessage::parse(&value).map_err(ApiError::Validation)?
    };
    drop(body);
    // From the request's arrival (stamped by the deadline layer every route is behind).
    let arrived = arrived.map_or_else(tokio::time::Instant::now, |Extension(Arrived(at))| at);
    match message {
        // Informational: it spent only the messages' allowance, at the door.
        VapiMessage::Other(_) | VapiMessage::EndOfCallReport(None) => Ok(Json(json!({}))),
        VapiMessage::ToolCalls(message) => {
            // Each call run is a request's worth of work; a message of which none runs, one.
            state.rate_limit.charge(&caller.caller, vapi::calls_run(&message).max(1))?;
            let now = state.clock.now();
            // What its tool calls change is audited under the call's id (GET /api/calls).
            let actor = Actor { call: message.call_id.clone(), ..actor };
            let until = arrived + state.vapi.deadline;
            let results = vapi::answer(&state.store, &state.links, &state.lanes, &actor, message, now, until).await;
            Ok(Json(json!({ "results": results })))
        }
        VapiMessage::AssistantRequest => {
            // Vapi waits 7.5 s for this answer whatever its server timeout, then fails the call
            // without a word, as it does on any status but 200: a sentence it can speak is better.
            let sorry =
                "I'm sorry, the clinic's booking system isn't answering right now. Please call again in a few minutes.";
            let until = arrived + state.vapi.deadline.min(ASSISTANT_REQUEST_DEADLINE);
            state.rate_limit.check(&caller.caller)?;
            let why = match tokio::time::timeout_at(until, assistant(&state, &actor)).await {
                Ok(Ok(answer)) => return Ok(Json(answer)),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "not answered within its deadline".to_owned(),
            };
            tracing::warn!(error = %why, "could not answer an assistant-request");
            Ok(Json(json!({ "error": sorry })))
        }
        VapiMessage::TransferDestinationRequest => {
            state.rate_limit.check(&caller.caller)?;
            Ok(Json(transfer(&state, &actor).await?))
        }
        VapiMessage::EndOfCallReport(Some(report)) => {
            state.rate_limit.check(&caller.caller)?;
            state.store.record_call(actor.org, &record(report)).await?;
            Ok(Json(json!({})))
        }
    }
}

fn record(r: CallReport) -> CallRecord {
    CallRecord {
        call_id: r.call_id,
        customer_number: r.customer_number.map(|n| n.as_str().to_owned()),
        started_at: r.started_at.unwrap_or_else(store::now),
        ended_at: r.ended_at,
        ended_reason: r.ended_reason,
        summary: r.summary,
        appointment_ids: Vec::new(),
    }
}

/// The clinic's assistant, started with the clinic's variables (its local date and time above
/// all: Vapi's own `{{now}}` is UTC), or a sentence Vapi speaks when none is set up. Three reads,
/// the organization, its providers and its closures.
async fn assistant(state: &AppState, actor: &Actor) -> ApiResult<Value> {
    let org = state.store.organization(actor.org).await?.ok_or(ApiError::NotFound)?;
    let Some(assistant_id) = org.vapi.assistant_id.clone() else {
        return Ok(
            json!({"error": "I'm sorry, this clinic's phone assistant isn't set up yet. Please call back later."}),
        );
    };
    let now = state.clock.now();
    let hours = vapi::opening_hours(&state.store, &org, now).await?;
    let variables = vapi::assistant_variables(&org.name, &org.zone, now, &hours);
    Ok(json!({"assistantId": assistant_id, "assistantOverrides": {"variableValues": variables}}))
}

/// The clinic's front-desk number, or a sentence the assistant speaks when there is none.
async fn transfer(state: &AppState, actor: &Actor) -> ApiResult<Value> {
    let org = state.store.organization(actor.org).await?.ok_or(ApiError::NotFound)?;
    Ok(match org.vapi.transfer_number {
        Some(number) => json!({"destination": {
            "type": "number",
            "number": number,
            "message": "I'm transferring you to the front desk now. Please hold."
        }}),
        None => json!({"error": "I'm sorry, I can't transfer this call: the clinic has no front-desk number set up."}),
    })
}

/// The seven tools' function schemas in Vapi's format.
#[utoipa::path(get, path = "/api/vapi/tool-definitions", tag = "vapi", security(("bearer" = [])),
    responses((status = 200, description = "An array of Vapi function tools"), (status = 401, body = ErrorBody)))]
pub async fn definitions(_caller: Caller) -> Json<Value> {
    Json(vapi::tool_definitions())
}

fn wire_settings(s: &store::VapiSettings) -> api::VapiSettings {
    api::VapiSettings { assistant_id: s.assistant_id.clone(), transfer_number: s.transfer_number.clone() }
}

/// The clinic's Vapi assistant and front-desk number.
#[utoipa::path(get, path = "/api/vapi/settings", tag = "vapi", security(("bearer" = [])),
    responses((status = 200, body = api::VapiSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn settings(State(state): State<AppState>, caller: Allowed<Admins>) -> ApiResult<Json<api::VapiSettings>> {
    let actor = caller.actor()?;
    let org = state.store.organization(actor.org).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(wire_settings(&org.vapi)))
}

/// The body of a `PUT`: [`api::VapiSettings`], refusing any other field (a misspelt one would
/// clear the setting meant).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    #[serde(default)]
    assistant_id: Option<String>,
    #[serde(default)]
    transfer_number: Option<String>,
}

/// Replaces the clinic's Vapi settings: absent or null fields are cleared.
#[utoipa::path(put, path = "/api/vapi/settings", tag = "vapi", request_body = api::VapiSettings, security(("bearer" = [])),
    responses((status = 200, body = api::VapiSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn set_settings(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    extract::Json(body): extract::Json<Replacement>,
) -> ApiResult<Json<api::VapiSettings>> {
    let actor = caller.actor()?;
    let assistant_id = body.assistant_id.as_deref().map(str::trim).filter(|a| !a.is_empty());
    if assistant_id
        .is_some_and(|a| a.len() > 100 || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ApiError::Validation(
            "assistant_id: must be Vapi's assistant id (letters, digits, '-', '_'; at most 100)".into(),
        ));
    }
    let transfer_number = body
        .transfer_number
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .map(|n| PhoneNumber::parse("transfer_number", n))
        .transpose()?;
    let settings = store::VapiSettings {
        assistant_id: assistant_id.map(str::to_owned),
        transfer_number: transfer_number.map(|n| n.as_str().to_owned()),
    };
    let saved = wire_settings(&settings);
    if !state.store.set_vapi_settings(&AuditNote::new(&actor, &saved), &settings).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Json(saved))
}
