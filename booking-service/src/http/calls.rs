//! The voice agent's calls (`staff`, `admin`): one record per call from its end-of-call report,
//! with the appointments its tool calls booked, moved or cancelled.

use super::appointments::window;
use super::auth::{Allowed, Managers};
use super::error::ApiResult;
use super::extract::Query;
use super::{paging, AppState};
use crate::store::CallRecord;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use shared::api::{self, ErrorBody, WindowQuery};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/calls", get(list))
}

fn wire(c: &CallRecord) -> api::Call {
    api::Call {
        call_id: c.call_id.clone(),
        customer_number: c.customer_number.clone(),
        started_at: c.started_at,
        ended_at: c.ended_at,
        ended_reason: c.ended_reason.clone(),
        summary: c.summary.clone(),
        appointment_ids: c.appointment_ids.iter().map(|a| a.0).collect(),
    }
}

#[utoipa::path(get, path = "/api/calls", tag = "vapi", security(("bearer" = [])), params(WindowQuery),
    responses((status = 200, body = api::Page<api::Call>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Query(query): Query<WindowQuery>,
) -> ApiResult<axum::Json<api::Page<api::Call>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let within = window(query.from.as_deref(), query.to.as_deref())?;
    let calls = state.store.calls(actor.org, within, &page).await?;
    // Calls are named by Vapi's text ids, kept in the sort key; the cursor's UUID is unused.
    Ok(axum::Json(paging::answer(calls, |c| ((c.started_at, c.call_id.clone()), Uuid::nil()), wire)))
}
