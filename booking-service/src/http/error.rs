//! The one error type of the HTTP layer, mapped once to the JSON error body of docs/API.md §3.

use crate::booking::BookingError;
use crate::domain::DomainError;
use crate::store::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{ErrorBody, ErrorDetail, Slot};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// The client sent its body too slowly: its fault, not the database's.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("{0}")]
    Unauthorized(String),
    #[error("this role may not do that")]
    Forbidden,
    /// Allowed to the role in general, not for this: the message says why.
    #[error("{0}")]
    ForbiddenHere(String),
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    SlotUnavailable { message: String, alternatives: Vec<Slot> },
    #[error("{0}")]
    InvalidState(String),
    /// An expired confirmation link.
    #[error("this confirmation link has expired")]
    Expired,
    /// A patient's link whose appointment has started.
    #[error("the appointment has already started: this link can no longer change it")]
    Started,
    #[error(
        "the request body is larger than this route takes ({} KiB; {} KiB for the Vapi server URL)",
        super::BODY_LIMIT / 1024,
        super::vapi::VAPI_BODY_LIMIT / 1024
    )]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(String),
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyConflict,
    #[error("too many requests; try again in {} s", retry_after_secs(.0))]
    RateLimited(std::time::Duration),
    /// The database cannot be reached or cannot write now: logged with its detail, shown as a
    /// general message.
    #[error("{0}")]
    Unavailable(String),
    /// Too much of one kind of work at once, not the database (a request past its deadline, the
    /// webhook address lookups all taken): 503 as `Unavailable`, its message shown and logged.
    #[error("{0}")]
    Busy(String),
    /// A bug or an unexpected failure: logged in full, shown as a generic message.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::ForbiddenHere(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::SlotUnavailable { .. } | Self::InvalidState(_) => StatusCode::CONFLICT,
            Self::Expired | Self::Started => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::IdempotencyConflict => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::RequestTimeout => "request_timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden | Self::ForbiddenHere(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::SlotUnavailable { .. } => "slot_unavailable",
            Self::InvalidState(_) => "invalid_state",
            Self::Expired | Self::Started => "gone",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Validation(_) => "validation_failed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable(_) | Self::Busy(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Internal(detail) => {
                // The request id is on the enclosing span, so the log line can be matched.
                tracing::error!(error = %detail, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            Self::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                "the service cannot reach its database; try again shortly".to_owned()
            }
            Self::Busy(why) => {
                tracing::warn!(reason = %why, "too busy to answer");
                why.clone()
            }
            other => other.to_string(),
        };
        let alternatives = match &self {
            Self::SlotUnavailable { alternatives, .. } => Some(alternatives.clone()),
            _ => None,
        };
        let body =
            ErrorBody { success: false, error: ErrorDetail { code: self.code().to_owned(), message }, alternatives };
        let retry_after = self.retry_after();
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(wait) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, wait);
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            // Which credential is wanted (RFC 9110): a bearer token, on every route that asks one.
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::Validation(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::InvalidState(m) => Self::InvalidState(m),
            StoreError::IdempotencyConflict => Self::IdempotencyConflict,
            StoreError::Expired => Self::Expired,
            StoreError::Started => Self::Started,
            StoreError::StaffOnly(name) => {
                Self::ForbiddenHere(format!("{name} is booked by the clinic's staff, not by a voice agent"))
            }
            StoreError::Invalid(d) => d.into(),
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Store(s) => s.into(),
            BookingError::Unavailable { provider, wanted, alternatives } => {
                let zone = provider.zone();
                let outside_hours = !provider.permits(&wanted);
                let message = if outside_hours {
                    format!("{} does not work at that time", provider.name)
                } else {
                    format!("{} is not available at that time (booked, away, closed or too soon)", provider.name)
                };
                Self::SlotUnavailable {
                    message,
                    alternatives: alternatives.iter().map(|s| super::wire::slot(&zone, s)).collect(),
                }
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The `Retry-After` of a 429, which the API's answer and the patient pages' carry alike.
    pub fn retry_after(&self) -> Option<header::HeaderValue> {
        let Self::RateLimited(wait) = self else { return None };
        Some(header::HeaderValue::from(retry_after_secs(wait)))
    }
}

/// Whole seconds to wait, rounded up: at least 1.
fn retry_after_secs(wait: &std::time::Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}
