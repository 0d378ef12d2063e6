//! Two clinics: the second sees, books, cancels and moves nothing of the first, by any route, by
//! id or by code; forged, expired and unsigned tokens are refused.

use super::{caller, expect, vapi, vapi_message, Clinic, Run, Steps};
use crate::plain;
use reqwest::Method;
use serde_json::json;
use shared::Role;

pub async fn run<'r>(run: &mut Run<'r>) -> Steps<'r> {
    // Without the target's key the expired token's check is a skipped step of its own.
    let without_key = run.target.token(Role::Staff, None).is_none();
    let mut steps = Steps::new(run, 7 + usize::from(without_key));
    let a = match Clinic::create(run, "isolation A", 0).await {
        Ok(a) => a,
        Err(e) => {
            steps.error("set up two clinics", e);
            return steps;
        }
    };
    let b = match Clinic::create(run, "isolation B", 1).await {
        Ok(b) => b,
        Err(e) => {
            steps.error("set up two clinics", e);
            a.remove(run).await;
            return steps;
        }
    };
    if let Err(e) = scenario(run, &a, &b, &mut steps).await {
        steps.error("could not continue", e);
    }
    a.remove(run).await;
    b.remove(run).await;
    steps
}

/// Records one isolation check; a failure is a leak.
fn judge(run: &mut Run<'_>, what: &str, held: bool, failures: &mut Vec<String>) {
    run.findings.isolation_checks += 1;
    if held {
        run.findings.isolation_passed += 1;
    } else {
        run.findings.leaks.push(format!("isolation: {what}"));
        failures.push(what.to_owned());
    }
}

/// Records one attempt the service answered `got`: 404 refuses it; a 2xx got through, and so did
/// a 403, which tells that the resource exists (another clinic's is answered 404, never 403). Any
/// other answer proves nothing either way: the check fails without naming a leak.
fn judge_status(run: &mut Run<'_>, what: &str, got: u16, failures: &mut Vec<String>) {
    match got {
        404 => judge(run, what, true, failures),
        200..=299 | 403 => judge(run, &format!("{what} (HTTP {got})"), false, failures),
        _ => unclear(run, format!("{what}? answered HTTP {got}, not 404"), failures),
    }
}

/// Records a spoken attempt: refused when the agent said the `refusal` it says for what is not
/// there; through when it answered with a result; any other error (too slow, a failure) proves
/// nothing either way.
fn judge_spoken(
    run: &mut Run<'_>,
    what: &str,
    said: Option<&Result<String, String>>,
    refusal: &str,
    failures: &mut Vec<String>,
) {
    match said {
        Some(Err(error)) if error.starts_with(refusal) => judge(run, what, true, failures),
        Some(Ok(result)) => judge(run, &format!("{what} (answered \"{result}\")"), false, failures),
        Some(Err(error)) => unclear(run, format!("{what}? answered \"{error}\""), failures),
        None => unclear(run, format!("{what}? no answer"), failures),
    }
}

/// An attempt whose answer neither refuses nor lets it through: the check fails, naming no leak.
fn unclear(run: &mut Run<'_>, failure: String, failures: &mut Vec<String>) {
    run.findings.isolation_checks += 1;
    failures.push(failure);
}

/// A step's checks in plain words: every attempt refused, or which ones were not.
fn refused(failures: &[String]) -> String {
    if failures.is_empty() {
        "every attempt refused".into()
    } else {
        format!("not refused: {}", failures.join("; "))
    }
}

async fn status(
    run: &Run<'_>,
    label: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Result<u16, String> {
    let mut request = run.probe.request(method, path, Some(token));
    if let Some(b) = body {
        request = request.json(&b);
    }
    Ok(run.probe.send(label, request).await?.status)
}

/// What `token`'s list of appointments shows around the booked slot, every page of it: on a
/// populated target a tenant-blind list could hold the other clinic's appointment on any page.
async fn list_around(run: &Run<'_>, token: &str, booked: &serde_json::Value) -> Result<String, String> {
    let (Some(from), Some(to)) = (booked["starts_at"].as_str(), booked["ends_at"].as_str()) else {
        return Err(format!("the booking has no starts_at or ends_at: {booked}"));
    };
    let (mut seen, mut cursor) = (String::new(), None::<String>);
    // A bound, so a list whose cursor never ends cannot hold the run forever.
    for _ in 0..100 {
        let mut request = run.probe.request(Method::GET, "/api/appointments", Some(token)).query(&[
            ("from", from),
            ("to", to),
            ("limit", "500"),
        ]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let page = run.probe.send("B lists", request).await?;
        // A refused list shows nothing, and so would pass the check without checking anything.
        if page.status != 200 {
            return Err(format!("B's list of appointments answered {}: {}", page.status, page.body));
        }
        seen.push_str(&page.body.to_string());
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(seen)
}

async fn scenario(run: &mut Run<'_>, a: &Clinic, b: &Clinic, steps: &mut Steps<'_>) -> Result<(), String> {
    let date = a.open_date(11)?;
    let phone = caller(7);
    let booked = expect(
        run.probe
            .send(
                "book for clinic A",
                run.probe.request(Method::POST, "/api/vapi/booking", Some(&a.agent)).json(&json!({
                    "tool_name": "book_appointment",
                    "tool_input": {"provider_id": a.provider_id(), "appointment_date": date, "appointment_time": "10:00",
                                   "patient_name": "Ada", "patient_phone": phone}
                })),
            )
            .await?,
        201,
        "book for clinic A",
    )?;
    let id = booked.body["appointment_id"].as_str().unwrap_or_default().to_owned();
    let code = booked.body["confirmation_code"].as_str().unwrap_or_default().to_owned();
    let provider = a.provider_id().to_owned();

    let mut failures = Vec::new();
    let got =
        status(run, "B reads A's appointment", Method::GET, &format!("/api/appointments/{id}"), &b.staff, None).await?;
    judge_status(run, "B read A's appointment by id", got, &mut failures);
    let listed = list_around(run, &b.staff, &booked.body).await?;
    judge(run, "B's list shows A's appointment", !listed.contains(&id), &mut failures);
    steps.check("the second clinic cannot read the first's appointments", failures.is_empty(), refused(&failures));

    let mut failures = Vec::new();
    let got =
        status(run, "B reads A's provider", Method::GET, &format!("/api/providers/{provider}"), &b.admin, None).await?;
    judge_status(run, "B read A's provider", got, &mut failures);
    let got = status(
        run,
        "B reads A's availability",
        Method::GET,
        &format!("/api/providers/{provider}/availability?date={date}"),
        &b.agent,
        None,
    )
    .await?;
    judge_status(run, "B read A's availability", got, &mut failures);
    let got = status(
        run,
        "B renames A's provider",
        Method::PATCH,
        &format!("/api/providers/{provider}"),
        &b.admin,
        Some(json!({"name": "Taken over"})),
    )
    .await?;
    judge_status(run, "B changed A's provider", got, &mut failures);
    steps.check(
        "the second clinic cannot see or change the first's providers",
        failures.is_empty(),
        refused(&failures),
    );

    let mut failures = Vec::new();
    let body = json!({"tool_name": "book_appointment", "tool_input": {"provider_id": provider, "appointment_date": date, "appointment_time": "12:00"}});
    let got = status(run, "B books A's provider", Method::POST, "/api/vapi/booking", &b.agent, Some(body)).await?;
    judge_status(run, "B booked A's provider", got, &mut failures);
    let via_vapi = vapi(run, "B books A's provider by voice", &b.agent, &vapi_message("uat-iso-b", &phone, &[("i1", "book_appointment", json!({"provider_id": provider, "appointment_date": date, "appointment_time": "13:00", "patient_name": "Eve"}))])).await?;
    let not_found = "I couldn't find that provider.";
    judge_spoken(run, "B booked A's provider by voice", via_vapi.first(), not_found, &mut failures);
    steps.check("the second clinic cannot book the first's providers", failures.is_empty(), refused(&failures));

    let mut failures = Vec::new();
    let got = status(
        run,
        "B cancels A's appointment",
        Method::POST,
        &format!("/api/appointments/{id}/cancel"),
        &b.staff,
        Some(json!({})),
    )
    .await?;
    judge_status(run, "B cancelled A's appointment by id", got, &mut failures);
    let got = status(
        run,
        "B moves A's appointment",
        Method::POST,
        &format!("/api/appointments/{id}/reschedule"),
        &b.staff,
        Some(json!({"appointment_date": date, "appointment_time": "15:00"})),
    )
    .await?;
    judge_status(run, "B moved A's appointment by id", got, &mut failures);
    let by_code = vapi(
        run,
        "B cancels by code",
        &b.agent,
        &vapi_message(
            "uat-iso-b2",
            &phone,
            &[("i2", "cancel_appointment", json!({"confirmation_code": code})), ("i3", "find_appointments", json!({}))],
        ),
    )
    .await?;
    let no_such_code = "I couldn't find an appointment with the code";
    judge_spoken(run, "B cancelled A's appointment by code", by_code.first(), no_such_code, &mut failures);
    match by_code.get(1) {
        Some(Ok(said)) => {
            // "No upcoming" from a release before this one's wording.
            let none = said.contains("upcoming appointments under the number") || said.contains("no upcoming");
            judge(run, "B found A's appointment by the caller's number", none, &mut failures)
        }
        other => {
            let said = other.map_or_else(|| "no answer".to_owned(), |e| format!("{e:?}"));
            unclear(run, format!("B found A's appointment by the caller's number? {said}"), &mut failures);
        }
    }
    steps.check(
        "the second clinic cannot cancel, move or find the first's appointments",
        failures.is_empty(),
        refused(&failures),
    );

    let mut bypass = Vec::new();
    let mut kinds = vec![
        ("forged", run.target.forged_token(Role::Staff, Some(a.id))),
        ("alg none", run.target.unsigned_token(Role::Staff, Some(a.id))),
    ];
    // An expired token needs the target's key to be signed correctly: without it, that check is a
    // step of its own, skipped (so the verdict lists it as not checked).
    let expired = run.target.expired_token(Role::Staff, Some(a.id));
    let expired_checked = expired.is_some();
    kinds.extend(expired.map(|t| ("expired", t)));
    let mut other = Vec::new();
    for (kind, token) in kinds {
        let got = status(run, &format!("{kind} token"), Method::GET, &format!("/api/appointments/{id}"), &token, None)
            .await?;
        match got {
            401 => {}
            // Past authentication: answered, or refused only by the role or tenant checks after it.
            200..=299 | 403 | 404 => bypass.push(format!("{kind} token answered {got}")),
            // A gateway's refusal or a failure: the check fails, but nothing got past.
            _ => other.push(format!("{kind} token answered {got}, not 401")),
        }
    }
    run.findings.token_bypass.extend(bypass.iter().map(|b| format!("isolation: {b}")));
    let wrong: Vec<String> = bypass.iter().chain(&other).cloned().collect();
    let title = if expired_checked {
        "forged, expired and unsigned tokens are refused with 401"
    } else {
        "forged and unsigned tokens are refused with 401"
    };
    steps.check(title, wrong.is_empty(), plain::list(&wrong, "every token refused with 401"));
    if !expired_checked {
        steps.skip(
            "an expired token is refused with 401",
            "not checked: signing one needs the target's key (--jwt-secret)",
        );
    }

    let role_check = status(run, "agent lists appointments", Method::GET, "/api/appointments", &a.agent, None).await?;
    steps.check("a role outside a route is refused with 403", role_check == 403, format!("HTTP {role_check}"));

    let still = run
        .probe
        .send(
            "A reads its appointment",
            run.probe.request(Method::GET, &format!("/api/appointments/{id}"), Some(&a.staff)),
        )
        .await?;
    let intact = still.status == 200
        && still.body["status"] == "pending"
        && still.body["starts_at"].as_str().is_some_and(|s| s.contains("T10:00:00"));
    // Changed only when read: a failed read fails the step without calling the booking lost.
    if !intact && still.status == 200 {
        run.findings.lost_or_duplicate.push(format!("isolation: clinic A's appointment changed: {}", still.body));
    }
    steps.check(
        "the first clinic's appointment is untouched",
        intact,
        format!("HTTP {}; the appointment is {}", still.status, plain::status(&still.body)),
    );
    Ok(())
}
