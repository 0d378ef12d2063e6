//! The background task that delivers the outbox. It claims due messages with a lease (on
//! PostgreSQL `FOR UPDATE SKIP LOCKED`, so any number of instances share the work and a crashed
//! one's messages come back when the lease ends), commits the claim, then sends them side by side,
//! each within a deadline: one slow endpoint holds up neither the rest of its batch nor other
//! clinics' messages for longer than that, and a batch ends inside its lease. A failure is retried
//! with capped exponential backoff and jitter, and after a bounded number of attempts the message
//! is marked dead with its last error. Delivery is at least once; the Message-ID comes from the
//! job, so a duplicate can be recognised.

use super::{Channels, DeliveryError};
use crate::store::{self, Delivery, OutboxJob};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// How often to look for due messages when there is nothing to do.
    pub poll: Duration,
    /// Delivery attempts before a message is dead.
    pub max_attempts: u32,
    /// The first retry delay; it doubles per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a claim keeps other dispatchers away.
    pub lease: Duration,
    /// Messages claimed at once, delivered side by side ([`batch_within_lease`]).
    pub batch: i64,
    /// The longest one delivery may take ([`send_deadline`]); past it, it is a failed attempt.
    pub send_deadline: Duration,
}

/// Time one message may need besides sending it (reading its appointment, recording the delivery).
const BESIDES_SENDING: Duration = Duration::from_secs(5);
/// The most messages claimed, and sent, at once.
const MAX_BATCH: i64 = 10;

/// The longest one delivery may take: the slowest channel's, of an email (`SMTP_TIMEOUT_SECS`,
/// which lettre applies to each step of the conversation: the deadline bounds the whole), an SMS,
/// and a webhook (its address looked up, then the POST).
pub fn send_deadline(smtp_timeout: Duration) -> Duration {
    smtp_timeout.max(crate::sms::TIMEOUT).max(crate::webhooks::TIMEOUT * 2)
}

/// Messages claimed at once. They are sent side by side, each within `send_deadline`, so the
/// batch is done before the claim's lease ends (after it another instance may claim and send them
/// too) when the lease outlasts one message; a shorter lease is refused.
pub fn batch_within_lease(lease: Duration, deadline: Duration) -> Result<i64, String> {
    let per_message = deadline + BESIDES_SENDING;
    if lease < per_message {
        return Err(format!(
            "MAIL_LEASE_SECS ({} s) must be at least the longest delivery (SMTP_TIMEOUT_SECS, and at \
             least {} s for a webhook) plus {} s: {} s",
            lease.as_secs(),
            send_deadline(Duration::ZERO).as_secs(),
            BESIDES_SENDING.as_secs(),
            per_message.as_secs()
        ));
    }
    Ok(MAX_BATCH)
}

pub struct Dispatcher {
    pub channels: Channels,
    pub settings: DispatcherSettings,
}

/// A running dispatcher; `stop` ends it after the batch in hand.
pub struct DispatcherHandle {
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl DispatcherHandle {
    /// Tells the dispatcher to claim nothing more, without waiting for it: for the moment
    /// shutdown begins, so the batch in hand has the whole grace to finish.
    pub fn stop_signal(&self) -> impl FnOnce() + Send + 'static {
        let stop = self.stop.clone();
        move || {
            let _ = stop.send(true);
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the outbox dispatcher ended abnormally");
        }
    }
}

impl Dispatcher {
    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        DispatcherHandle { stop: Arc::new(stop), task }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        tracing::info!("outbox dispatcher started");
        loop {
            let handled = match self.run_batch(Some(&stopped)).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox dispatcher could not claim messages");
                    0
                }
            };
            if *stopped.borrow() {
                break;
            }
            // A full batch means more may be due: go on at once.
            if handled as i64 >= self.settings.batch {
                continue;
            }
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        tracing::info!("outbox dispatcher stopped");
    }

    /// Claims one batch of due messages and delivers them; returns how many it handled.
    pub async fn run_once(&self) -> Result<usize, DeliveryError> {
        self.run_batch(None).await
    }

    /// One batch, its messages sent side by side; a stop that comes meanwhile lets the messages in
    /// hand finish (each within its deadline).
    async fn run_batch(&self, stopped: Option<&watch::Receiver<bool>>) -> Result<usize, DeliveryError> {
        let now = store::now();
        let lease_until =
            now + chrono::Duration::from_std(self.settings.lease).unwrap_or_else(|_| chrono::Duration::minutes(2));
        if stopped.is_some_and(|s| *s.borrow()) {
            return Ok(0);
        }
        let max_claims = i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX);
        let claimed = self.channels.store.claim_mail(now, lease_until, self.settings.batch, max_claims).await?;
        if !claimed.abandoned.is_empty() {
            tracing::error!(
                abandoned = claimed.abandoned.len(),
                max_claims,
                "gave up on messages claimed again and again with no outcome recorded"
            );
        }
        for kind in &claimed.abandoned {
            crate::telemetry::record_given_up(super::Channel::of(kind));
        }
        let jobs = claimed.jobs;
        if stopped.is_some_and(|s| *s.borrow()) {
            // Claimed as the stop came: they come back when their lease ends (one claim spent).
            return Ok(0);
        }
        futures::future::join_all(jobs.iter().map(|job| self.handle(job))).await;
        Ok(jobs.len())
    }

    /// Sends one claimed message within the deadline and records how it went.
    async fn handle(&self, job: &OutboxJob) {
        let channel = super::Channel::of(&job.kind);
        let sent = tokio::time::timeout(self.settings.send_deadline, self.channels.deliver(channel, job)).await;
        let delivery = match sent {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(e)) => self.failed(job, e),
            Err(_) => self.failed(job, DeliveryError::TooSlow(self.settings.send_deadline)),
        };
        if let Delivery::Dropped { reason } = &delivery {
            tracing::info!(job = %job.id, kind = %job.kind, reason, "a message is not sent");
        }
        crate::telemetry::record_delivery(channel, &delivery);
        match self.channels.store.record_delivery(job, &delivery).await {
            Ok(true) => {}
            // The claim ended before this try did: the message is another dispatcher's now (or
            // gone), and what that one records stands.
            Ok(false) => tracing::warn!(job = %job.id, kind = %job.kind, "a delivery came too late to be recorded"),
            // The lease runs out and the message is tried again: at least once.
            Err(e) => tracing::warn!(job = %job.id, error = %e, "could not record a delivery"),
        }
    }

    fn failed(&self, job: &OutboxJob, error: DeliveryError) -> Delivery {
        let attempts = tries(job);
        let error = error.to_string();
        if attempts >= self.settings.max_attempts {
            tracing::error!(job = %job.id, kind = %job.kind, attempts, error = %error, "giving up on a message");
            Delivery::Dead { error }
        } else {
            let delay = self.backoff(attempts);
            tracing::warn!(job = %job.id, kind = %job.kind, attempts, retry_in_ms = delay.as_millis() as u64, error = %error, "delivery failed");
            Delivery::Retry {
                error,
                at: store::now() + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(1)),
            }
        }
    }

    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.settings.retry_base, self.settings.retry_max, attempt)
    }
}

/// Which try of `job` a failure now ends: the failures recorded and this one, or its claims if
/// more (a claim that ended with nothing recorded, cut off by a stop or a crash, was a try too),
/// so the claim that reaches the limit gives up with its own error.
fn tries(job: &OutboxJob) -> u32 {
    (u32::try_from(job.attempts).unwrap_or(0) + 1).max(u32::try_from(job.claims).unwrap_or(0))
}

/// `base · 2^(attempt-1)`, capped at `max`, with "equal jitter": half of it fixed, half random, so
/// the retries of many messages spread out.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    let capped = base.saturating_mul(factor).min(max);
    let half = capped.as_millis() as u64 / 2;
    Duration::from_millis(half + rand::thread_rng().gen_range(0..=half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_that_ended_with_nothing_recorded_counts_as_a_try() {
        let job = |attempts, claims| OutboxJob {
            id: uuid::Uuid::nil(),
            org: crate::domain::OrgId(uuid::Uuid::nil()),
            appointment: crate::domain::AppointmentId(uuid::Uuid::nil()),
            kind: "booking_confirmation".into(),
            payload: serde_json::Value::Null,
            attempts,
            claims,
            next_attempt_at: chrono::Utc::now(),
            last_error: None,
            sent_at: None,
            dead_at: None,
        };
        assert_eq!(tries(&job(0, 1)), 1, "the first claim's failure");
        assert_eq!(tries(&job(1, 2)), 2, "every claim recorded");
        assert_eq!(tries(&job(1, 3)), 3, "one claim cut off before it recorded anything");
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(3600);
        for (attempt, full) in [(1, 30), (2, 60), (3, 120), (8, 3600), (40, 3600)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let d = backoff(base, max, attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
    }

    /// A claimed batch is done before its lease ends: its messages go side by side, each within the
    /// slowest channel's deadline (a webhook's lookup and POST, 20 s, unless SMTP's is longer).
    #[test]
    fn a_batch_fits_in_its_lease() {
        let secs = Duration::from_secs;
        assert_eq!(send_deadline(secs(30)), secs(30));
        assert_eq!(send_deadline(secs(5)), secs(20), "a webhook's lookup and POST");
        for (lease, timeout) in [(120, 30), (120, 5), (600, 300), (25, 1)] {
            let deadline = send_deadline(secs(timeout));
            assert_eq!(batch_within_lease(secs(lease), deadline), Ok(10), "lease {lease} s, timeout {timeout} s");
            assert!(deadline + BESIDES_SENDING <= secs(lease));
        }
        for (lease, timeout) in [(30, 30), (24, 1)] {
            let refused = batch_within_lease(secs(lease), send_deadline(secs(timeout))).expect_err("too short");
            assert!(refused.contains("MAIL_LEASE_SECS"), "{refused}");
        }
    }
}
