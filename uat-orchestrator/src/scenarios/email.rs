//! A booking with an email reaches the mail sink within the time allowed, naming the provider, the
//! local date and time and carrying the confirm link; opening the link changes nothing (mail
//! scanners open links); confirming makes the appointment confirmed. When the message carries the
//! patient's manage link (`/manage/{token}`), opening it shows that appointment.

use super::{caller, poll, vapi, vapi_message, Clinic, Run, Seen, Steps};
use crate::plain;
use reqwest::Method;
use serde_json::json;
use std::time::Instant;
use uuid::Uuid;

pub async fn run<'r>(run: &mut Run<'r>) -> Steps<'r> {
    let mut steps = Steps::new(run, 6);
    let Some(mail) = run.mail else {
        steps.error(
            "a mail sink to receive the confirmation",
            "no mail sink: against a remote target pass --smtp-listen and point the target's SMTP_URL at it",
        );
        run.findings.emails_expected += 1;
        return steps;
    };
    Clinic::around(run, "email", &mut steps, async |run, clinic, steps| scenario(run, mail, clinic, steps).await).await;
    steps
}

/// The first link in a message's text whose path holds `marker` (`/confirm/`, `/manage/`), cut
/// after the token that follows it.
pub(super) fn link_in(text: &str, marker: &str) -> Option<String> {
    let word = text
        .split(|c: char| c.is_whitespace() || "\"'<>()".contains(c))
        .find(|word| word.starts_with("http") && word.contains(marker))?;
    let at = word.find(marker)? + marker.len();
    let token: String =
        word[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    (!token.is_empty()).then(|| format!("{}{token}", &word[..at]))
}

async fn scenario(
    run: &mut Run<'_>,
    mail: &local_peers::smtp::SmtpSink,
    clinic: &Clinic,
    steps: &mut Steps<'_>,
) -> Result<(), String> {
    let address = format!("uat-{}@example.com", Uuid::new_v4().simple());
    let date = clinic.open_date(13)?;
    let args = json!({"provider_name": clinic.provider_name(), "appointment_date": date, "appointment_time": "14:00",
                      "patient_name": "Ada Lovelace", "patient_email": address});
    run.findings.bookings_expected += 1;
    run.findings.emails_expected += 1;
    let sent_at = Instant::now();
    let booked = vapi(
        run,
        "vapi book with email",
        &clinic.agent,
        &vapi_message("uat-email", &caller(3), &[("m1", "book_appointment", args)]),
    )
    .await?;
    let ok = matches!(booked.first(), Some(Ok(_)));
    // Read back: a booking answered made must be there.
    let appointments = clinic.appointments(run).await?;
    if (ok && appointments.is_empty()) || appointments.len() > 1 {
        let found = appointments.len();
        run.findings.lost_or_duplicate.push(format!("email: one booking answered made, {found} appointments stored"));
    }
    let ok = ok && appointments.len() == 1;
    if ok {
        run.findings.bookings_succeeded += 1;
    }
    steps.check("a booking with an email address is accepted", ok, plain::answers(&booked));

    let arrived = poll(sent_at, run.email_timeout, || {
        mail.messages().into_iter().find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(&address)))
    })
    .await;
    let Some(Seen { found: message, took, .. }) = arrived else {
        steps.check(
            "the confirmation email arrives in time",
            false,
            format!("nothing for {address} within {} s", run.email_timeout.as_secs()),
        );
        return Ok(());
    };
    run.findings.emails_in_time += 1;
    run.findings.email_latency_ms.push(took.as_millis());
    steps.check("the confirmation email arrives in time", true, format!("{} ms", took.as_millis()));

    let text = message.searchable();
    let day = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|e| e.to_string())?;
    let link = link_in(&text, "/confirm/");
    // The whole local date and the start as the message writes them ("Friday 15 January 2027,
    // 14:00 to 14:30"), which the Date: header cannot match by chance.
    let when = format!("{}, 14:00 to ", day.format("%A %-d %B %Y"));
    let complete = text.contains(clinic.provider_name()) && text.contains(&when) && link.is_some();
    steps.check(
        "it names the provider, the local date and time, and carries the confirm link",
        complete,
        link.clone().unwrap_or_else(|| "no link found".into()),
    );
    let Some(link) = link else {
        return Ok(());
    };

    let id = appointments.first().and_then(|a| a["id"].as_str()).unwrap_or_default().to_owned();
    let opened = run.probe.send("open the link", run.probe.request_url(Method::GET, &link)).await?;
    let after = super::expect(clinic.appointment(run, &id).await?, 200, "read the appointment")?;
    steps.check(
        "opening the link shows the appointment and changes nothing",
        opened.status == 200 && after.body["status"] == "pending",
        format!("the page answered HTTP {}; the appointment is {}", opened.status, plain::status(&after.body)),
    );

    let confirmed = run
        .probe
        .send("confirm", run.probe.request_url(Method::POST, &link).header("accept", "application/json"))
        .await?;
    let now = clinic.appointment(run, &id).await?;
    steps.check(
        "confirming moves the appointment to confirmed",
        confirmed.status == 200 && confirmed.body["status"] == "confirmed" && now.body["status"] == "confirmed",
        format!(
            "confirming answered HTTP {} ({}); the appointment is {}",
            confirmed.status,
            plain::status(&confirmed.body),
            plain::status(&now.body)
        ),
    );

    // The patient's manage link, which every confirmation carries: its JSON view is the appointment.
    let title = "the manage link shows the appointment and changes nothing";
    let Some(manage) = link_in(&text, "/manage/") else {
        steps.check(title, false, "the message carries no /manage/ link");
        return Ok(());
    };
    let before = clinic.appointment(run, &id).await?;
    let opened = run
        .probe
        .send("open the manage link", run.probe.request_url(Method::GET, &manage).header("accept", "application/json"))
        .await?;
    let after = clinic.appointment(run, &id).await?;
    steps.check(
        title,
        opened.status == 200
            && opened.body["id"] == id.as_str()
            && opened.body["status"] == before.body["status"]
            && after.body == before.body,
        format!(
            "the manage link answered HTTP {} ({}); the appointment is {}",
            opened.status,
            plain::status(&opened.body),
            plain::status(&after.body)
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::link_in;

    #[test]
    fn links_are_found_in_text_and_html_and_cut_after_their_token() {
        let text = "Confirm: https://clinic.example/confirm/abc-DEF_123.\r\n\
                    <a href=\"https://clinic.example/manage/xyz_789-Q/cancel\">Manage</a>";
        assert_eq!(link_in(text, "/confirm/").as_deref(), Some("https://clinic.example/confirm/abc-DEF_123"));
        assert_eq!(link_in(text, "/manage/").as_deref(), Some("https://clinic.example/manage/xyz_789-Q"));
        assert_eq!(link_in("no links here", "/manage/"), None);
        assert_eq!(link_in("https://clinic.example/manage/", "/manage/"), None);
    }
}
