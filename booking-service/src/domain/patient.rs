//! What people write: the patient's details and the reason for a change, checked once at the edge.

use super::DomainError;

/// The text trimmed and checked; where line breaks are allowed, a form's `\r\n` is kept as `\n`.
fn check_text(field: &'static str, s: &str, max_chars: usize, allow_newlines: bool) -> Result<String, DomainError> {
    let unix;
    let s = if allow_newlines && s.contains("\r\n") {
        unix = s.replace("\r\n", "\n");
        unix.trim()
    } else {
        s.trim()
    };
    if s.chars().count() > max_chars {
        return Err(DomainError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    if s.chars().any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t'))) {
        return Err(DomainError::invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// A phone number in E.164 (`+` and 8 to 15 digits); spaces, dots, dashes and brackets that
/// people write are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, DomainError> {
        let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let digits = compact.strip_prefix('+').unwrap_or_default();
        let ok =
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if ok {
            Ok(Self(compact))
        } else {
            Err(DomainError::invalid(field, format!("'{s}' is not a phone number in E.164 form such as +15551234567")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of a plain, deliverable shape: no spaces or line breaks (so it can never
/// smuggle a header), one `@`, a dotted domain, and one the mailer (lettre) can send to, so that
/// no booking is accepted whose confirmation could never go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let invalid = || DomainError::invalid(field, format!("'{s}' is not an email address"));
        if s.len() > 254
            || s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
        {
            return Err(invalid());
        }
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if local.is_empty() || local.len() > 64 || !domain_ok || s.parse::<lettre::Address>().is_err() {
            return Err(invalid());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free-text types, each read by `parse` (trimmed; absent or empty is none) and kept as checked.
macro_rules! free_text {
    ($($(#[$doc:meta])* $name:ident, at most $max:literal characters, line breaks allowed: $breaks:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(field: &'static str, s: Option<&str>) -> Result<Option<Self>, DomainError> {
                let Some(s) = s else { return Ok(None) };
                let text = check_text(field, s, $max, $breaks)?;
                Ok((!text.is_empty()).then_some(Self(text)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }
    )*};
}

free_text! {
    /// A patient's name.
    PatientName, at most 200 characters, line breaks allowed: false;
    /// Free-text notes.
    Notes, at most 2000 characters, line breaks allowed: true;
    /// Why something changed: a cancellation, time off, a closure.
    Reason, at most 500 characters, line breaks allowed: true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        assert_eq!(PhoneNumber::parse("p", "+1 (555) 123-4567").map(|p| p.0), Ok("+15551234567".into()));
        for bad in ["5551234567", "+1555abc4567", "+0123456789", "+1234", ""] {
            assert!(PhoneNumber::parse("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_that_could_inject_headers_or_never_be_sent_are_refused() {
        for good in ["ada@example.com", "ada.lovelace+clinic@mail.example.co.uk", "o'brien@example.ie"] {
            assert!(Email::parse("e", good).is_ok(), "{good}");
        }
        for bad in [
            // Shapes the mailer cannot send to.
            "john..doe@example.com",
            "jane.@example.com",
            "a(b@example.com",
            "a:b@example.com",
            "a\\b@example.com",
            "ada@example.com\r\nBcc: x@evil.com",
            "ada",
            "@example.com",
            "ada@localhost",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse("e", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_forms_line_breaks_are_kept_as_line_feeds() {
        assert_eq!(Reason::parse("r", Some("a\r\nb")), Ok(Some(Reason("a\nb".into()))));
        assert_eq!(Notes::parse("n", Some(" a\r\n\r\nb\r\n")), Ok(Some(Notes("a\n\nb".into()))));
        assert!(Reason::parse("r", Some("a\rb")).is_err(), "a lone carriage return is no line break");
        assert!(PatientName::parse("n", Some("Ada\r\nLovelace")).is_err());
    }

    #[test]
    fn names_are_single_lines() {
        assert!(PatientName::parse("n", Some("Ada\nBcc: x")).is_err());
        assert_eq!(PatientName::parse("n", Some("  ")).map(|n| n.is_none()), Ok(true));
        assert!(Notes::parse("notes", Some("first line\nsecond line")).is_ok());
    }
}
