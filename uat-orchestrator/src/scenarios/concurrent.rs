//! N callers ask the voice agent for the same slot at the same instant: exactly one gets it, the
//! rest are offered alternatives, one appointment exists, all within the latency budget.

use super::{caller, vapi_message, vapi_results, Clinic, Run, Steps};
use crate::plain;
use futures::future::join_all;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Barrier;

pub async fn run<'r>(run: &mut Run<'r>) -> Steps<'r> {
    let mut steps = Steps::new(run, 4);
    Clinic::around(run, "concurrent", &mut steps, scenario).await;
    steps
}

async fn scenario(run: &mut Run<'_>, clinic: &Clinic, steps: &mut Steps<'_>) -> Result<(), String> {
    let n = run.concurrency.max(2);
    let date = clinic.open_date(10)?;
    let barrier = Arc::new(Barrier::new(n));
    let requests = (0..n).map(|i| {
        let probe = run.probe.clone();
        let barrier = barrier.clone();
        let message = vapi_message(
            &format!("uat-race-{i}"),
            &caller(100 + i),
            &[(
                &format!("race-{i}"),
                "book_appointment",
                json!({"provider_id": clinic.provider_id(), "appointment_date": date, "appointment_time": "11:00", "patient_name": format!("Caller {i}")}),
            )],
        );
        let request = probe.request(Method::POST, "/api/vapi/tools", Some(&clinic.agent)).json(&message);
        async move {
            // Each racer first opens a connection of its own, left idle in the pool, so that the
            // barrier releases requests, not handshakes spread over time.
            let _ = probe.send_arranging("a racer's connection", probe.request(Method::GET, "/healthz", None)).await;
            barrier.wait().await;
            probe.send("vapi race", request).await
        }
    });
    let replies = join_all(requests).await;
    let mut winners = 0;
    let mut offered = 0;
    let mut other = Vec::new();
    let mut unanswered = 0;
    let mut slowest = std::time::Duration::ZERO;
    for reply in &replies {
        match reply {
            Ok(r) => {
                slowest = slowest.max(r.latency);
                // A racer the route refused (a 429 when --concurrency is over the target's rate
                // limit) fails the step, naming it; the race's outcome is still read back below.
                match vapi_results(r).map(|results| results.into_iter().next()) {
                    Ok(Some(Ok(_))) => winners += 1,
                    Ok(Some(Err(e))) if e.contains("isn't free") && e.contains("nearest free times") => offered += 1,
                    Ok(Some(outcome)) => other.push(plain::answer(&outcome)),
                    Ok(None) => other.push("no answer".into()),
                    Err(refused) => {
                        unanswered += 1;
                        other.push(refused);
                    }
                }
            }
            Err(e) => {
                unanswered += 1;
                other.push(e.clone());
            }
        }
    }
    run.findings.bookings_expected += 1;
    if winners >= 1 {
        run.findings.bookings_succeeded += 1;
    }
    steps.check("exactly one caller gets the slot", winners == 1, format!("{winners} of {n} succeeded"));
    steps.check(
        "every other caller is told it is taken and offered alternatives",
        offered == n - 1 && other.is_empty(),
        format!("{offered} offered alternatives; other answers: {}", plain::list(&other, "none")),
    );
    let appointments = clinic.appointments(run).await?;
    let atomic = appointments.len() == 1;
    // Judged on a race that happened (two racers answered by the tools at least): violated when more
    // than one won or more than one is stored, verified when one won and one is stored; a race
    // nobody won, or whose winner is lost, is left to the steps and the lost-booking finding.
    run.findings.atomicity = if n - unanswered < 2 {
        None
    } else if winners > 1 || appointments.len() > 1 {
        Some(false)
    } else {
        (winners == 1 && atomic).then_some(true)
    };
    // Lost when someone was answered booked and nothing is there, doubled when more won or more
    // is there; a race nobody won (every answer slow, say) is judged by the steps, not as a loss.
    let lost = winners >= 1 && appointments.is_empty();
    if lost || winners > 1 || appointments.len() > 1 {
        run.findings
            .lost_or_duplicate
            .push(format!("concurrent: {winners} successes and {} appointments for one slot", appointments.len()));
    }
    steps.check("exactly one appointment exists for the slot", atomic, format!("{} appointments", appointments.len()));
    steps.check(
        "every answer came within the latency budget",
        slowest <= run.budget,
        format!("slowest {} ms (budget {} ms)", slowest.as_millis(), run.budget.as_millis()),
    );
    Ok(())
}
