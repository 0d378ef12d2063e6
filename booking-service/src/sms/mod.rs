//! Outgoing SMS and what Twilio tells us of incoming ones (docs/API.md, "Reminders and SMS" and "SMS").
//!
//! With a Twilio account (`TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN`) and a sender number (the
//! clinic's `sms_from`, else `SMS_FROM`) each message is one
//! `POST {TWILIO_API_BASE}/2010-04-01/Accounts/{sid}/Messages.json`; without them it is a JSON file
//! `{"to", "from", "body"}` under `SMS_DIR`, named after its outbox job so a retry overwrites it.
//! The auth token is also the key of the signature Twilio puts on the inbound messages it
//! forwards ([`signature`]); without it nothing can be checked, which is safe only because no SMS
//! then leaves the machine.

pub mod keyword;
pub mod signature;

pub use keyword::Keyword;

use crate::config::Config;
use crate::domain::PhoneNumber;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long one request to Twilio may take, connection to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error answer that is read, and of its message that is kept.
const ERROR_BODY_BYTES: usize = 4096;
const ERROR_MESSAGE_CHARS: usize = 200;

/// Why an SMS was not handed over; the dispatcher keeps the text as the job's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// Twilio answered, but not with a 2xx; `code` is Twilio's error code when it gave one.
    #[error("Twilio answered {status}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Rejected { status: u16, code: Option<i64>, message: String },
    #[error("Twilio could not be reached: {0}")]
    Unreachable(String),
    #[error("cannot write the SMS file: {0}")]
    File(String),
}

impl SmsError {
    /// Whether sending the same message again cannot succeed, whatever the operator fixes meanwhile:
    /// Twilio refused the message itself ([`UNSENDABLE`]). Anything else it refuses (credentials, a
    /// sender number the account does not own, a region it does not send to yet, a wrong
    /// `TWILIO_API_BASE` answering 404), its rate (429) or its own health (5xx) are retried with the
    /// outbox's backoff, like email, until `MAIL_MAX_ATTEMPTS`.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { status: 400, code: Some(code), .. } if UNSENDABLE.contains(code))
    }

    /// Whether Twilio refused it because the phone opted out of the sender (error 21610): a STOP
    /// Twilio heard and this service did not (texted before, or a word only Twilio reads).
    pub fn opted_out(&self) -> bool {
        matches!(self, Self::Rejected { code: Some(UNSUBSCRIBED_RECIPIENT), .. })
    }
}

/// Twilio's error codes for a message that cannot be sent as it is: no recipient (21604), an
/// invalid one (21211), one that is no mobile (21614), no text (21602) or one too long (21617).
const UNSENDABLE: [i64; 5] = [21604, 21211, 21614, 21602, 21617];

/// Twilio's "Attempt to send to unsubscribed recipient".
const UNSUBSCRIBED_RECIPIENT: i64 = 21610;

/// Where SMS go, and the key inbound ones are checked with. Cheap to clone (one HTTP client).
#[derive(Clone)]
pub struct Sms {
    twilio: Option<Arc<Twilio>>,
    /// One JSON file per message under this folder, for what Twilio does not send.
    dir: PathBuf,
    /// `SMS_FROM`, in E.164.
    from: Option<String>,
}

struct Twilio {
    client: reqwest::Client,
    /// `{base}/2010-04-01/Accounts/{sid}/Messages.json`.
    messages: url::Url,
    base: String,
    account_sid: String,
    auth_token: String,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms").field("route", &self.describe()).finish()
    }
}

/// Whether an inbound request comes from Twilio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its `X-Twilio-Signature` is right.
    Twilio,
    /// No auth token is configured, so nothing can be checked (and no SMS leaves the machine).
    Unchecked,
    /// The signature is missing or wrong.
    Forged,
}

impl Sms {
    /// Twilio when both `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN` are set (for messages with a
    /// sender), files under `SMS_DIR` when neither is; one without the other is refused, as is an
    /// `SMS_FROM` that is not a phone number.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let from = config
            .sms_from
            .as_deref()
            .map(|s| PhoneNumber::parse("SMS_FROM", s).map(|p| p.as_str().to_owned()))
            .transpose()?;
        // Blank values were refused with the settings (`Config::without_blanks`).
        let present = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_owned());
        let twilio = match (present(&config.twilio_account_sid), present(&config.twilio_auth_token)) {
            (Some(account_sid), Some(auth_token)) => {
                Some(Arc::new(Twilio::new(&config.twilio_api_base, account_sid, auth_token)?))
            }
            (None, None) => None,
            _ => anyhow::bail!(
                "set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to send SMS through Twilio, or neither"
            ),
        };
        Ok(Self { twilio, dir: config.sms_dir.clone(), from })
    }

    /// `SMS_FROM`: the sender of clinics without their own `sms_from`.
    pub fn default_from(&self) -> Option<&str> {
        self.from.as_deref()
    }

    /// Where SMS go, for the start-up banner (no credentials).
    pub fn describe(&self) -> String {
        let files = format!("JSON files in {}", self.dir.display());
        match (&self.twilio, &self.from) {
            (Some(t), Some(from)) => format!("Twilio at {}, from {from}", crate::config::redact(&t.base)),
            (Some(t), None) => format!(
                "Twilio at {}, from each clinic's sms_from (no SMS_FROM; a clinic without one: {files})",
                crate::config::redact(&t.base)
            ),
            (None, Some(from)) => format!("{files}, from {from}"),
            (None, None) => format!("{files}, from each clinic's sms_from (no SMS_FROM)"),
        }
    }

    /// Hands one SMS over: to Twilio when it has an account and the message a sender, else to the
    /// file `{job}.json` (`spool::write`; `from` is null there when no sender is set).
    pub async fn send(&self, job: uuid::Uuid, from: Option<&str>, to: &str, body: &str) -> Result<(), SmsError> {
        match (&self.twilio, from) {
            (Some(twilio), Some(from)) => twilio.send(from, to, body).await,
            (twilio, _) => {
                if twilio.is_some() {
                    tracing::warn!(%job, "an SMS without a sender number (no sms_from, no SMS_FROM) is written to SMS_DIR");
                }
                let json = serde_json::json!({ "to": to, "from": from, "body": body });
                crate::spool::write(&self.dir, format!("{job}.json"), json.to_string().into_bytes())
                    .await
                    .map_err(SmsError::File)
            }
        }
    }

    /// Whether a POST of `params` to `url` (the full public URL Twilio requested, query
    /// included) carrying `signature` comes from Twilio.
    pub fn origin(&self, url: &str, params: &[(String, String)], signature: Option<&str>) -> Origin {
        let Some(twilio) = &self.twilio else { return Origin::Unchecked };
        match signature {
            Some(signature) if signature::verify(&twilio.auth_token, url, params, signature) => Origin::Twilio,
            _ => Origin::Forged,
        }
    }
}

impl Twilio {
    fn new(api_base: &str, account_sid: String, auth_token: String) -> anyhow::Result<Self> {
        // The SID goes into the URL's path: only the letters and digits Twilio's SIDs are made of.
        anyhow::ensure!(
            account_sid.len() <= 64 && account_sid.bytes().all(|b| b.is_ascii_alphanumeric()),
            "TWILIO_ACCOUNT_SID must be letters and digits (such as AC followed by 32 hex digits)"
        );
        let base = api_base.trim_end_matches('/').to_owned();
        let messages = url::Url::parse(&format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .with_context(|| format!("TWILIO_API_BASE {} is not an http(s) URL", crate::config::redact(api_base)))?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot set up the HTTP client for Twilio")?;
        Ok(Self { client, messages, base, account_sid, auth_token })
    }

    async fn send(&self, from: &str, to: &str, body: &str) -> Result<(), SmsError> {
        let response = self
            .client
            .post(self.messages.clone())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&[("To", to), ("From", from), ("Body", body)])
            .send()
            .await
            // The URL names the account: kept out of the error, which is stored with the job.
            .map_err(|e| SmsError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let (code, message) = error_message(response).await;
        Err(SmsError::Rejected { status: status.as_u16(), code, message })
    }
}

/// Twilio's explanation of an error answer (`{"code", "message", ...}`), cut short; empty when
/// the answer is not Twilio's JSON. At most [`ERROR_BODY_BYTES`] of it are read.
async fn error_message(mut response: reqwest::Response) -> (Option<i64>, String) {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else { return (None, String::new()) };
    let message = without_numbers(json["message"].as_str().unwrap_or_default());
    let message: String = message.chars().take(ERROR_MESSAGE_CHARS).collect();
    match json["code"].as_i64() {
        Some(code) => (Some(code), format!("{message} (Twilio error {code})")),
        None => (None, message),
    }
}

/// Twilio's words with every phone number left out: its refusals repeat the recipient's ("The
/// 'To' number +1555… is not a valid phone number"), and the error goes to the logs and the
/// outbox's `last_error`. A word with five digits or more is taken for a number.
fn without_numbers(said: &str) -> String {
    let number = |word: &str| word.bytes().filter(u8::is_ascii_digit).count() >= 5;
    said.split(' ').map(|word| if number(word) { "<number>" } else { word }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(adjust: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config::with_database("sqlite://unused.db");
        adjust(&mut config);
        config
    }

    #[test]
    fn half_a_twilio_account_is_refused() {
        let sid_only = config(|c| c.twilio_account_sid = Some("AC123".into()));
        assert!(Sms::from_config(&sid_only).is_err());
        let token_only = config(|c| c.twilio_auth_token = Some("secret-token".into()));
        assert!(Sms::from_config(&token_only).is_err());
    }

    #[test]
    fn the_banner_names_the_target_but_never_the_token() {
        let sms = Sms::from_config(&config(|c| {
            c.twilio_account_sid = Some("AC123".into());
            c.twilio_auth_token = Some("hunter2-token".into());
            c.sms_from = Some("+1 555 000 1111".into());
        }))
        .expect("twilio");
        let shown = format!("{} {sms:?}", sms.describe());
        assert!(shown.contains("Twilio at https://api.twilio.com") && shown.contains("+15550001111"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(sms.default_from(), Some("+15550001111"));
    }

    #[test]
    fn a_bad_sender_sid_or_api_base_is_refused() {
        assert!(Sms::from_config(&config(|c| c.sms_from = Some("bookings".into()))).is_err());
        let twilio = |c: &mut Config| {
            c.twilio_account_sid = Some("AC123".into());
            c.twilio_auth_token = Some("t".into());
        };
        assert!(Sms::from_config(&config(|c| {
            twilio(c);
            c.twilio_account_sid = Some("AC1/../x".into());
        }))
        .is_err());
        assert!(Sms::from_config(&config(|c| {
            twilio(c);
            c.twilio_api_base = "ftp://api.twilio.com".into();
        }))
        .is_err());
    }

    #[test]
    fn without_an_auth_token_inbound_requests_are_unchecked() {
        let sms = Sms::from_config(&config(|_| {})).expect("files");
        assert_eq!(sms.origin("http://x/sms/inbound", &[], None), Origin::Unchecked);
    }

    #[test]
    fn only_twilios_refusals_of_the_message_itself_are_permanent() {
        let rejected = |status, code| SmsError::Rejected { status, code, message: String::new() };
        for code in [21604, 21211, 21614, 21602, 21617] {
            assert!(rejected(400, Some(code)).is_permanent(), "{code}");
        }
        // A sender the account does not own, a region not enabled yet, a wrong base URL, a code
        // this release does not know: the operator may fix them while the retries run.
        for (status, code) in [(400, Some(21606)), (400, Some(21408)), (404, Some(20404)), (400, None), (400, Some(1))]
        {
            assert!(!rejected(status, code).is_permanent(), "{status} {code:?}");
        }
        for status in [401, 403, 429, 500, 503] {
            assert!(!rejected(status, Some(21211)).is_permanent(), "{status}");
        }
        assert!(!SmsError::Unreachable("timeout".into()).is_permanent());
    }
}
