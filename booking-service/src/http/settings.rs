//! A clinic's settings (`admin`): reminders, the manage link's cut-off, the per-caller limit of
//! voice-agent bookings and the SMS sender.

use super::auth::{Admins, Allowed};
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::AppState;
use crate::domain::PhoneNumber;
use crate::store::{AuditNote, ClinicSettings};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use shared::api::{self, ErrorBody};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/settings", get(show).put(replace))
}

fn wire(s: &ClinicSettings) -> api::Settings {
    api::Settings {
        reminder_offsets_minutes: s.reminder_offsets_minutes.iter().map(|&m| i64::from(m)).collect(),
        manage_cutoff_minutes: i64::from(s.manage_cutoff_minutes),
        max_active_per_caller: i64::from(s.max_active_per_caller),
        sms_from: s.sms_from.clone(),
    }
}

/// A whole number that fits, or the field named.
fn count(field: &'static str, n: i64) -> ApiResult<u32> {
    u32::try_from(n).map_err(|_| ApiError::Validation(format!("{field}: must be a whole number from 0")))
}

#[utoipa::path(get, path = "/api/settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = api::Settings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, caller: Allowed<Admins>) -> ApiResult<axum::Json<api::Settings>> {
    let actor = caller.actor()?;
    let settings = state.store.settings(actor.org).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(wire(&settings)))
}

/// The body of a `PUT`: [`api::Settings`], with a `sms_from` left out told apart from a null one.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    reminder_offsets_minutes: Vec<i64>,
    manage_cutoff_minutes: i64,
    max_active_per_caller: i64,
    /// `None`: left out (kept); `Some(None)`: null (cleared).
    #[serde(default, deserialize_with = "present")]
    sms_from: Option<Option<String>>,
}

fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(value).map(Some)
}

/// Replaces the settings sent (all but `sms_from` must be; `sms_from` null uses the service's
/// sender). A `sms_from` left out is kept: a client that omits null fields must not move the
/// clinic's SMS to the shared sender, to which its patients' STOPs do not apply.
#[utoipa::path(put, path = "/api/settings", tag = "settings", request_body = api::Settings, security(("bearer" = [])),
    responses((status = 200, body = api::Settings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    caller: Allowed<Admins>,
    Json(body): Json<Replacement>,
) -> ApiResult<axum::Json<api::Settings>> {
    let actor = caller.actor()?;
    let keep_sms_from = body.sms_from.is_none();
    let sms_from = body.sms_from.flatten();
    // Bounds the work before the offsets are read (repeats count once, so a few more may come).
    if body.reminder_offsets_minutes.len() > 100 {
        let most = ClinicSettings::MAX_REMINDERS;
        return Err(ApiError::Validation(format!("reminder_offsets_minutes: at most {most} offsets")));
    }
    let settings = ClinicSettings {
        reminder_offsets_minutes: body
            .reminder_offsets_minutes
            .iter()
            .map(|&m| count("reminder_offsets_minutes", m))
            .collect::<ApiResult<_>>()?,
        manage_cutoff_minutes: count("manage_cutoff_minutes", body.manage_cutoff_minutes)?,
        max_active_per_caller: count("max_active_per_caller", body.max_active_per_caller)?,
        sms_from: sms_from
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| PhoneNumber::parse("sms_from", n))
            .transpose()?
            .map(|n| n.as_str().to_owned()),
    }
    .check()?;
    // Audited as sent: `sms_from` only when it was.
    let mut note = AuditNote::new(&actor, &wire(&settings));
    if let Some(asked) = note.details.as_object_mut().filter(|_| keep_sms_from) {
        asked.remove("sms_from");
    }
    let kept = state.store.set_settings(&note, &settings, keep_sms_from).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(wire(&kept)))
}
