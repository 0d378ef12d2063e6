//! Extractors whose rejections are the API's errors rather than axum's plain-text ones.

use super::deadline::timed_out;
use super::error::ApiError;
use axum::extract::rejection::{BytesRejection, FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A JSON body: 415 without `application/json`, 413 over the limit, 400 when it is not JSON,
/// 422 naming the field when it does not fit the expected shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if timed_out(&rejection) {
        return ApiError::RequestTimeout;
    }
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::Validation(in_json_terms(
            &e.body_text().replace("Failed to deserialize the JSON body into the target type: ", ""),
        )),
        JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest("the request body is not valid JSON".into()),
        JsonRejection::MissingJsonContentType(_) => not_json(),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// serde's message with what it expected in JSON's words, not Rust's (`i64` is an integer, a
/// sequence an array, `struct CreateProvider` an object). Only the words after the last
/// ", expected " are serde's own: a value the client sent, quoted before them, is left as sent.
fn in_json_terms(message: &str) -> String {
    let Some(at) = message.rfind(", expected ") else {
        return message.to_owned();
    };
    let (sent, expected) = message.split_at(at);
    const WORDS: [(&str, &str); 11] = [
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected i16", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u8", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("expected a borrowed string", "expected a string"),
    ];
    let mut expected = WORDS.iter().fold(expected.to_owned(), |m, (rust, json)| m.replace(rust, json));
    // `expected struct WorkingHours`, not `expected struct variant Kind::Visit`.
    if let Some(name) = expected.strip_prefix(", expected struct ").filter(|n| !n.starts_with("variant ")) {
        let end = name.find(|c: char| !c.is_alphanumeric() && c != '_').unwrap_or(name.len());
        expected = format!(", expected an object{}", &name[end..]);
    }
    format!("{sent}{expected}")
}

/// The request's `Content-Type`, when it is readable text.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Whether the body is JSON: `application/json` or an `application/…+json` type, in any case and
/// with any parameters (as axum's `Json` takes it).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let essence = content_type(headers).and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase());
    essence.is_some_and(|v| v.strip_prefix("application/").is_some_and(|sub| sub == "json" || sub.ends_with("+json")))
}

/// Whether the body is an HTML form, `application/x-www-form-urlencoded` (a media type's case does
/// not matter).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    const FORM: &str = "application/x-www-form-urlencoded";
    content_type(headers).and_then(|v| v.trim_start().get(..FORM.len())).is_some_and(|v| v.eq_ignore_ascii_case(FORM))
}

/// A body that is either an HTML form (`application/x-www-form-urlencoded`, as a page without
/// JavaScript posts it), read as `F`, or JSON, read as `T` (which may refuse fields a form may
/// carry besides); anything else is 415. Errors as for [`Json`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FormOrJson<T, F = T>(pub T, pub PhantomData<F>);

impl<S, T, F> FromRequest<S> for FormOrJson<T, F>
where
    T: DeserializeOwned,
    F: DeserializeOwned + Into<T>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_form(req.headers()) {
            return Json::<T>::from_request(req, state).await.map(|Json(v)| Self(v, PhantomData)).map_err(
                |e| match e {
                    ApiError::UnsupportedMediaType(_) => ApiError::UnsupportedMediaType(
                        "expected a form (application/x-www-form-urlencoded) or JSON (application/json)".into(),
                    ),
                    other => other,
                },
            );
        }
        match axum::Form::<F>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value.into(), PhantomData)),
            Err(rejection) if timed_out(&rejection) => Err(ApiError::RequestTimeout),
            Err(FormRejection::FailedToDeserializeFormBody(e)) => Err(ApiError::Validation(in_json_terms(
                &e.body_text().replace("Failed to deserialize form body: ", ""),
            ))),
            Err(other) if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// Path parameters; one that does not parse (say, an id that is not a UUID) names nothing that
/// exists, so it is a 404.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|_: PathRejection| ApiError::NotFound)
    }
}

/// The client's address, read as `CLIENT_IP_SOURCE` says (the connection's peer, or a header
/// the deployment's proxy sets); `None` when it cannot be read (that header missing: a request
/// that did not come through the proxy).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let read = axum_client_ip::ClientIp::from_request_parts(parts, state).await;
        Ok(Self(read.ok().map(|axum_client_ip::ClientIp(ip)| ip)))
    }
}

/// Query parameters; malformed ones are a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e: QueryRejection| {
                ApiError::Validation(in_json_terms(
                    &e.body_text().replace("Failed to deserialize query string: ", "query: "),
                ))
            })
    }
}

/// A JSON body that may also be left out entirely (an empty body gives `None`).
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(bytes_rejection)?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !is_json {
            return Err(not_json());
        }
        axum::Json::<T>::from_bytes(&bytes).map(|axum::Json(v)| Self(Some(v))).map_err(json_rejection)
    }
}

/// The body as bytes (for signature checks), with the API's 413 over the limit.
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub axum::body::Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state).await.map(Self).map_err(bytes_rejection)
    }
}

/// A JSON body as bytes, for a route that checks a signature over them before parsing: 415
/// without `application/json`, else as [`RawBody`].
#[derive(Debug, Clone, Default)]
pub struct RawJson(pub axum::body::Bytes);

impl<S> FromRequest<S> for RawJson
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        RawBody::from_request(req, state).await.map(|RawBody(bytes)| Self(bytes))
    }
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType("expected a body with Content-Type: application/json".into())
}

/// 408 for a body that did not arrive in time, 413 for one over the limit.
fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if timed_out(&rejection) {
        ApiError::RequestTimeout
    } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::{in_json_terms, is_form, is_json};
    use axum::http::{header::CONTENT_TYPE, HeaderMap, HeaderValue};

    fn with(value: &'static str) -> HeaderMap {
        HeaderMap::from_iter([(CONTENT_TYPE, HeaderValue::from_static(value))])
    }

    #[test]
    fn serdes_rust_words_are_said_in_jsons() {
        let said = in_json_terms("appointment_minutes: invalid type: string \"30\", expected i64 at line 1 column 30");
        assert_eq!(said, "appointment_minutes: invalid type: string \"30\", expected an integer at line 1 column 30");
        let said =
            in_json_terms("working_hours[0]: invalid type: string \"x\", expected struct WorkingHours at line 1");
        assert_eq!(said, "working_hours[0]: invalid type: string \"x\", expected an object at line 1");
        assert_eq!(in_json_terms("limit: invalid digit found in string"), "limit: invalid digit found in string");
        assert_eq!(
            in_json_terms("x: invalid type: map, expected a sequence"),
            "x: invalid type: map, expected an array"
        );
        // What the client sent is echoed as sent.
        let said = in_json_terms("n: invalid type: string \"expected i64, expected u32\", expected i64 at line 1");
        assert_eq!(said, "n: invalid type: string \"expected i64, expected u32\", expected an integer at line 1");
    }

    #[test]
    fn json_is_known_by_its_media_type_in_any_case() {
        for json in ["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"] {
            assert!(is_json(&with(json)), "{json}");
        }
        for other in ["application/jsonl", "text/plain; x=+json", "text/json", "application/x-www-form-urlencoded", ""]
        {
            assert!(!is_json(&with(other)), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn a_form_is_known_by_its_media_type_in_any_case() {
        assert!(is_form(&with("application/x-www-form-urlencoded")));
        assert!(is_form(&with("Application/X-WWW-Form-Urlencoded; charset=UTF-8")), "as Twilio may send it");
        for other in ["application/json", "multipart/form-data", "application/x-www-form", ""] {
            assert!(!is_form(&with(other)), "{other}");
        }
        assert!(!is_form(&HeaderMap::new()));
    }
}
