//! Bad input gets the right error with nothing written and no 5xx; with the database made
//! unreachable the service answers 503 and a speakable Vapi error, and recovers when it returns.

use super::{caller, date_in, vapi_message, vapi_results, Clinic, Run, Steps};
use crate::plain;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The outage steps' titles, the same whether they run or are skipped (a remote target).
const OUTAGE_503: &str = "with the database unreachable, booking answers 503 unavailable";
const OUTAGE_SPOKEN: &str = "the voice agent hears a speakable error that asks to try again, not a 5xx";
const RECOVERS: &str = "the service recovers when the database returns";

pub async fn run<'r>(run: &mut Run<'r>) -> Steps<'r> {
    let mut steps = Steps::new(run, 7);
    Clinic::around(run, "errors", &mut steps, scenario).await;
    steps
}

fn booking(provider: &str, date: &str, time: &str) -> Value {
    json!({"tool_name": "book_appointment", "tool_input": {"provider_id": provider, "appointment_date": date, "appointment_time": time}})
}

async fn scenario(run: &mut Run<'_>, clinic: &Clinic, steps: &mut Steps<'_>) -> Result<(), String> {
    // This scenario's own 5xx, not those of the scenarios before it (the criteria count those).
    let server_errors_before = run.probe.snapshot().server_errors.len();
    let provider = clinic.provider_id().to_owned();
    let date = clinic.open_date(12)?;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "a past date",
            run.probe.request(Method::POST, "/api/vapi/booking", Some(&clinic.agent)).json(&booking(
                &provider,
                &date_in(-3),
                "10:00",
            )),
            422,
            "validation_failed",
        ),
        (
            "25:99",
            run.probe
                .request(Method::POST, "/api/vapi/booking", Some(&clinic.agent))
                .json(&booking(&provider, &date, "25:99")),
            422,
            "validation_failed",
        ),
        (
            "an unknown provider",
            run.probe.request(Method::POST, "/api/vapi/booking", Some(&clinic.agent)).json(&booking(
                &uuid::Uuid::new_v4().to_string(),
                &date,
                "10:00",
            )),
            404,
            "not_found",
        ),
        (
            "a malformed body",
            run.probe
                .request(Method::POST, "/api/vapi/booking", Some(&clinic.agent))
                .header("content-type", "application/json")
                .body("{\"tool_name\": "),
            400,
            "bad_request",
        ),
        (
            "an oversized body",
            run.probe
                .request(Method::POST, "/api/vapi/booking", Some(&clinic.agent))
                .json(&json!({"tool_name": "book_appointment", "tool_input": {"notes": "x".repeat(80 * 1024)}})),
            413,
            "payload_too_large",
        ),
    ];
    let mut wrong = Vec::new();
    let mut measured = Vec::new();
    for (what, request, status, code) in cases {
        let reply = run.probe.send(&format!("bad input: {what}"), request).await?;
        measured.push(format!("{what} → {} {}", reply.status, reply.code()));
        if reply.status != status || reply.code() != code {
            wrong.push(format!("{what}: expected {status} {code}"));
        }
    }
    steps.check(
        "past date, 25:99 and an unknown provider get 422 / 422 / 404",
        wrong.iter().all(|w| !w.starts_with("a past") && !w.starts_with("25") && !w.starts_with("an unknown")),
        measured[..3].join("; "),
    );
    steps.check(
        "malformed and oversized bodies get 400 / 413",
        wrong.iter().all(|w| !w.starts_with("a malformed") && !w.starts_with("an oversized")),
        measured[3..].join("; "),
    );
    let written = clinic.appointments(run).await?;
    steps.check(
        "nothing was written by the refused requests",
        written.is_empty(),
        format!("{} appointments", written.len()),
    );
    let server_errors = run.probe.snapshot().server_errors.len() - server_errors_before;
    steps.check("no 5xx answer to the bad requests", server_errors == 0, format!("{server_errors} server errors"));

    let Some(outage) = run.target.cut_database().await else {
        steps.skip(OUTAGE_503, "remote target: the run cannot take its database away");
        steps.skip(OUTAGE_SPOKEN, "remote target");
        steps.skip(RECOVERS, "remote target");
        return Ok(());
    };
    let outage = outage.map_err(|e| format!("could not take the database away: {e}"))?;
    let during = run
        .probe
        .send_during_outage(
            "booking during outage",
            run.probe
                .request(Method::POST, "/api/vapi/booking", Some(&clinic.agent))
                .json(&booking(&provider, &date, "11:00")),
        )
        .await;
    let (ok_503, seen) = match &during {
        Ok(r) => (
            r.status == 503 && r.code() == "unavailable",
            format!("{} {} in {} ms", r.status, r.code(), r.latency.as_millis()),
        ),
        Err(e) => (false, e.clone()),
    };
    steps.check(OUTAGE_503, ok_503, seen);
    let phone = caller(9);
    let message = vapi_message(
        "uat-outage",
        &phone,
        &[(
            "o1",
            "book_appointment",
            json!({"provider_id": provider, "appointment_date": date, "appointment_time": "11:30", "patient_name": "Ada"}),
        )],
    );
    let spoken = run
        .probe
        .send_during_outage(
            "vapi during outage",
            run.probe.request(Method::POST, "/api/vapi/tools", Some(&clinic.agent)).json(&message),
        )
        .await
        .and_then(|r| vapi_results(&r));
    // One line that asks the caller to try again: not a refusal meant for another case (a
    // service that took the outage for a missing provider would say "I couldn't find ...").
    let speakable = matches!(spoken.as_deref(), Ok([Err(e)]) if !e.contains('\n') && e.contains("try again"));
    steps.check(
        OUTAGE_SPOKEN,
        speakable,
        match &spoken {
            Ok(answers) => plain::answers(answers),
            Err(e) => e.clone(),
        },
    );
    outage.restore().await;

    // A 5xx other than 503 `unavailable` on the way back counts as a server error (the probe),
    // failing the run however soon a booking is taken.
    let started = Instant::now();
    let mut recovered = None;
    while started.elapsed() < Duration::from_secs(30) {
        let attempt = run
            .probe
            .send_during_outage(
                "booking after outage",
                run.probe
                    .request(Method::POST, "/api/vapi/booking", Some(&clinic.agent))
                    .json(&booking(&provider, &date, "12:00")),
            )
            .await;
        if let Ok(r) = attempt {
            if r.status == 201 {
                recovered = Some(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.findings.bookings_expected += 1;
    if recovered.is_some() {
        run.findings.bookings_succeeded += 1;
    }
    steps.check(
        RECOVERS,
        recovered.is_some(),
        recovered.map_or("no booking within 30 s".into(), |d| {
            format!("booking accepted {} ms after the database returned", d.as_millis())
        }),
    );
    Ok(())
}
