//! The background task that delivers the outbox. It claims due messages with a lease (on
//! PostgreSQL `FOR UPDATE SKIP LOCKED`, so any number of instances share the work and a crashed
//! one's messages come back when the lease ends), commits the claim, then sends. A failure is
//! retried with capped exponential backoff and jitter, and after a bounded number of attempts the
//! message is marked dead with its last error. Delivery is at least once; the Message-ID comes
//! from the job, so a duplicate can be recognised.

use super::{Channels, DeliveryError};
use crate::store::{self, outbox_kind, Delivery, OutboxJob};
use rand::Rng;
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
    /// Messages claimed at once ([`batch_within_lease`]).
    pub batch: i64,
}

/// Time one message may need besides its SMTP conversation (reading its appointment, recording
/// the delivery).
const BESIDES_SENDING: Duration = Duration::from_secs(5);
/// The most messages claimed at once.
const MAX_BATCH: u32 = 10;

/// Messages claimed at once: as many as can each take the whole SMTP timeout and still be done
/// before the claim's lease ends, since after it another instance may claim and send them too.
/// A lease too short for one message is refused.
pub fn batch_within_lease(lease: Duration, send_timeout: Duration) -> Result<i64, String> {
    let per_message = send_timeout + BESIDES_SENDING;
    let fits = (lease.as_secs_f64() / per_message.as_secs_f64()).floor() as u32;
    if fits == 0 {
        return Err(format!(
            "MAIL_LEASE_SECS ({} s) must be longer than SMTP_TIMEOUT_SECS plus {} s ({} s)",
            lease.as_secs(),
            BESIDES_SENDING.as_secs(),
            per_message.as_secs()
        ));
    }
    Ok(i64::from(fits.min(MAX_BATCH)))
}

pub struct Dispatcher {
    pub channels: Channels,
    pub settings: DispatcherSettings,
}

/// A running dispatcher; `stop` ends it after the batch in hand.
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DispatcherHandle {
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
        DispatcherHandle { stop, task }
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

    /// One batch; when `stopped` turns true it finishes the message in hand and leaves the rest
    /// of the batch to come back when their lease ends (to this or another instance).
    async fn run_batch(&self, stopped: Option<&watch::Receiver<bool>>) -> Result<usize, DeliveryError> {
        let now = store::now();
        let lease_until =
            now + chrono::Duration::from_std(self.settings.lease).unwrap_or_else(|_| chrono::Duration::minutes(2));
        let jobs = self.channels.store.claim_mail(now, lease_until, self.settings.batch).await?;
        for job in &jobs {
            if stopped.is_some_and(|s| *s.borrow()) {
                break;
            }
            let delivery = match self.channels.deliver(job).await {
                Ok(delivery) => delivery,
                Err(e) => self.failed(job, e),
            };
            let outcome = match &delivery {
                Delivery::Sent => "sent",
                Delivery::Retry { .. } => "retry",
                Delivery::Dead { .. } => "dead",
            };
            let counter = match job.kind.as_str() {
                outbox_kind::WEBHOOK => "webhooks_total",
                kind if outbox_kind::SMS.contains(&kind) => "sms_total",
                _ => "emails_total",
            };
            metrics::counter!(counter, "outcome" => outcome).increment(1);
            if let Err(e) = self.channels.store.record_delivery(job.id, &delivery).await {
                // The lease runs out and the message is tried again: at least once.
                tracing::warn!(job = %job.id, error = %e, "could not record a delivery");
            }
        }
        Ok(jobs.len())
    }

    fn failed(&self, job: &OutboxJob, error: DeliveryError) -> Delivery {
        let attempts = u32::try_from(job.attempts).unwrap_or(0) + 1;
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

    /// A claimed batch is done before its lease ends even when every message takes the whole SMTP
    /// timeout: the defaults (120 s lease, 30 s timeout) used to claim 10 messages, up to 300 s.
    #[test]
    fn a_batch_fits_in_its_lease() {
        let secs = Duration::from_secs;
        for (lease, timeout) in [(120, 30), (120, 5), (600, 30), (36, 30), (3600, 1)] {
            let batch = batch_within_lease(secs(lease), secs(timeout)).expect("fits");
            assert!((1..=10).contains(&batch), "{batch}");
            let worst = (secs(timeout) + BESIDES_SENDING) * batch as u32;
            assert!(worst <= secs(lease), "lease {lease} s, timeout {timeout} s: {batch} messages take {worst:?}");
        }
        assert_eq!(batch_within_lease(secs(120), secs(30)), Ok(3));
        let refused = batch_within_lease(secs(30), secs(30)).expect_err("no message fits");
        assert!(refused.contains("MAIL_LEASE_SECS"), "{refused}");
    }
}
