//! The public confirmation pages; the token in the path is the credential.
//!
//! `GET /confirm/{token}` only shows the appointment and a Confirm button (mail scanners open
//! links; a GET must change nothing). `POST /confirm/{token}` confirms. Pages are HTML; a request
//! that asks `Accept: application/json` gets JSON. Errors are pages to a browser (`Accept:
//! text/html`), the API's error body to any other client. Every answer
//! carries `Referrer-Policy: no-referrer` (the token must not leak to another site) and `no-store`.

use super::error::ApiError;
use super::extract::{ClientAddress, Path};
use super::pages::{details, document, error_page, follow, page, Answer};
use super::AppState;
use crate::links::LinkToken;
use crate::store::{self, Actor, Confirmed, LinkTarget};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use shared::api::{AppointmentStatus, ConfirmationResponse, ErrorBody};

/// Who the audit log names for a change through the patient's links (confirm and manage).
pub const PATIENT: &str = "patient";

pub fn router() -> Router<AppState> {
    Router::new().route("/confirm/{token}", get(show).post(confirm))
}

/// Shows the appointment a confirmation link belongs to, with a Confirm button. Changes nothing.
#[utoipa::path(get, path = "/confirm/{token}", tag = "confirmation",
    params(("token" = String, Path, description = "the token of the emailed link")),
    responses((status = 200, description = "the appointment and a Confirm button", content_type = "text/html"),
              (status = 404, description = "unknown link (a page to a browser)", body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link (a page to a browser)", body = ErrorBody),
              (status = 410, description = "expired link, or a pending appointment whose start has passed (a page to a browser)", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    let answer = Answer::asked(&headers);
    match show_page(&state, &token, client).await {
        Ok(body) => page(StatusCode::OK, body),
        Err(e) => error(e, answer),
    }
}

/// Confirms the appointment (`pending` → `confirmed`); confirming again is harmless.
#[utoipa::path(post, path = "/confirm/{token}", tag = "confirmation",
    params(("token" = String, Path, description = "the token of the emailed link")),
    responses((status = 200, description = "confirmed: an HTML page, or JSON with `Accept: application/json`", body = ConfirmationResponse),
              (status = 404, body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link", body = ErrorBody),
              (status = 409, description = "the appointment is over (completed or marked no-show)", body = ErrorBody),
              (status = 410, description = "expired link, or the appointment has started", body = ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    let answer = Answer::asked(&headers);
    let confirmed = async {
        let (token, target) = resolve(&state, &token, client).await?;
        let actor = Actor::new(target.org, PATIENT);
        Ok::<_, ApiError>(
            state.store.confirm(&actor, target.appointment, store::ConfirmedVia::ConfirmLink(&token.hash())).await?,
        )
    }
    .await;
    let appointment = match confirmed {
        Ok(Confirmed::Now(a) | Confirmed::Already(a)) => a,
        Err(e) => return error(e, answer),
    };
    if answer.json {
        let body = ConfirmationResponse { success: true, appointment_id: appointment.id.0, status: appointment.status };
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    let details = details(&state, &appointment, "").await;
    page(
        StatusCode::OK,
        document(
            "Appointment confirmed",
            &format!("{details}<p role=\"status\"><strong>Thank you: your appointment is confirmed.</strong></p>"),
        ),
    )
}

/// The link's target, if the token is well formed, known (`pages::follow`) and unexpired.
async fn resolve(state: &AppState, token: &str, client: ClientAddress) -> Result<(LinkToken, LinkTarget), ApiError> {
    let (token, target) =
        follow(state, token, client, |hash| async move { state.store.link_target(&hash).await }).await?;
    state.rate_limit.check_link(target.org, target.appointment)?;
    if target.expires_at <= store::now() {
        return Err(store::StoreError::Expired.into());
    }
    Ok((token, target))
}

async fn show_page(state: &AppState, token: &str, client: ClientAddress) -> Result<String, ApiError> {
    let (_, target) = resolve(state, token, client).await?;
    let appointment = state.store.appointment(target.org, target.appointment).await?.ok_or(ApiError::NotFound)?;
    if appointment.status == AppointmentStatus::Pending && appointment.slot.start() <= store::now() {
        return Err(store::StoreError::Started.into());
    }
    let details = details(state, &appointment, "").await;
    Ok(match appointment.status {
        AppointmentStatus::Pending => document(
            "Confirm your appointment",
            &format!("{details}<form method=\"post\"><button type=\"submit\">Confirm</button></form>"),
        ),
        AppointmentStatus::Confirmed => document(
            "Appointment confirmed",
            &format!("{details}<p role=\"status\">This appointment is already confirmed.</p>"),
        ),
        AppointmentStatus::Cancelled => document(
            "Appointment cancelled",
            &format!("{details}<p role=\"status\">This appointment was cancelled.</p>"),
        ),
        AppointmentStatus::Completed | AppointmentStatus::NoShow => {
            document("Appointment over", &format!("{details}<p role=\"status\">This appointment is over.</p>"))
        }
    })
}

/// The error as the API's JSON error body, or as a page to a browser.
fn error(e: ApiError, answer: Answer) -> Response {
    if answer.errors_as_json {
        return e.into_response();
    }
    let (title, text) = match e.status() {
        StatusCode::NOT_FOUND => (
            "Link not found",
            "This confirmation link does not work: the appointment was moved (the email about the \
             move has a new link) or cancelled, or the link is incomplete or too old.",
        ),
        StatusCode::GONE if matches!(e, ApiError::Started) => {
            ("Appointment passed", "This appointment's time has come, so it can no longer be confirmed.")
        }
        StatusCode::GONE => (
            "Link expired",
            "This confirmation link has expired. Please contact the clinic to confirm your appointment.",
        ),
        // Cancelling withdraws the link (404): what is left is an appointment marked completed or
        // no-show.
        StatusCode::CONFLICT => ("Appointment over", "This appointment is over, so it cannot be confirmed."),
        StatusCode::TOO_MANY_REQUESTS => ("Too many requests", "Please wait a minute, then try again."),
        _ => ("Something went wrong", "We could not process this link just now. Please try again in a moment."),
    };
    error_page(e, title, &format!("<p>{text}</p>"))
}
