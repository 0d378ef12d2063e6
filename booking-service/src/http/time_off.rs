//! Time off of a provider (`admin`, `staff`) and closed days of the clinic (`admin`): time no
//! booking may meet. Creating either answers the active appointments it overlaps, and once it has
//! answered no overlapping booking can succeed (`store::schedule`).

use super::appointments::window;
use super::auth::{Admins, Allowed, Managers};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::{paging, wire, AppState};
use crate::domain::{parse_date, parse_instant, ClosureId, Reason, Slot, TimeOffId, MAX_CLOSED_DAYS};
use crate::store::{self, Closure, TimeOff};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::Router;
use chrono::Duration;
use shared::api::{self, CreateClosure, CreateTimeOff, ErrorBody, PageQuery, TimeOffQuery};
use uuid::Uuid;

/// How far ahead time off or a closure may start.
const MAX_AHEAD_DAYS: i64 = 2 * 366;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/providers/{id}/time-off", post(create_time_off).get(list_time_off))
        .route("/api/time-off/{id}", delete(delete_time_off))
        .route("/api/closures", post(create_closure).get(list_closures))
        .route("/api/closures/{id}", delete(delete_closure))
}

fn reason(reason: Option<&str>) -> ApiResult<Option<String>> {
    Ok(Reason::parse("reason", reason)?.map(Reason::into_string))
}

/// A span that ends in the future, starts within `MAX_AHEAD_DAYS` and lasts at most
/// `MAX_CLOSED_DAYS`, its length as `length` tells (closures count days on the calendar: a year of
/// them can hold an hour more or less, across a change of the clocks). Errors name the field the
/// client sent its start (`start_field`) or end (`end_field`) in.
fn check_span(span: Slot, length: Duration, start_field: &str, end_field: &str) -> ApiResult<Slot> {
    let now = store::now();
    if span.end() <= now {
        return Err(ApiError::Validation(format!("{end_field}: must be in the future")));
    }
    if span.start() > now + Duration::days(MAX_AHEAD_DAYS) {
        return Err(ApiError::Validation(format!("{start_field}: may be at most {MAX_AHEAD_DAYS} days ahead")));
    }
    if length > Duration::days(MAX_CLOSED_DAYS) {
        return Err(ApiError::Validation(format!(
            "{end_field}: may be at most {MAX_CLOSED_DAYS} days after {start_field}"
        )));
    }
    Ok(span)
}

#[utoipa::path(post, path = "/api/providers/{id}/time-off", tag = "schedule", request_body = CreateTimeOff,
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 201, description = "with the active appointments it overlaps in conflicts", body = api::TimeOff),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "too many upcoming entries", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_time_off(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateTimeOff>,
) -> ApiResult<(StatusCode, axum::Json<api::TimeOff>)> {
    let actor = caller.actor()?;
    let (start, end) = (parse_instant("starts_at", &body.starts_at)?, parse_instant("ends_at", &body.ends_at)?);
    let span = Slot::from_bounds(start, end)
        .ok_or_else(|| ApiError::Validation("ends_at: must be after starts_at".into()))
        .and_then(|span| check_span(span, span.end() - span.start(), "starts_at", "ends_at"))?;
    let provider = state.store.provider(actor.org, id.into()).await?.ok_or(ApiError::NotFound)?;
    let time_off = TimeOff {
        id: TimeOffId::new(),
        org_id: actor.org,
        provider_id: provider.id,
        span,
        reason: reason(body.reason.as_deref())?,
    };
    let conflicts = state.store.create_time_off(&actor, &time_off).await?;
    Ok((StatusCode::CREATED, axum::Json(wire::time_off(&provider.zone(), &time_off, Some(&conflicts)))))
}

#[utoipa::path(get, path = "/api/providers/{id}/time-off", tag = "schedule", security(("bearer" = [])),
    params(("id" = Uuid, Path), TimeOffQuery),
    responses((status = 200, body = api::Page<api::TimeOff>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_time_off(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
    Query(query): Query<TimeOffQuery>,
) -> ApiResult<axum::Json<api::Page<api::TimeOff>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let within = window(query.from.as_deref(), query.to.as_deref())?;
    let provider = state.store.provider(actor.org, id.into()).await?.ok_or(ApiError::NotFound)?;
    let items = state.store.time_off(actor.org, provider.id, within, &page).await?;
    let zone = provider.zone();
    Ok(axum::Json(paging::answer(items, |t| (t.span.start(), t.id.0), |t| wire::time_off(&zone, t, None))))
}

#[utoipa::path(delete, path = "/api/time-off/{id}", tag = "schedule", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_time_off(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let actor = caller.actor()?;
    if !state.store.delete_time_off(&actor, TimeOffId(id)).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/closures", tag = "schedule", request_body = CreateClosure, security(("bearer" = [])),
    responses((status = 201, description = "with the active appointments it overlaps in conflicts", body = api::Closure),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "too many upcoming closures", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_closure(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Json(body): Json<CreateClosure>,
) -> ApiResult<(StatusCode, axum::Json<api::Closure>)> {
    let actor = caller.actor()?;
    let first_day = parse_date("date", &body.date)?;
    let last_day = body.end_date.as_deref().map(|d| parse_date("end_date", d)).transpose()?.unwrap_or(first_day);
    // A closure of one day was sent without end_date: what is wrong with its end is its date's.
    let end_field = if body.end_date.is_some() { "end_date" } else { "date" };
    let org = state.store.organization(actor.org).await?.ok_or(ApiError::NotFound)?;
    let span = org
        .zone
        .whole_days(first_day, last_day)
        .ok_or_else(|| ApiError::Validation("end_date: must be on or after date".into()))
        .and_then(|span| check_span(span, Duration::days((last_day - first_day).num_days() + 1), "date", end_field))?;
    let closure = Closure {
        id: ClosureId::new(),
        org_id: actor.org,
        first_day,
        last_day,
        span,
        reason: reason(body.reason.as_deref())?,
    };
    let conflicts = state.store.create_closure(&actor, &closure).await?;
    Ok((StatusCode::CREATED, axum::Json(wire::closure(&closure, Some(&conflicts)))))
}

#[utoipa::path(get, path = "/api/closures", tag = "schedule", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = api::Page<api::Closure>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list_closures(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<api::Page<api::Closure>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let items = state.store.closures(actor.org, &page).await?;
    Ok(axum::Json(paging::answer(items, |c| (c.first_day, c.id.0), |c| wire::closure(c, None))))
}

#[utoipa::path(delete, path = "/api/closures/{id}", tag = "schedule", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_closure(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let actor = caller.actor()?;
    if !state.store.delete_closure(&actor, ClosureId(id)).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
