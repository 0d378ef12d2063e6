//! A caller books through the voice agent the way people speak ("sunday", "2 PM"), hears a
//! speakable answer naming the day, and the appointment exists on the clinic-local day the word
//! means at the right local time; a past date (answered with today's date), an impossible time and
//! a taken slot are answered politely.

use super::{caller, date_in, vapi, vapi_message, Clinic, Run, Steps};
use crate::plain;
use serde_json::json;

pub async fn run<'r>(run: &mut Run<'r>) -> Steps<'r> {
    let mut steps = Steps::new(run, 6);
    Clinic::around(run, "basic", &mut steps, scenario).await;
    steps
}

async fn scenario(run: &mut Run<'_>, clinic: &Clinic, steps: &mut Steps<'_>) -> Result<(), String> {
    // A weekday's name, of a day the clinic is open three to six days after its own today: the
    // nearest such day after today.
    let within_the_week = clinic.today() + chrono::Duration::days(7);
    let day = clinic
        .open_days(3)
        .take_while(|day| *day < within_the_week)
        .next()
        .ok_or("the clinic is closed every day from 3 to 6 days ahead: no weekday's name says a day it is open")?;
    let said = day.format("%A").to_string().to_lowercase();
    let date = day.format("%Y-%m-%d").to_string();
    let phone = caller(1);
    let args = |time: &str, date: &str| json!({"provider_name": clinic.provider_name(), "appointment_date": date, "appointment_time": time, "patient_name": "Ada Lovelace"});
    run.findings.bookings_expected += 1;
    let booked = vapi(
        run,
        "vapi book",
        &clinic.agent,
        &vapi_message("uat-basic-1", &phone, &[("b1", "book_appointment", args("2 PM", &said))]),
    )
    .await?;
    let answer = booked.first().cloned().unwrap_or_else(|| Err("no result".into()));
    let ok = steps.check("a Vapi tool-calls message books a slot", answer.is_ok(), plain::answer(&answer));
    if ok {
        run.findings.bookings_succeeded += 1;
    }
    let text = answer.unwrap_or_else(|e| e);
    let speakable = !text.contains('\n')
        && text.contains(clinic.provider_name())
        && text.contains(&format!("{} at 2:00 PM", day.format("%A, %B %-d")))
        && text.contains("confirmation code");
    steps.check("the answer is one speakable line with provider, weekday and month, time and code", speakable, text);

    let appointments = clinic.appointments(run).await?;
    let local = appointments
        .first()
        .and_then(|a| a["starts_at"].as_str())
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    let right_time = appointments.len() == 1
        && local.is_some_and(|t| t.format("%Y-%m-%d %H:%M").to_string() == format!("{date} 14:00"))
        && appointments[0]["patient"]["phone"] == phone.as_str();
    // Lost when it was answered booked and nothing is there; doubled when more is. A booking the
    // caller was told failed fails the step above, not as a lost one.
    if (ok && appointments.is_empty()) || appointments.len() > 1 {
        run.findings.lost_or_duplicate.push(format!("basic: {} appointments after one booking", appointments.len()));
    }
    steps.check(
        "the appointment exists on the clinic-local day the word means, at the right local time, for the caller",
        right_time,
        format!("\"{said}\" at \"2 PM\" booked {}", local.map_or("nothing".into(), |t| t.to_rfc3339())),
    );

    let past = vapi(
        run,
        "vapi past date",
        &clinic.agent,
        &vapi_message("uat-basic-1", &phone, &[("b2", "book_appointment", args("10:00", &date_in(-2)))]),
    )
    .await?;
    let polite = |r: &[Result<String, String>]| matches!(r.first(), Some(Err(e)) if !e.is_empty() && !e.contains('\n'));
    let says_today = matches!(past.first(), Some(Err(e)) if e.contains("today is"));
    steps.check("a past date gets a polite error", polite(&past) && says_today, plain::answers(&past));
    let invalid = vapi(
        run,
        "vapi invalid time",
        &clinic.agent,
        &vapi_message("uat-basic-1", &phone, &[("b3", "book_appointment", args("25:99", &said))]),
    )
    .await?;
    steps.check("an impossible time (25:99) gets a polite error", polite(&invalid), plain::answers(&invalid));

    let other = caller(2);
    let taken = vapi(
        run,
        "vapi taken slot",
        &clinic.agent,
        &vapi_message("uat-basic-2", &other, &[("b4", "book_appointment", args("14:00", &said))]),
    )
    .await?;
    let offers = matches!(taken.first(), Some(Err(e)) if e.contains("nearest free times"));
    steps.check("a taken slot is answered with alternatives", offers, plain::answers(&taken));
    // A booking answered refused must have written nothing: no appointment for that caller.
    let theirs =
        clinic.appointments(run).await?.into_iter().filter(|a| a["patient"]["phone"] == other.as_str()).count();
    if taken.first().is_some_and(Result::is_err) && theirs > 0 {
        run.findings
            .lost_or_duplicate
            .push(format!("basic: a booking answered refused stored {theirs} appointment(s)"));
    }
    Ok(())
}
