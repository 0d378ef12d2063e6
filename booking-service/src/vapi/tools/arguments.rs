//! Reading a tool's arguments into its typed struct, as forgivingly as models send them: text may
//! come as a string or a number and counts only when not blank; a length may be a number or a
//! numeric string. A value of the wrong shape counts as absent (or, for a length, as unusable)
//! instead of failing the whole call, so each tool asks for what it is missing in its own order.

use super::refusal::Refusal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The tool's arguments struct from the call's arguments object.
pub fn read<T: DeserializeOwned>(arguments: &Map<String, Value>) -> Result<T, Refusal> {
    T::deserialize(Value::Object(arguments.clone())).map_err(|e| unreadable(&e.to_string()))
}

/// The refusal for arguments that are not an object at all.
pub fn unreadable(why: &str) -> Refusal {
    Refusal::spoken(format!("I couldn't read the details of that request: {why}."))
}

/// For `#[serde(default, deserialize_with = "text")]`: a trimmed non-blank string, or a number
/// as written.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A value that must be there, or the question that asks for it.
pub fn required(value: Option<String>, ask: &str) -> Result<String, Refusal> {
    value.ok_or_else(|| Refusal::spoken(ask))
}

/// A length in minutes as the model sent it; `null` or absent is `None` in an `Option<Length>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Minutes(i64),
    /// Not a whole number: refused when the tool reaches it, not while reading.
    Unusable,
}

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let minutes = match Value::deserialize(d)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        Ok(minutes.map_or(Self::Unusable, Self::Minutes))
    }
}

impl Length {
    pub fn minutes(length: Option<Self>) -> Result<Option<i64>, Refusal> {
        match length {
            None => Ok(None),
            Some(Self::Minutes(m)) => Ok(Some(m)),
            Some(Self::Unusable) => Err(Refusal::spoken("The length must be a whole number of minutes.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "text")]
        name: Option<String>,
        duration: Option<Length>,
    }

    fn sample(v: Value) -> Sample {
        let Value::Object(map) = v else { panic!("an object") };
        match read(&map) {
            Ok(s) => s,
            Err(_) => panic!("readable"),
        }
    }

    #[test]
    fn text_is_trimmed_numbers_count_and_other_shapes_are_absent() {
        assert_eq!(sample(json!({"name": "  Ada "})).name.as_deref(), Some("Ada"));
        assert_eq!(sample(json!({"name": 42})).name.as_deref(), Some("42"));
        for absent in [json!({}), json!({"name": " "}), json!({"name": null}), json!({"name": [1]})] {
            assert_eq!(sample(absent.clone()).name, None, "{absent}");
        }
    }

    #[test]
    fn lengths_are_whole_minutes_as_numbers_or_text() {
        assert_eq!(sample(json!({"duration": 30})).duration, Some(Length::Minutes(30)));
        assert_eq!(sample(json!({"duration": " 45 "})).duration, Some(Length::Minutes(45)));
        assert_eq!(sample(json!({"duration": null})).duration, None);
        assert_eq!(sample(json!({})).duration, None);
        for unusable in [json!(12.5), json!("half an hour"), json!(true)] {
            let read = sample(json!({ "duration": unusable })).duration;
            assert_eq!(read, Some(Length::Unusable), "{unusable}");
            assert!(Length::minutes(read).is_err());
        }
    }
}
