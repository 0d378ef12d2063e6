//! The transactional outbox's delivery: every message a change queued in its own transaction
//! (emails, SMS, reminders, webhooks) is claimed by the [`Dispatcher`] and handed to its channel
//! ([`Channels`]): email through `crate::mail`, SMS through `crate::sms`, webhooks through
//! `crate::webhooks`.

mod channels;
mod dispatcher;
mod freshness;
mod sms_text;

pub use channels::{Channel, Channels};
pub use dispatcher::{backoff, lease_fits, send_deadline, Dispatcher, DispatcherHandle, DispatcherSettings, Lane};
pub use freshness::why_not_send;
pub use sms_text::sms_body;

/// Why a message could not be rendered or delivered; the dispatcher keeps the text as the job's
/// `last_error` and retries.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot render the message: {0}")]
    Render(String),
    #[error("SMTP delivery failed: {0}")]
    Smtp(String),
    /// The server refused the recipient's address for good (`mail::refused_for_good`): asked
    /// again, it would refuse again.
    #[error("the SMTP server refused the recipient for good: {0}")]
    SmtpRefused(String),
    #[error("cannot write the message file: {0}")]
    File(String),
    #[error("SMS delivery failed: {0}")]
    Sms(String),
    #[error("webhook delivery failed: {0}")]
    Webhook(String),
    #[error("the delivery took longer than {0:?}")]
    TooSlow(std::time::Duration),
    /// The service stopped before the delivery ended, in time to record it as a try.
    #[error("the service stopped while it was being sent")]
    Stopped,
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}
