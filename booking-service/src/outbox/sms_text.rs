//! The words of the SMS a patient receives: one line each, names cut short, so that a message
//! stays within a few segments whatever a clinic or provider is called.

use crate::mail::email::{call_the_clinic, one_line, Manage};
use crate::store::{outbox_kind, Appointment};
use shared::api::AppointmentStatus;

/// The most characters of a clinic's or provider's name an SMS shows.
const NAME_CHARS: usize = 40;

fn short(name: &str) -> String {
    let name = one_line(name.trim());
    match name.char_indices().nth(NAME_CHARS) {
        // Three dots, not "…": that one character is outside GSM-7 and would turn the whole
        // message into UCS-2, 70 characters a segment instead of 160.
        Some((cut, _)) => format!("{}...", name[..cut].trim_end()),
        None => name,
    }
}

/// "Fri 15 Jan, 2:00 PM (America/New_York)": the start, local to the appointment's zone.
fn when(a: &Appointment) -> String {
    format!("{} ({})", at(a, a.slot.start()), a.zone.name())
}

/// "Fri 15 Jan, 2:00 PM": an instant, local to the appointment's zone; with its offset when the
/// clocks go back and that time occurs twice ("Sun 7 Nov, 1:30 AM UTC-05:00").
fn at(a: &Appointment, t: chrono::DateTime<chrono::Utc>) -> String {
    let local = a.zone.localize(t);
    let offset = if a.zone.occurs_twice(t) { " UTC%:z" } else { "" };
    local.format(&format!("%a %-d %b, %-I:%M %p{offset}")).to_string()
}

/// The body of an SMS of `kind` (one of `outbox_kind::SMS`), or `None` for another kind. The
/// manage link goes in all but the cancellation.
/// A move's SMS says the start it was moved from when its payload kept one (`moved_from`).
pub fn sms_body(
    kind: &str,
    clinic: &str,
    provider: &str,
    a: &Appointment,
    manage: Option<&Manage>,
    moved_from: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<String> {
    let (clinic, provider, when, code) = (short(clinic), short(provider), when(a), &a.confirmation_code);
    let mut body = match kind {
        outbox_kind::BOOKING_SMS => format!("{clinic}: you're booked with {provider} on {when}. Code {code}."),
        outbox_kind::REMINDER_SMS => {
            format!("{clinic}: a reminder of your appointment with {provider} on {when}. Code {code}.")
        }
        outbox_kind::RESCHEDULE_SMS => match moved_from {
            Some(from) => {
                let from = at(a, from);
                format!("{clinic}: your appointment with {provider} on {from} is now on {when}. Code {code}.")
            }
            None => format!("{clinic}: your appointment with {provider} is now on {when}. Code {code}."),
        },
        outbox_kind::CANCELLATION_SMS => {
            // Moved before the patient heard of it: the time they know first.
            let which = match moved_from {
                Some(from) => format!("on {}, moved to {when} (code {code}),", at(a, from)),
                None => format!("on {when} (code {code})"),
            };
            return Some(format!(
                "{clinic}: your appointment with {provider} {which} is cancelled. Call us to book another time."
            ));
        }
        _ => return None,
    };
    // A pending appointment is confirmed there too: a patient by phone has no other link.
    let pending = a.status == AppointmentStatus::Pending;
    match manage {
        Some(Manage::Online(link)) => {
            let does = if pending { "confirm, cancel or change it" } else { "cancel or change it" };
            body.push_str(&format!(" To {does}: {link}"));
        }
        Some(Manage::TooSoon { link, phone }) => {
            if let Some(link) = link {
                body.push_str(&format!(" {}: {link}", if pending { "To confirm it" } else { "See it" }));
            }
            body.push_str(&format!(" To cancel or change it, {}.", call_the_clinic(phone.as_deref())));
        }
        None => {}
    }
    if kind == outbox_kind::BOOKING_SMS {
        body.push_str(" Reply STOP to opt out.");
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use shared::api::AppointmentStatus;

    fn appointment() -> Appointment {
        let start = Utc.with_ymd_and_hms(2027, 1, 15, 19, 0, 0).single().expect("a time");
        Appointment::sample("America/New_York", start, AppointmentStatus::Pending)
    }

    #[test]
    fn a_booking_sms_says_when_with_the_code_and_the_link_in_one_line() {
        let a = appointment();
        let link = Manage::Online("https://x/manage/t".into());
        let body =
            sms_body(outbox_kind::BOOKING_SMS, "Smile\nClinic", "Dr. Smith", &a, Some(&link), None).expect("a body");
        assert_eq!(
            body,
            "Smile Clinic: you're booked with Dr. Smith on Fri 15 Jan, 2:00 PM (America/New_York). Code K7P2QX. \
             To confirm, cancel or change it: https://x/manage/t Reply STOP to opt out."
        );
        // Once confirmed, nothing is left to confirm.
        let confirmed = Appointment { status: AppointmentStatus::Confirmed, ..appointment() };
        let reminder = sms_body(outbox_kind::REMINDER_SMS, "Smile", "Dr. Smith", &confirmed, Some(&link), None);
        assert!(reminder.expect("a body").ends_with("Code K7P2QX. To cancel or change it: https://x/manage/t"));
        assert!(sms_body(outbox_kind::BOOKING_CONFIRMATION, "c", "p", &a, None, None).is_none());
    }

    #[test]
    fn a_move_carries_the_link_and_a_cancellation_does_not() {
        let a = appointment();
        let online = Manage::Online("https://x/manage/t".into());
        let link = Some(&online);
        let from = a.slot.start() - chrono::Duration::days(1) - chrono::Duration::minutes(30);
        let moved = sms_body(outbox_kind::RESCHEDULE_SMS, "Smile", "Dr. Smith", &a, link, Some(from)).expect("a body");
        assert_eq!(
            moved,
            "Smile: your appointment with Dr. Smith on Thu 14 Jan, 1:30 PM is now on Fri 15 Jan, 2:00 PM \
             (America/New_York). Code K7P2QX. To confirm, cancel or change it: https://x/manage/t"
        );
        let cancelled = sms_body(outbox_kind::CANCELLATION_SMS, "Smile", "Dr. Smith", &a, link, None).expect("a body");
        assert!(cancelled.contains("is cancelled") && cancelled.contains("K7P2QX"), "{cancelled}");
        assert!(!cancelled.contains("manage"), "nothing left to manage: {cancelled}");
        // Moved before the patient heard of it: the time they know first.
        let untold =
            sms_body(outbox_kind::CANCELLATION_SMS, "Smile", "Dr. Smith", &a, None, Some(from)).expect("a body");
        assert_eq!(
            untold,
            "Smile: your appointment with Dr. Smith on Thu 14 Jan, 1:30 PM, moved to Fri 15 Jan, 2:00 PM \
             (America/New_York) (code K7P2QX), is cancelled. Call us to book another time."
        );
    }

    /// Within the clinic's cut-off the link would refuse a change: the text says to call for
    /// that, and gives the link to confirm a pending appointment (or see a confirmed one).
    #[test]
    fn a_reminder_too_close_to_change_online_says_to_call() {
        let call = |status, link: Option<&str>, phone: Option<&str>| {
            let a = Appointment { status, ..appointment() };
            let manage = Manage::TooSoon { link: link.map(str::to_owned), phone: phone.map(str::to_owned) };
            sms_body(outbox_kind::REMINDER_SMS, "Smile", "Dr. Smith", &a, Some(&manage), None).expect("a body")
        };
        let body = call(AppointmentStatus::Pending, None, None);
        assert!(body.ends_with("Code K7P2QX. To cancel or change it, please call the clinic."), "{body}");
        assert!(!body.contains("http"), "{body}");
        let body = call(AppointmentStatus::Pending, Some("https://x/manage/t"), Some("+15550102000"));
        assert!(
            body.ends_with(
                "To confirm it: https://x/manage/t To cancel or change it, please call the clinic at +15550102000."
            ),
            "{body}"
        );
        let body = call(AppointmentStatus::Confirmed, Some("https://x/manage/t"), None);
        assert!(body.ends_with("See it: https://x/manage/t To cancel or change it, please call the clinic."), "{body}");
    }

    #[test]
    fn a_time_the_clocks_go_back_over_says_which_of_the_two_it_is() {
        let at = |utc_hour| {
            let start = Utc.with_ymd_and_hms(2027, 11, 7, utc_hour, 30, 0).single().expect("a time");
            let a = Appointment::sample("America/New_York", start, AppointmentStatus::Pending);
            sms_body(outbox_kind::BOOKING_SMS, "Smile", "Dr. Smith", &a, None, None).expect("a body")
        };
        assert!(at(5).contains("on Sun 7 Nov, 1:30 AM UTC-04:00 (America/New_York)"), "{}", at(5));
        assert!(at(6).contains("on Sun 7 Nov, 1:30 AM UTC-05:00 (America/New_York)"), "{}", at(6));
        assert!(at(7).contains("on Sun 7 Nov, 2:30 AM (America/New_York)"), "once, plain: {}", at(7));
    }

    #[test]
    fn long_names_are_cut_short() {
        let a = appointment();
        let body = sms_body(outbox_kind::REMINDER_SMS, &"Ø".repeat(500), "Dr. Who", &a, None, None).expect("a body");
        assert!(body.chars().count() < 160, "{body}");
        assert!(body.starts_with(&format!("{}...:", "Ø".repeat(40))), "{body}");
        // A plain name cut short stays plain ASCII (the "…" it was cut with is outside GSM-7).
        let plain = "Northside Family Dental and Orthodontics Clinic of Springfield";
        let body = sms_body(outbox_kind::REMINDER_SMS, plain, "Dr. Who", &a, None, None).expect("a body");
        assert!(body.is_ascii(), "{body}");
    }
}
