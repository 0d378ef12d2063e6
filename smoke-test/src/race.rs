//! The race: N conflicting bookings of each of K slots, sent over connections opened beforehand
//! and released together by a barrier, then checked against the rules the service promises.
//!
//! A slot's racers all ask for its start, for 30, 25 or 20 minutes in turn: every one overlaps
//! every other, and none reaches the next slot. An instance queues the bookings of one start in one
//! lane, where a refusal answers the waiting racers it holds for, so on one instance the database
//! refuses each later attempt; racers spread over instances reach it together, and its own
//! guarantee decides.

use crate::report::{Check, RequestRecord};
use crate::setup::{Patience, PlannedSlot, SLOT_MINUTES};
use crate::stats::{self, Summary};
use anyhow::Context;
use reqwest::StatusCode;
use serde_json::json;
use shared::api::{AppointmentQuery, BookingResponse, ErrorBody};
use shared::ApiClient;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Barrier};

/// What one request got back.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Created {
        appointment_id: uuid::Uuid,
        confirmation_code: String,
        service_ms: f64,
    },
    /// 409 `slot_unavailable`: the expected answer of every loser.
    Conflict,
    Unexpected {
        status: u16,
        error: String,
    },
    Transport(String),
}

impl Answer {
    /// Reads a booking answer: 201 with a booking, 409 `slot_unavailable`, or anything else.
    pub fn from_response(status: StatusCode, body: &[u8]) -> Self {
        match status {
            StatusCode::CREATED => match serde_json::from_slice::<BookingResponse>(body) {
                Ok(b) => Self::Created {
                    appointment_id: b.appointment_id,
                    confirmation_code: b.confirmation_code,
                    service_ms: b.latency_ms,
                },
                Err(e) => Self::Unexpected { status: 201, error: format!("201 without a booking body: {e}") },
            },
            _ => {
                let code = serde_json::from_slice::<ErrorBody>(body)
                    .map(|b| b.error.code)
                    .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(120).collect());
                if status == StatusCode::CONFLICT && code == "slot_unavailable" {
                    Self::Conflict
                } else {
                    Self::Unexpected { status: status.as_u16(), error: code }
                }
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Conflict => "conflict",
            Self::Unexpected { .. } => "unexpected",
            Self::Transport(_) => "transport",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Created { .. } => Some(201),
            Self::Conflict => Some(409),
            Self::Unexpected { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }
}

/// One request of the race with its timings.
#[derive(Debug, Clone)]
pub struct Sample {
    pub slot: u32,
    pub worker: u32,
    pub answer: Answer,
    /// From the common release instant to the last byte of the body.
    pub from_release: Duration,
    /// From this request's own send to the last byte (uncorrected).
    pub per_request: Duration,
}

/// The race's measurements.
#[derive(Debug)]
pub struct RaceResult {
    pub samples: Vec<Sample>,
    /// From the release to the last answer.
    pub wall: Duration,
}

/// A client holding exactly one HTTP/1.1 connection, so each racer has its own.
fn one_connection_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(None)
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
}

/// The lengths a slot's racers ask for, in turn (every one within the slot's 30 minutes).
pub const LENGTHS: [i64; 3] = [30, 25, 20];

/// Sends `concurrency` conflicting bookings of every slot at once. Each racer opens and warms its
/// own connection first; a barrier then releases all of them together. Fails (could not judge)
/// only when the connections cannot be opened.
pub async fn run(
    base_url: &str,
    agent_token: &str,
    slots: &[PlannedSlot],
    concurrency: u32,
    timeout: Duration,
) -> anyhow::Result<RaceResult> {
    let total = slots.len() * concurrency as usize;
    let barrier = Arc::new(Barrier::new(total + 1));
    let release: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let abort = Arc::new(AtomicBool::new(false));
    let mut ready = Vec::with_capacity(total);
    let mut handles = Vec::with_capacity(total);
    for (s, slot) in slots.iter().enumerate() {
        for w in 0..concurrency {
            let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
            ready.push(ready_rx);
            let (barrier, release, abort) = (barrier.clone(), release.clone(), abort.clone());
            let base = base_url.to_owned();
            let token = agent_token.to_owned();
            let mut input = slot.input(s as u64 * u64::from(concurrency) + u64::from(w));
            input.duration_minutes = Some(LENGTHS[w as usize % LENGTHS.len()]);
            handles.push(tokio::spawn(async move {
                let prepared = async {
                    let client = one_connection_client(timeout).map_err(|e| e.to_string())?;
                    client
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                        .map_err(|e| format!("cannot open a connection to {base}: {e}"))?
                        .bytes()
                        .await
                        .map_err(|e| e.to_string())?;
                    let request = ApiClient::with_http(client.clone(), base)
                        .with_token(token)
                        .book_request(&input, None)
                        .build()
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>((client, request))
                }
                .await;
                let _ = ready_tx.send(prepared.as_ref().map(|_| ()).map_err(Clone::clone));
                barrier.wait().await;
                let released = *release.get_or_init(Instant::now);
                let Ok((client, request)) = prepared else {
                    return None;
                };
                if abort.load(Ordering::SeqCst) {
                    return None;
                }
                let sent = Instant::now();
                let answer = match client.execute(request).await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(body) => Answer::from_response(status, &body),
                            Err(e) => Answer::Transport(describe(&e)),
                        }
                    }
                    Err(e) => Answer::Transport(describe(&e)),
                };
                let done = Instant::now();
                let sample = Sample {
                    slot: s as u32,
                    worker: w,
                    answer,
                    from_release: done - released,
                    per_request: done - sent,
                };
                // The client (its connection, its TLS roots) goes back with the sample, to be
                // dropped once every racer is done, not while others are still being answered.
                Some((sample, done, client))
            }));
        }
    }
    let mut failure = None;
    for r in ready {
        let state = r.await.unwrap_or_else(|_| Err("a racer stopped before it was ready".to_owned()));
        if let Err(e) = state {
            failure.get_or_insert(e);
        }
    }
    if failure.is_some() {
        abort.store(true, Ordering::SeqCst);
    }
    barrier.wait().await;
    let released = *release.get_or_init(Instant::now);
    let mut samples = Vec::with_capacity(total);
    let mut clients = Vec::with_capacity(total);
    let mut last = released;
    for h in handles {
        if let Some((sample, done, client)) = h.await.context("a racer panicked")? {
            last = last.max(done);
            samples.push(sample);
            clients.push(client);
        }
    }
    drop(clients);
    if let Some(e) = failure {
        anyhow::bail!(e);
    }
    samples.sort_by_key(|s| s.from_release);
    Ok(RaceResult { samples, wall: last - released })
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// The figures of a race: histograms from the release, per request, and the service's own.
#[derive(Debug)]
pub struct Figures {
    pub from_release: Summary,
    pub per_request: Summary,
    pub service: Summary,
    pub throughput_rps: f64,
}

pub fn figures(result: &RaceResult) -> Figures {
    let (mut release, mut own, mut service) = (stats::histogram(), stats::histogram(), stats::histogram());
    for s in &result.samples {
        stats::record(&mut release, s.from_release);
        stats::record(&mut own, s.per_request);
        if let Answer::Created { service_ms, .. } = s.answer {
            stats::record(&mut service, shared::duration::seconds(service_ms / 1000.0));
        }
    }
    let secs = result.wall.as_secs_f64();
    Figures {
        from_release: Summary::of(&release),
        per_request: Summary::of(&own),
        service: Summary::of(&service),
        throughput_rps: if secs > 0.0 { (result.samples.len() as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
    }
}

/// Checks the answers and, through the API, the stored appointments.
pub async fn verify(
    result: &RaceResult,
    slots: &[PlannedSlot],
    concurrency: u32,
    staff: &ApiClient,
    figures: &Figures,
    budget_ms: u64,
) -> Vec<Check> {
    let k = slots.len();
    let n = concurrency as u64;
    let mut winners = vec![0u64; k];
    let mut winner_ids: Vec<Option<uuid::Uuid>> = vec![None; k];
    let mut conflicts = 0u64;
    let mut unexpected: BTreeMap<String, u64> = BTreeMap::new();
    let mut transport: BTreeMap<String, u64> = BTreeMap::new();
    let mut codes = Vec::new();
    for s in &result.samples {
        match &s.answer {
            Answer::Created { appointment_id, confirmation_code, .. } => {
                winners[s.slot as usize] += 1;
                winner_ids[s.slot as usize] = Some(*appointment_id);
                codes.push(confirmation_code.clone());
            }
            Answer::Conflict => conflicts += 1,
            Answer::Unexpected { status, error } => *unexpected.entry(format!("{status} {error}")).or_default() += 1,
            Answer::Transport(e) => *transport.entry(e.clone()).or_default() += 1,
        }
    }
    let mut checks = Vec::new();

    let (min_w, max_w) = (winners.iter().copied().min().unwrap_or(0), winners.iter().copied().max().unwrap_or(0));
    let bad_slots = winners.iter().filter(|w| **w != 1).count();
    checks.push(Check::new(
        "one_201_per_slot",
        json!({"created_per_slot": 1}),
        json!({"min": min_w, "max": max_w, "total": winners.iter().sum::<u64>(), "slots": k}),
        bad_slots == 0,
        if bad_slots == 0 {
            format!("each of the {k} slot(s) was booked exactly once")
        } else if max_w > 1 {
            format!("DOUBLE BOOKING: {bad_slots} of {k} slot(s) got {max_w} successful bookings (201) at most, expected exactly 1")
        } else {
            format!("{bad_slots} of {k} slot(s) got no successful booking (201)")
        },
    ));

    let expected_conflicts = k as u64 * (n - 1);
    let losers = result.samples.len() as u64 - winners.iter().sum::<u64>();
    checks.push(Check::new(
        "others_409_slot_unavailable",
        json!(expected_conflicts),
        json!(conflicts),
        conflicts == losers && conflicts == expected_conflicts,
        format!("{conflicts} of the {expected_conflicts} losing requests got 409 slot_unavailable"),
    ));

    let unexpected_total: u64 = unexpected.values().sum();
    checks.push(Check::new(
        "no_other_status",
        json!(0),
        json!(unexpected_total),
        unexpected_total == 0,
        if unexpected.is_empty() {
            "no answer other than 201 and 409 slot_unavailable".to_owned()
        } else {
            format!(
                "unexpected answers: {}",
                unexpected.iter().map(|(k, v)| format!("{v} × {k}")).collect::<Vec<_>>().join(", ")
            )
        },
    ));

    let transport_total: u64 = transport.values().sum();
    checks.push(Check::new(
        "no_transport_error",
        json!(0),
        json!(transport_total),
        transport_total == 0,
        if transport.is_empty() {
            "every request got an HTTP answer".to_owned()
        } else {
            format!(
                "transport errors: {}",
                transport.iter().map(|(k, v)| format!("{v} × {k}")).collect::<Vec<_>>().join(", ")
            )
        },
    ));

    // The winner's appointment where a slot had exactly one (else the check above failed already).
    let winner_ids: Vec<Option<uuid::Uuid>> =
        winner_ids.into_iter().zip(&winners).map(|(id, &count)| id.filter(|_| count == 1)).collect();
    checks.push(stored_appointments(staff, slots, &winner_ids).await);

    let distinct: HashSet<&String> = codes.iter().collect();
    checks.push(Check::new(
        "winners_codes_unique",
        json!(codes.len()),
        json!(distinct.len()),
        distinct.len() == codes.len(),
        format!("{} distinct confirmation code(s) among {} winner(s)", distinct.len(), codes.len()),
    ));

    let p95_ms = figures.from_release.p95 as f64 / 1000.0;
    checks.push(Check::new(
        "p95_within_budget_ms",
        json!(budget_ms),
        json!(p95_ms),
        figures.from_release.count > 0 && p95_ms <= budget_ms as f64,
        format!("p95 from the release {p95_ms:.1} ms, budget {budget_ms} ms"),
    ));
    checks
}

/// Through the API: exactly one active appointment in each of `slots`, and where the slot had one
/// winner, the winner's (not a booking answered 409 and stored all the same).
pub async fn stored_appointments(staff: &ApiClient, slots: &[PlannedSlot], winners: &[Option<uuid::Uuid>]) -> Check {
    let name = "one_active_appointment_per_slot";
    let mut by_provider: HashMap<uuid::Uuid, Vec<&PlannedSlot>> = HashMap::new();
    for s in slots {
        by_provider.entry(s.provider).or_default().push(s);
    }
    let mut stored: HashMap<(uuid::Uuid, chrono::DateTime<chrono::Utc>), Vec<uuid::Uuid>> = HashMap::new();
    for (provider, mine) in by_provider {
        let from = mine.iter().map(|s| s.starts_at()).min().unwrap_or_default();
        let to = mine.iter().map(|s| s.starts_at()).max().unwrap_or_default() + chrono::Duration::minutes(SLOT_MINUTES);
        let query = AppointmentQuery {
            provider_id: Some(provider),
            from: Some(from.to_rfc3339()),
            to: Some(to.to_rfc3339()),
            limit: Some(500),
            ..Default::default()
        };
        // The tool's own requests wait out the target's rate limit, as the clean-up does.
        let listed = Patience::default().send(|| staff.appointments(&query)).await;
        let appointments = match listed {
            Ok(a) => a,
            Err(e) => {
                return Check::new(
                    name,
                    json!({"active_per_slot": 1}),
                    serde_json::Value::Null,
                    false,
                    format!("listing the appointments failed: {e}"),
                )
            }
        };
        for a in appointments.iter().filter(|a| a.status.is_active()) {
            stored.entry((provider, a.starts_at.with_timezone(&chrono::Utc))).or_default().push(a.id);
        }
    }
    slots_as_answered(slots, &stored, winners)
}

/// Exactly one active appointment in each slot, the one answered 201 where there was one.
fn slots_as_answered(
    slots: &[PlannedSlot],
    stored: &HashMap<(uuid::Uuid, chrono::DateTime<chrono::Utc>), Vec<uuid::Uuid>>,
    winners: &[Option<uuid::Uuid>],
) -> Check {
    let none = Vec::new();
    let per_slot: Vec<&Vec<uuid::Uuid>> =
        slots.iter().map(|s| stored.get(&(s.provider, s.starts_at())).unwrap_or(&none)).collect();
    let counts: Vec<u64> = per_slot.iter().map(|ids| ids.len() as u64).collect();
    let bad = counts.iter().filter(|c| **c != 1).count();
    // Slots whose stored appointments are not exactly the one answered 201: another one stored, or
    // a 201 with nothing stored (lost), or one stored while every racer was refused.
    let not_the_winners =
        per_slot.iter().zip(winners).filter(|(ids, winner)| ids.len() > 1 || ids.first() != winner.as_ref()).count();
    let (min, max) = (counts.iter().copied().min().unwrap_or(0), counts.iter().copied().max().unwrap_or(0));
    Check::new(
        "one_active_appointment_per_slot",
        json!({"active_per_slot": 1, "the_winners": true}),
        json!({"min": min, "max": max, "total": counts.iter().sum::<u64>(), "not_the_winners": not_the_winners}),
        bad == 0 && not_the_winners == 0,
        if bad > 0 {
            format!("the API lists {min} to {max} active appointments per slot in {bad} slot(s), expected exactly 1")
        } else if not_the_winners > 0 {
            format!("in {not_the_winners} slot(s) the one active appointment is not the one answered 201")
        } else {
            format!("the API lists exactly one active appointment in each of the {} slot(s), the winner's", slots.len())
        },
    )
}

/// Could not judge when the target's rate limit refused racers (429 `rate_limited`) and that
/// explains every failed check: that is its configuration, not the service failing. Anything else
/// (more than one 201 or stored appointment in a slot, a stored one not the winner, another
/// status, a transport error, a repeated code, the latency) fails the run as it stands.
pub fn rate_limited(result: &RaceResult, checks: &[Check]) -> Result<(), String> {
    let limited = |a: &Answer| matches!(a, Answer::Unexpected { status: 429, error } if error == "rate_limited");
    let refused = result.samples.iter().filter(|s| limited(&s.answer)).count();
    let other_trouble = result
        .samples
        .iter()
        .any(|s| matches!(&s.answer, Answer::Unexpected { .. } | Answer::Transport(_)) && !limited(&s.answer));
    let explained = |c: &Check| match c.name.as_str() {
        "others_409_slot_unavailable" | "no_other_status" => true,
        "one_201_per_slot" => c.measured["max"].as_u64().is_some_and(|max| max <= 1),
        "one_active_appointment_per_slot" => {
            c.measured["max"].as_u64().is_some_and(|max| max <= 1) && c.measured["not_the_winners"] == 0
        }
        _ => false,
    };
    // A slot no racer won is explained only when one of its racers was refused: all answered 409,
    // nobody could book a free slot, and the 429s elsewhere say nothing of it.
    let (mut won, mut refused_in) = (HashSet::new(), HashSet::new());
    for sample in &result.samples {
        match &sample.answer {
            Answer::Created { .. } => won.insert(sample.slot),
            answer if limited(answer) => refused_in.insert(sample.slot),
            _ => false,
        };
    }
    let unwon_unexplained = result.samples.iter().any(|s| !won.contains(&s.slot) && !refused_in.contains(&s.slot));
    if refused == 0 || other_trouble || unwon_unexplained || !checks.iter().filter(|c| !c.passed).all(explained) {
        return Ok(());
    }
    Err(format!(
        "the target's rate limit refused {refused} of {} requests (429 rate_limited): its RATE_LIMIT_PER_MINUTE must \
         allow the burst (or be 0 there)",
        result.samples.len()
    ))
}

/// The request log of the report.
pub fn records(result: &RaceResult) -> Vec<RequestRecord> {
    result
        .samples
        .iter()
        .map(|s| {
            let (service_ms, code, error) = match &s.answer {
                Answer::Created { confirmation_code, service_ms, .. } => {
                    (Some(*service_ms), Some(confirmation_code.clone()), None)
                }
                Answer::Conflict => (None, None, None),
                Answer::Unexpected { error, .. } | Answer::Transport(error) => (None, None, Some(error.clone())),
            };
            RequestRecord {
                slot: s.slot + 1,
                worker: s.worker + 1,
                status: s.answer.status(),
                outcome: s.answer.kind().into(),
                from_release_us: s.from_release.as_micros() as u64,
                per_request_us: s.per_request.as_micros() as u64,
                service_ms,
                confirmation_code: code,
                error,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A race of one slot and four racers answered `answers`, in order.
    fn race(answers: Vec<Answer>) -> RaceResult {
        let sample = |(worker, answer)| Sample {
            slot: 0,
            worker,
            answer,
            from_release: Duration::from_millis(5),
            per_request: Duration::from_millis(5),
        };
        RaceResult { samples: (0..).zip(answers).map(sample).collect(), wall: Duration::from_millis(5) }
    }

    fn won(id: u128) -> Answer {
        let appointment_id = uuid::Uuid::from_u128(id);
        Answer::Created { appointment_id, confirmation_code: format!("C{id}"), service_ms: 1.0 }
    }

    fn limited() -> Answer {
        Answer::Unexpected { status: 429, error: "rate_limited".into() }
    }

    fn failed(name: &str, measured: serde_json::Value) -> Check {
        Check::new(name, json!(null), measured, false, "")
    }

    /// The checks a race of one slot fails when 429s took the place of 409s: the losers' answers
    /// and "no other status", and, when the winner was refused too, the slot's one 201 and its one
    /// stored appointment.
    fn explained_by_429s(created: u64, stored: u64) -> Vec<Check> {
        let mut checks = vec![failed("others_409_slot_unavailable", json!(1)), failed("no_other_status", json!(2))];
        if created == 0 {
            checks.push(failed("one_201_per_slot", json!({"min": 0, "max": 0})));
        }
        if stored == 0 {
            checks.push(failed("one_active_appointment_per_slot", json!({"max": 0, "not_the_winners": 0})));
        }
        checks
    }

    #[test]
    fn refused_racers_cannot_be_judged_when_the_429s_explain_every_failed_check() {
        let refused = race(vec![won(1), Answer::Conflict, limited(), limited()]);
        assert!(rate_limited(&refused, &explained_by_429s(1, 1)).is_err());
        let all_refused = race(vec![limited(), limited(), limited(), limited()]);
        let why = rate_limited(&all_refused, &explained_by_429s(0, 0)).expect_err("could not judge");
        assert!(why.contains("refused 4 of 4 requests"), "{why}");
    }

    #[test]
    fn anything_the_429s_do_not_explain_still_fails_the_run() {
        let refused = race(vec![won(1), Answer::Conflict, limited(), limited()]);
        let with = |check: Check| -> Vec<Check> { explained_by_429s(1, 1).into_iter().chain([check]).collect() };
        let double = failed("one_201_per_slot", json!({"min": 2, "max": 2}));
        let stored_twice = failed("one_active_appointment_per_slot", json!({"max": 2, "not_the_winners": 0}));
        let not_the_winner = failed("one_active_appointment_per_slot", json!({"max": 1, "not_the_winners": 1}));
        let repeated_code = failed("winners_codes_unique", json!(1));
        let slow = failed("p95_within_budget_ms", json!(900.0));
        for check in [double, stored_twice, not_the_winner, repeated_code, slow] {
            let name = format!("{} {}", check.name, check.measured);
            assert_eq!(rate_limited(&refused, &with(check)), Ok(()), "{name} must fail the run");
        }
        let other_status = Answer::Unexpected { status: 503, error: "unavailable".into() };
        for other in [other_status, Answer::Transport("connection reset".into())] {
            let troubled = race(vec![won(1), other, limited(), limited()]);
            assert_eq!(rate_limited(&troubled, &explained_by_429s(1, 1)), Ok(()), "{:?}", troubled.samples[1].answer);
        }
        // A slot whose racers were all answered 409 had no winner that a 429 explains.
        let mut two_slots = race(vec![won(1), Answer::Conflict, limited(), limited()]);
        let unbooked = race(vec![Answer::Conflict; 4]).samples.into_iter().map(|s| Sample { slot: 1, ..s });
        two_slots.samples.extend(unbooked);
        let unwon = failed("one_201_per_slot", json!({"min": 0, "max": 1}));
        assert_eq!(rate_limited(&two_slots, &with(unwon)), Ok(()), "a slot nobody could book fails the run");
        // A 201 with nothing stored is a lost booking, whatever else was refused.
        let slot = crate::setup::PlannedSlot {
            provider: uuid::Uuid::from_u128(9),
            date: chrono::NaiveDate::from_ymd_opt(2030, 1, 7).expect("date"),
            time: chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
            patients_from: 0,
        };
        let lost = slots_as_answered(std::slice::from_ref(&slot), &HashMap::new(), &[Some(uuid::Uuid::from_u128(1))]);
        assert_eq!((lost.passed, lost.measured["not_the_winners"].as_u64()), (false, Some(1)), "{}", lost.measured);
        assert_eq!(rate_limited(&refused, &with(lost)), Ok(()), "a lost booking must fail the run");
        // One stored where every racer was refused is no booking anyone was answered.
        let stored = HashMap::from([((slot.provider, slot.starts_at()), vec![uuid::Uuid::from_u128(2)])]);
        let unanswered = slots_as_answered(std::slice::from_ref(&slot), &stored, &[None]);
        assert_eq!(unanswered.measured["not_the_winners"].as_u64(), Some(1), "{}", unanswered.measured);
        assert_eq!(rate_limited(&refused, &with(unanswered)), Ok(()), "it fails the run");
        let no_429 = race(vec![won(1), Answer::Conflict, Answer::Conflict, Answer::Conflict]);
        assert_eq!(rate_limited(&no_429, &explained_by_429s(1, 1)), Ok(()), "failed without a 429");
    }
}
