//! Optional, in-process only: what a booking sends besides the confirmation email, checked at the
//! run's own receivers (a Twilio stand-in speaking its Messages API, a webhook endpoint). The
//! caller gets an SMS with the code and the manage link; the clinic's endpoint gets the booking
//! signed as Standard Webhooks specify (checked with the specification's own library); the
//! reminders come by SMS and email when due and not before; a STOP texted to the sender (signed as
//! Twilio signs) silences the SMS, a START brings them back.

use super::email::link_in;
use super::{caller, expect, poll, vapi, vapi_message, Clinic, Run, Steps};
use crate::plain;
use crate::target::Peers;
use chrono::{DateTime, DurationRound, Utc};
use chrono_tz::Tz;
use local_peers::http::ReceivedRequest;
use local_peers::smtp::SmtpSink;
use local_peers::twilio::{sign, SentSms};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The clinic's reminder offset: the smallest the service takes.
const OFFSET_MINUTES: i64 = 5;

pub async fn run<'r>(run: &mut Run<'r>) -> Steps<'r> {
    let mut steps = Steps::new(run, 10);
    let (Some(peers), Some(mail)) = (run.target.notifications(), run.mail) else {
        steps.error(
            "receivers for the SMS and the webhooks",
            "this scenario needs the in-process service (without --target): its Twilio and webhook endpoint are the run's own",
        );
        return steps;
    };
    Clinic::around(run, "notifications", &mut steps, async |run, clinic, steps| {
        scenario(run, peers, mail, clinic, steps).await
    })
    .await;
    steps
}

/// A booking the scenario made, as staff read it.
struct Booked {
    id: String,
    code: String,
}

async fn scenario(
    run: &mut Run<'_>,
    peers: &Peers,
    mail: &SmtpSink,
    clinic: &Clinic,
    steps: &mut Steps<'_>,
) -> Result<(), String> {
    let secret = set_up(run, peers, clinic).await?;
    steps.check(
        "the clinic reminds 5 minutes ahead and has a webhook endpoint with a whsec_ secret",
        secret.starts_with("whsec_"),
        format!("reminders at {OFFSET_MINUTES} minutes; the secret starts {}", secret.get(..6).unwrap_or("")),
    );

    // The first whole minute at least the offset and 20 s away: its reminders are due within about
    // a minute, and none is due already when it is booked.
    let phone = caller(7);
    let address = format!("uat-{}@example.com", Uuid::new_v4().simple());
    let zone: Tz = chrono_tz::America::New_York;
    let soon = Utc::now() + chrono::Duration::seconds(OFFSET_MINUTES * 60 + 20);
    let start =
        soon.duration_trunc(chrono::Duration::minutes(1)).map_err(|e| e.to_string())? + chrono::Duration::minutes(1);
    let first = book(run, clinic, &phone, &address, start.with_timezone(&zone), steps).await?;
    let Some(first) = first else { return Ok(()) };

    // The booking SMS.
    let sms = poll(Instant::now(), run.email_timeout, || {
        peers.twilio.messages().into_iter().find(|m| m.to == phone && m.body.contains(&first.code))
    })
    .await;
    let manage = sms.as_ref().and_then(|m| link_in(&m.found.body, "/manage/"));
    steps.check(
        "the booking SMS reaches the caller from the clinic's sender with the code and the manage link",
        sms.as_ref().is_some_and(|m| m.found.from == peers.sender) && manage.is_some(),
        match &sms {
            Some(m) => format!("after {} ms from {}: {}", m.took.as_millis(), m.found.from, m.found.body),
            None => format!("no SMS to {phone} within {} s", run.email_timeout.as_secs()),
        },
    );

    // The webhook.
    let hook = poll(Instant::now(), run.email_timeout, || {
        peers.hooks.taken().into_iter().find(|r| {
            r.json().is_some_and(|b| b["type"] == "appointment.booked" && b["data"]["id"] == first.id.as_str())
        })
    })
    .await;
    let verified = hook.as_ref().map(|r| verify(&secret, &r.found));
    steps.check(
        "the clinic's endpoint hears of the booking, signed as Standard Webhooks specify",
        matches!(verified, Some(Ok(()))),
        match (&hook, &verified) {
            (Some(r), Some(Ok(()))) => format!(
                "after {} ms, webhook-id {}, signature verified",
                r.took.as_millis(),
                r.found.header("webhook-id").unwrap_or("")
            ),
            (_, Some(Err(e))) => format!("the signature does not verify: {e}"),
            _ => format!("no appointment.booked within {} s", run.email_timeout.as_secs()),
        },
    );

    // The reminders, due at the start minus the offset.
    let due = start - chrono::Duration::minutes(OFFSET_MINUTES);
    let wait = (due - Utc::now()).to_std().unwrap_or_default() + run.email_timeout;
    let (texted, emailed) = tokio::join!(
        poll(Instant::now(), wait, || {
            peers.twilio.messages().into_iter().find(|m| m.to == phone && m.body.contains("reminder"))
        }),
        poll(Instant::now(), wait, || {
            mail.messages()
                .into_iter()
                .find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(&address)) && m.searchable().contains("Reminder"))
        }),
    );
    let when = |what: &str, at: Option<DateTime<Utc>>| match at {
        Some(at) => format!("the {what} {:.1} s after it was due", (at - due).num_milliseconds() as f64 / 1000.0),
        None => format!("no {what}"),
    };
    let (texted, emailed) = (texted.map(|m| m.at), emailed.map(|m| m.at));
    steps.check(
        "the reminders arrive by SMS and by email when due, not before",
        texted.zip(emailed).is_some_and(|(t, e)| t >= due && e >= due),
        format!("{}; {}", when("SMS", texted), when("email", emailed)),
    );

    // STOP, unsigned then signed.
    let forged = inbound(run, peers, &phone, "STOP", false).await?;
    let stopped = inbound(run, peers, &phone, "STOP", true).await?;
    steps.check(
        "a STOP without Twilio's signature is refused, a signed one is taken",
        forged.status == 403 && stopped.status == 200,
        format!("unsigned: HTTP {}; signed: HTTP {}", forged.status, stopped.status),
    );

    // After STOP: the email of the next booking goes, its SMS does not.
    let later = unrepeated(start.with_timezone(&zone) + chrono::Duration::days(2));
    if let Some(second) = book(run, clinic, &phone, &address, later, steps).await? {
        let email = poll(Instant::now(), run.email_timeout, || {
            mail.messages().into_iter().find(|m| m.searchable().contains(&second.code))
        })
        .await;
        // The SMS is handled beside the email: give the outbox a few more rounds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let texted: Vec<SentSms> =
            peers.twilio.messages().into_iter().filter(|m| m.body.contains(&second.code)).collect();
        steps.check(
            "after STOP a booking sends the caller no SMS, and its email still goes",
            email.is_some() && texted.is_empty(),
            format!("email: {}; SMS with its code: {}", if email.is_some() { "sent" } else { "none" }, texted.len()),
        );
    }

    // After START: SMS again.
    let started = inbound(run, peers, &phone, "START", true).await?;
    let again = unrepeated(later + chrono::Duration::hours(1));
    if let Some(third) = book(run, clinic, &phone, &address, again, steps).await? {
        let sms = poll(Instant::now(), run.email_timeout, || {
            peers.twilio.messages().into_iter().find(|m| m.to == phone && m.body.contains(&third.code))
        })
        .await;
        steps.check(
            "after START the caller gets SMS again",
            started.status == 200 && sms.is_some(),
            format!(
                "START: HTTP {}; the next booking's SMS {}",
                started.status,
                if sms.is_some() { "arrived" } else { "did not arrive" }
            ),
        );
    }
    Ok(())
}

/// Reminders 5 minutes ahead and no limit per caller; a provider without working hours (bookable at
/// any time of day, so the run can book minutes ahead whenever it runs) with 5-minute visits; a
/// webhook at the run's endpoint. Returns the webhook's secret.
async fn set_up(run: &Run<'_>, peers: &Peers, clinic: &Clinic) -> Result<String, String> {
    let settings = expect(
        run.probe
            .send("read the settings", run.probe.request(Method::GET, "/api/settings", Some(&clinic.admin)))
            .await?,
        200,
        "read the settings",
    )?;
    let mut wanted = settings.body.clone();
    wanted["reminder_offsets_minutes"] = json!([OFFSET_MINUTES]);
    wanted["max_active_per_caller"] = json!(0);
    // Changes online up to the start, so the manage link of a booking minutes ahead still changes it.
    wanted["manage_cutoff_minutes"] = json!(0);
    let put = run.probe.request(Method::PUT, "/api/settings", Some(&clinic.admin)).json(&wanted);
    expect(run.probe.send("set the reminders", put).await?, 200, "set the reminders")?;
    let path = format!("/api/providers/{}", clinic.provider_id());
    let any_time = json!({"working_hours": [], "appointment_minutes": 5});
    let patch = run.probe.request(Method::PATCH, &path, Some(&clinic.admin)).json(&any_time);
    expect(run.probe.send("open the provider's hours", patch).await?, 200, "open the provider's hours")?;
    let hook = json!({"url": format!("{}/hook", peers.hooks.url())});
    let post = run.probe.request(Method::POST, "/api/webhooks", Some(&clinic.admin)).json(&hook);
    let created = expect(run.probe.send("add a webhook", post).await?, 201, "add a webhook")?;
    created.body["secret"].as_str().map(str::to_owned).ok_or_else(|| format!("no secret in {}", created.body))
}

/// `t`, or the first hour after it whose wall-clock time names one instant: a local time in the
/// hour the clocks repeat is read as its first pass, which may be a time already booked or gone.
fn unrepeated(mut t: DateTime<Tz>) -> DateTime<Tz> {
    use chrono::TimeZone;
    while !matches!(t.timezone().from_local_datetime(&t.naive_local()), chrono::LocalResult::Single(_)) {
        t += chrono::Duration::hours(1);
    }
    t
}

/// Books `start` through the voice agent for `phone` and `address`, recording the step; `None`
/// when it was refused.
async fn book(
    run: &mut Run<'_>,
    clinic: &Clinic,
    phone: &str,
    address: &str,
    start: DateTime<Tz>,
    steps: &mut Steps<'_>,
) -> Result<Option<Booked>, String> {
    let args = json!({"provider_name": clinic.provider_name(), "appointment_date": start.format("%Y-%m-%d").to_string(),
                      "appointment_time": start.format("%H:%M").to_string(), "patient_name": "Grace Hopper",
                      "patient_email": address});
    run.findings.bookings_expected += 1;
    let call = format!("uat-notify-{}", Uuid::new_v4().simple());
    let answers =
        vapi(run, "vapi book", &clinic.agent, &vapi_message(&call, phone, &[("n1", "book_appointment", args)])).await?;
    let found = clinic.appointments(run).await?.into_iter().find(|a| {
        a["starts_at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).is_some_and(|s| s == start)
    });
    let booked = match (answers.first(), found) {
        (Some(Ok(_)), Some(a)) => Some(Booked {
            id: a["id"].as_str().unwrap_or_default().to_owned(),
            code: a["confirmation_code"].as_str().unwrap_or_default().to_owned(),
        }),
        _ => None,
    };
    if booked.is_some() {
        run.findings.bookings_succeeded += 1;
    }
    steps.check(
        &format!("a voice booking for {} is accepted", start.format("%a %H:%M %Z")),
        booked.is_some(),
        plain::answers(&answers),
    );
    Ok(booked)
}

/// A text from `phone` to the service's sender, as Twilio posts it to `/sms/inbound`: signed with
/// the account's auth token, or with a wrong one.
async fn inbound(
    run: &Run<'_>,
    peers: &Peers,
    phone: &str,
    word: &str,
    signed: bool,
) -> Result<crate::probe::Reply, String> {
    let form = [("From", phone), ("To", peers.sender.as_str()), ("Body", word)];
    let key = if signed { peers.auth_token.clone() } else { format!("not-{}", peers.auth_token) };
    let signature = sign(&key, &format!("{}/sms/inbound", run.target.base), &form);
    let request =
        run.probe.request(Method::POST, "/sms/inbound", None).header("X-Twilio-Signature", signature).form(&form);
    run.probe.send(&format!("text {word}"), request).await
}

/// Checks a webhook request with the Standard Webhooks library (signature and timestamp).
fn verify(secret: &str, request: &ReceivedRequest) -> Result<(), String> {
    let check = standardwebhooks::Webhook::new(secret).map_err(|e| format!("the secret is refused: {e:?}"))?;
    check.verify(&request.body, &request.header_map()).map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// On the night New York's clocks go back, 01:30 happens twice; the time after it is the
    /// first that names one instant.
    #[test]
    fn a_wall_clock_time_the_clocks_repeat_is_moved_past_the_repeat() {
        let zone: Tz = chrono_tz::America::New_York;
        let second_pass = chrono::Utc.with_ymd_and_hms(2027, 11, 7, 6, 30, 0).unwrap().with_timezone(&zone);
        assert_eq!(second_pass.format("%H:%M %Z").to_string(), "01:30 EST");
        assert_eq!(unrepeated(second_pass).format("%H:%M %Z").to_string(), "02:30 EST");
        let plain = chrono::Utc.with_ymd_and_hms(2027, 11, 8, 15, 0, 0).unwrap().with_timezone(&zone);
        assert_eq!(unrepeated(plain), plain);
    }
}
