//! The patient's manage link (`PUBLIC_BASE_URL/manage/{token}`, docs/API.md, "Manage link"); the token in the
//! path is the credential.
//!
//! `GET /manage/{token}` shows the appointment, a Confirm button while it is pending, a Cancel
//! button and up to [`OFFERED`] free slots of the next [`DAYS`] days to move to, each a form
//! posting to `/reschedule`; it changes nothing (mail scanners open links). `POST /manage/{token}/cancel` cancels; `POST /manage/{token}/reschedule`
//! moves, keeping the appointment's length and type; `POST /manage/{token}/confirm` confirms a
//! pending one, for a patient with no confirmation link (booked by phone, or after a move). The
//! changes are the booking rules of the store, run
//! as the actor `patient` under the clinic's `manage_cutoff_minutes`, checked in the change's own
//! transaction: within the cut-off 409 `invalid_state`, from the start on 410. Pages are plain HTML
//! forms (no JavaScript); `Accept: application/json` gets the appointment JSON. Errors are pages to
//! a browser (`Accept: text/html`), the API's error body to any other client. Every answer is
//! private (`pages::secure_links`).

use super::confirm::PATIENT;
use super::error::ApiError;
use super::extract::{ClientAddress, FormOrJson, Path};
use super::pages::{details, document, error_page, follow, page, Answer};
use super::AppState;
use crate::booking;
use crate::domain::{parse_instant, AppointmentId, Cutoff, OrgId, Reach};
use crate::links::LinkToken;
use crate::mail::email::html_escape;
use crate::store::{self, Actor, Appointment, Confirmed, ConfirmedVia, StoreError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, FixedOffset};
use shared::api::{self, AppointmentStatus, ErrorBody, ManageRescheduleRequest};

/// How many days ahead, from the provider's today, the page looks for times to move to.
pub const DAYS: u32 = 14;
/// The most times the page offers.
pub const OFFERED: usize = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/manage/{token}", get(show))
        .route("/manage/{token}/cancel", get(ask_to_cancel).post(cancel))
        .route("/manage/{token}/reschedule", get(reschedule_opened).post(reschedule))
        .route("/manage/{token}/confirm", get(confirm_opened).post(confirm))
}

/// Shows the appointment with a Confirm button (pending), a Cancel button and the times it can move
/// to. Changes nothing.
#[utoipa::path(get, path = "/manage/{token}", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    responses((status = 200, description = "the appointment, a Cancel button and free times to move to (HTML), or the appointment JSON with `Accept: application/json`", body = api::Appointment),
              (status = 404, description = "unknown link", body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link", body = ErrorBody),
              (status = 410, description = "the appointment has started", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    show_asking(state, token, client, headers, false).await
}

/// Asks whether to cancel, the appointment shown above a "Yes, cancel it" button (posting to this
/// URL) and a way back: the page's Cancel button leads here, so one tap does not cancel. Changes
/// nothing; once it can no longer be cancelled online, 303 to the appointment's page (`GET
/// /manage/{token}`), which says why.
#[utoipa::path(get, path = "/manage/{token}/cancel", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    responses((status = 200, description = "the question, with a button that cancels (HTML), or the appointment JSON with `Accept: application/json`", body = api::Appointment),
              (status = 303, description = "HTML, when it can no longer be cancelled online: to the appointment's page, `../{token}`"),
              (status = 404, description = "unknown link", body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link", body = ErrorBody),
              (status = 410, description = "the appointment has started", body = ErrorBody)))]
pub async fn ask_to_cancel(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    show_asking(state, token, client, headers, true).await
}

/// The appointment's page, or, `asking` and while it can be cancelled online, the question
/// whether to cancel it.
async fn show_asking(
    state: AppState,
    token: String,
    client: ClientAddress,
    headers: HeaderMap,
    asking: bool,
) -> Response {
    let answer = Answer::asked(&headers);
    let shown = async {
        let link = resolve(&state, &token, client).await?;
        let appointment = state.store.appointment(link.org, link.id).await?.ok_or(ApiError::NotFound)?;
        let reach = link.cutoff.reach(appointment.slot.start(), store::now());
        if reach == Reach::Started {
            return Err(StoreError::Started.into());
        }
        if answer.json {
            return Ok(axum::Json(appointment.to_api()).into_response());
        }
        if asking {
            if appointment.status.is_active() && reach == Reach::Open {
                return Ok(page(StatusCode::OK, ask_page(&state, &token, &appointment).await));
            }
            // To the appointment's own address: its page's forms and links are relative to it
            // (one level deeper, its Confirm button would post to `/manage/{token}/{token}/confirm`).
            return Ok(Redirect::to(&format!("../{token}")).into_response());
        }
        Ok(page(StatusCode::OK, show_page(&state, &token, &appointment, link.cutoff, reach).await?))
    };
    shown.await.unwrap_or_else(|e| error(&token, e, answer))
}

/// The question whether to cancel, at `/manage/{token}/cancel`: its form posts there, and the way
/// back is the appointment's page (both relative, as every link of these pages).
async fn ask_page(state: &AppState, token: &str, a: &Appointment) -> String {
    let details = details(state, a, &status_row(a.status)).await;
    let token = html_escape(token);
    document(
        "Cancel this appointment?",
        &format!(
            "{details}<p>The time will be given to someone else.</p>\
             <form method=\"post\" action=\"cancel\"><button type=\"submit\" class=\"danger\">Yes, cancel it</button></form>\
             <p><a href=\"../{token}\">No, keep it</a></p>"
        ),
    )
}

/// Cancels the appointment (no body needed); within the clinic's cut-off 409, from its start 410.
#[utoipa::path(post, path = "/manage/{token}/cancel", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    responses((status = 200, description = "cancelled: an HTML page, or the appointment JSON with `Accept: application/json`", body = api::Appointment),
              (status = 404, body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link", body = ErrorBody),
              (status = 409, description = "invalid_state: already cancelled, or within the clinic's cut-off (call the clinic)", body = ErrorBody),
              (status = 410, description = "the appointment has started", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    let said = ("Appointment cancelled", "Your appointment is cancelled.");
    by_patient(&state, &token, client, &headers, said, async |link, patient| {
        let reason = Some("cancelled by the patient through the manage link");
        Ok(state.store.cancel(&patient, link.id, reason, Some(link.cutoff), None).await?)
    })
    .await
}

/// Confirms a pending appointment (`pending` to `confirmed`; confirming again is harmless), as
/// its confirmation link does, also within the clinic's cut-off (confirming changes nothing of
/// the clinic's day); from its start 410.
#[utoipa::path(post, path = "/manage/{token}/confirm", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    responses((status = 200, description = "confirmed: an HTML page, or the appointment JSON with `Accept: application/json`", body = api::Appointment),
              (status = 404, body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link", body = ErrorBody),
              (status = 409, description = "invalid_state: cancelled, or over", body = ErrorBody),
              (status = 410, description = "the appointment has started", body = ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    let said = ("Appointment confirmed", "Your appointment is confirmed.");
    by_patient(&state, &token, client, &headers, said, async |link, patient| {
        match state.store.confirm(&patient, link.id, ConfirmedVia::ManageLink).await? {
            Confirmed::Now(a) | Confirmed::Already(a) => Ok(a),
        }
    })
    .await
}

/// The address a confirmation was posted to, opened again (the browser's history, a bookmark):
/// changes nothing; 303 to the appointment's page, which shows where it stands.
#[utoipa::path(get, path = "/manage/{token}/confirm", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    responses((status = 303, description = "to the appointment's page, `../{token}`"),
              (status = 404, description = "a malformed token", body = ErrorBody)))]
pub async fn confirm_opened(Path(token): Path<String>, headers: HeaderMap) -> Response {
    to_the_page(&token, &headers)
}

/// The address a move was posted to, opened again: changes nothing; 303 to the appointment's
/// page, which shows where it stands.
#[utoipa::path(get, path = "/manage/{token}/reschedule", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    responses((status = 303, description = "to the appointment's page, `../{token}`"),
              (status = 404, description = "a malformed token", body = ErrorBody)))]
pub async fn reschedule_opened(Path(token): Path<String>, headers: HeaderMap) -> Response {
    to_the_page(&token, &headers)
}

/// 303 to the appointment's page (relative, so it stays on this site), which looks the token up;
/// a malformed token is 404 here (it could not be put in the address).
fn to_the_page(token: &str, headers: &HeaderMap) -> Response {
    match LinkToken::parse(token) {
        Some(token) => Redirect::to(&format!("../{}", token.as_str())).into_response(),
        None => error(token, ApiError::NotFound, Answer::asked(headers)),
    }
}

/// Moves the appointment to `starts_at` (a form field or JSON), keeping its length and type; the
/// new time must be free and outside the clinic's cut-off too.
#[utoipa::path(post, path = "/manage/{token}/reschedule", tag = "manage",
    params(("token" = String, Path, description = "the token of the patient's manage link")),
    request_body(content = ManageRescheduleRequest, description = "as JSON, or as the page's form (`starts_at=`)"),
    responses((status = 200, description = "moved: an HTML page, or the appointment JSON with `Accept: application/json`", body = api::Appointment),
              (status = 404, body = ErrorBody),
              (status = 429, description = "too many links (or unknown ones) from this address, or requests on this link", body = ErrorBody),
              (status = 409, description = "slot_unavailable (with alternatives), or invalid_state: cancelled, or within the clinic's cut-off", body = ErrorBody),
              (status = 410, description = "the appointment has started", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reschedule(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Result<FormOrJson<ManageRescheduleRequest, MoveForm>, ApiError>,
) -> Response {
    // A move keeps the status, which the page shows (a pending one is confirmed from its page).
    let said = ("Appointment moved", "Your appointment is moved to the time above.");
    by_patient(&state, &token, client, &headers, said, async |link, patient| {
        let FormOrJson(body, _) = body?;
        let start = parse_instant("starts_at", &body.starts_at)?;
        Ok(booking::reschedule_by_patient(&state.store, &state.links, &patient, link.id, start, link.cutoff).await?)
    })
    .await
}

/// The manage page's move form, which may carry more than the new start (a browser's, an
/// extension's fields); the JSON body takes `starts_at` alone.
#[derive(Debug, serde::Deserialize)]
pub struct MoveForm {
    starts_at: String,
}

impl From<MoveForm> for ManageRescheduleRequest {
    fn from(form: MoveForm) -> Self {
        Self { starts_at: form.starts_at }
    }
}

/// A change the patient makes through the link: the link resolved, then `change` run as the actor
/// `patient`; answered with the appointment JSON, or the page saying `(title, done)`, or the error.
async fn by_patient(
    state: &AppState,
    token: &str,
    client: ClientAddress,
    headers: &HeaderMap,
    (title, done): (&str, &str),
    change: impl AsyncFnOnce(Link, Actor) -> Result<Appointment, ApiError>,
) -> Response {
    let answer = Answer::asked(headers);
    let made = async {
        let link = resolve(state, token, client).await?;
        let patient = Actor::new(link.org, PATIENT);
        change(link, patient).await
    };
    match made.await {
        Ok(a) if answer.json => axum::Json(a.to_api()).into_response(),
        Ok(a) => changed(state, token, &a, title, done).await,
        Err(e) => error(token, e, answer),
    }
}

/// The appointment a manage link opens, and its clinic's cut-off.
struct Link {
    org: OrgId,
    id: AppointmentId,
    cutoff: Cutoff,
}

/// The link's appointment, if the token is well formed and known (`pages::follow`); each known
/// link is rate limited on its own.
async fn resolve(state: &AppState, token: &str, client: ClientAddress) -> Result<Link, ApiError> {
    let (_, (org, id)) =
        follow(state, token, client, |hash| async move { state.store.manage_target(&hash).await }).await?;
    state.rate_limit.check_link(org, id)?;
    let settings = state.store.settings(org).await?.ok_or(ApiError::NotFound)?;
    Ok(Link { org, id, cutoff: Cutoff::minutes(settings.manage_cutoff_minutes) })
}

async fn show_page(
    state: &AppState,
    token: &str,
    a: &Appointment,
    cutoff: Cutoff,
    reach: Reach,
) -> Result<String, ApiError> {
    let details = details(state, a, &status_row(a.status)).await;
    let title = "Your appointment";
    let body = match a.status {
        AppointmentStatus::Cancelled => {
            format!("{details}<p role=\"status\">This appointment was cancelled. Please book a new one with the clinic.</p>")
        }
        AppointmentStatus::Completed | AppointmentStatus::NoShow => {
            format!("{details}<p role=\"status\">This appointment is over.</p>")
        }
        AppointmentStatus::Pending | AppointmentStatus::Confirmed if reach != Reach::Open => format!(
            "{details}{}<p role=\"status\">It starts within {}, too soon to change it online. \
             Please call the clinic to cancel or move it.</p>",
            confirm_form(token, a, reach),
            html_escape(&cutoff.spoken())
        ),
        AppointmentStatus::Pending | AppointmentStatus::Confirmed => {
            let token = html_escape(token);
            let patient = Actor::new(a.org_id, PATIENT);
            let times = if state.store.moves_left(&patient, a.id).await? == 0 {
                "<p>It has been moved online as often as it can be. Please call the clinic to move it again.</p>"
                    .to_owned()
            } else {
                let options = booking::move_options(&state.store, a, cutoff, DAYS, OFFERED).await?;
                if options.is_empty() {
                    format!("<p>There is no free time in the next {DAYS} days. Please call the clinic to move it.</p>")
                } else {
                    let starts: Vec<_> = options.iter().map(|s| a.zone.localize(s.start())).collect();
                    let forms = slot_forms(&format!("{token}/reschedule"), &starts);
                    format!("<p>Times are in {}.</p>{forms}", html_escape(a.zone.name()))
                }
            };
            format!(
                "{details}{}<p><a class=\"danger\" href=\"{token}/cancel\">Cancel this appointment</a></p>\
                 <h2>Move it to another time</h2>{times}",
                confirm_form(&token, a, reach),
            )
        }
    };
    Ok(document(title, &body))
}

/// The Confirm button of a pending appointment that has not started, posting to
/// `/manage/{token}/confirm` (relative to the page, as every form of these pages).
fn confirm_form(token: &str, a: &Appointment, reach: Reach) -> String {
    if a.status != AppointmentStatus::Pending || reach == Reach::Started {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"{}/confirm\"><button type=\"submit\">Confirm this appointment</button></form>",
        html_escape(token)
    )
}

fn status_row(status: AppointmentStatus) -> String {
    let shown = match status {
        AppointmentStatus::Pending => "Booked, not yet confirmed",
        AppointmentStatus::Confirmed => "Confirmed",
        AppointmentStatus::Cancelled => "Cancelled",
        AppointmentStatus::Completed => "Completed",
        AppointmentStatus::NoShow => "Missed",
    };
    format!("<dt>Status</dt><dd>{shown}</dd>")
}

/// One form per time, each posting `starts_at` to `action` (relative, so the pages work under
/// any `PUBLIC_BASE_URL`).
fn slot_forms(action: &str, starts: &[DateTime<FixedOffset>]) -> String {
    let items: String = starts
        .iter()
        .map(|start| {
            format!(
                "<li><form method=\"post\" action=\"{action}\" class=\"move\">\
                 <input type=\"hidden\" name=\"starts_at\" value=\"{}\">\
                 <button type=\"submit\">{}</button></form></li>",
                html_escape(&start.to_rfc3339()),
                html_escape(&start.format("%A %-d %B, %H:%M").to_string()),
            )
        })
        .collect();
    format!("<ul class=\"slots\">{items}</ul>")
}

/// The page after a change: the appointment as it is now, what happened, the way back.
async fn changed(state: &AppState, token: &str, a: &Appointment, title: &str, done: &str) -> Response {
    let details = details(state, a, &status_row(a.status)).await;
    page(
        StatusCode::OK,
        document(
            title,
            &format!(
                "{details}<p role=\"status\"><strong>{done}</strong></p>\
                 <p><a href=\"../{}\">Back to your appointment</a></p>",
                html_escape(token)
            ),
        ),
    )
}

/// The error as the API's JSON error body, or as a page that says what the patient can do.
/// The pages with a form are served under `/manage/{token}/…`, so their actions are relative to it.
fn error(token: &str, e: ApiError, answer: Answer) -> Response {
    if answer.errors_as_json {
        return e.into_response();
    }
    let back = format!("<p><a href=\"../{}\">Back to your appointment</a></p>", html_escape(token));
    let (title, body) = match &e {
        ApiError::NotFound => (
            "Link not found",
            "<p>This link is not valid. Please use the link in your most recent message from the clinic.</p>"
                .to_owned(),
        ),
        ApiError::Started => (
            "Appointment started",
            "<p>This appointment has already started, so this link can no longer change it. \
             Please contact the clinic.</p>"
                .to_owned(),
        ),
        ApiError::SlotUnavailable { alternatives, .. } => {
            let starts: Vec<_> = alternatives.iter().map(|s| s.starts_at).collect();
            let offer = if starts.is_empty() {
                String::new()
            } else {
                let forms = slot_forms("reschedule", &starts);
                format!("<p>These nearby times are free, in your appointment's time zone:</p>{forms}")
            };
            (
                "That time is no longer free",
                format!("<p>Someone else just took it, or it is too soon.</p>{offer}{back}"),
            )
        }
        ApiError::InvalidState(message) => {
            ("This appointment cannot be changed here", format!("<p>{}.</p>{back}", html_escape(&sentence(message))))
        }
        ApiError::Validation(message) | ApiError::BadRequest(message) | ApiError::UnsupportedMediaType(message) => {
            // Without the field's name ("starts_at: ..."), which means nothing to a patient.
            let said = message
                .split_once(": ")
                .filter(|(field, _)| !field.contains(' '))
                .map_or(message.as_str(), |(_, rest)| rest);
            ("Please pick another time", format!("<p>{}.</p>{back}", html_escape(&sentence(said))))
        }
        ApiError::PayloadTooLarge => ("Please pick another time", back),
        ApiError::RateLimited(_) => ("Too many requests", "<p>Please wait a minute, then try again.</p>".to_owned()),
        _ => (
            "Something went wrong",
            "<p>We could not process this link just now. Please try again in a moment.</p>".to_owned(),
        ),
    };
    error_page(e, title, &body)
}

/// A message as a sentence without its full stop (the page adds one).
fn sentence(message: &str) -> String {
    crate::domain::sentence(message.trim_end_matches('.'))
}
