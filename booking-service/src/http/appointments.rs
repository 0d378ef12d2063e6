//! Appointments (`staff`, `admin`): list, read, confirm, cancel, reschedule, mark attendance,
//! read the audit trail.

use super::auth::{Allowed, Managers};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, OptionalJson, Path, Query};
use super::{paging, wire, AppState};
use crate::booking::{self, LocalStart};
use crate::domain::{parse_instant, AppointmentId, AppointmentTypeId, Reason};
use crate::store::{Appointment, AppointmentFilter, Attendance, Confirmed, ConfirmedVia, Window};
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use shared::api::{self, AppointmentQuery, AppointmentStatus, CancelRequest, ErrorBody, PageQuery, RescheduleRequest};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/appointments", get(list))
        .route("/api/appointments/{id}", get(show))
        .route("/api/appointments/{id}/audit", get(audit))
        .route("/api/appointments/{id}/confirm", post(confirm))
        .route("/api/appointments/{id}/cancel", post(cancel))
        .route("/api/appointments/{id}/reschedule", post(reschedule))
        .route("/api/appointments/{id}/complete", post(complete))
        .route("/api/appointments/{id}/no-show", post(no_show))
}

/// A list's `from` and `to` (RFC 3339, either may be absent); a `to` before `from` is refused, not
/// answered with an empty page (a dashboard that swapped them would show "nothing booked"). Equal,
/// they ask what is under way at that instant (the lists of spans) or nothing (of instants).
pub(super) fn window(from: Option<&str>, to: Option<&str>) -> ApiResult<Window> {
    let instant = |field, s: Option<&str>| s.map(|s| parse_instant(field, s)).transpose();
    let (from, to) = (instant("from", from)?, instant("to", to)?);
    if let (Some(from), Some(to)) = (from, to) {
        if to < from {
            return Err(ApiError::Validation("to: must not be before from".into()));
        }
    }
    Ok((from, to))
}

#[utoipa::path(get, path = "/api/appointments", tag = "appointments", security(("bearer" = [])), params(AppointmentQuery),
    responses((status = 200, body = api::Page<api::Appointment>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Query(query): Query<AppointmentQuery>,
) -> ApiResult<axum::Json<api::Page<api::Appointment>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            AppointmentStatus::parse(s).ok_or_else(|| {
                ApiError::Validation(format!(
                    "status: '{s}' is not pending, confirmed, cancelled, completed or no_show"
                ))
            })
        })
        .transpose()?;
    let (from, to) = window(query.from.as_deref(), query.to.as_deref())?;
    let filter =
        AppointmentFilter { provider: query.provider_id.map(Into::into), from, to, status, ..Default::default() };
    let appointments = state.store.appointments(actor.org, &filter, &page).await?;
    Ok(axum::Json(paging::answer(appointments, |a| (a.slot.start(), a.id.0), Appointment::to_api)))
}

#[utoipa::path(get, path = "/api/appointments/{id}", tag = "appointments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = api::Appointment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<api::Appointment>> {
    let actor = caller.actor()?;
    let appointment = state.store.appointment(actor.org, AppointmentId(id)).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(appointment.to_api()))
}

/// The appointment's audit trail, oldest first: its booking and every change since, with who made
/// it (the audit log is append-only).
#[utoipa::path(get, path = "/api/appointments/{id}/audit", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = api::Page<api::AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<api::Page<api::AuditEntry>>> {
    let actor = caller.actor()?;
    let page = paging::request::<i64>(query.limit, query.cursor.as_deref())?;
    if page.after.as_ref().is_some_and(|(_, of)| *of != id) {
        return Err(paging::not_a_cursor());
    }
    let id = AppointmentId(id);
    // Not the clinic's, or no such appointment: 404, not an empty trail.
    state.store.appointment(actor.org, id).await?.ok_or(ApiError::NotFound)?;
    let trail = state.store.audit_trail(actor.org, id.into(), &page).await?;
    // Paged by each row's place in the trail; the cursor names the appointment it belongs to.
    Ok(axum::Json(paging::answer(trail, |e| (e.position, id.0), wire::audit_entry)))
}

/// Confirms a pending appointment for the patient (who confirmed on the phone, say), as the link
/// in their email would; confirming again is harmless.
#[utoipa::path(post, path = "/api/appointments/{id}/confirm", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = api::Appointment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "invalid_state: cancelled, over, or started", body = ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<api::Appointment>> {
    let actor = caller.actor()?;
    let (Confirmed::Now(appointment) | Confirmed::Already(appointment)) =
        state.store.confirm(&actor, AppointmentId(id), ConfirmedVia::Staff).await?;
    Ok(axum::Json(appointment.to_api()))
}

#[utoipa::path(post, path = "/api/appointments/{id}/cancel", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CancelRequest,
    responses((status = 200, body = api::Appointment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "invalid_state", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> ApiResult<axum::Json<api::Appointment>> {
    let actor = caller.actor()?;
    let reason = Reason::parse("reason", body.and_then(|b| b.reason).as_deref())?;
    let appointment =
        state.store.cancel(&actor, AppointmentId(id), reason.as_ref().map(Reason::as_str), None, None).await?;
    Ok(axum::Json(appointment.to_api()))
}

/// Moves the appointment to a new local date and time, keeping its status; at the same start with
/// another length or type the patient is told nothing.
#[utoipa::path(post, path = "/api/appointments/{id}/reschedule", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RescheduleRequest,
    responses((status = 200, body = api::Appointment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "slot_unavailable or invalid_state", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn reschedule(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
    Json(body): Json<RescheduleRequest>,
) -> ApiResult<axum::Json<api::Appointment>> {
    let actor = caller.actor()?;
    let when =
        LocalStart::parse(body.appointment_date.as_deref(), body.appointment_time.as_deref(), body.duration_minutes)?;
    let kind = body.appointment_type_id.map(AppointmentTypeId);
    let appointment =
        booking::reschedule(&state.store, &state.links, &actor, AppointmentId(id), when, kind, false).await?;
    Ok(axum::Json(appointment.to_api()))
}

/// Marks the appointment as attended (`completed`): only once it has started, and only from
/// `pending` or `confirmed`.
#[utoipa::path(post, path = "/api/appointments/{id}/complete", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = api::Appointment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "invalid_state: not started, or over", body = ErrorBody)))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<api::Appointment>> {
    let actor = caller.actor()?;
    let appointment = state.store.attend(&actor, AppointmentId(id), Attendance::Completed).await?;
    Ok(axum::Json(appointment.to_api()))
}

/// Marks the appointment as missed (`no_show`): only once it has started, and only from
/// `pending` or `confirmed`.
#[utoipa::path(post, path = "/api/appointments/{id}/no-show", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = api::Appointment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "invalid_state: not started, or over", body = ErrorBody)))]
pub async fn no_show(
    State(state): State<AppState>,
    caller: Allowed<Managers>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<api::Appointment>> {
    let actor = caller.actor()?;
    let appointment = state.store.attend(&actor, AppointmentId(id), Attendance::NoShow).await?;
    Ok(axum::Json(appointment.to_api()))
}
