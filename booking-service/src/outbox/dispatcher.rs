//! The background task that delivers the outbox. It claims due messages with a lease (on
//! PostgreSQL `FOR UPDATE SKIP LOCKED`, so any number of instances share the work and a crashed
//! one's messages come back when the lease ends), commits the claim, then sends them side by side,
//! each within a deadline, claiming more as each one ends. Two lanes, each with its own messages
//! in hand: what patients are sent, and the clinics' webhooks, so an endpoint that hangs holds up
//! no confirmation or reminder; and in each lane one clinic holds only a share of the places, so
//! its backlog or its hanging endpoints hold up no other clinic. A failure is retried with capped
//! exponential backoff and jitter, and after a bounded number of attempts the message is marked
//! dead with its last error. Delivery is at least once; the Message-ID comes from the job, so a
//! duplicate can be recognised.

use super::{Channels, DeliveryError};
use crate::domain::OrgId;
use crate::store::{self, outbox_kind, Delivery, MailClaim, OutboxJob, StoreError};
use rand::Rng;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{self, JoinError, JoinHandle, JoinSet};

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
    /// The longest one delivery may take ([`send_deadline`]); past it, it is a failed attempt.
    pub send_deadline: Duration,
}

/// Time one message may need besides sending it: the claim's answer and recording the delivery.
const BESIDES_SENDING: Duration = Duration::from_secs(5);
/// Of [`BESIDES_SENDING`], what recording a delivery keeps: a claim that has not answered within
/// the rest is given up.
const TO_RECORD: Duration = Duration::from_secs(1);

/// The longest one delivery may take: the slowest channel's, of an email (`SMTP_TIMEOUT_SECS`:
/// lettre bounds only the connection with it on tokio, so this deadline bounds the whole
/// conversation), an SMS, and a webhook (its address looked up, then the POST).
pub fn send_deadline(smtp_timeout: Duration) -> Duration {
    smtp_timeout.max(crate::sms::TIMEOUT).max(crate::webhooks::TIMEOUT * 2)
}

/// Whether a message is done before its claim's lease ends (after it another instance may claim
/// and send it too): the messages in hand are sent side by side, each within `send_deadline`, so
/// the lease must outlast one message; a shorter lease is refused.
pub fn lease_fits(lease: Duration, deadline: Duration) -> Result<(), String> {
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
    Ok(())
}

/// The dispatcher's lanes, each with its own messages in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Emails and SMS, through the operator's own SMTP server and Twilio.
    Patients,
    /// The clinics' own endpoints, which may be slow or take the connection and never answer.
    Webhooks,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Patients, Lane::Webhooks];

    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Lane::Patients => &outbox_kind::TO_PATIENTS,
            Lane::Webhooks => &outbox_kind::TO_WEBHOOKS,
        }
    }

    /// The most messages the lane holds, and sends, at once: ten conversations with the
    /// operator's SMTP server or Twilio; more webhooks, each to its own endpoint.
    pub fn places(self) -> usize {
        match self {
            Lane::Patients => 10,
            Lane::Webhooks => 32,
        }
    }

    /// The most messages of one clinic a claim takes; a clinic with that many in hand has none
    /// claimed until one ends. So a clinic holds at most `2 · share − 1` of an instance's places
    /// in the lane: of the webhooks' 32, eleven (its endpoints that hang leave 21 places to other
    /// clinics, and a few hanging messages leave places to its own other endpoints); of the
    /// patients' ten, nine (a clinic's thousand reminders due at nine o'clock are sent beside
    /// other clinics' confirmations, not ahead of them).
    pub fn share(self) -> usize {
        match self {
            Lane::Patients => 5,
            Lane::Webhooks => 6,
        }
    }
}

pub struct Dispatcher {
    pub channels: Channels,
    pub settings: DispatcherSettings,
}

/// The instant the service's shutdown grace ends, once it is stopping.
type Stop = Option<tokio::time::Instant>;

/// A running dispatcher; `stop` ends it once the messages in hand are done.
pub struct DispatcherHandle {
    stop: Arc<watch::Sender<Stop>>,
    tasks: Vec<JoinHandle<()>>,
}

impl DispatcherHandle {
    /// Tells the dispatcher to claim nothing more, without waiting for it: for the moment
    /// shutdown begins, so the messages in hand have the whole grace to finish. Given the instant
    /// the grace ends: a message still being sent shortly before it is given up as a try.
    pub fn stop_signal(&self) -> impl FnOnce(tokio::time::Instant) + Send + 'static {
        let stop = self.stop.clone();
        move |grace_ends| stopping(&stop, grace_ends)
    }

    /// Stops it and waits for the messages in hand until `deadline`; what is still being sent
    /// then is cut (it comes back to a dispatcher when its lease ends). Whether all finished.
    pub async fn stop_by(self, deadline: tokio::time::Instant) -> bool {
        stopping(&self.stop, deadline);
        let mut finished = true;
        for mut task in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the outbox dispatcher ended abnormally"),
                Err(_) => {
                    // Its messages in hand, each a task of the lane's set, are cut with it.
                    task.abort();
                    finished = false;
                }
            }
        }
        finished
    }
}

/// Stops the dispatcher by `grace_ends`, unless it already is.
fn stopping(stop: &watch::Sender<Stop>, grace_ends: tokio::time::Instant) {
    stop.send_if_modified(|stop| stop.is_none() && stop.replace(grace_ends).is_none());
}

/// Ready once the dispatcher is stopping and its grace is about to end: [`TO_RECORD`] before, so
/// that a message still being sent is recorded as a try, not cut with nothing recorded, to go
/// again only when its claim's lease ends.
async fn grace_ending(mut stopped: watch::Receiver<Stop>) {
    let grace_ends = match stopped.wait_for(Option::is_some).await {
        Ok(stop) => *stop,
        Err(_) => None,
    };
    match grace_ends {
        Some(grace_ends) => tokio::time::sleep_until(grace_ends - TO_RECORD).await,
        None => std::future::pending().await,
    }
}

impl Dispatcher {
    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = watch::channel(None);
        let this = Arc::new(self);
        let tasks = Lane::ALL.map(|lane| tokio::spawn(Arc::clone(&this).run(lane, stopped.clone())));
        DispatcherHandle { stop: Arc::new(stop), tasks: tasks.into() }
    }

    /// Claims for the room the lane has at every poll, and between polls when more may be due:
    /// once messages ended since the last claim number half the places (or all it took), if that
    /// claim filled the room or took a clinic's whole share; at once when a message ends of a
    /// clinic that claim passed over. Once stopped, it claims nothing more and lets the messages
    /// in hand finish, each within its deadline.
    async fn run(self: Arc<Self>, lane: Lane, mut stopped: watch::Receiver<Stop>) {
        tracing::info!(?lane, "outbox dispatcher started");
        let mut in_hand = InHand::default();
        let mut poll = tokio::time::interval(self.settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut claim_now = false;
        // What the last claim said of what may still be due.
        let (mut filled, mut passed_over, mut claimed, mut ended_since) = (false, Vec::new(), 0, 0);
        loop {
            let mut ended = Vec::new();
            tokio::select! {
                biased;
                _ = stopped.changed() => break,
                Some(one) = in_hand.set.join_next_with_id(), if !in_hand.set.is_empty() => ended.push(one),
                _ = poll.tick() => claim_now = true,
            }
            if stopped.borrow().is_some() {
                break;
            }
            while let Some(one) = in_hand.set.try_join_next_with_id() {
                ended.push(one);
            }
            for one in ended {
                ended_since += 1;
                let org = in_hand.ended(lane, one);
                claim_now |= org.is_some_and(|org| passed_over.contains(&org));
            }
            claim_now |= filled && ended_since >= (lane.places() / 2).min(claimed).max(1);
            let room = lane.places().saturating_sub(in_hand.set.len());
            if !std::mem::take(&mut claim_now) || room == 0 {
                continue;
            }
            let skip = in_hand.holding(lane.share());
            // No store call of the dispatcher outlasts the claim's lease: a connection gone silent
            // (a black-holed network holds a statement until the kernel gives up, many minutes)
            // would otherwise hold up the lane's mail. Past it the messages are another claim's.
            // The claim itself must answer in time for its messages to be sent and recorded within
            // the lease: one held up (a saturated pool, PgBouncer's queue) and answered later
            // would send a message that may still be on its way when the lease ends and another
            // instance claims and sends it again. Given up then, it is rolled back, counts no
            // claim, and its messages stay due for the next claim, here or elsewhere (given up
            // just as it committed, its messages wait for its lease to end, as a crashed one's).
            let lease_ends = tokio::time::Instant::now() + self.settings.lease;
            let answer_by = lease_ends - (self.settings.send_deadline + TO_RECORD);
            // Nor does it wait for a claim once stopped: given up, the claim is rolled back.
            let claim = tokio::select! {
                biased;
                _ = stopped.changed() => break,
                claim = tokio::time::timeout_at(answer_by, self.claim(lane, room, &skip, answer_by)) => claim,
            };
            let late = || {
                let why = "no answer to the claim in time to send within its lease";
                Err(StoreError::Unavailable(why.into()).into())
            };
            match claim.unwrap_or_else(|_| late()) {
                Ok(jobs) => {
                    let taken = per_org(jobs.iter().map(|job| job.org));
                    filled = jobs.len() == room || taken.values().any(|&n| n >= lane.share());
                    (passed_over, claimed, ended_since) = (skip, jobs.len(), 0);
                    for job in jobs {
                        in_hand.spawn(job.org, Arc::clone(&self).handle(job, lease_ends, stopped.clone()));
                    }
                }
                Err(e) => {
                    (filled, passed_over) = (false, Vec::new());
                    tracing::warn!(?lane, error = %e, "outbox dispatcher could not claim messages");
                }
            }
            poll.reset();
        }
        while in_hand.set.join_next().await.is_some() {}
        tracing::info!(?lane, "outbox dispatcher stopped");
    }

    /// Claims up to `room` due messages of the lane: of each clinic at most its share, and none of
    /// the clinics in `skip` (those with their share in hand already).
    async fn claim(
        &self,
        lane: Lane,
        room: usize,
        skip: &[OrgId],
        answer_by: tokio::time::Instant,
    ) -> Result<Vec<OutboxJob>, DeliveryError> {
        let share = lane.share();
        let now = store::now();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_else(|_| chrono::Duration::minutes(2));
        let max_claims = i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX);
        let claim = MailClaim {
            now,
            lease_until: now + lease,
            limit: i64::try_from(room).unwrap_or(i64::MAX),
            max_claims,
            kinds: lane.kinds(),
            per_org: i64::try_from(share).unwrap_or(i64::MAX),
            skip,
            within: Some(answer_by.saturating_duration_since(tokio::time::Instant::now())),
        };
        let claimed = self.channels.store.claim_mail(&claim).await?;
        if !claimed.abandoned.is_empty() {
            tracing::error!(
                abandoned = claimed.abandoned.len(),
                max_claims,
                "gave up on messages claimed as often as MAIL_MAX_ATTEMPTS allows (with no outcome recorded, or tried that often before the limit was lowered)"
            );
        }
        for kind in &claimed.abandoned {
            crate::telemetry::record_given_up(super::Channel::of(kind));
        }
        Ok(claimed.jobs)
    }

    /// Sends one claimed message within the deadline and records how it went before its claim's
    /// lease ends, or before the shutdown grace does.
    async fn handle(self: Arc<Self>, job: OutboxJob, lease_ends: tokio::time::Instant, stopped: watch::Receiver<Stop>) {
        let job = &job;
        let channel = super::Channel::of(&job.kind);
        // Timed from the lease, not from now: a task that starts late (a starved runtime) must
        // still end its try before the lease does, or another instance could send it alongside.
        let send_by = (tokio::time::Instant::now() + self.settings.send_deadline).min(lease_ends - TO_RECORD);
        let sent = tokio::select! {
            sent = tokio::time::timeout_at(send_by, self.channels.deliver(channel, job)) => sent,
            () = grace_ending(stopped.clone()) => Ok(Err(DeliveryError::Stopped)),
        };
        let delivery = match sent {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(e)) => self.failed(job, e),
            Err(_) => self.failed(job, DeliveryError::TooSlow(self.settings.send_deadline)),
        };
        if let Delivery::Dropped { reason } = &delivery {
            tracing::info!(job = %job.id, kind = %job.kind, reason, "a message is not sent");
        }
        crate::telemetry::record_delivery(channel, &delivery);
        // Past the lease the message is another claim's anyway; past the grace, this is cut.
        let record_by = stopped.borrow().map_or(lease_ends, |grace_ends| grace_ends.min(lease_ends));
        let recorded = tokio::time::timeout_at(record_by, self.channels.store.record_delivery(job, &delivery));
        match recorded.await.unwrap_or_else(|_| Err(StoreError::Unavailable("no answer within the lease".into()))) {
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

/// A lane's messages in hand, each a task of its own (so it goes on while the lane claims: on
/// SQLite a claim waits for the one writer, which a message may be holding), and whose each is.
#[derive(Default)]
struct InHand {
    set: JoinSet<()>,
    owners: HashMap<task::Id, OrgId>,
}

impl InHand {
    fn spawn(&mut self, org: OrgId, delivery: impl Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(delivery).id();
        self.owners.insert(id, org);
    }

    /// Settles a message that ended; answers its clinic.
    fn ended(&mut self, lane: Lane, ended: Result<(task::Id, ()), JoinError>) -> Option<OrgId> {
        let id = match ended {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(?lane, error = %e, "a delivery ended abnormally");
                e.id()
            }
        };
        self.owners.remove(&id)
    }

    /// The clinics with at least `share` messages in hand.
    fn holding(&self, share: usize) -> Vec<OrgId> {
        per_org(self.owners.values().copied()).into_iter().filter(|(_, n)| *n >= share).map(|(org, _)| org).collect()
    }
}

/// How many of `orgs` each clinic is.
fn per_org(orgs: impl Iterator<Item = OrgId>) -> HashMap<OrgId, usize> {
    let mut counts = HashMap::new();
    for org in orgs {
        *counts.entry(org).or_default() += 1;
    }
    counts
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

    /// Every kind this release delivers is claimed by exactly one lane (a kind in none would be
    /// counted due, and never sent nor given up on).
    #[test]
    fn every_kind_has_one_lane() {
        let mut laned: Vec<&str> = Lane::ALL.iter().flat_map(|lane| lane.kinds().iter().copied()).collect();
        laned.sort_unstable();
        let mut all = outbox_kind::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(laned, all);
    }

    /// A clinic is skipped while it holds its share of the lane's places, and no longer once one
    /// of its messages is done (or its task failed).
    #[tokio::test]
    async fn a_clinic_holding_its_share_is_skipped_until_a_message_ends() {
        let (a, b) = (OrgId(uuid::Uuid::from_u128(1)), OrgId(uuid::Uuid::from_u128(2)));
        let mut in_hand = InHand::default();
        let (release, released) = watch::channel(false);
        for org in [a, a, b] {
            let mut released = released.clone();
            in_hand.spawn(org, async move {
                let _ = released.wait_for(|r| *r).await;
            });
        }
        in_hand.spawn(a, async { panic!("a delivery that panics") });
        assert_eq!(in_hand.holding(2), vec![a], "three of a's, one of b's");
        let ended = in_hand.set.join_next_with_id().await.expect("one ends");
        assert!(ended.is_err(), "the one that panicked ends first");
        in_hand.ended(Lane::Webhooks, ended);
        assert_eq!(in_hand.holding(2), vec![a], "two of a's still");
        release.send(true).expect("released");
        while let Some(ended) = in_hand.set.join_next_with_id().await {
            in_hand.ended(Lane::Webhooks, ended);
        }
        assert!(in_hand.holding(1).is_empty() && in_hand.owners.is_empty(), "all done: none held");
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

    /// A claimed message is done before its lease ends: the messages in hand go side by side, each
    /// within the slowest channel's deadline (a webhook's lookup and POST, 20 s, unless SMTP's is
    /// longer).
    #[test]
    fn a_message_fits_in_its_lease() {
        let secs = Duration::from_secs;
        assert_eq!(send_deadline(secs(30)), secs(30));
        assert_eq!(send_deadline(secs(5)), secs(20), "a webhook's lookup and POST");
        for (lease, timeout) in [(120, 30), (120, 5), (600, 300), (25, 1)] {
            let deadline = send_deadline(secs(timeout));
            assert_eq!(lease_fits(secs(lease), deadline), Ok(()), "lease {lease} s, timeout {timeout} s");
            assert!(deadline + BESIDES_SENDING <= secs(lease));
        }
        for (lease, timeout) in [(30, 30), (24, 1)] {
            let refused = lease_fits(secs(lease), send_deadline(secs(timeout))).expect_err("too short");
            assert!(refused.contains("MAIL_LEASE_SECS"), "{refused}");
        }
    }
}
