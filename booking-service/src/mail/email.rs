//! The emails a patient receives, built from an outbox message: multipart text and HTML with an
//! `.ics` invitation. Every value that comes from a person (clinic, provider and patient names)
//! goes through lettre's header builders, HTML escaping or iCalendar escaping, so none of it can
//! add a header, a tag or a calendar property.

use crate::domain::{Slot, Zone};
use crate::outbox::DeliveryError as MailError;
use crate::store::{outbox_kind, Appointment};
use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::Message;
use shared::api::AppointmentStatus;

/// What a message announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new booking: please confirm.
    Booked,
    /// Moved: the new time (while pending, please confirm it: a fresh link).
    Rescheduled,
    Cancelled,
    /// The appointment is coming up (one of the clinic's reminder offsets).
    Reminder,
}

impl Kind {
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            outbox_kind::BOOKING_CONFIRMATION => Some(Self::Booked),
            outbox_kind::RESCHEDULE_NOTICE => Some(Self::Rescheduled),
            outbox_kind::CANCELLATION_NOTICE => Some(Self::Cancelled),
            outbox_kind::REMINDER_EMAIL => Some(Self::Reminder),
            _ => None,
        }
    }

    /// Whether it carries a confirmation link.
    pub fn has_link(self) -> bool {
        matches!(self, Self::Booked | Self::Rescheduled)
    }
}

/// How a patient may cancel or move an appointment, as a message tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manage {
    /// `PUBLIC_BASE_URL/manage/{token}`: online, while the clinic's cut-off is ahead.
    Online(String),
    /// Within the cut-off: only by calling the clinic, at its front-desk number (Vapi's transfer
    /// number) when it has one. The link still shows the appointment, and confirms it while it is
    /// pending (a patient by phone has no other link to).
    TooSoon { link: Option<String>, phone: Option<String> },
}

impl Manage {
    /// Where the appointment can be cancelled or moved online.
    fn online(&self) -> Option<&str> {
        match self {
            Self::Online(link) => Some(link),
            Self::TooSoon { .. } => None,
        }
    }
}

/// What the email says under its confirmation link, in both parts.
const LINK_NOTE: &str = "The link works for a limited time. If you did not book this, ignore this message.";

/// "please call the clinic", at its number when it has one.
pub fn call_the_clinic(phone: Option<&str>) -> String {
    match phone {
        Some(phone) => format!("please call the clinic at {phone}"),
        None => "please call the clinic".to_owned(),
    }
}

/// What an email says when the appointment is too close to change online.
fn too_close(phone: Option<&str>) -> String {
    format!("It is too close to its time to cancel or move it online: {}.", call_the_clinic(phone))
}

/// One email to a patient: everything it shows.
#[derive(Debug)]
pub struct EmailMessage<'a> {
    pub kind: Kind,
    pub clinic: &'a str,
    pub provider: &'a str,
    pub appointment: &'a Appointment,
    /// `PUBLIC_BASE_URL/confirm/{token}`, for the kinds that carry one.
    pub link: Option<&'a str>,
    /// How the patient may cancel or move it, if the message says.
    pub manage: Option<&'a Manage>,
    /// A move's notice: the start it was moved from.
    pub moved_from: Option<DateTime<Utc>>,
}

/// A local date and time with its zone, as people read it:
/// "Friday 15 January 2027, 14:00 to 14:30 (America/New_York, UTC-05:00)". An end on another day
/// or at another offset (across midnight, or the clocks changing) says so: "01:30 to 01:30
/// UTC-05:00", "23:30 to Saturday 00:30".
pub fn local_time(zone: &Zone, slot: &Slot) -> String {
    let start = zone.localize(slot.start());
    let end = zone.localize(slot.end());
    let mut until = end.format("%H:%M").to_string();
    if end.date_naive() != start.date_naive() {
        until = format!("{} {until}", end.format("%A"));
    }
    if end.offset() != start.offset() {
        until = format!("{until} UTC{}", end.format("%:z"));
    }
    format!(
        "{}, {} to {until} ({}, UTC{})",
        start.format("%A %-d %B %Y"),
        start.format("%H:%M"),
        zone.name(),
        start.format("%:z")
    )
}

/// Text safe inside HTML elements and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of text: control characters (line breaks included) become spaces.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

impl EmailMessage<'_> {
    /// Confirmed by the time it goes (the staff, say, while the mail server was down): the booking
    /// email still carries its link, which shows it, but asks nothing.
    fn confirmed(&self) -> bool {
        self.appointment.status == AppointmentStatus::Confirmed
    }

    /// Pending with no confirmation link in this message (a reminder, or a booking's email held
    /// past its link's expiry): the manage link is where it is confirmed, and the message says so.
    fn confirmed_through_manage(&self) -> bool {
        self.appointment.status == AppointmentStatus::Pending && self.link.is_none()
    }

    /// The whole message, addressed to `to`, with a Message-ID derived from its outbox job so a
    /// duplicate delivery can be recognised.
    pub fn build(&self, job: uuid::Uuid, from: &Mailbox, to: &str) -> Result<Message, MailError> {
        let address = to.parse().map_err(|e| MailError::Render(format!("recipient address: {e}")))?;
        let recipient = Mailbox::new(self.appointment.patient_name.as_deref().map(one_line), address);
        let when = local_time(&self.appointment.zone, &self.appointment.slot);
        let provider = one_line(self.provider);
        let subject = match self.kind {
            Kind::Booked if self.confirmed() => format!("Your appointment with {provider} is booked and confirmed"),
            Kind::Booked => format!("Please confirm your appointment with {provider}"),
            Kind::Rescheduled if self.link.is_some() => {
                format!("Your appointment with {provider} was moved: please confirm")
            }
            Kind::Rescheduled => format!("Your appointment with {provider} was moved"),
            Kind::Cancelled => format!("Your appointment with {provider} was cancelled"),
            Kind::Reminder => format!("Reminder: your appointment with {provider}"),
        };
        let calendar = ics(self, from, to, Utc::now());
        let method = if self.kind == Kind::Cancelled { "CANCEL" } else { "REQUEST" };
        let calendar_type = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
            .map_err(|e| MailError::Render(e.to_string()))?;
        Message::builder()
            .from(from.clone())
            .to(recipient)
            .subject(one_line(&subject))
            .message_id(Some(format!("<{job}@{}>", from.email.domain())))
            .date_now()
            .multipart(
                MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(text(self, &when), html(self, &when)))
                    .singlepart(Attachment::new("appointment.ics".into()).body(calendar, calendar_type)),
            )
            .map_err(|e| MailError::Render(e.to_string()))
    }
}

/// "Thursday 14 January 2027, 13:30": the start a move's notice says it was moved from; with its
/// offset when the clocks go back and that time occurs twice (as the SMS says it).
fn moved_from(email: &EmailMessage<'_>) -> Option<String> {
    let (zone, at) = (&email.appointment.zone, email.moved_from?);
    let offset = if zone.occurs_twice(at) { " UTC%:z" } else { "" };
    Some(zone.localize(at).format(&format!("%A %-d %B %Y, %H:%M{offset}")).to_string())
}

fn greeting(email: &EmailMessage<'_>) -> String {
    match &email.appointment.patient_name {
        Some(name) => format!("Hello {},", one_line(name)),
        None => "Hello,".to_owned(),
    }
}

fn text(email: &EmailMessage<'_>, when: &str) -> String {
    let mut out = format!("{}\n\n", greeting(email));
    let clinic = one_line(email.clinic);
    let provider = one_line(email.provider);
    match email.kind {
        Kind::Booked => {
            out.push_str(&format!("Your appointment at {clinic} with {provider} is booked:\n\n  {when}\n\n"))
        }
        Kind::Rescheduled => {
            let from = moved_from(email).map(|from| format!(" from {from}")).unwrap_or_default();
            out.push_str(&format!("Your appointment at {clinic} with {provider} was moved{from} to:\n\n  {when}\n\n"))
        }
        Kind::Cancelled => {
            // Moved before the patient heard of it: which appointment this was, as they know it.
            let moved = moved_from(email).map(|from| format!(" (moved from {from})")).unwrap_or_default();
            out.push_str(&format!("Your appointment at {clinic} with {provider}{moved} was cancelled:\n\n  {when}\n\n"))
        }
        Kind::Reminder => {
            out.push_str(&format!("A reminder of your appointment at {clinic} with {provider}:\n\n  {when}\n\n"))
        }
    }
    out.push_str(&format!("Confirmation code: {}\n\n", email.appointment.confirmation_code));
    match email.link {
        Some(link) if email.confirmed() => out.push_str(&format!("It is confirmed; this link shows it:\n\n{link}\n\n")),
        Some(link) => out.push_str(&format!(
            "Please confirm it by opening this link and pressing Confirm:\n\n{link}\n\n{LINK_NOTE}\n\n"
        )),
        None => {}
    }
    match email.manage {
        Some(Manage::Online(link)) => {
            let what = if email.confirmed_through_manage() { "To confirm it, cancel it" } else { "To cancel it" };
            out.push_str(&format!("{what} or move it to another time:\n\n{link}\n"))
        }
        Some(Manage::TooSoon { link, phone }) => {
            out.push_str(&format!("{}\n", too_close(phone.as_deref())));
            if let Some(link) = link {
                let what = if email.confirmed_through_manage() { "To confirm it" } else { "The appointment online" };
                out.push_str(&format!("\n{what}:\n\n{link}\n"));
            }
        }
        None => {}
    }
    out
}

fn html(email: &EmailMessage<'_>, when: &str) -> String {
    let clinic = html_escape(email.clinic);
    let provider = html_escape(email.provider);
    let headline = match email.kind {
        Kind::Booked if email.confirmed() => "Your appointment is confirmed",
        Kind::Booked => "Please confirm your appointment",
        Kind::Rescheduled => "Your appointment was moved",
        Kind::Cancelled => "Your appointment was cancelled",
        Kind::Reminder => "Your appointment is coming up",
    };
    let manage = match email.manage {
        Some(Manage::Online(link)) => {
            let what = if email.confirmed_through_manage() { "Confirm, cancel or move" } else { "Cancel or move" };
            format!("<p><a href=\"{href}\">{what} this appointment</a></p>", href = html_escape(link))
        }
        Some(Manage::TooSoon { link, phone }) => {
            let what = if email.confirmed_through_manage() { "Confirm" } else { "See" };
            let shown = link
                .as_deref()
                .map(|link| format!("<p><a href=\"{href}\">{what} this appointment</a></p>", href = html_escape(link)));
            format!("<p>{}</p>{}", html_escape(&too_close(phone.as_deref())), shown.unwrap_or_default())
        }
        None => String::new(),
    };
    let action = match email.link {
        Some(link) if email.confirmed() => {
            format!("<p>It is confirmed. <a href=\"{href}\">See my appointment</a></p>", href = html_escape(link))
        }
        Some(link) => format!(
            "<p><a href=\"{href}\" style=\"display:inline-block;padding:12px 20px;background:#1d4ed8;color:#fff;\
             text-decoration:none;border-radius:6px\">Confirm my appointment</a></p>\
             <p style=\"font-size:14px\">Or open this link: {href}</p><p style=\"font-size:14px\">{note}</p>",
            href = html_escape(link),
            note = LINK_NOTE
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{headline}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;line-height:1.5;max-width:36rem;margin:auto;padding:1rem\">\
         <h1 style=\"font-size:1.4rem\">{headline}</h1><p>{greeting}</p>\
         <dl><dt>Clinic</dt><dd>{clinic}</dd><dt>With</dt><dd>{provider}</dd>\
         {was}<dt>When</dt><dd>{when}</dd><dt>Confirmation code</dt><dd><strong>{code}</strong></dd></dl>\
         {action}{manage}</body></html>",
        greeting = html_escape(&greeting(email)),
        was = moved_from(email).map(|from| format!("<dt>Was</dt><dd>{}</dd>", html_escape(&from))).unwrap_or_default(),
        when = html_escape(when),
        code = html_escape(&email.appointment.confirmation_code),
    )
}

fn ics_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT value escaping (RFC 5545 §3.3.11).
fn ics_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets without splitting a character (RFC 5545 §3.1).
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// The invitation: one event whose UID is the appointment's, so calendars update it in place
/// when it moves or is cancelled.
fn ics(email: &EmailMessage<'_>, from: &Mailbox, to: &str, now: DateTime<Utc>) -> String {
    let a = email.appointment;
    // A pending appointment is tentative until the patient confirms it (RFC 5545 §3.8.1.11).
    let (method, status) = match (email.kind, a.status) {
        (Kind::Cancelled, _) => ("CANCEL", "CANCELLED"),
        (_, AppointmentStatus::Confirmed) => ("REQUEST", "CONFIRMED"),
        _ => ("REQUEST", "TENTATIVE"),
    };
    let mut description = format!("Confirmation code {}.", a.confirmation_code);
    if let Some(link) = email.link {
        let what = if email.confirmed() { "See it" } else { "Confirm" };
        description.push_str(&format!(" {what}: {link}"));
    }
    if let Some(manage) = email.manage.and_then(Manage::online) {
        description.push_str(&format!(" Cancel or move: {manage}"));
    }
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//booking-service//confirmation//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{method}"),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@booking-service", a.id),
        format!("SEQUENCE:{}", a.updated_at.timestamp()),
        format!("DTSTAMP:{}", ics_time(now)),
        format!("DTSTART:{}", ics_time(a.slot.start())),
        format!("DTEND:{}", ics_time(a.slot.end())),
        format!("SUMMARY:{}", ics_text(&format!("Appointment with {}", email.provider))),
        format!("LOCATION:{}", ics_text(email.clinic)),
        format!("DESCRIPTION:{}", ics_text(&description)),
        format!("ORGANIZER:mailto:{}", from.email),
        format!("ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:{to}"),
        format!("STATUS:{status}"),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    lines.iter().map(|l| fold(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_text_cannot_add_properties() {
        assert_eq!(ics_text("a;b,c\\d\nEND:VEVENT"), "a\\;b\\,c\\\\d\\nEND:VEVENT");
    }

    #[test]
    fn long_lines_fold_at_75_octets_on_character_boundaries() {
        let folded = fold(&format!("SUMMARY:{}", "é".repeat(60)));
        for line in folded.split("\r\n") {
            assert!(line.len() <= 75, "{line}");
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), format!("SUMMARY:{}", "é".repeat(60)));
    }

    /// The end says its day or offset when they are not the start's: across midnight, and across
    /// the clocks falling back (01:30 EDT for an hour ends at 01:30 EST).
    #[test]
    fn an_end_on_another_day_or_offset_says_so() {
        let zone = Zone::parse("tz", "America/New_York").expect("zone");
        let at = |rfc3339: &str| DateTime::parse_from_rfc3339(rfc3339).expect("instant").with_timezone(&Utc);
        let minutes = |m| crate::domain::Minutes::parse("m", m).expect("minutes");
        let plain = Slot::new(at("2027-01-15T14:00:00-05:00"), minutes(30));
        assert_eq!(local_time(&zone, &plain), "Friday 15 January 2027, 14:00 to 14:30 (America/New_York, UTC-05:00)");
        let overnight = Slot::new(at("2027-01-15T23:30:00-05:00"), minutes(60));
        assert_eq!(
            local_time(&zone, &overnight),
            "Friday 15 January 2027, 23:30 to Saturday 00:30 (America/New_York, UTC-05:00)"
        );
        let falling_back = Slot::new(at("2027-11-07T01:30:00-04:00"), minutes(60));
        assert_eq!(
            local_time(&zone, &falling_back),
            "Sunday 7 November 2027, 01:30 to 01:30 UTC-05:00 (America/New_York, UTC-04:00)"
        );
    }

    /// A pending appointment's message without a confirmation link (a reminder, a booking email
    /// held past its link's expiry) offers to confirm through the manage link, in both parts; a
    /// confirmed one's, or one with the link, does not.
    #[test]
    fn a_pending_appointments_message_without_a_link_confirms_through_the_manage_link() {
        let start = Utc::now() + chrono::Duration::days(3);
        let pending = Appointment::sample("UTC", start, AppointmentStatus::Pending);
        let confirmed = Appointment::sample("UTC", start, AppointmentStatus::Confirmed);
        let online = Manage::Online("https://x/manage/t".into());
        let too_soon = Manage::TooSoon { link: Some("https://x/manage/t".into()), phone: None };
        let says = |appointment: &Appointment, kind, link, manage| {
            let email = EmailMessage {
                kind,
                clinic: "Smile",
                provider: "Dr. Smith",
                appointment,
                link,
                manage: Some(manage),
                moved_from: None,
            };
            let when = local_time(&appointment.zone, &appointment.slot);
            (text(&email, &when), html(&email, &when))
        };
        for kind in [Kind::Reminder, Kind::Booked] {
            let (text, html) = says(&pending, kind, None, &online);
            assert!(text.contains("To confirm it, cancel it or move it to another time:"), "{text}");
            assert!(html.contains(">Confirm, cancel or move this appointment</a>"), "{html}");
            let (text, html) = says(&pending, kind, None, &too_soon);
            assert!(text.contains("To confirm it:\n\nhttps://x/manage/t"), "{text}");
            assert!(html.contains(">Confirm this appointment</a>"), "{html}");
            let (text, html) = says(&confirmed, kind, None, &online);
            assert!(text.contains("\nTo cancel it or move it to another time:"), "{text}");
            assert!(!html.contains("Confirm, cancel"), "{html}");
        }
        let (text, _) = says(&pending, Kind::Booked, Some("https://x/confirm/c"), &online);
        assert!(text.contains("\nTo cancel it or move it to another time:"), "the link confirms: {text}");
    }

    /// A move from a time the night the clocks go back says which of the two it was.
    #[test]
    fn a_move_from_the_repeated_hour_says_its_offset() {
        let zone = "America/New_York";
        let start = Utc::now() + chrono::Duration::days(3);
        let appointment = Appointment::sample(zone, start, AppointmentStatus::Pending);
        let says = |from: DateTime<Utc>| {
            let email = EmailMessage {
                kind: Kind::Rescheduled,
                clinic: "Smile",
                provider: "Dr. Smith",
                appointment: &appointment,
                link: None,
                manage: None,
                moved_from: Some(from),
            };
            moved_from(&email).expect("a time")
        };
        // 01:30 the night of 7 November 2027, first in EDT (05:30 UTC), then in EST (06:30 UTC).
        let first = chrono::TimeZone::with_ymd_and_hms(&Utc, 2027, 11, 7, 5, 30, 0).single().expect("a time");
        assert_eq!(says(first), "Sunday 7 November 2027, 01:30 UTC-04:00");
        assert_eq!(says(first + chrono::Duration::hours(1)), "Sunday 7 November 2027, 01:30 UTC-05:00");
        assert_eq!(says(first + chrono::Duration::hours(4)), "Sunday 7 November 2027, 04:30");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<script>\"x\" & 'y'"), "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;");
    }
}
