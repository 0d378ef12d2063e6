//! Keyset paging of the list routes (docs/API.md): `limit` and an opaque `cursor` in,
//! `{"items", "next"}` out. The cursor is the sort key and id of a page's last row.

use super::error::{ApiError, ApiResult};
use crate::store::{Page, PageRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::api;
use uuid::Uuid;

pub const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = crate::store::MAX_PAGE;
/// Longer than any cursor this service gives: a key of at most 200 characters (a name, a call
/// id) of up to 4 bytes each, beside an id and the JSON around them, in base64 (4 characters for
/// 3 bytes).
const MAX_CURSOR: usize = (200 * 4 + 64) * 4 / 3;

/// A list's sort key, as a cursor carries it back.
pub trait SortKey: DeserializeOwned {
    /// Whether both databases can compare with it: a date of a year they store (PostgreSQL
    /// refuses one before 4713 BC), as every key this service gives is.
    fn comparable(&self) -> bool;
}

impl SortKey for String {
    fn comparable(&self) -> bool {
        true
    }
}

/// A row's place in a list that only grows (an appointment's audit trail, the clinic's rows of
/// one instant): counted from 1, so never below 0 (an offset below 0 PostgreSQL refuses).
impl SortKey for i64 {
    fn comparable(&self) -> bool {
        *self >= 0
    }
}

impl SortKey for NaiveDate {
    fn comparable(&self) -> bool {
        (1..=9999).contains(&self.year())
    }
}

impl SortKey for DateTime<Utc> {
    fn comparable(&self) -> bool {
        self.date_naive().comparable()
    }
}

impl<A: SortKey, B: SortKey> SortKey for (A, B) {
    fn comparable(&self) -> bool {
        self.0.comparable() && self.1.comparable()
    }
}

/// The page a list request asks for.
pub fn request<K: SortKey>(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<PageRequest<K>> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(format!("limit: must be from 1 to {MAX_LIMIT}")));
    }
    let after = cursor.map(decode).transpose()?;
    Ok(PageRequest { limit, after })
}

fn decode<K: SortKey>(cursor: &str) -> ApiResult<(K, Uuid)> {
    let invalid = not_a_cursor;
    if cursor.len() > MAX_CURSOR {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let key: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if holds_control(&key) {
        return Err(invalid());
    }
    let (key, id): (K, Uuid) = serde_json::from_value(key).map_err(|_| invalid())?;
    if !key.comparable() {
        return Err(invalid());
    }
    Ok((key, id))
}

/// The refusal of a cursor that is not a place in the list asked for.
pub fn not_a_cursor() -> ApiError {
    ApiError::Validation("cursor: not a place in this list (pass back a `next` it gave)".into())
}

/// Whether a string in `v` holds a control character: no sort key this service gives does (names
/// are one line, ids have none), and PostgreSQL cannot compare with a NUL.
fn holds_control(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.chars().any(char::is_control),
        serde_json::Value::Array(items) => items.iter().any(holds_control),
        serde_json::Value::Object(fields) => fields.values().any(holds_control),
        _ => false,
    }
}

/// The page as the API answers it: its items on the wire, and the cursor of the next page when
/// rows follow.
pub fn answer<T, W, K: Serialize>(
    page: Page<T>,
    key: impl Fn(&T) -> (K, Uuid),
    wire: impl Fn(&T) -> W,
) -> api::Page<W> {
    let next = page.items.last().filter(|_| page.more).map(|last| {
        let bytes = serde_json::to_vec(&key(last)).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(bytes)
    });
    api::Page { items: page.items.iter().map(wire).collect(), next }
}
