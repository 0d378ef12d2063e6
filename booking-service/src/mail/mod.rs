//! Outgoing mail: the emails (text, HTML and an `.ics` invitation) and the transport (SMTP
//! through lettre, or `.eml` files). The outbox dispatcher (`crate::outbox`) decides when.

pub mod email;

use crate::outbox::DeliveryError as MailError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// A real SMTP server (`SMTP_URL`).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per message under this folder (`MAIL_DIR`), named after its job, so a
    /// retried delivery overwrites the same file.
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::Files(dir) => f.debug_tuple("Transport::Files").field(dir).finish(),
        }
    }
}

impl Transport {
    /// SMTP when a URL is given (`smtp://` plain, `smtp://…?tls=required` STARTTLS, `smtps://`
    /// TLS; `user:pass@` for credentials), else files under `mail_dir`.
    pub fn new(smtp_url: Option<&str>, mail_dir: PathBuf, timeout: Duration) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                if url::Url::parse(url).is_ok_and(|url| credentials_in_clear(&url)) {
                    tracing::warn!(
                        smtp_url = %crate::config::redact(url),
                        "SMTP_URL sends its password to a relay over a connection that may not be encrypted: \
                         use smtps:// or ?tls=required"
                    );
                }
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("SMTP_URL {} is not usable: {e}", crate::config::redact(url)))?
                    .timeout(Some(timeout))
                    .build();
                Ok(Self::Smtp(transport))
            }
            // The folder is created with the first message, so a service that sends none leaves
            // nothing behind.
            None => Ok(Self::Files(mail_dir)),
        }
    }

    /// Where mail goes, for the start-up banner (credentials masked).
    pub fn describe(&self, smtp_url: Option<&str>) -> String {
        match self {
            Self::Smtp(_) => format!("SMTP {}", smtp_url.map(crate::config::redact).unwrap_or_default()),
            Self::Files(dir) => format!(".eml files in {}", dir.display()),
        }
    }

    pub async fn send(&self, job: uuid::Uuid, message: &lettre::Message) -> Result<(), MailError> {
        match self {
            Self::Smtp(smtp) => smtp.send(message.clone()).await.map(|_| ()).map_err(|e| {
                let said = without_addresses(&e.to_string());
                if refused_for_good(&e) {
                    MailError::SmtpRefused(said)
                } else {
                    MailError::Smtp(said)
                }
            }),
            Self::Files(dir) => {
                crate::spool::write(dir, format!("{job}.eml"), message.formatted()).await.map_err(MailError::File)
            }
        }
    }
}

/// Whether an SMTP URL's password may cross the network unencrypted: `smtp://` with one but
/// without `tls=required` (without it, lettre speaks in clear, or, `opportunistic`, lets anyone in
/// the middle strip STARTTLS), to a relay other than this machine.
fn credentials_in_clear(url: &url::Url) -> bool {
    use url::Host;
    // `smtp` is no scheme the URL standard knows, so an IPv4 address stays a name here.
    let here = match url.host() {
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        None => false,
    };
    let encrypted = url.query_pairs().any(|(key, value)| key == "tls" && value == "required");
    url.scheme() == "smtp" && url.password().is_some() && !encrypted && !here
}

/// Whether the server refused the recipient for good, which trying again cannot mend: a permanent
/// mail-system reply (5yz) whose enhanced status (RFC 3463) is about the destination address
/// ([`names_a_bad_recipient`]). The same codes at MAIL FROM or after DATA refuse the account or the
/// sender ("5.7.1 relaying denied", a sending quota, a policy) and are retried like every other
/// failure: a server refusing everything is the operator's to mend while the messages wait.
fn refused_for_good(e: &lettre::transport::smtp::Error) -> bool {
    use lettre::transport::smtp::response::{Category, Severity};
    let permanent = e.status().is_some_and(|code| {
        code.severity == Severity::PermanentNegativeCompletion && code.category == Category::MailSystem
    });
    let said = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
    permanent && names_a_bad_recipient(&said)
}

/// Whether a reply's text opens with an enhanced status about the destination address: 5.1.1 bad
/// mailbox, 5.1.2 bad system, 5.1.3 bad syntax, 5.1.4 ambiguous, 5.1.6 moved, 5.1.10 null MX (not
/// 5.1.7 or 5.1.8, the sender's).
fn names_a_bad_recipient(text: &str) -> bool {
    let status = text.split_whitespace().next().unwrap_or_default();
    match status.split('.').collect::<Vec<_>>()[..] {
        ["5", "1", detail] => ["1", "2", "3", "4", "6", "10"].contains(&detail),
        _ => false,
    }
}

/// An SMTP server's words with every email address left out: servers repeat the recipient's in
/// their refusals, and the error goes to the logs and the outbox's `last_error`.
fn without_addresses(said: &str) -> String {
    said.split(' ').map(|word| if word.contains('@') { "<address>" } else { word }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_for_a_relay_over_a_connection_maybe_in_clear_is_told() {
        let told = |url: &str| credentials_in_clear(&url::Url::parse(url).expect("a URL"));
        assert!(told("smtp://user:pass@mail.example.com:587"));
        assert!(told("smtp://user:pass@mail.example.com:587?tls=opportunistic"));
        assert!(!told("smtp://user:pass@mail.example.com:587?tls=required"));
        assert!(!told("smtps://user:pass@mail.example.com:465"));
        assert!(!told("smtp://mail.example.com:25"), "no password to give away");
        assert!(!told("smtp://user:pass@127.0.0.1:1025"), "this machine");
        assert!(!told("smtp://user:pass@localhost:1025"));
        assert!(!told("smtp://user:pass@[::1]:1025"));
    }

    #[test]
    fn an_smtp_refusal_is_kept_without_the_patients_address() {
        let said = "permanent error (550): 5.1.1 <ada.lovelace@example.com>: Recipient address rejected";
        assert_eq!(without_addresses(said), "permanent error (550): 5.1.1 <address> Recipient address rejected");
    }

    fn transport(url: &str) -> anyhow::Result<Transport> {
        Transport::new(Some(url), PathBuf::from("unused"), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn smtp_urls_choose_plain_starttls_or_tls_with_optional_credentials() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example:587?tls=required",
            "smtp://user:pass@mail.example:587?tls=opportunistic",
            "smtps://user:pass@mail.example:465",
            "smtps://mail.example",
        ] {
            assert!(matches!(transport(url), Ok(Transport::Smtp(_))), "{url} is refused");
        }
    }

    #[tokio::test]
    async fn a_bad_smtp_url_is_refused_without_showing_its_password() {
        let err = transport("ftp://user:hunter2secret@mail.example").expect_err("refused").to_string();
        assert!(!err.contains("hunter2secret"), "{err}");
    }

    #[tokio::test]
    async fn without_smtp_each_message_is_a_file_named_after_its_job() {
        let dir = tempfile::tempdir().expect("dir");
        let folder = dir.path().join("mail/nested");
        let t = Transport::new(None, folder.clone(), Duration::from_secs(1)).expect("files");
        assert!(!folder.exists(), "nothing is created before there is mail");
        let message = lettre::Message::builder()
            .from("a@x.test".parse().expect("address"))
            .to("b@y.test".parse().expect("address"))
            .subject("hi")
            .body("hello".to_owned())
            .expect("message");
        let job = uuid::Uuid::now_v7();
        t.send(job, &message).await.expect("written");
        t.send(job, &message).await.expect("a retry overwrites");
        let files: Vec<_> = std::fs::read_dir(&folder)
            .expect("created")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [format!("{job}.eml")]);
    }

    /// Only an enhanced status about the destination address is a refusal of the recipient for
    /// good; the account's or the sender's, or a bare reply, are retried.
    #[test]
    fn only_a_bad_destination_address_is_refused_for_good() {
        for said in ["5.1.1 <a@b.test>: Recipient address rejected", "5.1.10 null MX", "5.1.2 bad system"] {
            assert!(names_a_bad_recipient(said), "{said}");
        }
        for said in [
            "5.7.1 Relaying denied",
            "5.1.8 bad sender's system address",
            "5.4.5 Daily sending quota exceeded",
            "5.2.2 mailbox full",
            "No such user here",
            "",
        ] {
            assert!(!names_a_bad_recipient(said), "{said}");
        }
    }
}
