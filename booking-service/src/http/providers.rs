//! Providers (`admin` manages; `staff` and `agent` read) and their availability.

use super::auth::{Admins, Allowed, Readers};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::orgs::check_name;
use super::{paging, wire, AppState};
use crate::booking;
use crate::domain::{parse_date, AppointmentTypeId, Minutes, ProviderId, WeeklyHours, Zone};
use crate::store::{Actor, AuditNote, Provider, ProviderChanges};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use shared::api::{self, Availability, AvailabilityQuery, CreateProvider, ErrorBody, PageQuery, UpdateProvider};
use shared::Role;
use uuid::Uuid;

const DEFAULT_MINUTES: i64 = 30;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/providers", post(create).get(list))
        .route("/api/providers/{id}", get(show).patch(update).delete(deactivate))
        .route("/api/providers/{id}/availability", get(availability))
}

fn zone_of(field: &'static str, tz: Option<&str>) -> ApiResult<Option<Zone>> {
    Ok(tz.map(|name| Zone::parse(field, name)).transpose()?)
}

#[utoipa::path(post, path = "/api/providers", tag = "providers", request_body = CreateProvider, security(("bearer" = [])),
    responses((status = 201, body = api::Provider), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Json(body): Json<CreateProvider>,
) -> ApiResult<(StatusCode, axum::Json<api::Provider>)> {
    let actor = caller.actor()?;
    let name = check_name("name", &body.name)?;
    let own_zone = zone_of("timezone", body.timezone.as_deref())?;
    let appointment_minutes =
        Minutes::parse("appointment_minutes", body.appointment_minutes.unwrap_or(DEFAULT_MINUTES))?;
    let hours = WeeklyHours::parse(body.working_hours.as_deref().unwrap_or_default())?;
    let org = state.store.organization(actor.org).await?.ok_or(ApiError::NotFound)?;
    let provider = Provider {
        id: ProviderId::new(),
        org_id: actor.org,
        name,
        own_zone,
        org_zone: org.zone,
        appointment_minutes,
        hours,
        active: true,
    };
    let created = wire::provider(&provider);
    state.store.create_provider(&AuditNote::new(&actor, &created), &provider).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/api/providers", tag = "providers", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = api::Page<api::Provider>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<api::Page<api::Provider>>> {
    let actor = caller.actor()?;
    let page = paging::request(query.limit, query.cursor.as_deref())?;
    let providers = state.store.providers(actor.org, &page).await?;
    Ok(axum::Json(paging::answer(providers, |p| (p.name.clone(), p.id.0), wire::provider)))
}

#[utoipa::path(get, path = "/api/providers/{id}", tag = "providers", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = api::Provider), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<api::Provider>> {
    let actor = caller.actor()?;
    let provider = state.store.provider(actor.org, id.into()).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(wire::provider(&provider)))
}

#[utoipa::path(patch, path = "/api/providers/{id}", tag = "providers", request_body = UpdateProvider, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = api::Provider), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateProvider>,
) -> ApiResult<axum::Json<api::Provider>> {
    let actor = caller.actor()?;
    let provider = change(&state, &actor, id, &body).await?;
    Ok(axum::Json(wire::provider(&provider)))
}

/// Applies a `PATCH` body (checked field by field), audited as sent.
async fn change(state: &AppState, actor: &Actor, id: Uuid, body: &UpdateProvider) -> ApiResult<Provider> {
    let changes = ProviderChanges {
        name: body.name.as_deref().map(|n| check_name("name", n)).transpose()?,
        own_zone: body.timezone.as_ref().map(|tz| zone_of("timezone", tz.as_deref())).transpose()?,
        appointment_minutes: body.appointment_minutes.map(|m| Minutes::parse("appointment_minutes", m)).transpose()?,
        hours: body.working_hours.as_deref().map(WeeklyHours::parse).transpose()?,
        active: body.active,
    };
    let note = AuditNote::new(actor, body);
    state.store.update_provider(&note, id.into(), &changes).await?.ok_or(ApiError::NotFound)
}

/// Deactivates the provider: its appointments stay, new bookings are refused.
#[utoipa::path(delete, path = "/api/providers/{id}", tag = "providers", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let actor = caller.actor()?;
    change(&state, &actor, id, &UpdateProvider { active: Some(false), ..Default::default() }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The free starts of one local day: of the appointment type given (its length, interval, buffers,
/// notice and horizon), else of the provider's appointment length.
#[utoipa::path(get, path = "/api/providers/{id}/availability", tag = "providers", security(("bearer" = [])),
    params(("id" = Uuid, Path), AvailabilityQuery),
    responses((status = 200, body = Availability), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn availability(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
    Path(id): Path<Uuid>,
    Query(query): Query<AvailabilityQuery>,
) -> ApiResult<axum::Json<Availability>> {
    let actor = caller.actor()?;
    let date = parse_date("date", &query.date)?;
    let provider = state.store.provider(actor.org, id.into()).await?.ok_or(ApiError::NotFound)?;
    let kind = match query.appointment_type_id {
        Some(kind) => {
            // Offered only to whom may book it (a staff-only type's times not to a voice agent).
            let kind = state.store.appointment_type(actor.org, AppointmentTypeId(kind)).await?;
            let kind = booking::usable(kind.as_ref(), caller.caller.role == Role::Agent, false)?.clone();
            if !kind.offered_by(provider.id) {
                return Err(ApiError::Validation(format!(
                    "appointment_type_id: {} does not offer {}",
                    provider.name, kind.name
                )));
            }
            Some(kind)
        }
        None => None,
    };
    let zone = provider.zone();
    let policy = booking::policy_for(&provider, kind.as_ref());
    let slots = booking::free_slots_on(&state.store, actor.org, &provider, &policy, date).await?;
    Ok(axum::Json(Availability {
        provider_id: provider.id.0,
        date,
        timezone: zone.name().to_owned(),
        slots: slots.iter().map(|s| wire::slot(&zone, s)).collect(),
    }))
}
