//! The clinic's whole audit log (`admin`): every change to its appointments and to the clinic
//! itself (providers, appointment types, time off, closures, webhooks, settings), by time.

use super::appointments::window;
use super::auth::{Admins, Allowed};
use super::error::ApiResult;
use super::extract::Query;
use super::{paging, wire, AppState};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use shared::api::{self, ErrorBody, WindowQuery};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit", get(list))
}

/// The changes made within `[from, to)`, oldest first (by when each was made, then in the order
/// they were written), a page at a time.
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("bearer" = [])), params(WindowQuery),
    responses((status = 200, body = api::Page<api::AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Query(query): Query<WindowQuery>,
) -> ApiResult<axum::Json<api::Page<api::AuditEntry>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let within = window(query.from.as_deref(), query.to.as_deref())?;
    let log = state.store.audit_log(actor.org, within, &page).await?;
    Ok(axum::Json(paging::answer(log, |e| ((e.at, e.position), Uuid::nil()), wire::audit_entry)))
}
