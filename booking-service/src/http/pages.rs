//! What the patient's public pages share (the confirm and manage links, whose token in the path is
//! the credential): following a token to its link, a small, accessible HTML document without
//! JavaScript, private headers on every answer, and JSON for a client that asks
//! `Accept: application/json` (errors for any client but a browser, [`Answer`]).

use super::deadline::answer_by;
use super::error::ApiError;
use super::extract::ClientAddress;
use super::AppState;
use crate::links::LinkToken;
use crate::mail::email::{html_escape, local_time};
use crate::store::{Appointment, StoreError, StoreResult};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What a patient's link token leads to: `lookup` of the token's hash, asked only while the
/// client has guesses left (a token no link has spends one, `link_guesses`) and lookups left
/// (every one spends one, `link_lookups`: each known link is limited on its own too, but only
/// once it is found). A malformed token is 404 before any of it.
pub async fn follow<T, F>(
    state: &AppState,
    token: &str,
    ClientAddress(client): ClientAddress,
    lookup: impl FnOnce(String) -> F,
) -> Result<(LinkToken, T), ApiError>
where
    F: Future<Output = StoreResult<Option<T>>>,
{
    let token = LinkToken::parse(token).ok_or(ApiError::NotFound)?;
    let guess = state.link_guesses.hold(client)?;
    let _lookup = match state.link_lookups.hold(client) {
        Ok(held) => held,
        Err(refused) => {
            guess.give_back(); // no lookup ran
            return Err(refused);
        }
    };
    let found = lookup(token.hash()).await;
    guess.settle(&found);
    Ok((token, found?.ok_or(ApiError::NotFound)?))
}

/// How a link answers: its pages, or JSON for a client that asks `Accept: application/json`; its
/// errors as pages only to a client that asks for HTML (a browser), to any other in the API's
/// error body, as every error of the API is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub json: bool,
    pub errors_as_json: bool,
}

impl Answer {
    pub fn asked(headers: &HeaderMap) -> Self {
        let accept = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
        // The media types asked for, each as `mime` reads it (case aside), less those refused
        // (`q=0`).
        let wanted: Vec<mime::Mime> = accept
            .flat_map(|v| v.split(','))
            .filter_map(|range| range.trim().parse::<mime::Mime>().ok())
            .filter(|m| m.get_param("q").is_none_or(|q| q.as_str().parse::<f32>().is_ok_and(|q| q > 0.0)))
            .collect();
        let names = |kind: mime::Name, sub: mime::Name| wanted.iter().any(|m| m.type_() == kind && m.subtype() == sub);
        let json = names(mime::APPLICATION, mime::JSON);
        Self { json, errors_as_json: json || !names(mime::TEXT, mime::HTML) }
    }
}

/// How long a page waits for the clinic's and provider's names.
const NAMES_WITHIN: Duration = Duration::from_secs(2);
/// What a page leaves itself, past its wait for the names, to be written and sent before the
/// request's deadline.
const TO_ANSWER: Duration = Duration::from_millis(100);

/// Until when a page waits for the names, from `now`: [`NAMES_WITHIN`], cut to leave
/// [`TO_ANSWER`] before the request's deadline `answer_by`.
fn names_until(now: Instant, answer_by: Option<Instant>) -> Instant {
    let by = answer_by.map(|by| by.checked_sub(TO_ANSWER).unwrap_or(now));
    by.map_or(now + NAMES_WITHIN, |by| by.min(now + NAMES_WITHIN))
}

/// Clinic, its phone (its Vapi transfer number, when set: the pages that say to call the clinic
/// stand beside it), provider, local time and code, escaped, then `rows` (already escaped
/// `<dt>`/`<dd>` pairs).
pub async fn details(state: &AppState, a: &Appointment, rows: &str) -> String {
    // Shown also after a change has committed: a failed or slow read of the names leaves them out
    // rather than answering the patient (or the request deadline's 503) that the change failed.
    let names =
        async { tokio::join!(state.store.organization(a.org_id), state.store.provider(a.org_id, a.provider_id)) };
    let late = || StoreError::Unavailable("no answer in the time the page had".into());
    let (clinic, provider) = tokio::time::timeout_at(names_until(Instant::now(), answer_by()), names)
        .await
        .unwrap_or_else(|_| (Err(late()), Err(late())));
    fn read<T>(a: &Appointment, row: Result<Option<T>, StoreError>) -> Option<T> {
        row.unwrap_or_else(|e| {
            tracing::warn!(appointment = %a.id.0, error = %e, "a page is shown without a name it could not read");
            None
        })
    }
    let (clinic, provider) = (read(a, clinic), read(a, provider));
    let phone = clinic.as_ref().and_then(|c| c.vapi.transfer_number.as_deref()).map_or(String::new(), |phone| {
        let phone = html_escape(phone);
        format!("<dt>Clinic phone</dt><dd><a href=\"tel:{phone}\">{phone}</a></dd>")
    });
    format!(
        "<dl><dt>Clinic</dt><dd>{}</dd>{phone}<dt>With</dt><dd>{}</dd><dt>When</dt><dd>{}</dd>\
         <dt>Confirmation code</dt><dd><strong>{}</strong></dd>{rows}</dl>",
        html_escape(&clinic.map(|c| c.name).unwrap_or_default()),
        html_escape(&provider.map(|p| p.name).unwrap_or_default()),
        html_escape(&local_time(&a.zone, &a.slot)),
        html_escape(&a.confirmation_code),
    )
}

/// A small, accessible, mobile-friendly page; `title` and `body` are already escaped.
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;line-height:1.5;max-width:32rem;margin:0 auto;padding:1rem;color:#111}}\
         h1{{font-size:1.5rem}}h2{{font-size:1.2rem;margin-top:2rem}}dt{{font-weight:600}}dd{{margin:0 0 .75rem}}\
         button{{font-size:1.1rem;padding:.75rem 1.5rem;border:0;border-radius:.4rem;background:#1d4ed8;color:#fff;cursor:pointer}}\
         button.danger{{background:#b91c1c}}button:focus,a:focus{{outline:3px solid #b45309;outline-offset:2px}}\
         a.danger{{display:inline-block;font-size:1.1rem;padding:.75rem 1.5rem;border-radius:.4rem;background:#b91c1c;color:#fff}}\
         ul.slots{{list-style:none;padding:0}}ul.slots li{{margin:0 0 .5rem}}ul.slots button{{width:100%;text-align:left}}\
         </style></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )
}

pub fn page(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The page of an error `e` of a link: `page` at its status, with the `Retry-After` of a 429. An
/// internal error's detail is logged as the API logs it, never shown.
pub fn error_page(e: ApiError, title: &str, body: &str) -> Response {
    let (status, retry_after) = (e.status(), e.retry_after());
    drop(e.into_response());
    let mut response = page(status, document(title, body));
    if let Some(wait) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, wait);
    }
    response
}

/// Whether `path` is under a patient's link, whose token is in the path.
pub fn is_link_path(path: &str) -> bool {
    path.starts_with("/confirm/") || path.starts_with("/manage/")
}

/// Gives every answer under a patient's link [`secured`]'s headers: the pages' and the JSON's, and
/// as well the request deadline's 503, a panic's 500, a method's 400 and an unknown path's 404.
pub async fn secure_links(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let link = is_link_path(req.uri().path());
    let response = next.run(req).await;
    if link {
        secured(response)
    } else {
        response
    }
}

/// The headers every answer of a link carries: the token must not leak to another site
/// (`no-referrer`) nor stay in a cache (`no-store`), and the page runs no script at all.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page to a browser, JSON to whoever asks for it, errors as JSON to any other client; the
    /// media types read as HTTP has them (case aside, `q=0` refusing one).
    #[test]
    fn the_accept_header_chooses_a_page_or_json() {
        let asked = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).expect("a header value"));
            Answer::asked(&headers)
        };
        let answer = |json, errors_as_json| Answer { json, errors_as_json };
        assert_eq!(asked("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), answer(false, false));
        assert_eq!(asked("application/json"), answer(true, true));
        assert_eq!(asked("application/json; charset=utf-8"), answer(true, true));
        assert_eq!(asked("*/*"), answer(false, true));
        assert_eq!(asked(""), answer(false, true));
        assert_eq!(asked("TEXT/HTML"), answer(false, false));
        assert_eq!(asked("application/json;q=0, text/html"), answer(false, false));
    }

    #[test]
    fn a_page_waits_for_the_names_only_while_its_request_has_time() {
        let now = Instant::now();
        assert_eq!(names_until(now, None), now + NAMES_WITHIN);
        let later = now + NAMES_WITHIN * 3;
        assert_eq!(names_until(now, Some(later)), now + NAMES_WITHIN, "time enough");
        let soon = now + Duration::from_millis(700);
        assert_eq!(names_until(now, Some(soon)), soon - TO_ANSWER);
        assert_eq!(names_until(now, Some(now + TO_ANSWER / 2)), now - TO_ANSWER / 2, "no wait at all");
    }
}
