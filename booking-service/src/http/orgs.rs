//! Organizations: the platform's operators create and delete them; a clinic reads its own (any of
//! its roles) and renames it or moves it to another zone (`admin`).

use super::auth::{Admins, Allowed, Operators, Readers};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::{wire, AppState};
use crate::domain::{OrgId, Zone};
use crate::store::{self, AuditNote, Organization, OrganizationChanges};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use shared::api::{self, CreateOrganization, ErrorBody, UpdateOrganization};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orgs", post(create))
        .route("/api/orgs/{id}", delete(remove))
        .route("/api/org", get(show_own).patch(change_own))
}

pub(super) fn check_name(field: &'static str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    let unfit = |c: char| crate::domain::breaks_line(c) || crate::domain::hides_or_reorders(c);
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(unfit) {
        return Err(ApiError::Validation(format!(
            "{field}: must be 1 to 200 characters on one line, none invisible or text-reversing"
        )));
    }
    Ok(name.to_owned())
}

#[utoipa::path(post, path = "/api/orgs", tag = "organizations", request_body = CreateOrganization,
    security(("bearer" = [])),
    responses((status = 201, body = api::Organization), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _operator: Allowed<Operators>,
    Json(body): Json<CreateOrganization>,
) -> ApiResult<(StatusCode, axum::Json<api::Organization>)> {
    let org = Organization {
        id: OrgId::new(),
        name: check_name("name", &body.name)?,
        zone: Zone::parse("timezone", &body.timezone)?,
        created_at: store::now(),
        vapi: Default::default(),
    };
    state.store.create_organization(&org).await?;
    Ok((StatusCode::CREATED, axum::Json(wire::organization(&org))))
}

/// Removes the organization and everything of it.
#[utoipa::path(delete, path = "/api/orgs/{id}", tag = "organizations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    _operator: Allowed<Operators>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    if state.store.delete_organization(OrgId(id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// The caller's own organization.
#[utoipa::path(get, path = "/api/org", tag = "organizations", security(("bearer" = [])),
    responses((status = 200, body = api::Organization), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "the token's organization is gone", body = ErrorBody)))]
pub async fn show_own(
    State(state): State<AppState>,
    caller: Allowed<Readers>,
) -> ApiResult<axum::Json<api::Organization>> {
    let actor = caller.actor()?;
    let org = state.store.organization(actor.org).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(wire::organization(&org)))
}

/// Renames the caller's organization or moves it to another zone: its providers without a zone of
/// their own, and its closed days not yet over, follow; appointments keep their instants, and
/// those the moved closed days now meet are answered in `conflicts`.
#[utoipa::path(patch, path = "/api/org", tag = "organizations", request_body = UpdateOrganization,
    security(("bearer" = [])),
    responses((status = 200, body = api::Organization), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "the token's organization is gone", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_own(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Json(body): Json<UpdateOrganization>,
) -> ApiResult<axum::Json<api::Organization>> {
    let actor = caller.actor()?;
    let changes = OrganizationChanges {
        name: body.name.as_deref().map(|n| check_name("name", n)).transpose()?,
        zone: body.timezone.as_deref().map(|tz| Zone::parse("timezone", tz)).transpose()?,
    };
    let note = AuditNote::new(&actor, &body);
    let (org, conflicts) = state.store.update_organization(&note, &changes).await?.ok_or(ApiError::NotFound)?;
    let conflicts = changes.zone.map(|_| conflicts.into_iter().map(|id| id.0).collect());
    Ok(axum::Json(api::Organization { conflicts, ..wire::organization(&org) }))
}
