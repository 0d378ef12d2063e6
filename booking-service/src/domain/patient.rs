//! What people write: the patient's details and the reason for a change, checked once at the edge.

use super::DomainError;

/// A character that hides or reorders the text around it unseen: the bidirectional embeddings,
/// overrides and isolates (a name stored as "Ada\u{202E}ecalevoL" reads "Ada Lovelace" in an
/// email), the zero-width space, the word joiners and the byte-order mark. The marks that only set
/// a direction (U+200E, U+200F, U+061C) and the joiners scripts need (U+200C, U+200D) stay.
pub fn hides_or_reorders(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// A control character or a line or paragraph separator: what text on one line holds none of.
pub fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The text trimmed and checked; a name is one line holding a letter or digit, other text may
/// break lines (a form's `\r\n`, and the line and paragraph separators text pasted from apps
/// carries, kept as `\n`).
fn check_text(field: &'static str, s: &str, max_chars: usize, name: bool) -> Result<String, DomainError> {
    let allow_newlines = !name;
    let unix;
    let s = if allow_newlines && s.contains(['\r', '\u{2028}', '\u{2029}']) {
        unix = s.replace("\r\n", "\n").replace(['\u{2028}', '\u{2029}'], "\n");
        unix.trim()
    } else {
        s.trim()
    };
    if s.chars().count() > max_chars {
        return Err(DomainError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    if s.chars().any(|c| breaks_line(c) && !(allow_newlines && (c == '\n' || c == '\t'))) {
        return Err(DomainError::invalid(field, "must not contain control characters"));
    }
    if s.chars().any(hides_or_reorders) {
        return Err(DomainError::invalid(field, "must not contain invisible or text-reversing characters"));
    }
    if name && !s.is_empty() && !s.chars().any(char::is_alphanumeric) {
        return Err(DomainError::invalid(field, "must hold a letter or digit"));
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
/// smuggle a header), one `@`, a dotted domain name (not an address in brackets, which would have
/// the clinic's relay deliver to a host it names), and one the mailer (lettre) can send to through
/// any relay, so that no booking is accepted whose confirmation could never go out: the part before
/// the `@` is ASCII, and a domain written in another script is kept in its ASCII form (IDNA).
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
        let domain = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            // A host named by its address (no top-level domain is all digits).
            && !domain.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
        let address = format!("{local}@{domain}");
        if local.is_empty()
            || local.len() > 64
            || !local.is_ascii()
            || !domain_ok
            || address.len() > 254
            || address.parse::<lettre::Address>().is_err()
        {
            return Err(invalid());
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free-text types, each read by `parse` (trimmed; absent or empty is none) and kept as checked.
macro_rules! free_text {
    ($($(#[$doc:meta])* $name:ident, at most $max:literal characters, a name: $is_name:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(field: &'static str, s: Option<&str>) -> Result<Option<Self>, DomainError> {
                let Some(s) = s else { return Ok(None) };
                let text = check_text(field, s, $max, $is_name)?;
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
    PatientName, at most 200 characters, a name: true;
    /// Free-text notes.
    Notes, at most 2000 characters, a name: false;
    /// Why something changed: a cancellation, time off, a closure.
    Reason, at most 500 characters, a name: false;
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
            // A host named by its address: the relay would deliver to it.
            "ada@[10.0.0.5]",
            "ada@10.0.0.5",
            "ada@[IPv6:::ffff:127.0.0.1]",
            // Outside ASCII before the @: only a relay speaking SMTPUTF8 takes it.
            "josé@example.com",
        ] {
            assert!(Email::parse("e", bad).is_err(), "{bad:?}");
        }
        // A domain in another script is kept as the relay is asked for it.
        assert_eq!(Email::parse("e", "ada@münchen.de").map(|e| e.0), Ok("ada@xn--mnchen-3ya.de".into()));
    }

    #[test]
    fn text_that_hides_or_reverses_itself_is_refused_and_a_name_holds_a_letter() {
        for hidden in ["Ada\u{202E}ecalevoL", "\u{2066}Ada", "Ada\u{200B}", "\u{FEFF}Ada"] {
            assert!(PatientName::parse("n", Some(hidden)).is_err(), "{hidden:?}");
            assert!(Notes::parse("notes", Some(hidden)).is_err(), "{hidden:?}");
        }
        assert!(PatientName::parse("n", Some("Ada\u{2028}Bcc: x")).is_err(), "a line separator ends a line");
        let pasted = Notes::parse("notes", Some("first\u{2028}second\u{2029}third"));
        assert_eq!(pasted, Ok(Some(Notes("first\nsecond\nthird".into()))), "kept as line breaks");
        for nameless in ["...", "-", "\u{200D}"] {
            assert!(PatientName::parse("n", Some(nameless)).is_err(), "{nameless:?}");
        }
        // Names of every script, with the marks and joiners they use, stand.
        for name in [
            "Zoë O'Brien-Smith",
            "\u{5E9}\u{5E8}\u{5D4} \u{200F}(Sara)",
            "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}",
            "李 2",
        ] {
            assert!(PatientName::parse("n", Some(name)).is_ok_and(|n| n.is_some()), "{name:?}");
        }
        assert!(Notes::parse("notes", Some("...")).is_ok(), "notes need no letter");
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
