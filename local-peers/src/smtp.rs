//! A small SMTP server speaking the real protocol on 127.0.0.1 (EHLO/HELO, MAIL FROM, RCPT TO,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT). It keeps every message it accepts, and can be
//! told to refuse mail (e.g. `451` to make a sender retry) to exercise delivery failures.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use local_peers::smtp::SmtpSink;
//! let sink = SmtpSink::start().await?;
//! let url = sink.url(); // smtp://127.0.0.1:PORT, for SMTP_URL
//! let mails = sink.wait_for(1, std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Longest line accepted, in bytes (SMTP's limit is 1000; some slack).
const MAX_LINE: usize = 64 * 1024;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (MAIL FROM), without angle brackets.
    pub from: String,
    /// The envelope recipients (RCPT TO).
    pub to: Vec<String>,
    /// The message as sent after DATA (headers and body, CRLF line ends, dots unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_owned());
                }
            }
        }
        found
    }

    /// The raw message with quoted-printable soft line breaks removed and `=3D` decoded, so text
    /// such as a link can be searched for whatever transfer encoding the sender chose.
    pub fn searchable(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    refusal: Mutex<Option<u16>>,
    /// Recipients answered with a code at RCPT TO, as a server refuses a mailbox.
    refused_recipients: Mutex<Vec<(String, u16)>>,
    arrived: Notify,
}

/// A running sink; it stops when dropped.
pub struct SmtpSink {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink").field("address", &self.address).finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("a socket address")).await
    }

    /// Listens on this address (e.g. one a service was already told about, to bring its SMTP
    /// server "back").
    pub async fn start_on(address: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(session(stream, shared.clone()));
                }
            }
        });
        Ok(Self { address, shared, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP), for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    /// Answers every MAIL FROM with `code` (e.g. 451 temporary, 554 permanent) until
    /// [`SmtpSink::accept`].
    pub fn refuse_with(&self, code: u16) {
        *lock(&self.shared.refusal) = Some(code);
    }

    /// Accepts mail again.
    pub fn accept(&self) {
        *lock(&self.shared.refusal) = None;
    }

    /// Answers RCPT TO for `address` with `code` (e.g. 550 for an unknown mailbox), as long as the
    /// sink runs.
    pub fn refuse_recipient(&self, address: &str, code: u16) {
        lock(&self.shared.refused_recipients).push((address.to_owned(), code));
    }

    /// Waits until at least `count` messages have arrived and returns them all, or returns what
    /// arrived when `timeout` passes first (`Err`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Result<Vec<ReceivedMail>, Vec<ReceivedMail>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return Ok(messages);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(self.messages());
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The address inside `<…>` of a MAIL FROM or RCPT TO argument.
fn path(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(start), Some(end)) if start < end => argument[start + 1..end].to_owned(),
        _ => argument.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let _ = converse(stream, &shared).await;
}

async fn converse(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP test sink\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if read_line(&mut reader, &mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let (verb, argument) = match command.split_once(' ') {
            Some((verb, rest)) => (verb.to_ascii_uppercase(), rest),
            None => (command.to_ascii_uppercase(), ""),
        };
        let reply: String = match verb.as_str() {
            "EHLO" => "250-sink.test greets you\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK\r\n".into(),
            "HELO" => "250 sink.test\r\n".into(),
            "MAIL" => {
                let refusal = *lock(&shared.refusal);
                match refusal {
                    Some(code) => format!("{code} mail refused by the test sink\r\n"),
                    None => {
                        let argument = argument.trim();
                        if argument.len() < 5 || !argument[..5].eq_ignore_ascii_case("FROM:") {
                            "501 syntax: MAIL FROM:<address>\r\n".into()
                        } else {
                            from = Some(path(&argument[5..]));
                            to.clear();
                            "250 OK\r\n".into()
                        }
                    }
                }
            }
            "RCPT" => {
                let argument = argument.trim();
                if from.is_none() {
                    "503 MAIL first\r\n".into()
                } else if argument.len() < 3 || !argument[..3].eq_ignore_ascii_case("TO:") {
                    "501 syntax: RCPT TO:<address>\r\n".into()
                } else {
                    let recipient = path(&argument[3..]);
                    let refused =
                        lock(&shared.refused_recipients).iter().find(|(a, _)| *a == recipient).map(|(_, c)| *c);
                    match refused {
                        // With the enhanced status a real server gives: 5.1.1 no such mailbox, 4.2.1 try later.
                        Some(code) if code >= 500 => {
                            format!("{code} 5.1.1 <{recipient}>: mailbox unknown to the test sink\r\n")
                        }
                        Some(code) => format!("{code} 4.2.1 <{recipient}>: mailbox busy, try later\r\n"),
                        None => {
                            to.push(recipient);
                            "250 OK\r\n".into()
                        }
                    }
                }
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    "503 MAIL and RCPT first\r\n".into()
                } else {
                    write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if read_line(&mut reader, &mut line).await? == 0 {
                            return Ok(());
                        }
                        let content = line.trim_end_matches(['\r', '\n']);
                        if content == "." {
                            break;
                        }
                        // Dot-unstuffing (RFC 5321 §4.5.2).
                        data.push_str(content.strip_prefix('.').unwrap_or(content));
                        data.push_str("\r\n");
                    }
                    lock(&shared.messages).push(ReceivedMail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    shared.arrived.notify_waiters();
                    "250 OK queued\r\n".into()
                }
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 OK\r\n".into()
            }
            "NOOP" => "250 OK\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 command not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Reads one line, refusing absurdly long ones.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, line: &mut String) -> std::io::Result<usize> {
    let mut bytes = Vec::new();
    let n = reader.take(MAX_LINE as u64).read_until(b'\n', &mut bytes).await?;
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn talk(sink: &SmtpSink, script: &str) -> String {
        let mut stream = TcpStream::connect(sink.address()).await.expect("connect");
        stream.write_all(script.as_bytes()).await.expect("write");
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn a_conversation_delivers_a_dot_unstuffed_message() {
        let sink = SmtpSink::start().await.expect("sink");
        let replies = talk(
            &sink,
            "EHLO me\r\nNOOP\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
        )
        .await;
        assert!(replies.starts_with("220 "), "{replies}");
        assert!(replies.contains("250 OK queued"), "{replies}");
        assert!(replies.ends_with("221 bye\r\n"), "{replies}");
        let mails = sink.wait_for(1, Duration::from_secs(5)).await.expect("one mail");
        assert_eq!(mails[0].from, "a@x.test");
        assert_eq!(mails[0].to, vec!["b@y.test".to_owned()]);
        assert_eq!(mails[0].data, "Subject: hi\r\n\r\n.leading dot\r\n");
        assert_eq!(mails[0].header("subject").as_deref(), Some("hi"));
    }

    #[tokio::test]
    async fn a_refusing_sink_answers_mail_from_with_its_code_and_keeps_nothing() {
        let sink = SmtpSink::start().await.expect("sink");
        sink.refuse_with(451);
        let replies = talk(&sink, "HELO me\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nQUIT\r\n").await;
        assert!(replies.contains("451 "), "{replies}");
        assert!(sink.messages().is_empty());
        assert!(sink.wait_for(1, Duration::from_millis(50)).await.is_err());
    }
}
