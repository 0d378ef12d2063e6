//! `POST /sms/inbound`: the messages patients text to a sender number, as Twilio forwards them
//! (its form: `From`, `To`, `Body` and more). `STOP` and its synonyms stop every SMS from that
//! sender number to that phone, `START` and its synonyms resume them; anything else is only
//! acknowledged. The answer is empty TwiML: Twilio sends no reply of ours.
//!
//! With `TWILIO_AUTH_TOKEN` set, only a request carrying Twilio's `X-Twilio-Signature` over
//! `PUBLIC_BASE_URL/sms/inbound` (and the request's query) and every form field is taken; else 403.
//! Without it no SMS leaves the machine (they are files) and nothing can be checked: a message is
//! taken only from this machine (a loopback connection no proxy relayed; else 403), so no one on
//! the internet can keep opt-outs of made-up phones in a deployment without Twilio, for it to
//! honour once Twilio is set, and each spends one of the client address's guesses (`LINK_GUESSES_PER_MINUTE`;
//! beyond them 429): an unsigned message is a claim about a phone that nothing backs, as an
//! unknown link token is.
//!
//! Public like the confirmation pages, and limited like them: no token to count requests by, the
//! body limit, the request deadline; with Twilio, the signature.

use super::error::ApiError;
use super::extract::{is_form, ClientAddress, RawBody};
use super::AppState;
use crate::domain::{DomainError, PhoneNumber};
use crate::sms::{Keyword, Origin};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use shared::api::ErrorBody;
use std::net::SocketAddr;

pub const PATH: &str = "/sms/inbound";
const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The answer that tells Twilio to send nothing back.
const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(inbound))
}

/// The fields of Twilio's inbound form this route reads; the others are only signed.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct InboundSms {
    /// The patient's number (E.164).
    #[serde(rename = "From")]
    pub from: Option<String>,
    /// The sender number of ours the patient texted (E.164).
    #[serde(rename = "To")]
    pub to: Option<String>,
    /// The text: `STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT`, `REVOKE`, `OPTOUT`, or
    /// `START`, `UNSTOP`, `YES` (any case); anything else is ignored.
    #[serde(rename = "Body")]
    pub body: Option<String>,
    /// Twilio's reading of it with Advanced Opt-Out (`STOP`, `START`, `HELP`): when given, it
    /// decides, so keywords a clinic set up in Twilio count too.
    #[serde(rename = "OptOutType")]
    pub opt_out_type: Option<String>,
}

impl InboundSms {
    /// The first value of each field read.
    fn from_params(params: &[(String, String)]) -> Self {
        let field = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Self { from: field("From"), to: field("To"), body: field("Body"), opt_out_type: field("OptOutType") }
    }
}

/// Whether a request was made on this machine: its connection comes from a loopback address and
/// no proxy relayed it (a proxy on this machine connects from loopback for every client, and says
/// so in one of these headers, as nginx's usual configuration does). Whatever `CLIENT_IP_SOURCE`
/// says, so that neither a proxy nor a header a client sets can stand in for the machine.
fn made_here(peer: SocketAddr, headers: &HeaderMap) -> bool {
    const RELAYED: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];
    peer.ip().to_canonical().is_loopback() && RELAYED.iter().all(|name| !headers.contains_key(*name))
}

/// An SMS a patient sent to one of our sender numbers: opts out on `STOP`, back in on `START`.
#[utoipa::path(post, path = "/sms/inbound", tag = "sms",
    request_body(content = InboundSms, content_type = "application/x-www-form-urlencoded",
                 description = "Twilio's inbound message form; every field counts in the signature"),
    params(("X-Twilio-Signature" = Option<String>, Header,
            description = "Twilio's signature; required when TWILIO_AUTH_TOKEN is set")),
    responses((status = 200, description = "taken: empty TwiML", content_type = "text/xml"),
              (status = 403, description = "missing or wrong signature; without TWILIO_AUTH_TOKEN, a client that is not this machine", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, description = "From or To is not a phone number", body = ErrorBody),
              (status = 429, description = "without TWILIO_AUTH_TOKEN: the client address has no guesses left (LINK_GUESSES_PER_MINUTE)", body = ErrorBody)))]
pub async fn inbound(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    if !is_form(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "expected a body with Content-Type: application/x-www-form-urlencoded".into(),
        ));
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    // Twilio signs the URL it was given, so the public one, not the one this process listens on.
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}{PATH}{query}", state.public_base_url);
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let origin = state.sms.origin(&url, &params, signature);
    if origin == Origin::Forged {
        return Err(ApiError::ForbiddenHere("X-Twilio-Signature is missing or does not match this request".into()));
    }
    if origin == Origin::Unchecked && !made_here(peer, &headers) {
        return Err(ApiError::ForbiddenHere(
            "without TWILIO_AUTH_TOKEN nothing can check who sent this, so only this machine may post it".into(),
        ));
    }
    let form = InboundSms::from_params(&params);
    let number = |field: &'static str, value: Option<String>| {
        let value = value.ok_or_else(|| DomainError::invalid(field, "is required"))?;
        PhoneNumber::parse(field, &value)
    };
    let phone = number("From", form.from)?;
    let sender = number("To", form.to)?;
    // Spent whatever the message says: an unsigned one is never given back.
    let _spent = (origin == Origin::Unchecked).then(|| state.link_guesses.hold(client)).transpose()?;
    let keyword = match form.opt_out_type.as_deref() {
        Some(kind) => Keyword::of_opt_out_type(kind),
        None => Keyword::of(form.body.as_deref().unwrap_or_default()),
    };
    match keyword {
        Some(Keyword::OptOut) => {
            state.store.sms_opt_out(&sender, &phone).await?;
            tracing::info!("an SMS opt-out was kept");
        }
        Some(Keyword::OptIn) => {
            let withdrawn = state.store.sms_opt_in(&sender, &phone).await?;
            tracing::info!(withdrawn, "an SMS opt-in was taken");
        }
        None => {}
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], EMPTY_TWIML).into_response())
}
