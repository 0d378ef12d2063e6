//! Abuse limits (docs/API.md §6): requests per token subject and organization, guesses at
//! patients' links per client address, and upcoming appointments per caller.

use crate::helpers::*;
use crate::vapi::{book_call, call, message, only, post};
use reqwest::Method;
use shared::{Claims, Role};

async fn a_token_past_its_rate_is_refused_while_others_go_on(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.rate_limit_per_minute = 5).await;
    let org = app.org("UTC").await;
    for _ in 0..5 {
        org.agent.providers().await.expect("within the rate");
    }
    let refused = app.client(token(Role::Agent, Some(org.id))).request(Method::GET, "/api/providers").send().await;
    let refused = refused.expect("an answer");
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Bookings by the same token are refused too, and write nothing.
    assert_error(org.agent.book(&booking(uuid::Uuid::new_v4(), days_ahead(3), "10:00")).await, 429, "rate_limited");

    // Another subject of the same clinic, and the same subject in another clinic, go on.
    let other_sub = Claims::new("front-desk-2", Role::Agent, Some(org.id), 3600).mint_hs256(SECRET.as_bytes());
    app.client(other_sub.expect("a token")).providers().await.expect("another subject is not limited");
    let other_org = app.org("UTC").await;
    other_org.agent.providers().await.expect("another clinic is not limited");
}

/// A Vapi message counts once per tool call it runs, as each is a request's worth of work: at 6 a
/// minute, a message of 5 calls leaves room for no message of 2 (which needs two of the one
/// left, and spends nothing when refused), then for one request. A message of more calls than may run (none runs)
/// counts once; one of more calls than the rate allows, but not more than may run, takes the
/// whole burst.
async fn a_vapi_message_counts_once_per_tool_call_it_runs(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.rate_limit_per_minute = 6).await;
    let infos = |n: usize| -> Vec<serde_json::Value> {
        (0..n).map(|i| call(&format!("tc-{i}"), "get_clinic_info", serde_json::json!({}))).collect()
    };
    let send = async |org: &TestOrg, calls| {
        let body = message(calls, None, "call-1");
        org.agent.request(Method::POST, "/api/vapi/tools").json(&body).send().await.expect("an answer")
    };
    let org = app.org("UTC").await;
    assert_eq!(post(&org.agent, &message(infos(5), None, "call-1")).await["results"].as_array().map(Vec::len), Some(5));
    let refused = send(&org, infos(2)).await;
    assert_eq!(refused.status(), 429, "5 + 2 calls");
    assert!(refused.headers().contains_key("retry-after"));
    org.agent.providers().await.expect("the one left");
    assert_error(org.agent.providers().await, 429, "rate_limited");

    let other = app.org("UTC").await;
    assert_eq!(send(&other, infos(17)).await.status(), 200, "17 calls: every one refused, none run");
    for n in 0..5 {
        assert!(other.agent.providers().await.is_ok(), "request {n} after a message counted once");
    }
    assert_error(other.agent.providers().await, 429, "rate_limited");

    // A message of more calls than the rate, but at most 16, always fits in a whole burst.
    let third = app.org("UTC").await;
    assert_eq!(
        post(&third.agent, &message(infos(8), None, "call-1")).await["results"].as_array().map(Vec::len),
        Some(8)
    );
    assert_error(third.agent.providers().await, 429, "rate_limited");
}

/// Vapi sends informational messages (speech, status and conversation updates) several times a
/// second on every call unless the assistant is told not to. They spend an allowance of their
/// own, ten times the rate, so that a busy clinic's chatter never refuses its tool calls; past
/// that allowance they are refused too (Vapi wants no answer to them).
async fn vapi_chatter_spends_an_allowance_of_its_own(backend: Backend) {
    // One request a minute: the messages' allowance of 10 refills one every 6 s, longer than
    // this test takes.
    let app = spawn_app_with(backend, |c| c.rate_limit_per_minute = 1).await;
    let org = app.org("UTC").await;
    let chatter = serde_json::json!({"message": {"type": "speech-update", "status": "started", "role": "user",
                                                 "call": {"id": "call-1"}}});
    let send = async |body: &serde_json::Value| {
        let sent = org.agent.request(Method::POST, "/api/vapi/tools").json(body).send().await;
        sent.expect("an answer").status()
    };
    for n in 0..6 {
        assert_eq!(send(&chatter).await, 200, "update {n}: six times the rate");
    }
    let calls = vec![call("tc-0", "get_clinic_info", serde_json::json!({}))];
    let answered = post(&org.agent, &message(calls, None, "call-1")).await;
    assert_eq!(answered["results"].as_array().map(Vec::len), Some(1), "the tool call runs: {answered}");
    assert_error(org.agent.providers().await, 429, "rate_limited");
    // 7 messages so far, of an allowance of 10.
    for n in 7..10 {
        assert_eq!(send(&chatter).await, 200, "message {n}");
    }
    assert_eq!(send(&chatter).await, 429, "past ten times the rate");
}

/// What a token can make the service parse is bounded in bytes too: a message spends one unit of
/// the messages' allowance for each 64 KiB it holds, so 1 MiB `status-update`s (sixteen units
/// each, of an allowance of 60 here) are refused after three, while small ones go on; with a Vapi
/// secret set, bodies refused for their signature (which is read over the whole body) as well.
async fn large_vapi_messages_spend_the_allowance_by_their_size(backend: Backend) {
    for signed in [false, true] {
        let app = spawn_app_with(backend, |c| {
            c.rate_limit_per_minute = 6;
            c.vapi_hmac_secret = signed.then(|| "whsec_test".into());
        })
        .await;
        let org = app.org("UTC").await;
        let send = async |body: &serde_json::Value| {
            let sent = org.agent.request(Method::POST, "/api/vapi/tools").json(body).send().await;
            sent.expect("an answer").status()
        };
        let taken = if signed { 401 } else { 200 };
        let large = serde_json::json!({"message": {"type": "status-update", "padding": "x".repeat(1_000_000)}});
        for n in 0..3 {
            assert_eq!(send(&large).await, taken, "large message {n}");
        }
        assert_eq!(send(&large).await, 429, "sixteen units each: a fourth is past 60");
        let small = serde_json::json!({"message": {"type": "status-update", "status": "in-progress"}});
        assert_eq!(send(&small).await, taken, "a small one still fits");
    }
}

/// A patient's links have no token subject: the confirmation link and the manage link of one
/// appointment count together, so a loop on `POST /confirm/{token}` (a write transaction each) is
/// cut like a token's, and other appointments' links go on.
async fn a_patients_links_share_one_rate(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.rate_limit_per_minute = 4).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let with_email = |time| shared::api::BookingInput {
        patient_email: Some("ada@example.com".into()),
        ..booking(provider, days_ahead(3), time)
    };
    let booked = org.staff.book(&with_email("10:00")).await.expect("booked");
    org.staff.book(&with_email("11:00")).await.expect("booked");
    let emails = crate::email::wait_eml(&app, 2).await;
    let links: Vec<String> =
        emails.iter().map(|e| crate::email::link_in(&crate::email::searchable(e), &app.base)).collect();
    let (mine, theirs) =
        if emails[0].contains(&booked.confirmation_code) { (&links[0], &links[1]) } else { (&links[1], &links[0]) };
    for _ in 0..3 {
        assert!(crate::email::post_confirm(mine, true).await.status().is_success());
    }
    let manage = app.manage_link(org.id, booked.appointment_id).await;
    assert!(reqwest::get(&manage).await.expect("GET").status().is_success(), "the fourth request");
    let refused = crate::email::post_confirm(mine, true).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(reqwest::get(&manage).await.expect("GET").status(), 429, "the manage link counts with it");
    assert!(crate::email::post_confirm(theirs, true).await.status().is_success(), "another appointment's link");
}

/// One known link opened again and again is refused by its own limit, but only after each lookup;
/// once its address has spent its lookups (ten times the rate) it is refused before any, at the
/// address's pace (here one lookup every 6 s) rather than the link's (one a minute).
async fn a_known_link_sent_again_and_again_stops_costing_lookups(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.rate_limit_per_minute = 1).await;
    let org = app.org("UTC").await;
    let booked = org.staff.book(&booking(org.provider().await.id, days_ahead(3), "10:00")).await.expect("booked");
    let manage = app.manage_link(org.id, booked.appointment_id).await;
    let open = async || {
        let answer = reqwest::get(&manage).await.expect("GET");
        let wait = answer.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        (answer.status().as_u16(), wait)
    };
    assert_eq!(open().await, (200, None));
    for n in 2..=10 {
        let (status, wait) = open().await;
        assert!(status == 429 && wait.is_some_and(|w| w > 30), "request {n}, the link's own limit: {wait:?}");
    }
    let (status, wait) = open().await;
    assert!(status == 429 && wait.is_some_and(|w| w <= 6), "the address's lookups are spent: {wait:?}");
}

/// A well-formed link token no link has: the `n`th guess.
fn guessed(n: usize) -> String {
    format!("{n:A<43}")
}

/// GET `url` from the client at `from` (a request from behind the proxy, which names it last in
/// X-Forwarded-For); its status.
async fn status_from(http: &reqwest::Client, url: &str, from: &str) -> u16 {
    let answer = http.get(url).header("x-forwarded-for", from).send().await.expect("an answer");
    answer.status().as_u16()
}

/// Link tokens no link has are guesses, limited per client address (here read from
/// X-Forwarded-For, as behind a proxy) across the confirmation and manage links: past them the
/// address is refused, its real links too, before any lookup, while other addresses go on. The
/// addresses a client puts before its proxy's entry do not change who it is.
async fn guesses_at_links_are_limited_per_client_address(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.link_guesses_per_minute = 3;
        c.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
    })
    .await;
    let org = app.org("UTC").await;
    let booked = org.staff.book(&booking(org.provider().await.id, days_ahead(3), "10:00")).await.expect("booked");
    let manage = app.manage_link(org.id, booked.appointment_id).await;
    let (http, guesser) = (reqwest::Client::new(), "203.0.113.7");
    assert_eq!(status_from(&http, &manage, guesser).await, 200, "a real link spends no guess");
    for (n, route) in ["manage", "confirm", "manage"].into_iter().enumerate() {
        assert_eq!(status_from(&http, &format!("{}/{route}/{}", app.base, guessed(n)), guesser).await, 404);
    }
    let refused = http.get(format!("{}/confirm/{}", app.base, guessed(3))).header("x-forwarded-for", guesser);
    let refused = refused.send().await.expect("an answer");
    assert_eq!(refused.status(), 429, "the fourth guess");
    let wait: u64 = refused.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    assert_eq!(status_from(&http, &manage, guesser).await, 429, "refused before the lookup: even a real link");
    let spoofed = format!("198.51.100.1, {guesser}");
    assert_eq!(status_from(&http, &manage, &spoofed).await, 429, "an address put before the proxy's is not who it is");
    assert_eq!(status_from(&http, &manage, "203.0.113.8").await, 200, "another address goes on");
    assert_eq!(status_from(&http, &format!("{}/manage/{}", app.base, guessed(4)), "203.0.113.8").await, 404);
}

/// With no proxy in front (the default), the client is the connection's peer: a header naming
/// another address changes nothing, and another peer has guesses of its own.
async fn without_a_proxy_the_peer_is_the_client(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.link_guesses_per_minute = 2).await;
    let (here, there) = (reqwest::Client::new(), {
        let local = std::net::IpAddr::from([127, 0, 0, 2]);
        reqwest::Client::builder().local_address(local).build().expect("a client")
    });
    for (n, claimed) in ["203.0.113.1", "203.0.113.2"].into_iter().enumerate() {
        assert_eq!(status_from(&here, &format!("{}/manage/{}", app.base, guessed(n)), claimed).await, 404);
    }
    assert_eq!(status_from(&here, &format!("{}/manage/{}", app.base, guessed(2)), "203.0.113.3").await, 429);
    assert_eq!(status_from(&there, &format!("{}/manage/{}", app.base, guessed(3)), "203.0.113.3").await, 404);
}

/// A booking for the same caller at another time each day.
fn for_caller(provider: uuid::Uuid, day: i64) -> shared::api::BookingInput {
    let mut input = booking(provider, days_ahead(3 + day), "10:00");
    input.patient_phone = Some("+15550001111".into());
    input
}

async fn a_voice_agent_books_at_most_three_upcoming_appointments_per_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let mut booked = Vec::new();
    for day in 0..3 {
        booked.push(org.agent.book(&for_caller(provider, day)).await.expect("within the quota").appointment_id);
    }
    let refused = assert_error(org.agent.book(&for_caller(provider, 3)).await, 409, "invalid_state");
    assert!(refused.to_string().contains("3 upcoming appointments"), "{refused}");
    assert_eq!(org.staff.appointments(&Default::default()).await.expect("listed").len(), 3, "nothing written");

    // Staff book for the clinic, not for a caller: no quota.
    let by_staff = org.staff.book(&for_caller(provider, 4)).await.expect("staff are not capped");
    // Another clinic counts its own.
    let other = app.org("UTC").await;
    let elsewhere = other.provider().await.id;
    other.agent.book(&for_caller(elsewhere, 0)).await.expect("another clinic");
    // Cancellations free places (four were active: three by the agent, one by staff).
    org.staff.cancel(booked[0], None).await.expect("cancelled");
    assert_error(org.agent.book(&for_caller(provider, 3)).await, 409, "invalid_state");
    org.staff.cancel(by_staff.appointment_id, None).await.expect("cancelled");
    org.agent.book(&for_caller(provider, 3)).await.expect("a place was freed");
    assert_error(org.agent.book(&for_caller(provider, 5)).await, 409, "invalid_state");
    // An appointment that has started is no longer upcoming: it frees its place while it runs.
    let second = org.staff.appointment(booked[1]).await.expect("read");
    let into_it = second.starts_at.with_timezone(&chrono::Utc) - chrono::Utc::now() + chrono::Duration::minutes(5);
    crate::attendance::shift(&app, booked[1], into_it).await;
    org.agent.book(&for_caller(provider, 5)).await.expect("a place freed by the start");
}

/// A voice call without the caller's number (withheld, or a web call) is held to the same limit,
/// counted per call: it cannot book every free time of the clinic, and another call books on.
async fn a_call_without_a_number_books_at_most_three_upcoming_appointments(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let mut booked = Vec::new();
    for day in 0..3 {
        booked.push(book_by_voice(&org, provider, day, "call-withheld").await.expect("within the quota"));
    }
    let refused = book_by_voice(&org, provider, 3, "call-withheld").await.expect_err("over the quota");
    assert!(refused.contains("this call has already booked 3 upcoming appointments"), "{refused}");
    book_by_voice(&org, provider, 3, "call-another").await.expect("another call counts its own");
    // A cancellation frees a place.
    let all = org.staff.appointments(&Default::default()).await.expect("listed");
    assert_eq!(all.len(), 4);
    let first = all.iter().find(|a| a.starts_at.date_naive() == days_ahead(3)).expect("the first day's");
    org.staff.cancel(first.id, None).await.expect("cancelled");
    book_by_voice(&org, provider, 4, "call-withheld").await.expect("a place was freed");
}

/// Ten bookings at once in one call without a number: the quota holds under the race.
async fn the_quota_of_a_call_without_a_number_holds_when_it_books_many_times_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let attempts =
        futures::future::join_all((0..10).map(|day| book_by_voice(&org, provider, day, "call-racing"))).await;
    assert_eq!(attempts.iter().filter(|r| r.is_ok()).count(), 3, "{attempts:?}");
    for refused in attempts.iter().filter_map(|r| r.as_ref().err()) {
        assert!(refused.contains("this call has already booked 3 upcoming appointments"), "{refused}");
    }
}

/// A caller booking and cancelling in a loop (each booking and each cancellation texts and emails
/// the patient, at the clinic's cost) books at most ten appointments a day, cancelled ones
/// included; a call without a number likewise; another caller, and staff, book on.
async fn a_caller_books_at_most_ten_times_a_day_cancellations_included(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let cancel_pending = async || {
        let all = org.staff.appointments(&Default::default()).await.expect("listed");
        for a in all.iter().filter(|a| a.status == shared::api::AppointmentStatus::Pending) {
            org.staff.cancel(a.id, None).await.expect("cancelled");
        }
    };
    for day in 0..10 {
        org.agent.book(&for_caller(provider, day)).await.expect("booked");
        cancel_pending().await;
    }
    let refused = assert_error(org.agent.book(&for_caller(provider, 10)).await, 409, "invalid_state");
    assert!(refused.to_string().contains("has booked 10 appointments here in the last day"), "{refused}");
    org.staff.book(&for_caller(provider, 10)).await.expect("staff are not capped");
    org.agent.book(&booking(provider, days_ahead(20), "10:00")).await.expect("another caller books on");
    cancel_pending().await;

    for day in 0..10 {
        book_by_voice(&org, provider, 30 + day, "call-looping").await.expect("booked");
        cancel_pending().await;
    }
    let refused = book_by_voice(&org, provider, 40, "call-looping").await.expect_err("too often");
    assert!(refused.contains("this call has booked 10 appointments here in the last day"), "{refused}");
    book_by_voice(&org, provider, 40, "call-another").await.expect("another call books on");
}

/// A `book_appointment` tool call, `day` days after the third from now at 10:00, in a voice call
/// `call_id` without the caller's number: what the agent said.
async fn book_by_voice(org: &TestOrg, provider: uuid::Uuid, day: i64, call_id: &str) -> Result<String, String> {
    let date = date_str(days_ahead(3 + day));
    let tool = book_call(&format!("b{day}"), provider, &date, "10:00", "Ada Lovelace");
    only(&post(&org.agent, &message(vec![tool], None, call_id)).await)
}

/// Ten bookings from one caller at once, at ten free times: the quota holds under the race.
async fn the_quota_holds_when_one_caller_books_many_times_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let attempts = futures::future::join_all((0..10).map(|day| {
        let agent = org.agent.clone();
        async move { agent.book(&for_caller(provider, day)).await }
    }))
    .await;
    let won = attempts.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 3, "{attempts:?}");
    for refused in attempts.into_iter().filter(Result::is_err) {
        assert_error(refused, 409, "invalid_state");
    }
}

/// The clinic's settings (docs/API.md, Settings): read and replaced by its admin, checked field by
/// field, and the per-caller limit taking effect at once.
async fn an_admin_sets_the_per_caller_limit_and_the_notification_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let defaults = org.admin.settings().await.expect("settings");
    assert_eq!(
        defaults,
        shared::api::Settings {
            reminder_offsets_minutes: vec![1440, 120],
            manage_cutoff_minutes: 1440,
            max_active_per_caller: 3,
            sms_from: None
        }
    );
    let wanted = shared::api::Settings {
        reminder_offsets_minutes: vec![60, 2880, 60],
        manage_cutoff_minutes: 120,
        max_active_per_caller: 1,
        sms_from: Some("+1 555 010 3000".into()),
    };
    let saved = org.admin.set_settings(&wanted).await.expect("saved");
    assert_eq!(saved.reminder_offsets_minutes, [2880, 60], "each once, latest first");
    assert_eq!(saved.sms_from.as_deref(), Some("+15550103000"));
    assert_eq!(org.admin.settings().await.expect("read back"), saved);
    for bad in [
        shared::api::Settings { reminder_offsets_minutes: vec![10, 20, 30, 40, 50, 60], ..saved.clone() },
        shared::api::Settings { reminder_offsets_minutes: vec![1], ..saved.clone() },
        shared::api::Settings { reminder_offsets_minutes: vec![-5], ..saved.clone() },
        shared::api::Settings { reminder_offsets_minutes: vec![60; 10_000], ..saved.clone() },
        shared::api::Settings { manage_cutoff_minutes: 20_000, ..saved.clone() },
        shared::api::Settings { max_active_per_caller: 101, ..saved.clone() },
        shared::api::Settings { sms_from: Some("clinic".into()), ..saved.clone() },
    ] {
        assert_error(org.admin.set_settings(&bad).await, 422, "validation_failed");
    }
    assert_error(org.staff.settings().await, 403, "forbidden");
    assert_error(org.agent.set_settings(&saved).await, 403, "forbidden");
    let other = app.org("UTC").await;
    assert_eq!(other.admin.settings().await.expect("another clinic's").max_active_per_caller, 3);
    // A sender number is one clinic's: another cannot text in its name (nor share its STOPs).
    let taken = shared::api::Settings { sms_from: Some("+15550103000".into()), ..defaults.clone() };
    let refused = assert_error(other.admin.set_settings(&taken).await, 422, "validation_failed");
    assert!(refused.to_string().contains("sms_from"), "{refused}");
    assert_eq!(other.admin.settings().await.expect("unchanged").sms_from, None);
    org.admin.set_settings(&saved).await.expect("its own number again");
    let own = shared::api::Settings { sms_from: Some("+15550103001".into()), ..defaults.clone() };
    other.admin.set_settings(&own).await.expect("a number of its own");
    // A client that leaves out null fields keeps the clinic's sender (its patients' STOPs are
    // kept per sender); an explicit null clears it.
    let put = |body: serde_json::Value| {
        let admin = other.admin.clone();
        async move {
            let request = admin.request(reqwest::Method::PUT, "/api/settings").json(&body);
            admin.send::<shared::api::Settings>(request).await.expect("saved").sms_from
        }
    };
    let without =
        serde_json::json!({"reminder_offsets_minutes": [60], "manage_cutoff_minutes": 60, "max_active_per_caller": 3});
    assert_eq!(put(without.clone()).await.as_deref(), Some("+15550103001"), "left out: kept");
    let log = other.admin.audit_log(&shared::api::WindowQuery::default()).await.expect("the audit log");
    let asked = &log.last().expect("the PUT's row").details;
    assert!(
        asked.get("sms_from").is_none() && asked["manage_cutoff_minutes"] == 60,
        "audited without the sms_from not sent: {asked}"
    );
    let mut cleared = without.clone();
    cleared["sms_from"] = serde_json::Value::Null;
    assert_eq!(put(cleared).await, None, "null: cleared");
    // One leaving it out while another admin changes it never writes the older number back.
    for round in 0..30 {
        let number = format!("+1555011{round:04}");
        let mut changed = without.clone();
        changed["sms_from"] = serde_json::json!(number);
        let (set, kept) = tokio::join!(put(changed), put(without.clone()));
        assert_eq!(set.as_deref(), Some(number.as_str()));
        let now = other.admin.settings().await.expect("read").sms_from;
        assert_eq!(now.as_deref(), Some(number.as_str()), "round {round}: the other PUT answered {kept:?}");
    }

    org.agent.book(&for_caller(provider, 0)).await.expect("the first");
    let refused = assert_error(org.agent.book(&for_caller(provider, 1)).await, 409, "invalid_state");
    assert!(refused.to_string().contains("has 1 upcoming appointment here"), "{refused}");
    assert!(refused.to_string().contains("moved or cancelled instead"), "what to do: {refused}");
    lift_caller_quota(&org).await;
    org.agent.book(&for_caller(provider, 1)).await.expect("no limit");
}

on_both_backends!(
    an_admin_sets_the_per_caller_limit_and_the_notification_settings,
    a_token_past_its_rate_is_refused_while_others_go_on,
    a_patients_links_share_one_rate,
    a_known_link_sent_again_and_again_stops_costing_lookups,
    a_vapi_message_counts_once_per_tool_call_it_runs,
    vapi_chatter_spends_an_allowance_of_its_own,
    large_vapi_messages_spend_the_allowance_by_their_size,
    guesses_at_links_are_limited_per_client_address,
    without_a_proxy_the_peer_is_the_client,
    a_voice_agent_books_at_most_three_upcoming_appointments_per_caller,
    a_call_without_a_number_books_at_most_three_upcoming_appointments,
    the_quota_of_a_call_without_a_number_holds_when_it_books_many_times_at_once,
    the_quota_holds_when_one_caller_books_many_times_at_once,
    a_caller_books_at_most_ten_times_a_day_cancellations_included
);
