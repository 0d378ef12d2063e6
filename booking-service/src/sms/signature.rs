//! Twilio's request signature (`X-Twilio-Signature`): the base64 of the HMAC-SHA1, keyed with the
//! account's auth token, of the full URL Twilio requested followed by every POST parameter's name
//! and value, sorted by name, with no separators.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use url::Position;

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, as Twilio sorts them; a repeated name by value, so the order is always defined.
    sorted.sort();
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature Twilio sends with a POST of `params` to `url`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request; compared in constant time. Twilio signs
/// some URLs with their port and some without it (an https one without, whatever was configured;
/// its own libraries check both), so `url` is tried as given, without its port and with it said
/// (the scheme's default when it names none).
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else { return false };
    signed_forms(url).iter().any(|url| mac(auth_token, url, params).verify_slice(&given).is_ok())
}

/// `url`, and it without a port and with one, each once.
fn signed_forms(url: &str) -> Vec<String> {
    let mut forms = vec![url.to_owned()];
    if let Some((parsed, port)) = url::Url::parse(url).ok().and_then(|u| u.port_or_known_default().map(|p| (u, p))) {
        let (head, tail) = (&parsed[..Position::AfterHost], &parsed[Position::BeforePath..]);
        for form in [format!("{head}{tail}"), format!("{head}:{port}{tail}")] {
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params(caller: &str) -> Vec<(String, String)> {
        // Not in sorted order, as a form may send them.
        [
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", caller),
            ("Caller", caller),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Twilio's documented examples (auth token `12345`): the security guide's
    /// (caller +12349013030) and twilio-php's validation guide's (caller +14158675309). Both
    /// checked independently with
    /// `printf '%s' 'https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212' | openssl dgst -sha1 -hmac 12345 -binary | base64`.
    #[test]
    fn twilios_documented_examples_are_reproduced() {
        assert_eq!(sign("12345", URL, &params("+12349013030")), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert_eq!(sign("12345", URL, &params("+14158675309")), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify("12345", URL, &params("+12349013030"), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    }

    #[test]
    fn any_change_of_token_url_parameter_or_signature_is_refused() {
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(!verify("12346", URL, &params("+12349013030"), good), "another token");
        assert!(!verify("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &params("+12349013030"), good));
        assert!(!verify("12345", URL, &params("+12349013031"), good), "another parameter value");
        let mut more = params("+12349013030");
        more.push(("Body".into(), "STOP".into()));
        assert!(!verify("12345", URL, &more, good), "an added parameter");
        for bad in ["", "not base64!", "0/KCTR6DLpKmkAf8muzZqo1nDgQ", "1/KCTR6DLpKmkAf8muzZqo1nDgQ="] {
            assert!(!verify("12345", URL, &params("+12349013030"), bad), "{bad}");
        }
    }

    /// Signed with the port or without it, the request is Twilio's either way; another host,
    /// scheme or port is not the same URL.
    #[test]
    fn a_url_is_checked_with_its_port_and_without() {
        let form = params("+12349013030");
        let path = "/sms/inbound?x=1";
        for (configured, signed, same) in [
            ("https://clinic.example", "https://clinic.example:443", true),
            ("https://clinic.example:443", "https://clinic.example", true),
            ("https://clinic.example:8443", "https://clinic.example", true),
            ("https://clinic.example:8443", "https://clinic.example:8443", true),
            ("http://clinic.example", "http://clinic.example:80", true),
            ("https://clinic.example", "https://clinic.example:8443", false),
            ("https://clinic.example", "http://clinic.example", false),
            ("https://clinic.example", "https://other.example", false),
            ("https://clinic.example:8443", "https://clinic.example:9443", false),
        ] {
            let signature = sign("12345", &format!("{signed}{path}"), &form);
            let taken = verify("12345", &format!("{configured}{path}"), &form, &signature);
            assert_eq!(taken, same, "{configured} signed as {signed}");
        }
        assert_eq!(
            signed_forms("https://clinic.example/a?b"),
            ["https://clinic.example/a?b", "https://clinic.example:443/a?b"]
        );
    }
}
