//! Organizations (role `platform`).

use super::auth::{Allowed, Operators};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::{wire, AppState};
use crate::domain::{OrgId, Zone};
use crate::store::{self, Organization};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::Router;
use shared::api::{self, CreateOrganization, ErrorBody};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/orgs", post(create)).route("/api/orgs/{id}", delete(remove))
}

pub(super) fn check_name(field: &'static str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!("{field}: must be 1 to 200 characters on one line")));
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
