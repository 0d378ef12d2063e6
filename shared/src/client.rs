//! A typed client for the booking service: a method for each route its tools and tests call (not
//! the Vapi route, whose messages are Vapi's, nor the links' pages), the API's errors as values.

use crate::api::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an HTTP answer (connection refused, timeout, reset). Its causes
    /// are in its message, so it names no source: a chain printed whole would tell them twice.
    #[error("transport error: {}", with_causes(.0))]
    Transport(reqwest::Error),
    /// The service answered with an error status and the API's error body (and, for 429, when
    /// to ask again: its `Retry-After`).
    #[error("{status}: {} ({})", body.error.message, body.error.code)]
    Api { status: StatusCode, body: Box<ErrorBody>, retry_after: Option<Duration> },
    /// The answer was not the JSON this client expects.
    #[error("unexpected answer {status}: {message}")]
    Decode { status: StatusCode, message: String },
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        Self::Transport(e)
    }
}

/// The most pages [`ApiClient::every_page`] follows: a million items at 100 a page.
pub const MAX_PAGES: usize = 10_000;

/// `url` read as the address of a service: an http:// or https:// URL (`localhost:8080` would
/// parse as a URL of the scheme `localhost`).
pub fn http_url(url: &str) -> Result<reqwest::Url, String> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(parsed),
        Ok(_) => Err(format!("{url} is not an http:// or https:// URL")),
        Err(e) => Err(format!("{url} is not a URL: {e}")),
    }
}

/// An error and the causes behind it, on one line: reqwest's "error sending request" says why
/// only in its causes ("tcp connect error: Connection refused").
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Transport(e) => e.status(),
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
        }
    }

    /// The API's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => Some(&body.error.code),
            _ => None,
        }
    }

    /// How long a refusal for too many requests (429) asks to wait before the next one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { status: StatusCode::TOO_MANY_REQUESTS, retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn asking_to_wait(mut self, wait: Option<Duration>) -> Self {
        if let Self::Api { retry_after, .. } = &mut self {
            *retry_after = wait;
        }
        self
    }

    pub fn alternatives(&self) -> &[Slot] {
        match self {
            Self::Api { body, .. } => body.alternatives.as_deref().unwrap_or_default(),
            _ => &[],
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_http(http, base_url)
    }

    /// Shares one connection pool (and its settings) between several clients.
    pub fn with_http(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self { http, base: base_url.into().trim_end_matches('/').to_owned(), token: None }
    }

    /// The same client acting with another bearer token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), ..self.clone() }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `path` carrying this client's token, for calls the typed methods do not cover.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn healthz(&self) -> ClientResult<Health> {
        self.send(self.request(Method::GET, "/healthz")).await
    }

    pub async fn readyz(&self) -> ClientResult<Health> {
        self.send(self.request(Method::GET, "/readyz")).await
    }

    pub async fn create_organization(&self, body: &CreateOrganization) -> ClientResult<Organization> {
        self.send(self.request(Method::POST, "/api/orgs").json(body)).await
    }

    pub async fn delete_organization(&self, id: Uuid) -> ClientResult<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/api/orgs/{id}"))).await
    }

    /// The caller's own organization.
    pub async fn organization(&self) -> ClientResult<Organization> {
        self.send(self.request(Method::GET, "/api/org")).await
    }

    pub async fn update_organization(&self, body: &UpdateOrganization) -> ClientResult<Organization> {
        self.send(self.request(Method::PATCH, "/api/org").json(body)).await
    }

    pub async fn create_provider(&self, body: &CreateProvider) -> ClientResult<Provider> {
        self.send(self.request(Method::POST, "/api/providers").json(body)).await
    }

    /// Every provider, page after page.
    pub async fn providers(&self) -> ClientResult<Vec<Provider>> {
        self.every_page("/api/providers", &PageQuery::default()).await
    }

    pub async fn providers_page(&self, query: &PageQuery) -> ClientResult<Page<Provider>> {
        self.send(self.request(Method::GET, "/api/providers").query(query)).await
    }

    pub async fn provider(&self, id: Uuid) -> ClientResult<Provider> {
        self.send(self.request(Method::GET, &format!("/api/providers/{id}"))).await
    }

    pub async fn update_provider(&self, id: Uuid, body: &UpdateProvider) -> ClientResult<Provider> {
        self.send(self.request(Method::PATCH, &format!("/api/providers/{id}")).json(body)).await
    }

    pub async fn deactivate_provider(&self, id: Uuid) -> ClientResult<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/api/providers/{id}"))).await
    }

    pub async fn availability(&self, provider: Uuid, date: &str) -> ClientResult<Availability> {
        self.availability_for(provider, &AvailabilityQuery { date: date.to_owned(), appointment_type_id: None }).await
    }

    pub async fn availability_for(&self, provider: Uuid, query: &AvailabilityQuery) -> ClientResult<Availability> {
        let path = format!("/api/providers/{provider}/availability");
        self.send(self.request(Method::GET, &path).query(query)).await
    }

    pub async fn create_appointment_type(&self, body: &CreateAppointmentType) -> ClientResult<AppointmentType> {
        self.send(self.request(Method::POST, "/api/appointment-types").json(body)).await
    }

    /// Every appointment type, page after page.
    pub async fn appointment_types(&self) -> ClientResult<Vec<AppointmentType>> {
        self.every_page("/api/appointment-types", &PageQuery::default()).await
    }

    pub async fn appointment_type(&self, id: Uuid) -> ClientResult<AppointmentType> {
        self.send(self.request(Method::GET, &format!("/api/appointment-types/{id}"))).await
    }

    pub async fn update_appointment_type(
        &self,
        id: Uuid,
        body: &UpdateAppointmentType,
    ) -> ClientResult<AppointmentType> {
        self.send(self.request(Method::PATCH, &format!("/api/appointment-types/{id}")).json(body)).await
    }

    pub async fn deactivate_appointment_type(&self, id: Uuid) -> ClientResult<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/api/appointment-types/{id}"))).await
    }

    pub async fn create_time_off(&self, provider: Uuid, body: &CreateTimeOff) -> ClientResult<TimeOff> {
        self.send(self.request(Method::POST, &format!("/api/providers/{provider}/time-off")).json(body)).await
    }

    /// Every time off of the provider matching `query`, page after page.
    pub async fn time_off(&self, provider: Uuid, query: &TimeOffQuery) -> ClientResult<Vec<TimeOff>> {
        let query = TimeOffQuery { cursor: None, ..query.clone() };
        self.every_page(&format!("/api/providers/{provider}/time-off"), &query).await
    }

    pub async fn delete_time_off(&self, id: Uuid) -> ClientResult<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/api/time-off/{id}"))).await
    }

    pub async fn create_webhook(&self, body: &CreateWebhook) -> ClientResult<Webhook> {
        self.send(self.request(Method::POST, "/api/webhooks").json(body)).await
    }

    /// Every webhook, page after page.
    pub async fn webhooks(&self) -> ClientResult<Vec<Webhook>> {
        self.every_page("/api/webhooks", &PageQuery::default()).await
    }

    pub async fn delete_webhook(&self, id: Uuid) -> ClientResult<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/api/webhooks/{id}"))).await
    }

    pub async fn settings(&self) -> ClientResult<Settings> {
        self.send(self.request(Method::GET, "/api/settings")).await
    }

    pub async fn set_settings(&self, body: &Settings) -> ClientResult<Settings> {
        self.send(self.request(Method::PUT, "/api/settings").json(body)).await
    }

    pub async fn vapi_settings(&self) -> ClientResult<VapiSettings> {
        self.send(self.request(Method::GET, "/api/vapi/settings")).await
    }

    pub async fn set_vapi_settings(&self, body: &VapiSettings) -> ClientResult<VapiSettings> {
        self.send(self.request(Method::PUT, "/api/vapi/settings").json(body)).await
    }

    /// Every call matching `query`, page after page.
    pub async fn calls(&self, query: &WindowQuery) -> ClientResult<Vec<Call>> {
        let query = WindowQuery { cursor: None, ..query.clone() };
        self.every_page("/api/calls", &query).await
    }

    /// The clinic's whole audit log within `query`'s window, page after page.
    pub async fn audit_log(&self, query: &WindowQuery) -> ClientResult<Vec<AuditEntry>> {
        let query = WindowQuery { cursor: None, ..query.clone() };
        self.every_page("/api/audit", &query).await
    }

    pub async fn create_closure(&self, body: &CreateClosure) -> ClientResult<Closure> {
        self.send(self.request(Method::POST, "/api/closures").json(body)).await
    }

    /// Every closure, page after page.
    pub async fn closures(&self) -> ClientResult<Vec<Closure>> {
        self.every_page("/api/closures", &PageQuery::default()).await
    }

    pub async fn delete_closure(&self, id: Uuid) -> ClientResult<()> {
        self.send_empty(self.request(Method::DELETE, &format!("/api/closures/{id}"))).await
    }

    pub async fn book(&self, input: &BookingInput) -> ClientResult<BookingResponse> {
        self.send(self.book_request(input, None)).await
    }

    /// A booking that a retry with the same key answers with the first result.
    pub async fn book_idempotent(&self, input: &BookingInput, key: &str) -> ClientResult<BookingResponse> {
        self.send(self.book_request(input, Some(key))).await
    }

    /// The booking request itself, for callers that time or send it their own way.
    pub fn book_request(&self, input: &BookingInput, idempotency_key: Option<&str>) -> RequestBuilder {
        let body = BookingRequest { tool_name: "book_appointment".into(), tool_input: input.clone() };
        let builder = self.request(Method::POST, "/api/vapi/booking").json(&body);
        match idempotency_key {
            Some(key) => builder.header("Idempotency-Key", key),
            None => builder,
        }
    }

    /// Every appointment matching `query` (its `limit` sets the page size), page after page.
    pub async fn appointments(&self, query: &AppointmentQuery) -> ClientResult<Vec<Appointment>> {
        let query = AppointmentQuery { cursor: None, ..query.clone() };
        self.every_page("/api/appointments", &query).await
    }

    pub async fn appointments_page(&self, query: &AppointmentQuery) -> ClientResult<Page<Appointment>> {
        self.send(self.request(Method::GET, "/api/appointments").query(query)).await
    }

    pub async fn appointment(&self, id: Uuid) -> ClientResult<Appointment> {
        self.send(self.request(Method::GET, &format!("/api/appointments/{id}"))).await
    }

    pub async fn cancel(&self, id: Uuid, reason: Option<&str>) -> ClientResult<Appointment> {
        let body = CancelRequest { reason: reason.map(str::to_owned) };
        let path = format!("/api/appointments/{id}/cancel");
        self.send(self.request(Method::POST, &path).json(&body)).await
    }

    pub async fn reschedule(&self, id: Uuid, body: &RescheduleRequest) -> ClientResult<Appointment> {
        let path = format!("/api/appointments/{id}/reschedule");
        self.send(self.request(Method::POST, &path).json(body)).await
    }

    /// Marks an appointment that has started as attended.
    pub async fn complete(&self, id: Uuid) -> ClientResult<Appointment> {
        self.send(self.request(Method::POST, &format!("/api/appointments/{id}/complete"))).await
    }

    /// Marks an appointment that has started as missed.
    pub async fn no_show(&self, id: Uuid) -> ClientResult<Appointment> {
        self.send(self.request(Method::POST, &format!("/api/appointments/{id}/no-show"))).await
    }

    /// Every item of a list route, following its `next` cursors to the end; the query's `limit`
    /// sets the page size. `T` may be `serde_json::Value` to read items without a fixed shape.
    /// A list that hands out the cursor it was asked with, or goes on past [`MAX_PAGES`], is an
    /// answer not understood: a broken cursor must not hold the caller for ever.
    pub async fn every_page<T: DeserializeOwned>(&self, path: &str, query: &impl Serialize) -> ClientResult<Vec<T>> {
        let (mut all, mut cursor) = (Vec::new(), None::<String>);
        for _ in 0..MAX_PAGES {
            let mut request = self.request(Method::GET, path).query(query);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let page: Page<T> = self.send(request).await?;
            all.extend(page.items);
            match page.next {
                Some(next) if cursor.as_ref() == Some(&next) => {
                    let message = format!("{path} answered a page with the cursor it was asked for");
                    return Err(ClientError::Decode { status: StatusCode::OK, message });
                }
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
        let message = format!("{path} went on past {MAX_PAGES} pages");
        Err(ClientError::Decode { status: StatusCode::OK, message })
    }

    /// Sends a request and decodes a success body as `T`, or the API's error body.
    pub async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> ClientResult<T> {
        let response = request.send().await?;
        let (status, retry_after) = (response.status(), retry_after(response.headers()));
        let bytes = response.bytes().await?;
        decode(status, &bytes).map_err(|e| e.asking_to_wait(retry_after))
    }

    async fn send_empty(&self, request: RequestBuilder) -> ClientResult<()> {
        let response = request.send().await?;
        let (status, retry_after) = (response.status(), retry_after(response.headers()));
        let bytes = response.bytes().await?;
        if status.is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(status, &bytes).map(|_| ()).map_err(|e| e.asking_to_wait(retry_after))
    }
}

/// `Retry-After` in seconds (the form the service sends) or as an HTTP date (a proxy's in front of
/// it may send that form); a date already past is no wait.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// Turns a status and body into `T` on success, else into the matching [`ClientError`].
pub fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> ClientResult<T> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode { status, message: e.to_string() });
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => Err(ClientError::Api { status, body: Box::new(body), retry_after: None }),
        Err(_) => {
            Err(ClientError::Decode { status, message: String::from_utf8_lossy(bytes).chars().take(200).collect() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use std::time::SystemTime;

    fn wait_of(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("a header value"));
        retry_after(&headers)
    }

    #[test]
    fn an_error_is_told_with_its_causes_once_each() {
        #[derive(Debug)]
        struct Sending(std::io::Error);
        impl std::fmt::Display for Sending {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Sending {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(with_causes(&Sending(refused)), "error sending request: Connection refused");
        let repeated = std::io::Error::other("error sending request");
        assert_eq!(with_causes(&Sending(repeated)), "error sending request");
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_an_http_date() {
        assert_eq!(wait_of("7"), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let wait = wait_of(&in_a_minute).expect("a date");
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(wait_of("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "past: no wait");
        assert_eq!(wait_of("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
