//! The voice agent's time (docs/API.md, "Voice agent"): date words and spoken times read in the clinic's zone
//! at the instant the service's clock gives, earliest slots across providers, time windows and
//! `get_clinic_info`. The clock is set (never slept on) to instants in the real future, since the
//! store still checks bookings against the real time; the clinics sit far from UTC (Auckland, Los
//! Angeles), at hours when their local date is not UTC's.

use crate::helpers::*;
use crate::vapi::{call, message, only, post, CALLER};
use booking_service::clock::{SettableClock, SharedClock};
use booking_service::domain::Zone;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday as Day};
use reqwest::Method;
use serde_json::{json, Value};
use shared::api::{self, AppointmentQuery, CreateAppointmentType, CreateProvider, Weekday, WorkingHours};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const AUCKLAND: &str = "Pacific/Auckland";
const LOS_ANGELES: &str = "America/Los_Angeles";
const HONOLULU: &str = "Pacific/Honolulu";
const WEEK: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// One tool call in a message of its own (fresh ids, so no answer is given again): its result,
/// or its error, checked to be one line.
async fn ask(org: &TestOrg, tool: &str, arguments: Value) -> Result<String, String> {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let body = message(vec![call(&format!("tc-{n}"), tool, arguments)], Some(CALLER), &format!("call-{n}"));
    only(&post(&org.agent, &body).await)
}

// ---- Time --------------------------------------------------------------------------------------

/// The service, its clock standing at `now`.
pub(crate) async fn app_at(backend: Backend, now: DateTime<Utc>) -> (TestApp, Arc<SettableClock>) {
    let clock = SettableClock::at(now);
    let shared: SharedClock = clock.clone();
    let app = spawn_app_with(backend, move |c| c.clock = Some(shared)).await;
    (app, clock)
}

fn zone(name: &str) -> Zone {
    Zone::parse("tz", name).expect("a zone")
}

/// The instant of a local wall-clock time in `tz`.
pub(crate) fn at(tz: &str, date: NaiveDate, time: &str) -> DateTime<Utc> {
    let time = NaiveTime::parse_from_str(time, "%H:%M").expect("a time");
    zone(tz).resolve(date, time).expect("an instant")
}

fn next_day(d: NaiveDate) -> NaiveDate {
    d.succ_opt().expect("a next day")
}

/// "Friday, January 15", as every tool speaks a date.
fn spoken(d: NaiveDate) -> String {
    d.format("%A, %B %-d").to_string()
}

/// The last day of the first month that ends at least `days` days from now.
fn month_end_after(days: i64) -> NaiveDate {
    let mut d = days_ahead(days);
    while next_day(d).day() != 1 {
        d = next_day(d);
    }
    d
}

/// The first day at least `days` days from now falling on `weekday`.
fn weekday_after(days: i64, weekday: Day) -> NaiveDate {
    let mut d = days_ahead(days);
    while d.weekday() != weekday {
        d = next_day(d);
    }
    d
}

/// The UTC offset of `tz` at local noon of `date`, in seconds.
fn noon_offset(tz: &str, date: NaiveDate) -> i32 {
    zone(tz).localize(at(tz, date, "12:00")).offset().local_minus_utc()
}

/// The first day at least `days` days from now on which `tz`'s clocks change.
fn clocks_change_after(tz: &str, days: i64) -> NaiveDate {
    let mut d = days_ahead(days);
    for _ in 0..400 {
        if noon_offset(tz, next_day(d)) != noon_offset(tz, d) {
            return next_day(d);
        }
        d = next_day(d);
    }
    panic!("{tz} changes its clocks within a year");
}

/// The first day from tomorrow on which `tz`'s clocks go forward (`forward`) or back. Within a
/// year, so within the booking horizon: 364 days on, except where the change is today and next
/// year's falls a week later (371 days), when there is none within it (`None`).
fn next_change(tz: &str, forward: bool) -> Option<NaiveDate> {
    let mut d = days_ahead(0);
    for _ in 0..364 {
        let offsets = (noon_offset(tz, d), noon_offset(tz, next_day(d)));
        if offsets.0 != offsets.1 && (offsets.1 > offsets.0) == forward {
            return Some(next_day(d));
        }
        d = next_day(d);
    }
    None
}

// ---- Clinics -----------------------------------------------------------------------------------

fn every_day(start: &str, end: &str) -> Vec<WorkingHours> {
    WEEK.iter().map(|&weekday| WorkingHours { weekday, start: start.into(), end: end.into() }).collect()
}

async fn provider(org: &TestOrg, name: &str, hours: Vec<WorkingHours>) -> api::Provider {
    org.provider_with(CreateProvider {
        name: name.into(),
        appointment_minutes: Some(30),
        working_hours: Some(hours),
        ..Default::default()
    })
    .await
}

/// The clinic's appointments, earliest first.
async fn booked(org: &TestOrg) -> Vec<api::Appointment> {
    let mut all = org.staff.appointments(&AppointmentQuery::default()).await.expect("appointments");
    all.sort_by_key(|a| a.starts_at);
    all
}

/// `book_appointment`'s arguments: the provider, the day and the time as a caller says them.
fn book(who: &str, date: &str, time: &str) -> Value {
    json!({"provider_name": who, "appointment_date": date, "appointment_time": time, "patient_name": "Ada Lovelace"})
}

// ---- Stories -----------------------------------------------------------------------------------

async fn date_words_around_a_months_end_are_the_clinics_days(backend: Backend) {
    let end = month_end_after(5);
    let first = next_day(end);
    // 08:00 on the 1st in Auckland is still the month's last day in UTC.
    let now = at(AUCKLAND, first, "08:00");
    assert_eq!(now.date_naive(), end, "the local date differs from UTC's");
    let (app, clock) = app_at(backend, now).await;
    let org = app.org_named("Harbour Clinic", AUCKLAND).await;
    lift_caller_quota(&org).await;
    provider(&org, "Dr. Aroha Ngata", every_day("09:00", "17:00")).await;

    let today = ask(&org, "check_availability", json!({"provider_name": "Ngata", "date": "today"})).await;
    let today = today.expect("today's times");
    assert!(today.starts_with(&format!("Dr. Aroha Ngata is free on {} at 9:00 AM, 9:30 AM", spoken(first))), "{today}");
    let answer = ask(&org, "book_appointment", book("Ngata", "tomorrow", "2 PM")).await.expect("booked tomorrow");
    let second = next_day(first);
    assert!(answer.contains(&format!("with Dr. Aroha Ngata on {} at 2:00 PM", spoken(second))), "{answer}");
    let stored = booked(&org).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].starts_at.naive_local(), second.and_hms_opt(14, 0, 0).expect("local"), "Auckland's tomorrow");
    assert_eq!(stored[0].starts_at.offset().local_minus_utc(), noon_offset(AUCKLAND, second));

    // Los Angeles at 20:00 on the month's last day: UTC is already on the 1st.
    let now = at(LOS_ANGELES, end, "20:00");
    assert_eq!(now.date_naive(), first, "the local date differs from UTC's");
    clock.set(now);
    let west = app.org_named("Valley Clinic", LOS_ANGELES).await;
    lift_caller_quota(&west).await;
    provider(&west, "Dr. Maria Lopez", every_day("09:00", "17:00")).await;
    let today = ask(&west, "check_availability", json!({"provider_name": "Lopez", "date": "today"})).await;
    let today = today.expect("an answer about today");
    assert!(today.starts_with(&format!("Dr. Maria Lopez has no free times on {}.", spoken(end))), "{today}");
    assert!(today.contains(&format!("The next opening is {} at 9:00 AM", spoken(first))), "{today}");
    let answer = ask(&west, "book_appointment", book("Lopez", "tomorrow", "9:30 am")).await.expect("booked tomorrow");
    assert!(answer.contains(&format!("on {} at 9:30 AM", spoken(first))), "{answer}");
    let answer = ask(&west, "book_appointment", book("Lopez", "in 2 days", "noon")).await.expect("booked in two days");
    assert!(answer.contains(&format!("on {} at 12:00 PM", spoken(next_day(first)))), "{answer}");
    let stored = booked(&west).await;
    let local: Vec<_> = stored.iter().map(|a| a.starts_at.naive_local()).collect();
    assert_eq!(
        local,
        [first.and_hms_opt(9, 30, 0).expect("t"), next_day(first).and_hms_opt(12, 0, 0).expect("t")],
        "Los Angeles' tomorrow and the day after"
    );
    assert_eq!(booked(&org).await.len(), 1, "the first clinic's book is its own");
}

async fn a_weekday_named_on_that_weekday_means_next_weeks(backend: Backend) {
    // Friday 18:00 in Los Angeles is Saturday in UTC.
    let friday = weekday_after(7, Day::Fri);
    let now = at(LOS_ANGELES, friday, "18:00");
    assert_eq!(now.date_naive().weekday(), Day::Sat);
    let (app, clock) = app_at(backend, now).await;
    let org = app.org(LOS_ANGELES).await;
    provider(&org, "Dr. Maria Lopez", every_day("09:00", "17:00")).await;
    let free_on = |date: NaiveDate| format!("Dr. Maria Lopez is free on {} at 9:00 AM", spoken(date));
    let week_on = friday + Duration::days(7);
    for said in ["friday", "Friday", "this friday", "next Friday", "on fri"] {
        let answer = ask(&org, "check_availability", json!({"date": said, "provider_name": "lopez"})).await;
        assert!(answer.as_ref().is_ok_and(|a| a.starts_with(&free_on(week_on))), "{said}: {answer:?}");
    }
    for (said, meant) in [("saturday", 1), ("next thursday", 6), ("in 1 day", 1), ("in a week", 7)] {
        let answer = ask(&org, "check_availability", json!({"date": said, "provider_name": "lopez"})).await;
        let date = friday + Duration::days(meant);
        assert!(answer.as_ref().is_ok_and(|a| a.starts_with(&free_on(date))), "{said}: {answer:?}");
    }

    // Friday 07:00 in Auckland is Thursday in UTC: "thursday" is six days away, "friday" seven.
    let now = at(AUCKLAND, friday, "07:00");
    assert_eq!(now.date_naive().weekday(), Day::Thu);
    clock.set(now);
    let south = app.org(AUCKLAND).await;
    provider(&south, "Dr. Aroha Ngata", every_day("09:00", "17:00")).await;
    for (said, meant) in [("thursday", 6), ("friday", 7), ("today", 0)] {
        let answer = ask(&south, "check_availability", json!({"date": said})).await;
        let date = friday + Duration::days(meant);
        // The clinic's only provider: its times, as if it had been named.
        let expected = format!("Dr. Aroha Ngata is free on {} at 9:00 AM", spoken(date));
        assert!(answer.as_ref().is_ok_and(|a| a.starts_with(&expected)), "{said}: {answer:?}");
    }
}

async fn date_words_across_a_change_of_the_clocks(backend: Backend) {
    let change = clocks_change_after(AUCKLAND, 7);
    let eve = change.pred_opt().expect("a day before");
    let (app, clock) = app_at(backend, at(AUCKLAND, eve, "10:00")).await;
    let org = app.org(AUCKLAND).await;
    lift_caller_quota(&org).await;
    provider(&org, "Dr. Aroha Ngata", every_day("09:00", "17:00")).await;
    let answer = ask(&org, "book_appointment", book("Ngata", "tomorrow", "9:30 AM")).await.expect("booked");
    assert!(answer.contains(&format!("on {} at 9:30 AM", spoken(change))), "{answer}");
    let answer = ask(&org, "book_appointment", book("Ngata", "today", "16:30")).await.expect("booked");
    assert!(answer.contains(&format!("on {} at 4:30 PM", spoken(eve))), "{answer}");
    let stored = booked(&org).await;
    assert_eq!(stored[0].starts_at.naive_local(), eve.and_hms_opt(16, 30, 0).expect("t"));
    assert_eq!(stored[1].starts_at.naive_local(), change.and_hms_opt(9, 30, 0).expect("t"));
    let (before, after) =
        (stored[0].starts_at.offset().local_minus_utc(), stored[1].starts_at.offset().local_minus_utc());
    assert_ne!(before, after, "the clocks changed between them");
    assert_eq!((before, after), (noon_offset(AUCKLAND, eve), noon_offset(AUCKLAND, change)));

    // Los Angeles on the eve of its next change of each kind (forward, back), late in the evening
    // (already the next day in UTC): the night's 2:30 AM does not exist when the clocks spring
    // forward, and 1:30 AM is the first of two when they fall back. Each is the next of its kind,
    // not the one after the other's. In the week after a change, when Los Angeles's next of that
    // kind lies past the booking horizon, Auckland's is taken (its clocks change at 2 or 3 AM, so
    // 1:30 AM is before the change there, and 2:30 AM missing or repeated alike).
    for forward in [true, false] {
        let (tz, change) = [LOS_ANGELES, AUCKLAND]
            .into_iter()
            .find_map(|tz| next_change(tz, forward).map(|change| (tz, change)))
            .expect("Los Angeles or Auckland changes its clocks each way within any 364 days");
        let eve = change.pred_opt().expect("a day before");
        clock.set(at(tz, eve, "21:00"));
        let west = app.org(tz).await;
        west.provider().await;
        assert_eq!(noon_offset(tz, change) > noon_offset(tz, eve), forward);
        let night = ask(&west, "book_appointment", book("Smith", "tomorrow", "1:30 AM")).await;
        assert!(night.as_ref().is_ok_and(|a| a.contains(&format!("on {} at 1:30 AM", spoken(change)))), "{night:?}");
        let stored = booked(&west).await;
        assert_eq!(stored[0].starts_at.offset().local_minus_utc(), noon_offset(tz, eve), "the earlier 1:30");
        let spring = ask(&west, "book_appointment", book("Smith", "tomorrow", "2:30 am")).await;
        if forward {
            assert!(spring.as_ref().is_err_and(|e| e.contains("clocks change")), "{spring:?}");
            let asked = json!({"provider_name": "Smith", "date": "tomorrow", "appointment_time": "2:30 am"});
            let looked = ask(&west, "check_availability", asked).await;
            assert!(looked.as_ref().is_err_and(|e| e.contains("clocks change")), "as the booking says: {looked:?}");
        } else {
            assert!(spring.is_ok(), "{spring:?}");
        }
    }
}

async fn times_are_read_in_every_accepted_form(backend: Backend) {
    let today = days_ahead(5);
    let (app, _clock) = app_at(backend, at(AUCKLAND, today, "06:00")).await;
    let org = app.org(AUCKLAND).await;
    lift_caller_quota(&org).await;
    org.provider().await;
    let forms = [
        ("14:00", "14:00"),
        ("2 PM", "14:00"),
        ("2:30 pm", "14:30"),
        ("noon", "12:00"),
        ("12 noon", "12:00"),
        ("9 a.m.", "09:00"),
        ("11:45 AM", "11:45"),
        ("12:15 PM", "12:15"),
        ("12 am", "00:00"),
    ];
    for (i, (said, _)) in forms.iter().enumerate() {
        let answer = ask(&org, "book_appointment", book("Smith", &format!("in {} days", i + 1), said)).await;
        assert!(answer.is_ok(), "{said}: {answer:?}");
    }
    let stored = booked(&org).await;
    let local: Vec<String> = stored.iter().map(|a| a.starts_at.format("%Y-%m-%d %H:%M").to_string()).collect();
    let expected: Vec<String> = forms
        .iter()
        .enumerate()
        .map(|(i, (_, meant))| format!("{} {meant}", today + Duration::days(i as i64 + 1)))
        .collect();
    assert_eq!(local, expected);
    for unusable in ["25:99", "13 pm", "teatime"] {
        let answer = ask(&org, "book_appointment", book("Smith", "tomorrow", unusable)).await;
        assert!(answer.as_ref().is_err_and(|e| e.contains("valid time")), "{unusable}: {answer:?}");
    }
    // Either half of the day: asked about, not read as the night.
    for either in ["2", "2:30"] {
        let answer = ask(&org, "book_appointment", book("Smith", "tomorrow", either)).await;
        assert!(
            answer.as_ref().is_err_and(|e| e.contains("in the morning or in the afternoon")),
            "{either}: {answer:?}"
        );
    }
}

async fn past_days_and_times_are_refused_saying_todays_date(backend: Backend) {
    let end = month_end_after(5);
    let first = next_day(end);
    let (app, clock) = app_at(backend, at(AUCKLAND, first, "08:00")).await;
    let org = app.org(AUCKLAND).await;
    provider(&org, "Dr. Aroha Ngata", every_day("07:00", "17:00")).await;
    let today = format!("today is {}", first.format("%A, %B %-d, %Y"));
    // UTC's date, the one a model reading Vapi's `{{now}}` would send, is yesterday here.
    for (tool, arguments) in [
        ("book_appointment", book("Ngata", "2024-12-05", "14:00")),
        ("book_appointment", book("Ngata", &date_str(end), "14:00")),
        ("check_availability", json!({"date": date_str(end)})),
        ("check_availability", json!({"date": "December 5, 2024"})),
    ] {
        let answer = ask(&org, tool, arguments.clone()).await;
        assert!(answer.as_ref().is_err_and(|e| e.contains(&today)), "{tool} {arguments}: {answer:?}");
    }
    let answer = ask(&org, "book_appointment", book("Ngata", "today", "7:30 AM")).await;
    let passed = format!("already passed: it is now {} at 8:00 AM.", spoken(first));
    assert!(answer.as_ref().is_err_and(|e| e.contains(&passed)), "{answer:?}");

    ask(&org, "book_appointment", book("Ngata", "today", "9 AM")).await.expect("later today is fine");
    let code = booked(&org).await[0].confirmation_code.clone();
    let moved = ask(
        &org,
        "reschedule_appointment",
        json!({"confirmation_code": code, "appointment_date": date_str(end), "appointment_time": "10:00"}),
    )
    .await;
    assert!(moved.as_ref().is_err_and(|e| e.contains(&today)), "{moved:?}");
    let moved = ask(
        &org,
        "reschedule_appointment",
        json!({"confirmation_code": code, "appointment_date": "next monday", "appointment_time": "3 PM"}),
    )
    .await;
    let monday = (1..=7).map(|n| first + Duration::days(n)).find(|d| d.weekday() == Day::Mon).expect("a Monday");
    assert!(moved.as_ref().is_ok_and(|m| m.contains(&format!("now on {} at 3:00 PM", spoken(monday)))), "{moved:?}");
    let stored = booked(&org).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].starts_at.naive_local(), monday.and_hms_opt(15, 0, 0).expect("t"));

    // "Upcoming" is read at the clock's now too: once it has ended, it is not.
    let found = ask(&org, "find_appointments", json!({})).await;
    assert!(
        found
            .as_ref()
            .is_ok_and(|f| f
                .contains(&format!("one upcoming appointment: with Dr. Aroha Ngata on {} at 3:00 PM", spoken(monday)))),
        "{found:?}"
    );
    clock.set(at(AUCKLAND, monday, "15:45"));
    let found = ask(&org, "find_appointments", json!({})).await;
    assert_eq!(found, Ok("I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it.".to_owned()));
}

async fn the_earliest_times_come_from_every_active_provider(backend: Backend) {
    let today = days_ahead(5);
    let tomorrow = next_day(today);
    let (app, _clock) = app_at(backend, at(LOS_ANGELES, today, "16:10")).await;
    let org = app.org(LOS_ANGELES).await;
    provider(&org, "Dr. Ames", every_day("09:00", "17:00")).await;
    let baker = provider(&org, "Dr. Baker", every_day("13:00", "17:00")).await;
    let cole = provider(&org, "Dr. Cole", every_day("00:00", "24:00")).await;
    org.admin.deactivate_provider(cole.id).await.expect("deactivated");

    // 4:00 PM has passed; Dr. Cole is no longer bookable.
    let earliest = ask(&org, "check_availability", json!({})).await.expect("earliest");
    assert_eq!(
        earliest,
        format!(
            "The earliest free times are {} at 4:30 PM with Dr. Ames or 4:30 PM with Dr. Baker or {} at 9:00 AM with Dr. Ames.",
            spoken(today),
            spoken(tomorrow)
        )
    );
    let one = ask(&org, "check_availability", json!({"provider_name": "Baker"})).await.expect("Dr. Baker's");
    assert_eq!(
        one,
        format!(
            "The earliest free times with Dr. Baker are {} at 4:30 PM or {} at 1:00 PM or 1:30 PM.",
            spoken(today),
            spoken(tomorrow)
        )
    );
    let afternoon =
        ask(&org, "check_availability", json!({"date": "tomorrow", "time_window": "afternoon"})).await.expect("day");
    assert_eq!(
        afternoon,
        format!(
            "On {} in the afternoon, the free times are 12:00 PM with Dr. Ames, 12:30 PM with Dr. Ames, 1:00 PM with Dr. Ames, 1:00 PM with Dr. Baker or 1:30 PM with Dr. Ames, and 13 more later that day.",
            spoken(tomorrow)
        )
    );
    let evening = ask(&org, "check_availability", json!({"time_window": "evening"})).await.expect("evening");
    assert_eq!(evening, "No one has free times in the evening in the next two weeks.");

    // A type only Dr. Baker offers: only Dr. Baker's times, at the type's own step and length.
    org.admin
        .create_appointment_type(&CreateAppointmentType {
            name: "Follow-up".into(),
            duration_minutes: 15,
            provider_ids: Some(vec![baker.id]),
            ..Default::default()
        })
        .await
        .expect("a type");
    let follow_up =
        ask(&org, "check_availability", json!({"appointment_type": "follow up"})).await.expect("follow-ups");
    assert_eq!(
        follow_up,
        format!(
            "The earliest free times with Dr. Baker for a Follow-up are {} at 4:15 PM, 4:30 PM or 4:45 PM.",
            spoken(today)
        )
    );
}

/// Across providers, each provider's earliest times start from its own today: in Honolulu it is
/// still the day before Auckland's (where the clinic is), and that day's free times come first.
async fn each_providers_earliest_times_start_from_its_own_today(backend: Backend) {
    let (_app, org, hawaii_today) = auckland_with_kai_in_honolulu(backend).await;
    // Auckland's evenings are Honolulu's next night: later than all of Dr. Kai's day.
    provider(&org, "Dr. Ngata", every_day("18:00", "19:00")).await;

    let earliest = ask(&org, "check_availability", json!({})).await.expect("earliest");
    assert_eq!(
        earliest,
        format!(
            "The earliest free times are {} at 10:30 AM with Dr. Kai (Honolulu time), 11:00 AM with Dr. Kai \
             (Honolulu time) or 11:30 AM with Dr. Kai (Honolulu time).",
            spoken(hawaii_today)
        )
    );
    // Its times are read and said in its zone, which each answer names for a caller at the clinic.
    lift_caller_quota(&org).await;
    let booked = ask(&org, "book_appointment", book("Kai", "today", "11 AM")).await;
    let at_eleven = format!("{} at 11:00 AM (Honolulu time)", spoken(hawaii_today));
    assert!(booked.as_ref().is_ok_and(|b| b.contains(&format!("with Dr. Kai on {at_eleven}."))), "{booked:?}");
    let found = ask(&org, "find_appointments", json!({})).await;
    assert!(found.as_ref().is_ok_and(|f| f.contains(&format!("with Dr. Kai on {at_eleven} ("))), "{found:?}");
    let again = ask(&org, "book_appointment", book("Kai", "today", "11 AM")).await;
    assert!(again.as_ref().is_err_and(|e| e.starts_with(&format!("Dr. Kai isn't free on {at_eleven}."))), "{again:?}");
}

/// A clinic in Auckland at 10:10 on a day five days on in Honolulu (returned; Auckland is a day
/// ahead), with Dr. Kai keeping Honolulu's clock, working 09:00 to 17:00 every day.
async fn auckland_with_kai_in_honolulu(backend: Backend) -> (TestApp, TestOrg, NaiveDate) {
    let hawaii_today = days_ahead(5);
    let now = at(HONOLULU, hawaii_today, "10:10");
    assert_eq!(zone(AUCKLAND).local(now).date(), next_day(hawaii_today), "Auckland is a day ahead");
    let (app, _clock) = app_at(backend, now).await;
    let org = app.org(AUCKLAND).await;
    let kai = CreateProvider {
        name: "Dr. Kai".into(),
        timezone: Some(HONOLULU.into()),
        appointment_minutes: Some(30),
        working_hours: Some(every_day("09:00", "17:00")),
    };
    org.provider_with(kai).await;
    (app, org, hawaii_today)
}

/// A closure is whole days of the clinic's. For a provider keeping another zone it closes the
/// working time it meets: Auckland's day is most of Honolulu's day before, which is said to be
/// closed, in Dr. Kai's clock, when looked at or booked.
async fn a_closure_is_said_in_the_clock_of_a_provider_in_another_zone(backend: Backend) {
    let (_app, org, hawaii_today) = auckland_with_kai_in_honolulu(backend).await;
    lift_caller_quota(&org).await;
    let closed = hawaii_today + Duration::days(4);
    let kais_day = closed - Duration::days(1);
    let closure = api::CreateClosure { date: date_str(closed), end_date: None, reason: None };
    org.admin.create_closure(&closure).await.expect("closed");

    let look = ask(&org, "check_availability", json!({"provider_name": "Kai", "date": date_str(kais_day)})).await;
    let next = format!("The next opening is {} at 9:00 AM (Honolulu time).", spoken(closed));
    assert_eq!(look, Ok(format!("The clinic is closed on {}. {next}", spoken(kais_day))));
    let booking = ask(&org, "book_appointment", book("Kai", &date_str(kais_day), "10 AM")).await;
    let says = format!("The clinic is closed on {} at 10:00 AM (Honolulu time).", spoken(kais_day));
    assert!(booking.as_ref().is_err_and(|e| e.starts_with(&says)), "{booking:?}");
    ask(&org, "book_appointment", book("Kai", &date_str(closed), "10 AM")).await.expect("Kai's own day is open");

    // Dr. Nalu works Honolulu's small hours, which Auckland's closed day meets only in part
    // (from 01:00, or 02:00 outside New Zealand's summer): the open part taken, that day is
    // full, not closed.
    let nalu = CreateProvider {
        name: "Dr. Nalu".into(),
        timezone: Some(HONOLULU.into()),
        appointment_minutes: Some(30),
        working_hours: Some(every_day("00:00", "04:00")),
    };
    let nalu = org.provider_with(nalu).await;
    for time in ["00:00", "00:30", "01:00", "01:30"] {
        let _ = org.staff.book(&crate::helpers::booking(nalu.id, kais_day, time)).await;
    }
    let look = ask(&org, "check_availability", json!({"provider_name": "Nalu", "date": date_str(kais_day)})).await;
    let full = format!("Dr. Nalu has no free times on {}.", spoken(kais_day));
    assert!(look.as_ref().is_ok_and(|l| l.starts_with(&full)), "{look:?}");
}

/// After a full day, the next opening is the earliest instant across providers however far apart
/// their zones: one at UTC+14 opens at midnight two of its days after the full one's next day, half
/// an hour before one at UTC-11 opens late on that next day.
async fn the_next_opening_is_the_earliest_across_zones_a_day_apart(backend: Backend) {
    let full = days_ahead(5);
    let later = |days| full + chrono::Days::new(days);
    let only_on = |day: NaiveDate, start: &str, end: &str| {
        let weekday = WEEK[day.weekday().num_days_from_monday() as usize];
        Some(vec![WorkingHours { weekday, start: start.into(), end: end.into() }])
    };
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    for (name, zone, hours) in [
        ("Dr. East", "Pacific/Kiritimati", only_on(later(3), "00:00", "01:00")),
        ("Dr. West", "Pacific/Pago_Pago", only_on(later(1), "23:30", "24:00")),
    ] {
        let provider = CreateProvider {
            name: name.into(),
            timezone: Some(zone.into()),
            appointment_minutes: Some(30),
            working_hours: hours,
        };
        org.provider_with(provider).await;
    }
    let answer = ask(&org, "check_availability", json!({"date": full.to_string()})).await.expect("an answer");
    assert_eq!(
        answer,
        format!(
            "No one has free times on {}. The next opening is {} at 12:00 AM with Dr. East (Kiritimati time).",
            spoken(full),
            spoken(later(3))
        )
    );
}

async fn time_windows_split_a_providers_day(backend: Backend) {
    let today = days_ahead(5);
    let tomorrow = next_day(today);
    let (app, clock) = app_at(backend, at(AUCKLAND, today, "07:00")).await;
    let org = app.org(AUCKLAND).await;
    provider(&org, "Dr. Aroha Ngata", every_day("08:00", "20:00")).await;
    let day = spoken(tomorrow);
    for (window, expected) in [
        ("morning", "in the morning at 8:00 AM, 8:30 AM, 9:00 AM, 9:30 AM or 10:00 AM, and 3 more later that day."),
        (
            "Afternoon",
            "in the afternoon at 12:00 PM, 12:30 PM, 1:00 PM, 1:30 PM or 2:00 PM, and 5 more later that day.",
        ),
        (
            "in the evening",
            "in the evening at 5:00 PM, 5:30 PM, 6:00 PM, 6:30 PM or 7:00 PM, and 1 more later that day.",
        ),
    ] {
        let answer = ask(
            &org,
            "check_availability",
            json!({"provider_name": "ngata", "date": "tomorrow", "time_window": window}),
        )
        .await;
        let expected = format!("Dr. Aroha Ngata is free on {day} {expected}");
        assert_eq!(answer, Ok(expected), "{window}");
    }
    let answer = ask(&org, "check_availability", json!({"date": "tomorrow", "time_window": "lunchtime"})).await;
    assert!(answer.as_ref().is_err_and(|e| e.contains("morning, the afternoon or the evening")), "{answer:?}");

    // Late in the evening nothing of it is left today: the next evening opening is tomorrow's.
    clock.set(at(AUCKLAND, today, "19:45"));
    let answer = ask(&org, "check_availability", json!({"date": "today", "time_window": "evening"})).await;
    let expected = format!(
        "Dr. Aroha Ngata has no free times on {} in the evening. The next opening is {day} at 5:00 PM.",
        spoken(today)
    );
    assert_eq!(answer, Ok(expected));
}

async fn clinic_info_and_the_assistant_request_tell_the_local_date_and_the_opening_hours(backend: Backend) {
    let end = month_end_after(5);
    let first = next_day(end);
    let (app, _clock) = app_at(backend, at(AUCKLAND, first, "08:05")).await;
    let org = app.org_named("Harbour Clinic", AUCKLAND).await;
    let weekdays: Vec<WorkingHours> =
        WEEK[..5].iter().map(|&weekday| WorkingHours { weekday, start: "09:00".into(), end: "17:00".into() }).collect();
    provider(&org, "Dr. Aroha Ngata", weekdays).await;
    let saturday = vec![WorkingHours { weekday: Weekday::Sat, start: "09:00".into(), end: "12:00".into() }];
    provider(&org, "Dr. Ben Tane", saturday).await;
    // A provider working remotely, on London's clock: its Sunday is not the clinic's opening.
    let sunday = vec![WorkingHours { weekday: Weekday::Sun, start: "09:00".into(), end: "12:00".into() }];
    org.provider_with(CreateProvider {
        name: "Dr. Remote".into(),
        timezone: Some("Europe/London".into()),
        working_hours: Some(sunday),
        ..Default::default()
    })
    .await;
    let info = ask(&org, "get_clinic_info", json!({})).await;
    assert_eq!(
        info,
        Ok(format!(
            "This is Harbour Clinic. Today is {}, and it is 8:05 AM here. Opening hours: Monday to Friday 9 AM to 5 PM, Saturday 9 AM to noon; closed Sunday.",
            first.format("%A, %B %-d, %Y")
        ))
    );
    // The closures of the coming two weeks are said beside the weekly hours; one later is not.
    let days = |n| first + Duration::days(n);
    for (from, to) in [(3, 3), (10, 11), (20, 20)] {
        let closure =
            api::CreateClosure { date: date_str(days(from)), end_date: Some(date_str(days(to))), reason: None };
        org.admin.create_closure(&closure).await.expect("closed");
    }
    let info = ask(&org, "get_clinic_info", json!({})).await.expect("info");
    let closed =
        format!(" The clinic is closed on {} and {} to {}.", spoken(days(3)), spoken(days(10)), spoken(days(11)));
    assert!(info.ends_with(&format!("closed Sunday.{closed}")), "{info}");

    // The assistant-request, read at the same clock: Auckland's date and time, not UTC's.
    let settings = api::VapiSettings { assistant_id: Some("asst-harbour".into()), transfer_number: None };
    org.admin.set_vapi_settings(&settings).await.expect("saved");
    let request =
        json!({"message": {"type": "assistant-request", "call": {"id": "call-start", "customer": {"number": CALLER}}}});
    let answer = post(&org.agent, &request).await;
    assert_eq!(
        answer["assistantOverrides"]["variableValues"],
        json!({
            "clinic_name": "Harbour Clinic",
            "timezone": AUCKLAND,
            "today": date_str(first),
            "weekday": first.format("%A").to_string(),
            "now": "08:05",
            "opening_hours": format!("Monday to Friday 9 AM to 5 PM, Saturday 9 AM to noon; closed Sunday.{}", closed.trim_end_matches('.'))
        }),
        "{answer}"
    );

    // Another clinic sees none of it: not its name, not its providers, not their hours.
    let other = app.org_named("Valley Clinic", LOS_ANGELES).await;
    let info = ask(&other, "get_clinic_info", json!({})).await.expect("info");
    assert!(info.starts_with(&format!("This is Valley Clinic. Today is {},", end.format("%A, %B %-d, %Y"))), "{info}");
    assert!(info.contains("No opening hours are set yet"), "{info}");
    let none = ask(&other, "check_availability", json!({})).await;
    assert_eq!(none, Err("There are no providers to book with yet.".to_owned()));
    provider(&other, "Dr. Maria Lopez", every_day("09:00", "17:00")).await;
    let theirs = org.staff.providers().await.expect("providers");
    let foreign = ask(&other, "check_availability", json!({"provider_id": theirs[0].id})).await;
    assert_eq!(foreign, Err("I couldn't find that provider. We have Dr. Maria Lopez.".to_owned()), "its own only");
    let earliest = ask(&other, "check_availability", json!({})).await.expect("earliest");
    assert!(earliest.contains("with Dr. Maria Lopez") && !earliest.contains("Ngata") && !earliest.contains("Tane"));
    let info = ask(&other, "get_clinic_info", json!({})).await.expect("info");
    assert!(info.ends_with("Opening hours: Monday to Sunday 9 AM to 5 PM."), "{info}");
}

/// Harbour Clinic in Auckland, its clock at 08:05 five days on (returned), the caller's quota
/// lifted, and Dr. Aroha Ngata working 09:00 to 17:00 every day.
async fn harbour_with_ngata(backend: Backend) -> (TestApp, TestOrg, NaiveDate) {
    let first = days_ahead(5);
    let (app, _clock) = app_at(backend, at(AUCKLAND, first, "08:05")).await;
    let org = app.org_named("Harbour Clinic", AUCKLAND).await;
    lift_caller_quota(&org).await;
    provider(&org, "Dr. Aroha Ngata", every_day("09:00", "17:00")).await;
    (app, org, first)
}

/// A time asked about ("is 2 PM free?") is answered as a booking would find it, off the offered
/// starts too: free, or the nearest free times of that day; across providers, who is free then.
async fn a_time_asked_about_is_said_free_or_the_nearest_free_times(backend: Backend) {
    let (_app, org, first) = harbour_with_ngata(backend).await;
    provider(&org, "Dr. Ben Tane", every_day("09:00", "17:00")).await;
    let day = first + Duration::days(1);
    ask(&org, "book_appointment", book("Ngata", &date_str(day), "2 PM")).await.expect("booked");
    let asking = |who: Option<&str>, time: &str| {
        let mut args = json!({"date": date_str(day), "appointment_time": time});
        if let Some(who) = who {
            args["provider_name"] = json!(who);
        }
        args
    };

    let taken = ask(&org, "check_availability", asking(Some("Ngata"), "2 PM")).await;
    let when = format!("{} at 2:00 PM", spoken(day));
    let nearest = "The nearest free times that day are 1:00 PM, 1:30 PM or 2:30 PM.";
    assert_eq!(taken, Ok(format!("Dr. Aroha Ngata isn't free on {when}. {nearest}")));
    let free = ask(&org, "check_availability", asking(Some("Ngata"), "3 PM")).await;
    assert_eq!(free, Ok(format!("Yes, Dr. Aroha Ngata is free on {} at 3:00 PM.", spoken(day))));
    // Under the short name `time` too, alone or beside `appointment_time` (which wins).
    let short = json!({"provider_name": "Ngata", "date": date_str(day), "time": "3 PM"});
    assert_eq!(ask(&org, "check_availability", short).await, free);
    let both = json!({"provider_name": "Ngata", "date": date_str(day), "time": "2 PM", "appointment_time": "3 PM"});
    assert_eq!(ask(&org, "check_availability", both).await, free);
    // Off the half hours the day is offered in, as the booking then finds it.
    let between = ask(&org, "check_availability", asking(Some("Ngata"), "3:10 PM")).await;
    assert_eq!(between, Ok(format!("Yes, Dr. Aroha Ngata is free on {} at 3:10 PM.", spoken(day))));
    ask(&org, "book_appointment", book("Ngata", &date_str(day), "3:10 PM")).await.expect("booked as said free");
    let anyone = ask(&org, "check_availability", asking(None, "2 PM")).await;
    assert_eq!(anyone, Ok(format!("On {when}, Dr. Ben Tane is free.")));

    let no_day = ask(&org, "check_availability", json!({"provider_name": "Ngata", "appointment_time": "2 PM"})).await;
    assert_eq!(no_day, Err("Which day should I check that time on?".to_owned()));
    let half = ask(&org, "check_availability", asking(Some("Ngata"), "2:30")).await;
    assert!(half.as_ref().is_err_and(|e| e.contains("morning or in the afternoon")), "{half:?}");
    // "7:30" asked of the evening is 7:30 PM, as the day's words "this evening" would make it.
    let mut evening = asking(Some("Ngata"), "7:30");
    evening["time_window"] = json!("evening");
    let evening = ask(&org, "check_availability", evening).await;
    let late = format!("Dr. Aroha Ngata isn't free on {} at 7:30 PM.", spoken(day));
    assert!(evening.as_ref().is_ok_and(|e| e.starts_with(&late)), "{evening:?}");
    // The window given wins over the day's words, as it does for the day's free times.
    let told = json!({"provider_name": "Ngata", "date": "tomorrow morning", "time_window": "evening", "appointment_time": "7:30"});
    let told = ask(&org, "check_availability", told).await;
    assert!(told.as_ref().is_ok_and(|e| e.starts_with(&late)), "{told:?}");
}

/// A time asked for on a day the clinic is closed is said to be one, with the nearest free
/// times, whether it is looked at, booked or moved to; a closure of several days is said whole.
async fn a_day_the_clinic_is_closed_is_said_to_be_closed(backend: Backend) {
    let (_app, org, first) = harbour_with_ngata(backend).await;
    let days = |n| first + Duration::days(n);
    for (from, to) in [(3, 3), (10, 11)] {
        let closure =
            api::CreateClosure { date: date_str(days(from)), end_date: Some(date_str(days(to))), reason: None };
        org.admin.create_closure(&closure).await.expect("closed");
    }

    let look = json!({"provider_name": "Ngata", "date": date_str(days(3))});
    let answer = ask(&org, "check_availability", look).await;
    let next = format!("The next opening is {} at 9:00 AM.", spoken(days(4)));
    assert_eq!(answer, Ok(format!("The clinic is closed on {}. {next}", spoken(days(3)))));

    let answer = ask(&org, "book_appointment", book("Ngata", &date_str(days(3)), "10 AM")).await;
    let says = format!("The clinic is closed on {}. The nearest free times are ", spoken(days(3)));
    assert!(answer.as_ref().is_err_and(|e| e.starts_with(&says)), "{answer:?}");
    let answer = ask(&org, "book_appointment", book("Ngata", &date_str(days(11)), "10 AM")).await;
    let says = format!("The clinic is closed from {} to {}. ", spoken(days(10)), spoken(days(11)));
    assert!(answer.as_ref().is_err_and(|e| e.starts_with(&says)), "{answer:?}");

    // A time merely taken on an open day is still said to be taken, and a move onto a closed day
    // is told the closure too.
    ask(&org, "book_appointment", book("Ngata", &date_str(days(4)), "10 AM")).await.expect("booked");
    let answer = ask(&org, "book_appointment", book("Ngata", &date_str(days(4)), "10 AM")).await;
    assert!(answer.as_ref().is_err_and(|e| e.starts_with("Dr. Aroha Ngata isn't free on ")), "{answer:?}");
    let code = booked(&org).await[0].confirmation_code.clone();
    let onto = json!({"confirmation_code": code, "appointment_date": date_str(days(10)), "appointment_time": "2 PM"});
    let answer = ask(&org, "reschedule_appointment", onto).await;
    let says = format!("The clinic is closed from {} to {}. ", spoken(days(10)), spoken(days(11)));
    assert!(answer.as_ref().is_err_and(|e| e.starts_with(&says)), "{answer:?}");
    assert_eq!(booked(&org).await[0].starts_at.naive_local(), days(4).and_hms_opt(10, 0, 0).expect("local"));
}

async fn the_definitions_describe_the_new_arguments(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let tools: Value =
        org.agent.send(org.agent.request(Method::GET, "/api/vapi/tool-definitions")).await.expect("definitions");
    let tool = |name: &str| {
        tools.as_array().expect("array").iter().find(|t| t["function"]["name"] == name).cloned().expect(name)
    };
    let check = tool("check_availability");
    assert_eq!(check["function"]["parameters"]["required"], json!([]), "no day: the earliest times");
    let date = check["function"]["parameters"]["properties"]["date"]["description"].as_str().expect("date");
    for words in ["tomorrow", "next friday", "never guess a year", "{{today}}"] {
        assert!(date.contains(words), "{words}: {date}");
    }
    let asked = check["function"]["parameters"]["properties"]["appointment_time"]["description"].as_str();
    assert!(asked.is_some_and(|t| t.contains("2 PM") && t.contains("nearest free times")), "{asked:?}");
    assert_eq!(
        check["function"]["parameters"]["properties"]["time_window"]["enum"],
        json!(["morning", "afternoon", "evening"])
    );
    let book = tool("book_appointment");
    let time = book["function"]["parameters"]["properties"]["appointment_time"]["description"].as_str().expect("t");
    assert!(time.contains("2 PM") && time.contains("noon"), "{time}");
    assert_eq!(tool("get_clinic_info")["function"]["parameters"]["properties"], json!({}));
}

on_both_backends!(
    date_words_around_a_months_end_are_the_clinics_days,
    a_weekday_named_on_that_weekday_means_next_weeks,
    date_words_across_a_change_of_the_clocks,
    times_are_read_in_every_accepted_form,
    past_days_and_times_are_refused_saying_todays_date,
    the_earliest_times_come_from_every_active_provider,
    each_providers_earliest_times_start_from_its_own_today,
    a_closure_is_said_in_the_clock_of_a_provider_in_another_zone,
    the_next_opening_is_the_earliest_across_zones_a_day_apart,
    time_windows_split_a_providers_day,
    clinic_info_and_the_assistant_request_tell_the_local_date_and_the_opening_hours,
    a_day_the_clinic_is_closed_is_said_to_be_closed,
    a_time_asked_about_is_said_free_or_the_nearest_free_times,
    the_definitions_describe_the_new_arguments,
);
