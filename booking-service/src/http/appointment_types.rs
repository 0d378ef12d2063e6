//! Appointment types (`admin` manages; `staff` and `agent` read): what each kind of visit lasts,
//! the buffers around it, how soon and how far ahead it may be booked, and who offers it.

use super::auth::{Admins, Allowed, Readers};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::orgs::check_name;
use super::{paging, wire, AppState};
use crate::domain::{bounded, AppointmentTypeId, Minutes, OrgId, ProviderId};
use crate::store::{Actor, AppointmentType, AppointmentTypeChanges, AuditNote, DynStore, PageRequest, MAX_PAGE};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use shared::api::{self, CreateAppointmentType, ErrorBody, PageQuery, UpdateAppointmentType};
use uuid::Uuid;

/// The most providers one type may name (a clinic with more offers it from all).
const MAX_PROVIDERS: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/appointment-types", post(create).get(list))
        .route("/api/appointment-types/{id}", get(show).patch(update).delete(deactivate))
}

fn buffer(field: &'static str, value: i64) -> ApiResult<u32> {
    Ok(bounded(field, value, 0..=crate::domain::MAX_BUFFER_MINUTES)?)
}

fn notice(value: i64) -> ApiResult<u32> {
    Ok(bounded("min_notice_minutes", value, 0..=525_600)?)
}

fn advance(value: i64) -> ApiResult<u32> {
    Ok(bounded("max_advance_days", value, 1..=crate::domain::BOOKING_HORIZON_DAYS as u32)?)
}

/// The providers named, each once, every one a provider of the organization.
async fn providers(store: &DynStore, org: OrgId, ids: &[Uuid]) -> ApiResult<Vec<ProviderId>> {
    if ids.len() > MAX_PROVIDERS {
        return Err(ApiError::Validation(format!("provider_ids: at most {MAX_PROVIDERS}")));
    }
    let mut unique: Vec<ProviderId> = ids.iter().copied().map(ProviderId).collect();
    unique.sort();
    unique.dedup();
    if unique.is_empty() {
        return Ok(unique);
    }
    // One read of the clinic's providers (a page holds any clinic's), not one per id named.
    let listed = store.providers(org, &PageRequest::first(MAX_PAGE)).await?;
    for id in &unique {
        let known =
            listed.items.iter().any(|p| p.id == *id) || (listed.more && store.provider(org, *id).await?.is_some());
        if !known {
            return Err(ApiError::Validation(format!("provider_ids: {id} is not a provider of this clinic")));
        }
    }
    Ok(unique)
}

#[utoipa::path(post, path = "/api/appointment-types", tag = "appointment types", request_body = CreateAppointmentType,
    security(("bearer" = [])),
    responses((status = 201, body = api::AppointmentType), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Json(body): Json<CreateAppointmentType>,
) -> ApiResult<(StatusCode, axum::Json<api::AppointmentType>)> {
    let actor = caller.actor()?;
    let duration = Minutes::parse("duration_minutes", body.duration_minutes)?;
    let kind = AppointmentType {
        id: AppointmentTypeId::new(),
        org_id: actor.org,
        name: check_name("name", &body.name)?,
        duration,
        buffer_before_minutes: buffer("buffer_before_minutes", body.buffer_before_minutes.unwrap_or(0))?,
        buffer_after_minutes: buffer("buffer_after_minutes", body.buffer_after_minutes.unwrap_or(0))?,
        min_notice_minutes: notice(body.min_notice_minutes.unwrap_or(0))?,
        max_advance_days: advance(body.max_advance_days.unwrap_or(crate::domain::BOOKING_HORIZON_DAYS))?,
        slot_interval: body
            .slot_interval_minutes
            .map(|m| Minutes::parse("slot_interval_minutes", m))
            .transpose()?
            .unwrap_or(duration),
        bookable_by_agent: body.bookable_by_agent.unwrap_or(true),
        provider_ids: providers(&state.store, actor.org, body.provider_ids.as_deref().unwrap_or_default()).await?,
        active: true,
        version: 0,
    };
    let created = wire::appointment_type(&kind);
    state.store.create_appointment_type(&AuditNote::new(&actor, &created), &kind).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/api/appointment-types", tag = "appointment types", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = api::Page<api::AppointmentType>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<api::Page<api::AppointmentType>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let types = state.store.appointment_types(actor.org, &page).await?;
    Ok(axum::Json(paging::answer(types, |t| (t.name.clone(), t.id.0), wire::appointment_type)))
}

#[utoipa::path(get, path = "/api/appointment-types/{id}", tag = "appointment types", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = api::AppointmentType), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<api::AppointmentType>> {
    let actor = caller.actor()?;
    let kind = state.store.appointment_type(actor.org, AppointmentTypeId(id)).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(wire::appointment_type(&kind)))
}

#[utoipa::path(patch, path = "/api/appointment-types/{id}", tag = "appointment types", request_body = UpdateAppointmentType,
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = api::AppointmentType), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateAppointmentType>,
) -> ApiResult<axum::Json<api::AppointmentType>> {
    let actor = caller.actor()?;
    let kind = change(&state, &actor, id, &body).await?;
    Ok(axum::Json(wire::appointment_type(&kind)))
}

/// Applies a `PATCH` body (checked field by field), audited as sent.
async fn change(state: &AppState, actor: &Actor, id: Uuid, body: &UpdateAppointmentType) -> ApiResult<AppointmentType> {
    let provider_ids = match body.provider_ids.as_deref() {
        Some(ids) => Some(providers(&state.store, actor.org, ids).await?),
        None => None,
    };
    let changes = AppointmentTypeChanges {
        name: body.name.as_deref().map(|n| check_name("name", n)).transpose()?,
        duration: body.duration_minutes.map(|m| Minutes::parse("duration_minutes", m)).transpose()?,
        buffer_before_minutes: body.buffer_before_minutes.map(|m| buffer("buffer_before_minutes", m)).transpose()?,
        buffer_after_minutes: body.buffer_after_minutes.map(|m| buffer("buffer_after_minutes", m)).transpose()?,
        min_notice_minutes: body.min_notice_minutes.map(notice).transpose()?,
        max_advance_days: body.max_advance_days.map(advance).transpose()?,
        slot_interval: body.slot_interval_minutes.map(|m| Minutes::parse("slot_interval_minutes", m)).transpose()?,
        bookable_by_agent: body.bookable_by_agent,
        provider_ids,
        active: body.active,
    };
    let note = AuditNote::new(actor, body);
    state.store.update_appointment_type(&note, AppointmentTypeId(id), &changes).await?.ok_or(ApiError::NotFound)
}

/// Deactivates the type: appointments of it stay, new bookings of it are refused.
#[utoipa::path(delete, path = "/api/appointment-types/{id}", tag = "appointment types", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let actor = caller.actor()?;
    change(&state, &actor, id, &UpdateAppointmentType { active: Some(false), ..Default::default() }).await?;
    Ok(StatusCode::NO_CONTENT)
}
