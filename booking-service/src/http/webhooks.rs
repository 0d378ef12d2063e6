//! A clinic's webhooks (`admin`): endpoints told of every change of an appointment, by every path
//! that makes it (REST, the voice agent, the confirm link, attendance), signed as Standard Webhooks
//! have it (`crate::webhooks`).

use super::auth::{Admins, Allowed};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::{deadline, paging, AppState};
use crate::domain::WebhookId;
use crate::store::{self, event, AuditNote, Webhook};
use crate::webhooks::Unchecked;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::Router;
use serde_json::json;
use shared::api::{self, CreateWebhook, ErrorBody, PageQuery};
use std::time::Duration;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/webhooks", post(create).get(list)).route("/api/webhooks/{id}", delete(remove))
}

fn wire(w: &Webhook, secret: bool) -> api::Webhook {
    api::Webhook {
        id: w.id.0,
        url: w.url.clone(),
        events: w.events.clone(),
        created_at: w.created_at,
        secret: secret.then(|| w.secret.clone()),
    }
}

/// The time a new webhook's name may take to look up, of the `left` its request has: all but a
/// tenth, at most a second, kept to store it (the shortest deadline, a second, still leaves 900 ms).
fn lookup_time(left: Duration) -> Duration {
    left - (left / 10).min(Duration::from_secs(1))
}

#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateWebhook, security(("bearer" = [])),
    responses((status = 201, description = "with its secret, shown only here", body = api::Webhook),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "the clinic has 10 webhooks", body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "two of the clinic's lookups of a name are in flight", body = ErrorBody),
              (status = 503, description = "every lookup of a name is taken", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<api::Webhook>)> {
    let actor = caller.actor()?;
    if body.url.len() > 2000 {
        return Err(ApiError::Validation("url: at most 2000 characters".into()));
    }
    let mut events = body.events.unwrap_or_default();
    if let Some(unknown) = events.iter().find(|e| !event::ALL.contains(&e.as_str())) {
        let known = event::ALL.join(", ");
        return Err(ApiError::Validation(format!("events: '{unknown}' is not one of {known}")));
    }
    events.sort();
    events.dedup();
    // Before the name is looked up, which is slow and bounded: by the time the request has left,
    // less a tenth (at most a second) to store it in, so a name that does not resolve in time is
    // a 422, not the deadline's 503 "try again", which would answer the same again.
    state.store.webhook_room(actor.org).await?;
    let left = deadline::answer_by()
        .map_or(crate::webhooks::TIMEOUT, |at| lookup_time(at.saturating_duration_since(tokio::time::Instant::now())));
    let (url, _) = state.webhooks.check(actor.org, body.url.trim(), left).await.map_err(|e| match e {
        Unchecked::Refused(why) => ApiError::Validation(format!("url: {why}")),
        Unchecked::ClinicBusy => ApiError::RateLimited(crate::webhooks::TIMEOUT),
        Unchecked::Busy => ApiError::Busy("too many webhook addresses are being looked up; try again".into()),
    })?;
    // As stored: parsing percent-encodes what needs it, three characters for each byte sent.
    if url.as_str().len() > 2000 {
        return Err(ApiError::Validation("url: at most 2000 characters once percent-encoded".into()));
    }
    let webhook = Webhook {
        id: WebhookId::new(),
        org_id: actor.org,
        url: url.to_string(),
        events,
        secret: crate::webhooks::new_secret(),
        created_at: store::now(),
    };
    // Kept in the audit log by its origin alone: neither its secret nor a path or query that may
    // hold the endpoint's own credential stays in the append-only log.
    let origin = url.origin().ascii_serialization();
    let note = AuditNote::new(&actor, &json!({ "origin": origin, "events": webhook.events }));
    state.store.create_webhook(&note, &webhook).await?;
    Ok((StatusCode::CREATED, axum::Json(wire(&webhook, true))))
}

#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "without their secrets", body = api::Page<api::Webhook>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<api::Page<api::Webhook>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let hooks = state.store.webhooks(actor.org, &page).await?;
    Ok(axum::Json(paging::answer(hooks, |w| (w.created_at, w.id.0), |w| wire(w, false))))
}

/// Removes the webhook; messages still queued for it are dropped.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let actor = caller.actor()?;
    if !state.store.delete_webhook(&AuditNote::new(&actor, &json!({})), WebhookId(id)).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_leaves_the_request_time_to_store_the_webhook() {
        let secs = Duration::from_secs;
        assert_eq!(lookup_time(secs(10)), secs(9));
        assert_eq!(lookup_time(secs(30)), secs(29));
        assert_eq!(lookup_time(secs(1)), Duration::from_millis(900), "the shortest deadline leaves it time");
        assert_eq!(lookup_time(Duration::ZERO), Duration::ZERO);
    }
}
