use crate::helpers::*;
use booking_service::vapi::SignatureCheck;
use reqwest::Method;
use serde_json::{json, Value};
use shared::api::{AppointmentQuery, AppointmentStatus, BookingInput, CreateAppointmentType, CreateProvider};
use shared::ApiClient;

pub(crate) const CALLER: &str = "+15551234567";
const OTHER_CALLER: &str = "+15559876543";

pub(crate) fn call(id: &str, name: &str, arguments: Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// A `book_appointment` call for `name` with `provider` at a local date and time.
pub(crate) fn book_call(id: &str, provider: uuid::Uuid, date: &str, time: &str, name: &str) -> Value {
    let arguments =
        json!({"provider_id": provider, "appointment_date": date, "appointment_time": time, "patient_name": name});
    call(id, "book_appointment", arguments)
}

/// A `tool-calls` message shaped like Vapi's: the calls in `toolCallList`, `toolCalls` and
/// `toolWithToolCallList`, the caller in `call.customer`, and the fields a real call carries.
pub(crate) fn message(calls: Vec<Value>, caller: Option<&str>, call_id: &str) -> Value {
    let with_tools: Vec<Value> = calls
        .iter()
        .map(
            |c| json!({"type": "function", "async": false, "function": {"name": c["function"]["name"]}, "toolCall": c}),
        )
        .collect();
    json!({"message": {
        "timestamp": 1767201234567u64,
        "type": "tool-calls",
        "toolCalls": calls,
        "toolCallList": calls,
        "toolWithToolCallList": with_tools,
        "artifact": {"messages": [{"role": "user", "message": "Can I get Friday at two?", "time": 1767201228000u64}]},
        "call": {"id": call_id, "type": "inboundPhoneCall", "status": "in-progress", "customer": {"number": caller}},
        "phoneNumber": {"number": "+15557654321"},
        "assistant": {"name": "Clinic Receptionist"}
    }})
}

pub(crate) async fn post(client: &ApiClient, body: &Value) -> Value {
    let response = client.request(Method::POST, "/api/vapi/tools").json(body).send().await.expect("sent");
    assert_eq!(response.status(), 200, "Vapi only reads 200 answers");
    response.json().await.expect("JSON")
}

/// The results as (name, id, Ok(result) | Err(error)), each checked to be a single line.
fn results(answer: &Value) -> Vec<(String, String, Result<String, String>)> {
    answer["results"]
        .as_array()
        .expect("results is an array")
        .iter()
        .map(|r| {
            let text = r["result"]
                .as_str()
                .map(|s| Ok(s.to_owned()))
                .or_else(|| r["error"].as_str().map(|s| Err(s.to_owned())))
                .expect("result or error");
            let line = text.as_ref().unwrap_or_else(|e| e);
            assert!(!line.contains('\n') && !line.contains('\r'), "a result must be one line: {line:?}");
            assert!(!line.is_empty());
            (r["name"].as_str().expect("name").to_owned(), r["toolCallId"].as_str().expect("id").to_owned(), text)
        })
        .collect()
}

pub(crate) fn only(answer: &Value) -> Result<String, String> {
    let mut all = results(answer);
    assert_eq!(all.len(), 1, "{answer}");
    all.remove(0).2
}

/// A clinic in New York with Dr. John Smith (every day, 9 to 5) and Dr. Jane Jones.
pub(crate) async fn clinic(app: &TestApp) -> (TestOrg, shared::api::Provider) {
    let org = app.org("America/New_York").await;
    let all_week = nine_to_five(&[
        shared::api::Weekday::Mon,
        shared::api::Weekday::Tue,
        shared::api::Weekday::Wed,
        shared::api::Weekday::Thu,
        shared::api::Weekday::Fri,
        shared::api::Weekday::Sat,
        shared::api::Weekday::Sun,
    ]);
    let smith = org
        .provider_with(CreateProvider {
            name: "Dr. John Smith".into(),
            working_hours: Some(all_week.clone()),
            ..Default::default()
        })
        .await;
    org.provider_with(CreateProvider {
        name: "Dr. Jane Jones".into(),
        working_hours: Some(all_week),
        ..Default::default()
    })
    .await;
    (org, smith)
}

/// Which provider a booking is with: asked among several, the only one without asking, the name
/// the caller said over an id the model guessed or made up; and a time of either half of the day is asked
/// about, not read as the morning.
async fn the_provider_and_the_half_of_the_day_are_asked_only_when_unclear(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(10));
    let book = |id: &str, args: Value| message(vec![call(id, "book_appointment", args)], Some(CALLER), id);
    let unnamed = json!({"appointment_date": date, "appointment_time": "10:00", "patient_name": "Ada"});
    let asked = only(&post(&org.agent, &book("p1", unnamed.clone())).await).expect_err("asked");
    assert!(asked.starts_with("Which provider would you like?") && asked.contains("Dr. Jane Jones"), "{asked}");
    let guessed = json!({"provider_id": "1", "provider_name": "Smith", "appointment_date": date, "appointment_time": "11:00", "patient_name": "Ada"});
    let booked = only(&post(&org.agent, &book("p2", guessed)).await).expect("the name said wins");
    assert!(booked.contains("Dr. John Smith"), "{booked}");
    // So is an id of no provider here (list_providers says names, not ids).
    let made_up = uuid::Uuid::new_v4();
    let invented = json!({"provider_id": made_up, "provider_name": "Smith", "appointment_date": date, "appointment_time": "11:30", "patient_name": "Ada"});
    let booked = only(&post(&org.agent, &book("p2b", invented)).await).expect("the name said wins");
    assert!(booked.contains("Dr. John Smith"), "{booked}");
    let alone =
        json!({"provider_id": made_up, "appointment_date": date, "appointment_time": "11:30", "patient_name": "Ada"});
    let asked = only(&post(&org.agent, &book("p2c", alone)).await).expect_err("no such provider");
    assert!(asked.contains("We have") && asked.contains("Dr. Jane Jones"), "{asked}");
    let half =
        json!({"provider_id": smith.id, "appointment_date": date, "appointment_time": "2:30", "patient_name": "Ada"});
    let asked = only(&post(&org.agent, &book("p3", half)).await).expect_err("which half of the day");
    assert!(asked.contains("2:30 in the morning or in the afternoon"), "{asked}");

    let single = app.org("UTC").await;
    let only_one = single.provider().await;
    let booked = only(&post(&single.agent, &book("p4", unnamed)).await).expect("the only provider, unasked");
    assert!(booked.contains(&only_one.name), "{booked}");
}

async fn a_caller_lists_checks_books_finds_moves_and_cancels(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(10));

    let listed =
        only(&post(&org.agent, &message(vec![call("c1", "list_providers", json!({}))], Some(CALLER), "call-1")).await)
            .expect("listed");
    assert!(listed.contains("Dr. John Smith") && listed.contains("Dr. Jane Jones"), "{listed}");

    let free = only(
        &post(
            &org.agent,
            &message(
                vec![call("c2", "check_availability", json!({"provider_name": "smith", "date": date}))],
                Some(CALLER),
                "call-1",
            ),
        )
        .await,
    )
    .expect("availability");
    assert!(free.starts_with("Dr. John Smith is free on") && free.contains("9:00 AM"), "{free}");

    // Arguments as a JSON string, a forgiving name, and a phone number in the arguments that must be ignored.
    let args = json!({"provider_name": "Dr Smith", "appointment_date": date, "appointment_time": "2:00 PM", "patient_name": "Ada Lovelace", "patient_phone": OTHER_CALLER}).to_string();
    let booked = only(
        &post(&org.agent, &message(vec![call("c3", "book_appointment", Value::String(args))], Some(CALLER), "call-1"))
            .await,
    )
    .expect("booked");
    assert!(
        booked.contains("Dr. John Smith") && booked.contains("at 2:00 PM") && booked.contains("confirmation code"),
        "{booked}"
    );
    let stored = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].provider_id, smith.id);
    assert_eq!(
        stored[0].patient.phone.as_deref(),
        Some(CALLER),
        "the number comes from the call, never from the model"
    );
    assert_eq!(stored[0].starts_at.format("%H:%M").to_string(), "14:00");
    let code = stored[0].confirmation_code.clone();

    let found = only(
        &post(&org.agent, &message(vec![call("c4", "find_appointments", json!({}))], Some(CALLER), "call-2")).await,
    )
    .expect("found");
    assert!(found.contains("one upcoming appointment") && found.contains("2:00 PM"), "{found}");
    assert!(found.contains("not yet confirmed") && !found.contains("pending"), "words a caller knows: {found}");

    let spoken_code = code.chars().map(String::from).collect::<Vec<_>>().join(" ").to_lowercase();
    let moved = only(
        &post(
            &org.agent,
            &message(
                vec![call(
                    "c5",
                    "reschedule_appointment",
                    json!({"confirmation_code": spoken_code, "appointment_date": date, "appointment_time": "15:30"}),
                )],
                Some(CALLER),
                "call-2",
            ),
        )
        .await,
    )
    .expect("moved");
    assert!(moved.contains("3:30 PM"), "{moved}");
    assert_eq!(org.staff.appointment(stored[0].id).await.expect("read").starts_at.format("%H:%M").to_string(), "15:30");

    let cancelled = only(
        &post(
            &org.agent,
            &message(
                vec![call("c6", "cancel_appointment", json!({"confirmation_code": code}))],
                Some(CALLER),
                "call-2",
            ),
        )
        .await,
    )
    .expect("cancelled");
    assert!(cancelled.contains("is cancelled"), "{cancelled}");
    assert_eq!(org.staff.appointment(stored[0].id).await.expect("read").status, AppointmentStatus::Cancelled);
    let none = only(
        &post(&org.agent, &message(vec![call("c7", "find_appointments", json!({}))], Some(CALLER), "call-3")).await,
    )
    .expect("none");
    assert_eq!(none, "I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it.");
}

async fn every_list_form_is_read_and_parallel_calls_answer_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(11));
    let calls = vec![
        call("p1", "check_availability", json!({"provider_id": smith.id, "date": date})),
        call("p2", "list_providers", json!({})),
        book_call("p3", smith.id, &date, "10:00", "Ada"),
        call("p4", "no_such_tool", json!({})),
    ];
    for form in ["toolCallList", "toolCalls", "toolWithToolCallList"] {
        let mut body = message(calls.clone(), Some(CALLER), &format!("call-{form}"));
        for other in ["toolCallList", "toolCalls", "toolWithToolCallList"] {
            if other != form {
                body["message"].as_object_mut().expect("object").remove(other);
            }
        }
        let answer = results(&post(&org.agent, &body).await);
        let ids: Vec<&str> = answer.iter().map(|(_, id, _)| id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2", "p3", "p4"], "{form}");
        let names: Vec<&str> = answer.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["check_availability", "list_providers", "book_appointment", "no_such_tool"]);
        assert!(answer[3].2.is_err(), "an unknown tool is an error result");
    }
    // The three forms carried the same ids: one booking was made, by the first message.
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1);
}

async fn a_repeated_tool_call_id_gets_its_first_answer_on_any_instance(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(12));
    let body = message(vec![book_call("toolu_01", smith.id, &date, "11:00", "Ada")], Some(CALLER), "call-r");
    let first = only(&post(&org.agent, &body).await).expect("booked");
    let again = only(&post(&org.agent, &body).await).expect("the same answer, not a conflict");
    assert_eq!(first, again);
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1, "nothing changed");

    // A cancellation repeated by id is not "already cancelled" the second time, on this instance
    // or another: a fresh run would find it cancelled, so only the remembered answer is the same.
    let code = org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].confirmation_code.clone();
    let cancel = message(
        vec![call("toolu_02", "cancel_appointment", json!({"confirmation_code": code}))],
        Some(CALLER),
        "call-r",
    );
    let cancelled = only(&post(&org.agent, &cancel).await).expect("cancelled");
    assert!(cancelled.contains("is cancelled"), "{cancelled}");
    assert_eq!(only(&post(&org.agent, &cancel).await).expect("same"), cancelled);
    let other_instance = app.another_instance().await;
    let agent_there = other_instance.client(token(shared::Role::Agent, Some(org.id)));
    assert_eq!(only(&post(&agent_there, &cancel).await).expect("same"), cancelled);
}

/// A cancellation keeps the voice agent's answer in its own transaction, so a retry of the call
/// after it committed hears "cancelled" even when nothing after the commit ran (the answer lost on
/// its way, the message's deadline, another instance answering at once); a cancellation refused
/// keeps nothing, and the refusal the tool then says is kept as usual; nor is an answer kept that
/// names a time the appointment no longer has.
async fn a_cancellation_keeps_its_answer_with_it(backend: Backend) {
    use booking_service::domain::{AppointmentId, OrgId};
    use booking_service::store::{Actor, KeptAnswer, ToolCallKey};
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let booked = org.agent.book(&booking(smith.id, days_ahead(12), "11:00")).await.expect("booked");
    let (store, actor, id) = (&app.store, Actor::new(OrgId(org.id), "agent"), AppointmentId(booked.appointment_id));
    let key = |tool_call_id| ToolCallKey { call_id: "call-k", tool_call_id, fingerprint: "f" };
    let said = json!({"result": "Your appointment is cancelled."});
    let start = Some(booked.starts_at.to_utc());
    let answer = KeptAnswer { key: key("first"), tool_name: "cancel_appointment", outcome: &said, names_start: start };
    store.cancel(&actor, id, None, None, Some(&answer)).await.expect("cancelled");
    assert_eq!(store.tool_result(OrgId(org.id), &key("first")).await.expect("read"), Some(said.clone()));

    let again = KeptAnswer { key: key("second"), ..answer };
    assert!(store.cancel(&actor, id, None, None, Some(&again)).await.is_err(), "already cancelled");
    assert_eq!(store.tool_result(OrgId(org.id), &key("second")).await.expect("read"), None, "rolled back with it");

    // An answer naming a time the appointment no longer has (moved between the tool's read and
    // the cancellation) is not kept with it: the tool tells the time it had.
    let other = org.agent.book(&booking(smith.id, days_ahead(12), "14:00")).await.expect("booked");
    let stale = KeptAnswer { key: key("third"), names_start: start, ..answer };
    store.cancel(&actor, AppointmentId(other.appointment_id), None, None, Some(&stale)).await.expect("cancelled");
    assert_eq!(store.tool_result(OrgId(org.id), &key("third")).await.expect("read"), None, "not kept");
}

/// The code as the tools speak it, `A-B-C-1-2-3`.
fn spoken(code: &str) -> String {
    code.chars().map(String::from).collect::<Vec<_>>().join("-")
}

/// The attack from issue 11: a `toolCallId` the model reused across calls (or an agent token
/// reusing one on purpose) must never hand one caller another caller's answer.
async fn a_tool_call_id_reused_by_another_call_or_caller_gets_its_own_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(12));
    let book_a = message(vec![book_call("shared-1", smith.id, &date, "09:30", "Ada")], Some(CALLER), "call-a");
    let booked = only(&post(&org.agent, &book_a).await).expect("A booked");
    let code = org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].confirmation_code.clone();
    assert!(booked.contains(&spoken(&code)), "{booked}");

    // Another call, another caller, the same id, another tool: B hears about B's appointments.
    let find = vec![call("shared-1", "find_appointments", json!({}))];
    let theirs = only(&post(&org.agent, &message(find.clone(), Some(OTHER_CALLER), "call-b")).await);
    assert_eq!(theirs.as_deref(), Ok("I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it."), "never A's answer");
    // The same when the call id is A's too, or when the message names no call at all: the caller
    // and the tool differ, so nothing of A's is given.
    let same_call = only(&post(&org.agent, &message(find.clone(), Some(OTHER_CALLER), "call-a")).await);
    assert_eq!(same_call.as_deref(), Ok("I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it."));
    let mut no_call_id = message(find, Some(OTHER_CALLER), "unused");
    no_call_id["message"]["call"].as_object_mut().expect("call").remove("id");
    let anonymous_call = only(&post(&org.agent, &no_call_id).await);
    assert_eq!(anonymous_call.as_deref(), Ok("I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it."));

    // B booking under the same id books B's own appointment, with B's own code.
    let book_b = message(vec![book_call("shared-1", smith.id, &date, "10:30", "Bo")], Some(OTHER_CALLER), "call-b");
    let booked_b = only(&post(&org.agent, &book_b).await).expect("B booked");
    assert!(booked_b.contains("10:30 AM") && !booked_b.contains(&spoken(&code)), "{booked_b}");
    let all = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    let phones: Vec<Option<&str>> = all.iter().map(|a| a.patient.phone.as_deref()).collect();
    assert_eq!(phones, [Some(CALLER), Some(OTHER_CALLER)]);

    // A's own retry is still A's first answer, and books nothing more.
    assert_eq!(only(&post(&org.agent, &book_a).await).expect("replayed"), booked);
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 2);
}

/// A retry of a change (same call, id, tool, arguments and caller) gets its first answer even when
/// a fresh run would answer otherwise; the same id with other arguments is a new question. A read
/// asked again is answered afresh: it changes nothing, and its first answer may be stale.
async fn a_reused_tool_call_id_is_replayed_only_for_the_same_arguments(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = days_ahead(12);
    let find = |arguments: Value| message(vec![call("f1", "find_appointments", arguments)], Some(CALLER), "call-f");
    let none = only(&post(&org.agent, &find(json!({}))).await).expect("answered");
    assert_eq!(none, "I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it.");
    let mut for_caller = booking(smith.id, date, "10:00");
    for_caller.patient_phone = Some(CALLER.into());
    org.agent.book(&for_caller).await.expect("booked for the caller's number");
    // The same id and arguments again (a model numbering its calls `f1` anew): the appointment
    // booked since is heard, not the first answer.
    let again = only(&post(&org.agent, &find(json!({}))).await).expect("answered");
    assert!(again.contains("one upcoming appointment"), "{again}");
    let asked_anew = only(&post(&org.agent, &find(json!({"which": "upcoming"}))).await).expect("answered");
    assert!(asked_anew.contains("one upcoming appointment"), "{asked_anew}");

    let book = |arguments: Value| message(vec![call("b1", "book_appointment", arguments)], Some(CALLER), "call-f");
    let at_two = json!({"provider_id": smith.id, "appointment_date": date_str(date), "appointment_time": "14:00", "patient_name": "Ada"});
    let first = only(&post(&org.agent, &book(at_two)).await).expect("booked");
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 2, "booked once");
    let at_three = json!({"provider_id": smith.id, "appointment_date": date_str(date), "appointment_time": "15:00", "patient_name": "Ada"});
    let second = only(&post(&org.agent, &book(at_three)).await).expect("booked afresh");
    assert!(second.contains("3:00 PM") && second != first, "{second}");
    let starts: Vec<String> = org
        .staff
        .appointments(&AppointmentQuery::default())
        .await
        .expect("list")
        .iter()
        .map(|a| a.starts_at.format("%H:%M").to_string())
        .collect();
    assert_eq!(starts, ["10:00", "14:00", "15:00"]);

    // Key order is not a difference: a cancellation asked again with its arguments in another
    // order gets its first answer (a fresh run would say it is cancelled already).
    let code = org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].confirmation_code.clone();
    let cancel = |arguments: String| {
        message(vec![call("c1", "cancel_appointment", Value::String(arguments))], Some(CALLER), "call-f")
    };
    let cancelled =
        only(&post(&org.agent, &cancel(format!(r#"{{"confirmation_code":"{code}","why":"moving"}}"#))).await);
    assert!(cancelled.as_ref().is_ok_and(|c| c.contains("is cancelled")), "{cancelled:?}");
    let reordered =
        only(&post(&org.agent, &cancel(format!(r#"{{"why":"moving","confirmation_code":"{code}"}}"#))).await);
    assert_eq!(reordered, cancelled, "key order is not a difference");
}

/// Bookings of `count` half hours from 09:00, one call each.
fn half_hour_bookings(provider: uuid::Uuid, date: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let time = format!("{:02}:{:02}", 9 + i / 2, (i % 2) * 30);
            book_call(&format!("m{i}"), provider, date, &time, "Ada")
        })
        .collect()
}

async fn a_message_of_more_than_sixteen_tool_calls_runs_none_of_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    // Sixteen bookings by one caller: lift the clinic's per-caller quota.
    lift_caller_quota(&org).await;
    let date = date_str(days_ahead(15));
    let seventeen = message(half_hour_bookings(smith.id, &date, 17), Some(CALLER), "call-17");
    let answer = results(&post(&org.agent, &seventeen).await);
    assert_eq!(answer.len(), 17, "one result per call");
    for (i, (name, id, outcome)) in answer.iter().enumerate() {
        assert_eq!((name.as_str(), id.as_str()), ("book_appointment", format!("m{i}").as_str()));
        let error = outcome.as_ref().expect_err("refused");
        assert!(error.contains("at most 16") && error.contains("none of them was done"), "{error}");
    }
    assert!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").is_empty(), "nothing booked");

    // A message of tens of thousands of bare ids (near the 1 MiB limit) is refused whole, with an
    // answer of its own size, not a refusal for each.
    let ids: Vec<Value> = (0..60_000).map(|i| json!({"id": format!("c{i}")})).collect();
    let flood = json!({"message": {"type": "tool-calls", "toolCallList": ids}});
    let response = org.agent.request(Method::POST, "/api/vapi/tools").json(&flood).send().await.expect("sent");
    assert_eq!(response.status(), 422);
    let body = response.text().await.expect("body");
    assert!(body.len() < 1024 && body.contains("more than 64 tool calls"), "{body}");

    let sixteen = message(half_hour_bookings(smith.id, &date, 16), Some(CALLER), "call-16");
    let answer = results(&post(&org.agent, &sixteen).await);
    let ids: Vec<String> = answer.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids, (0..16).map(|i| format!("m{i}")).collect::<Vec<_>>(), "in the calls' order");
    for (_, id, outcome) in &answer {
        assert!(outcome.is_ok(), "{id}: {outcome:?}");
    }
    let starts: Vec<String> = org
        .staff
        .appointments(&AppointmentQuery::default())
        .await
        .expect("list")
        .iter()
        .map(|a| a.starts_at.format("%H:%M").to_string())
        .collect();
    assert_eq!(starts.len(), 16);
    assert_eq!((starts[0].as_str(), starts[15].as_str()), ("09:00", "16:30"));
}

/// A type of visit only the clinic's staff book: 45 minutes.
async fn surgery_consult(org: &TestOrg) -> shared::api::AppointmentType {
    let kind = CreateAppointmentType {
        name: "Surgery consult".into(),
        duration_minutes: 45,
        bookable_by_agent: Some(false),
        ..Default::default()
    };
    org.admin.create_appointment_type(&kind).await.expect("type")
}

async fn a_caller_books_a_kind_of_visit_by_its_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let new_patient = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            name: "New patient visit".into(),
            duration_minutes: 60,
            buffer_after_minutes: Some(15),
            ..Default::default()
        })
        .await
        .expect("type");
    surgery_consult(&org).await;
    let listed =
        only(&post(&org.agent, &message(vec![call("l", "list_providers", json!({}))], Some(CALLER), "c1")).await)
            .expect("listed");
    assert!(listed.contains("New patient visit (60 minutes)") && !listed.contains("Surgery"), "{listed}");

    let date = date_str(days_ahead(12));
    let check = json!({"provider_name": "Smith", "date": date, "appointment_type": "new patient"});
    let free =
        only(&post(&org.agent, &message(vec![call("c", "check_availability", check)], Some(CALLER), "c1")).await)
            .expect("free");
    assert!(free.contains("Dr. John Smith for a New patient visit is free") && free.contains("9:00 AM"), "{free}");
    let args = json!({"provider_name": "Dr Smith", "appointment_type": "a new patient appointment",
                      "appointment_date": date, "appointment_time": "09:00", "patient_name": "Ada"});
    let booked = only(&post(&org.agent, &message(vec![call("b", "book_appointment", args)], Some(CALLER), "c1")).await)
        .expect("booked");
    assert!(booked.contains("booked for a New patient visit with Dr. John Smith"), "{booked}");
    let all = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].appointment_type_id, all[0].ends_at.format("%H:%M").to_string()),
        (Some(new_patient.id), "10:00".into())
    );

    // The buffer after the visit is kept from the next caller too.
    let next =
        json!({"provider_id": smith.id, "appointment_date": date, "appointment_time": "10:00", "patient_name": "Bo"});
    let refused =
        only(&post(&org.agent, &message(vec![call("n", "book_appointment", next)], Some(OTHER_CALLER), "c2")).await)
            .expect_err("inside the buffer");
    assert!(refused.contains("isn't free"), "{refused}");

    let staff_only = json!({"provider_id": smith.id, "appointment_type": "surgery", "appointment_date": date,
                            "appointment_time": "14:00", "patient_name": "Ada"});
    let refused =
        only(&post(&org.agent, &message(vec![call("s", "book_appointment", staff_only)], Some(CALLER), "c3")).await)
            .expect_err("staff only");
    assert!(refused.contains("booked by the clinic's staff"), "{refused}");
    let unknown = json!({"provider_id": smith.id, "appointment_type": "massage", "appointment_date": date,
                         "appointment_time": "14:00", "patient_name": "Ada"});
    let refused =
        only(&post(&org.agent, &message(vec![call("u", "book_appointment", unknown)], Some(CALLER), "c3")).await)
            .expect_err("unknown");
    // What the caller can book, not the kind only staff book.
    assert!(refused.contains("We offer New patient visit (60 minutes).") && !refused.contains("Surgery"), "{refused}");
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1);
}

/// A name that fits several kinds asks which, naming only kinds the caller can book; one that
/// fits only kinds staff book is answered as such.
async fn an_unclear_kind_is_asked_about_among_the_kinds_the_caller_can_book(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    surgery_consult(&org).await;
    for (name, agent) in [("Phone consult", true), ("Video consult", true), ("Surgery review", false)] {
        let kind = CreateAppointmentType {
            name: name.into(),
            duration_minutes: 20,
            bookable_by_agent: Some(agent),
            ..Default::default()
        };
        org.admin.create_appointment_type(&kind).await.expect("type");
    }
    let ask = async |id: &str, kind: &str| {
        let args = json!({"provider_id": smith.id, "date": date_str(days_ahead(12)), "appointment_type": kind});
        only(&post(&org.agent, &message(vec![call(id, "check_availability", args)], Some(CALLER), "c-k")).await)
            .expect_err("unclear")
    };
    let consult = ask("a", "consult").await;
    assert_eq!(consult, "Did you mean Phone consult (20 minutes) or Video consult (20 minutes)?");
    let surgery = ask("b", "surgery").await;
    assert!(surgery.contains("is booked by the clinic's staff"), "{surgery}");
}

/// A day past the booking window is answered with the window, as booking it would be, not as a
/// day with no free times.
async fn a_day_past_the_booking_window_is_answered_with_the_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, _) = clinic(&app).await;
    let checkup = CreateAppointmentType {
        name: "Checkup".into(),
        duration_minutes: 30,
        max_advance_days: Some(30),
        ..Default::default()
    };
    org.admin.create_appointment_type(&checkup).await.expect("type");
    let ask = async |id: &str, days: i64, kind: Option<&str>| {
        let mut args = json!({"provider_name": "Smith", "date": date_str(days_ahead(days))});
        if let Some(kind) = kind {
            args["appointment_type"] = json!(kind);
        }
        only(&post(&org.agent, &message(vec![call(id, "check_availability", args)], Some(CALLER), "c-w")).await)
    };
    let far = ask("a", 40, Some("checkup")).await.expect_err("past the type's window");
    assert!(far.contains("Checkup can be booked at most 30 days ahead. Could you pick an earlier date?"), "{far}");
    let plain = ask("b", 40, None).await.expect("within every booking's 365 days");
    assert!(plain.contains("is free"), "{plain}");
    let beyond = ask("c", 400, None).await.expect_err("past every booking's window");
    assert!(beyond.contains("at most 365 days ahead"), "{beyond}");
}

/// A move keeps the appointment's own type, which the store reads in the move's transaction: a
/// voice agent cannot move a visit of a type only staff book.
async fn a_caller_cannot_move_a_visit_only_staff_book(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let surgery = surgery_consult(&org).await;
    let day = days_ahead(12);
    let input = shared::api::BookingInput {
        appointment_type_id: Some(surgery.id),
        patient_phone: Some(CALLER.into()),
        ..booking(smith.id, day, "14:00")
    };
    let booked = org.staff.book(&input).await.expect("staff books it");
    let args = json!({"confirmation_code": booked.confirmation_code, "appointment_date": date_str(day),
                      "appointment_time": "15:00"});
    let refused =
        only(&post(&org.agent, &message(vec![call("m", "reschedule_appointment", args)], Some(CALLER), "c1")).await)
            .expect_err("staff only");
    assert!(refused.contains("booked by the clinic's staff"), "{refused}");
    let kept = org.staff.appointment(booked.appointment_id).await.expect("read");
    assert_eq!(kept.starts_at.format("%H:%M").to_string(), "14:00");
    // Said before any times are offered, not once the caller has picked one.
    let args = json!({"provider_id": smith.id, "date": date_str(day), "appointment_type": "surgery consult"});
    let refused =
        only(&post(&org.agent, &message(vec![call("q", "check_availability", args)], Some(CALLER), "c1")).await)
            .expect_err("staff only");
    assert!(refused.starts_with("A Surgery consult is booked by the clinic's staff"), "{refused}");
    assert!(refused.contains("call the front desk") && !refused.contains("call you back"), "{refused}");
}

/// A visit that has begun (here: missed, not yet marked) is not the voice agent's to cancel or
/// move: the caller is sent to the front desk, and nothing changes or is sent.
async fn a_caller_cannot_cancel_or_move_a_visit_that_has_begun(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let input =
        shared::api::BookingInput { patient_phone: Some(CALLER.into()), ..booking(smith.id, days_ahead(1), "09:00") };
    let booked = org.staff.book(&input).await.expect("booked");
    // Begun five minutes ago, and not over.
    let into_it = booked.starts_at.with_timezone(&chrono::Utc) - chrono::Utc::now() + chrono::Duration::minutes(5);
    crate::attendance::shift(&app, booked.appointment_id, into_it).await;
    let found = only(
        &post(&org.agent, &message(vec![call("x0", "find_appointments", json!({}))], Some(CALLER), "call-late")).await,
    );
    assert_eq!(found.as_deref(), Ok("I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it."), "a visit under way is not upcoming");
    let code = json!({"confirmation_code": booked.confirmation_code});
    let moved = json!({"confirmation_code": booked.confirmation_code, "appointment_date": date_str(days_ahead(5)),
                       "appointment_time": "10:00"});
    for (id, tool, args) in [("x1", "cancel_appointment", code), ("x2", "reschedule_appointment", moved)] {
        let refused = only(&post(&org.agent, &message(vec![call(id, tool, args)], Some(CALLER), "call-late")).await)
            .expect_err("begun");
        assert!(refused.contains("already started") && refused.contains("front desk"), "{tool}: {refused}");
    }
    let kept = org.staff.appointment(booked.appointment_id).await.expect("read");
    assert_eq!(kept.status, AppointmentStatus::Pending);
    let id = booking_service::domain::AppointmentId(booked.appointment_id);
    let trail = app.store.audit_trail(org.id.into(), id.into(), &every()).await.map(|page| page.items).expect("audit");
    assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["booked"], "nothing changed");
}

/// Seven appointments are not read out in one breath: five are, and the caller hears how many
/// more there are; a move with a provider who has left is not sent round to "another day".
async fn long_lists_say_what_is_left_and_a_departed_provider_is_said_so(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let mut codes = Vec::new();
    for day in 0..7 {
        let input = shared::api::BookingInput {
            patient_phone: Some(CALLER.into()),
            ..booking(smith.id, days_ahead(3 + day), "10:00")
        };
        codes.push(org.staff.book(&input).await.expect("booked").confirmation_code);
    }
    let found =
        only(&post(&org.agent, &message(vec![call("f", "find_appointments", json!({}))], Some(CALLER), "c")).await)
            .expect("found");
    assert!(found.starts_with("You have 7 upcoming appointments:") && found.ends_with(", and 2 more."), "{found}");

    org.admin.deactivate_provider(smith.id).await.expect("the provider leaves");
    let args = json!({"confirmation_code": codes[0], "appointment_date": date_str(days_ahead(20)), "appointment_time": "11:00"});
    let refused =
        only(&post(&org.agent, &message(vec![call("m", "reschedule_appointment", args)], Some(CALLER), "c")).await)
            .expect_err("no longer taking appointments");
    assert!(refused.contains("is no longer taking appointments") && refused.contains("front desk"), "{refused}");
}

async fn rebooking_the_same_slot_within_a_call_returns_the_existing_booking(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let args = json!({"provider_id": smith.id, "appointment_date": date_str(days_ahead(12)), "appointment_time": "13:00", "patient_name": "Ada"});
    let first = only(
        &post(&org.agent, &message(vec![call("a", "book_appointment", args.clone())], Some(CALLER), "call-x")).await,
    )
    .expect("booked");
    let second = only(
        &post(&org.agent, &message(vec![call("b", "book_appointment", args.clone())], Some(CALLER), "call-x")).await,
    )
    .expect("the model asking again gets the same booking");
    assert_eq!(first, second);
    // Another call (or another caller) asking for that slot finds it taken, with alternatives.
    let taken = only(
        &post(&org.agent, &message(vec![call("c", "book_appointment", args)], Some(OTHER_CALLER), "call-y")).await,
    )
    .expect_err("taken");
    assert!(
        taken.contains("isn't free") && taken.contains("nearest free times are") && taken.contains("12:30 PM"),
        "{taken}"
    );
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1);
}

/// A caller at the clinic's limit says "cancel that one and book Thursday instead": the model
/// sends both calls in one message, and the booking follows the cancellation, seeing it (the calls
/// of a message that writes run one after the other). Run concurrently, the booking counted the
/// appointment being cancelled and was refused as over the limit.
async fn a_cancellation_and_a_booking_in_one_message_run_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let settings = org.admin.settings().await.expect("settings");
    org.admin.set_settings(&shared::api::Settings { max_active_per_caller: 1, ..settings }).await.expect("saved");
    let held = message(vec![book_call("h1", smith.id, &date_str(days_ahead(5)), "10:00", "Ada")], Some(CALLER), "c-1");
    only(&post(&org.agent, &held).await).expect("booked");
    let mut code =
        org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].confirmation_code.clone();
    for round in 0..3 {
        let instead = date_str(days_ahead(6 + round));
        let calls = vec![
            call(&format!("x{round}"), "cancel_appointment", json!({"confirmation_code": code})),
            book_call(&format!("y{round}"), smith.id, &instead, "14:00", "Ada"),
        ];
        let answer = results(&post(&org.agent, &message(calls, Some(CALLER), &format!("c-2-{round}"))).await);
        let [(_, _, cancelled), (_, _, booked)] = &answer[..] else { panic!("{answer:?}") };
        assert!(cancelled.is_ok(), "round {round}: {cancelled:?}");
        let booked = booked.as_ref().unwrap_or_else(|e| panic!("round {round}: the booking after it: {e}"));
        let listed = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
        let standing = listed.into_iter().find(|a| a.status == AppointmentStatus::Pending).expect("the new one");
        assert!(booked.contains(&spoken(&standing.confirmation_code)), "{booked}");
        code = standing.confirmation_code;
    }
}

/// The same slot asked for again in the call after the booking was cancelled (or moved away) is
/// booked anew: the earlier answer no longer holds.
async fn a_slot_asked_for_again_after_its_booking_was_cancelled_is_booked_anew(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let args = json!({"provider_id": smith.id, "appointment_date": date_str(days_ahead(12)), "appointment_time": "13:00", "patient_name": "Ada"});
    let book = |id: &str| message(vec![call(id, "book_appointment", args.clone())], Some(CALLER), "call-x");
    let first = only(&post(&org.agent, &book("a")).await).expect("booked");
    let booked = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    org.staff.cancel(booked[0].id, Some("changed their mind")).await.expect("cancelled");
    let again = only(&post(&org.agent, &book("b")).await).expect("booked again");
    assert_ne!(first, again, "a new booking, with its own code");
    let active: Vec<_> = org
        .staff
        .appointments(&AppointmentQuery::default())
        .await
        .expect("list")
        .into_iter()
        .filter(|a| a.status == AppointmentStatus::Pending)
        .collect();
    assert_eq!(active.len(), 1);
    assert!(again.contains(&spoken(&active[0].confirmation_code)), "{again}");
    // Asked once more, it is that new booking the caller holds (it was "not free" once).
    let once_more = only(&post(&org.agent, &book("c")).await).expect("the new booking");
    assert_eq!(once_more, again);
    // And so on through the fifth rebooking in the call, each found when asked once more.
    let mut answers = vec![first, again];
    for n in 2..=5 {
        let pending = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
        let standing = pending.iter().find(|a| a.status == AppointmentStatus::Pending).expect("the standing one");
        org.staff.cancel(standing.id, None).await.expect("cancelled");
        let rebooked = only(&post(&org.agent, &book(&format!("r{n}"))).await).expect("booked anew");
        assert!(!answers.contains(&rebooked), "rebooking {n} is a new booking: {rebooked}");
        let asked_again = only(&post(&org.agent, &book(&format!("q{n}"))).await);
        assert_eq!(asked_again.as_deref(), Ok(rebooked.as_str()), "rebooking {n}, asked once more");
        answers.push(rebooked);
    }
}

/// A parent booking two children at the same time in one call: the second is a booking of its
/// own, which finds the time taken, not the first child's booking told again as theirs; the
/// first child's asked again (another tool call id) is still its booking, and says so when asked
/// with an email it was not booked with.
async fn the_same_slot_for_another_patient_in_the_call_is_not_the_first_ones_booking(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let book = |id: &str, name: &str| {
        let args = json!({"provider_id": smith.id, "appointment_date": date_str(days_ahead(12)), "appointment_time": "13:00", "patient_name": name});
        message(vec![call(id, "book_appointment", args)], Some(CALLER), "call-family")
    };
    let ada = only(&post(&org.agent, &book("a", "Ada Ngata")).await).expect("booked");
    assert!(ada.starts_with("You're booked"), "{ada}");
    let ben = only(&post(&org.agent, &book("b", "Ben Ngata")).await).expect_err("refused");
    assert!(ben.contains("isn't free"), "Ben has no booking: {ben}");
    let again = only(&post(&org.agent, &book("c", "ada  ngata")).await).expect("the first booking");
    assert_eq!(again, ada);
    let booked = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert_eq!(booked.len(), 1, "{booked:?}");
    // Asked again with an email put right, it is still the booking as made, and the caller is
    // told so rather than led to think the email changed.
    let args = json!({"provider_id": smith.id, "appointment_date": date_str(days_ahead(12)), "appointment_time": "13:00", "patient_name": "Ada Ngata", "patient_email": "ada@example.com"});
    let corrected = message(vec![call("d", "book_appointment", args)], Some(CALLER), "call-family");
    let told = only(&post(&org.agent, &corrected).await).expect("the first booking");
    assert!(told.starts_with(&ada) && told.contains("stands as first made"), "{told}");
    let kept = org.staff.appointment(booked[0].id).await.expect("read");
    assert_eq!((kept.patient.email, kept.confirmation_code), (None, booked[0].confirmation_code.clone()));
}

/// A caller who does not know the code hears their appointments with their codes and is asked
/// which, for a cancellation or a move alike, and so does one whose code is not theirs; nothing
/// changes until they name one.
async fn a_caller_without_the_code_hears_their_appointments_and_is_asked_which(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(13));
    for (id, time) in [("b1", "09:00"), ("b2", "11:00")] {
        only(&post(&org.agent, &message(vec![book_call(id, smith.id, &date, time, "Ada")], Some(CALLER), id)).await)
            .expect("booked");
    }
    let booked = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    let ask = |id: &str, tool: &str, args: Value| message(vec![call(id, tool, args)], Some(CALLER), "call-which");
    let moved = json!({"appointment_date": date, "appointment_time": "15:00"});
    for (id, tool, args) in [("w1", "cancel_appointment", json!({})), ("w2", "reschedule_appointment", moved)] {
        let asked = only(&post(&org.agent, &ask(id, tool, args)).await).expect_err("asked which");
        assert!(
            asked.starts_with("You have 2 upcoming appointments") && asked.ends_with("Which one do you mean?"),
            "{asked}"
        );
        for a in &booked {
            assert!(asked.contains(&spoken(&a.confirmation_code)), "{tool}: {asked}");
        }
    }
    let wrong = only(&post(&org.agent, &ask("w3", "cancel_appointment", json!({"confirmation_code": "ZZZ999"}))).await);
    let wrong = wrong.expect_err("not theirs");
    assert!(
        wrong.starts_with("I couldn't find an appointment with the code") && wrong.contains("You have 2"),
        "{wrong}"
    );
    let unchanged = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert_eq!(unchanged, booked, "nothing cancelled or moved");
}

async fn a_caller_cannot_see_or_touch_another_callers_appointments(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(13));
    let book = book_call("b1", smith.id, &date, "09:00", "Ada");
    only(&post(&org.agent, &message(vec![book], Some(CALLER), "call-1")).await).expect("booked");
    let code = org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].confirmation_code.clone();

    let find = only(
        &post(&org.agent, &message(vec![call("o1", "find_appointments", json!({}))], Some(OTHER_CALLER), "call-2"))
            .await,
    )
    .expect("answered");
    assert_eq!(find, "I don't see any upcoming appointments under the number you're calling from. If one was booked under another number, the clinic's staff can find it.");
    let cancel = only(
        &post(
            &org.agent,
            &message(
                vec![call("o2", "cancel_appointment", json!({"confirmation_code": code}))],
                Some(OTHER_CALLER),
                "call-2",
            ),
        )
        .await,
    );
    assert!(cancel.expect_err("refused").contains("couldn't find an appointment"));
    let moved = call(
        "o3",
        "reschedule_appointment",
        json!({"confirmation_code": code, "appointment_date": date, "appointment_time": "10:00"}),
    );
    assert!(only(&post(&org.agent, &message(vec![moved], Some(OTHER_CALLER), "call-2")).await).is_err());
    let anonymous =
        only(&post(&org.agent, &message(vec![call("o4", "find_appointments", json!({}))], None, "call-3")).await);
    assert!(anonymous.expect_err("no number").contains("without hiding your number"));
    // A web call's customer number is the page's word, not the telephone network's: no caller.
    let mut web = message(vec![call("o5", "find_appointments", json!({}))], Some(CALLER), "call-web");
    web["message"]["call"]["type"] = json!("webCall");
    let web = only(&post(&org.agent, &web).await);
    assert!(web.expect_err("no number").contains("without hiding your number"), "Ada's are not read out");
    // A withheld number as the telephony layer reports it (ANONYMOUS on a keypad) is no number:
    // every hidden caller would share it, and hear the others' appointments.
    let hidden = |id: &str| message(vec![book_call(id, smith.id, &date, "11:00", "Hidden")], Some("+266696687"), id);
    let booked = only(&post(&org.agent, &hidden("h1")).await).expect("a hidden caller books");
    assert!(booked.contains("number is hidden") && booked.contains("clinic's staff"), "{booked}");
    let find = call("h2", "find_appointments", json!({}));
    let heard = only(&post(&org.agent, &message(vec![find], Some("+266696687"), "call-h2")).await);
    assert!(heard.expect_err("no number").contains("without hiding your number"));
    let booked = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    let hidden_one = booked.iter().find(|a| a.patient.name.as_deref() == Some("Hidden")).expect("booked");
    assert_eq!(hidden_one.patient.phone, None, "no placeholder kept as the patient's number");
    let still = &org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0];
    assert_eq!(
        (still.status, still.starts_at.format("%H:%M").to_string()),
        (AppointmentStatus::Pending, "09:00".into())
    );

    // Another clinic's agent cannot reach it either, even with the right code and number.
    let other_clinic = app.org("UTC").await;
    let theirs = only(
        &post(
            &other_clinic.agent,
            &message(
                vec![call("x1", "cancel_appointment", json!({"confirmation_code": code}))],
                Some(CALLER),
                "call-4",
            ),
        )
        .await,
    );
    assert!(theirs.is_err());
    assert_eq!(
        org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].status,
        AppointmentStatus::Pending
    );
}

async fn bad_requests_get_speakable_errors_never_a_5xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(14));
    let book = |time: &str, date: &str| json!({"provider_id": smith.id, "appointment_date": date, "appointment_time": time, "patient_name": "Ada"});
    let cases = vec![
        (call("e1", "book_appointment", book("14:00", &date_str(days_ahead(-3)))), "already passed"),
        (call("e2", "book_appointment", book("25:99", &date)), "valid time"),
        (
            call(
                "e3",
                "book_appointment",
                json!({"provider_name": "Dr. Who", "appointment_date": date, "appointment_time": "10:00"}),
            ),
            "couldn't find a provider called Dr. Who",
        ),
        (
            call(
                "e4",
                "book_appointment",
                json!({"provider_name": "J", "appointment_date": date, "appointment_time": "10:00"}),
            ),
            "Did you mean Dr. Jane Jones or Dr. John Smith?",
        ),
        (call("e5", "book_appointment", Value::String("{broken".into())), "couldn't read the details"),
        (call("e6", "book_appointment", book("07:00", &date)), "isn't available"),
        (call("e7", "check_availability", json!({"provider_id": smith.id, "date": "someday"})), "which day you mean"),
        (call("e8", "cancel_appointment", json!({"confirmation_code": "not a code"})), "confirmation code"),
        (
            call(
                "e9",
                "book_appointment",
                json!({"provider_id": smith.id, "appointment_date": date, "appointment_time": "10:00", "patient_name": "Ada\nBcc: x"}),
            ),
            "name",
        ),
        (call("e10", "nonexistent", json!({})), "no tool called nonexistent"),
        (
            call(
                "e11",
                "book_appointment",
                json!({"provider_id": smith.id, "appointment_date": date, "appointment_time": "10:00"}),
            ),
            "What name should I book the appointment under?",
        ),
        // More words than a name has: none is matched (each word would be tried on every name).
        (
            call(
                "e12",
                "book_appointment",
                json!({"provider_name": "j ".repeat(10_000), "appointment_date": date, "appointment_time": "10:00"}),
            ),
            "couldn't find a provider called",
        ),
    ];
    let calls: Vec<Value> = cases.iter().map(|(c, _)| c.clone()).collect();
    let answer = results(&post(&org.agent, &message(calls, Some(CALLER), "call-e")).await);
    for ((_, id, outcome), (_, expected)) in answer.iter().zip(&cases) {
        let error = outcome.as_ref().expect_err(id);
        assert!(error.contains(expected), "{id}: {error:?} should mention {expected:?}");
    }
    assert!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").is_empty(), "nothing was booked");

    // Not a Vapi message at all: API errors, not 5xx.
    let not_json =
        org.agent.request(Method::POST, "/api/vapi/tools").header("content-type", "application/json").body("{oops");
    assert_error(org.agent.send::<Value>(not_json).await, 400, "bad_request");
    let status_update = json!({"message": {"type": "status-update"}}).to_string();
    for content_type in [None, Some("text/plain")] {
        let mut request = org.agent.request(Method::POST, "/api/vapi/tools").body(status_update.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_error(org.agent.send::<Value>(request).await, 415, "unsupported_media_type");
    }
    let no_message = org.agent.request(Method::POST, "/api/vapi/tools").json(&json!({"type": "tool-calls"}));
    assert_error(org.agent.send::<Value>(no_message).await, 422, "validation_failed");
    let staff = org.staff.request(Method::POST, "/api/vapi/tools").json(&message(vec![], Some(CALLER), "c"));
    assert_error(org.staff.send::<Value>(staff).await, 403, "forbidden");
}

async fn other_message_types_are_answered_with_an_empty_object(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    for kind in ["status-update", "end-of-call-report", "conversation-update", "speech-update", "hang", "something-new"]
    {
        let answer =
            post(&org.agent, &json!({"message": {"type": kind, "status": "ended", "call": {"id": "c"}}})).await;
        assert_eq!(answer, json!({}), "{kind}");
    }
}

async fn the_tool_definitions_describe_all_seven_tools(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let tools: Value =
        org.agent.send(org.agent.request(Method::GET, "/api/vapi/tool-definitions")).await.expect("definitions");
    let names: Vec<&str> =
        tools.as_array().expect("array").iter().map(|t| t["function"]["name"].as_str().expect("name")).collect();
    assert_eq!(
        names,
        [
            "list_providers",
            "check_availability",
            "book_appointment",
            "find_appointments",
            "cancel_appointment",
            "reschedule_appointment",
            "get_clinic_info"
        ]
    );
    for t in tools.as_array().expect("array") {
        assert_eq!(t["type"], "function");
        assert_eq!(t["async"], false, "a booking must not be confirmed before it is written");
        assert_eq!(t["function"]["parameters"]["type"], "object");
    }
    assert_error(
        app.anon.send::<Value>(app.anon.request(Method::GET, "/api/vapi/tool-definitions")).await,
        401,
        "unauthorized",
    );
}

async fn with_a_secret_set_the_vapi_signature_is_required(backend: Backend) {
    let db = std::sync::Arc::new(TestDatabase::create(backend).await.expect("database"));
    let app = spawn_on(db, |c| c.vapi_hmac_secret = Some("whsec_test".into())).await;
    let org = app.org("UTC").await;
    let check = SignatureCheck::new(b"whsec_test", "x-signature", "x-timestamp", 300).expect("check");
    let body = message(vec![call("s1", "list_providers", json!({}))], Some(CALLER), "call-s").to_string();
    let send = |signature: Option<String>, timestamp: i64| {
        let mut req = org
            .agent
            .request(Method::POST, "/api/vapi/tools")
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(sig) = signature {
            req = req.header("x-signature", sig).header("x-timestamp", timestamp.to_string());
        }
        req.send()
    };
    let now = chrono::Utc::now().timestamp();
    let good = send(Some(check.sign(&now.to_string(), body.as_bytes())), now).await.expect("sent");
    assert_eq!(good.status(), 200);
    let unsigned = send(None, now).await.expect("sent");
    assert_eq!(unsigned.status(), 401);
    let forged = send(
        Some(
            SignatureCheck::new(b"wrong", "x-signature", "x-timestamp", 300)
                .expect("c")
                .sign(&now.to_string(), body.as_bytes()),
        ),
        now,
    )
    .await
    .expect("sent");
    assert_eq!(forged.status(), 401);
    let old = now - 3600;
    let stale = send(Some(check.sign(&old.to_string(), body.as_bytes())), old).await.expect("sent");
    assert_eq!(stale.status(), 401);
    let millis = now * 1000;
    let in_ms = send(Some(check.sign(&millis.to_string(), body.as_bytes())), millis).await.expect("sent");
    assert_eq!(in_ms.status(), 200, "timestamps in milliseconds are read too");
}

async fn a_day_without_openings_is_answered_with_the_next_one(backend: Backend) {
    use chrono::Datelike;
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let mondays = org
        .provider_with(CreateProvider {
            name: "Dr. Monday".into(),
            appointment_minutes: Some(60),
            working_hours: Some(nine_to_five(&[shared::api::Weekday::Mon])),
            ..Default::default()
        })
        .await;
    let mut tuesday = days_ahead(3);
    while tuesday.weekday() != chrono::Weekday::Tue {
        tuesday = tuesday.succ_opt().expect("date");
    }
    let monday = tuesday + chrono::Duration::days(6);
    // The next Monday's first hour is taken, so the next opening is 10:00.
    org.agent.book(&booking(mondays.id, monday, "09:00")).await.expect("booked");
    let check = call("n1", "check_availability", json!({"provider_id": mondays.id, "date": date_str(tuesday)}));
    let answer = only(&post(&org.agent, &message(vec![check], Some(CALLER), "call-n")).await).expect("answered");
    let expected = format!("The next opening is {} at 10:00 AM.", monday.format("%A, %B %-d"));
    assert!(answer.starts_with("Dr. Monday has no free times on") && answer.ends_with(&expected), "{answer}");
}

/// find_appointments asks the database for the caller's active appointments: read from a page of
/// every status (500 at most), one that stands behind more than a page of cancelled ones was cut
/// off, and the caller heard they had none while their limit counted it.
async fn a_caller_behind_a_page_of_cancelled_appointments_still_hears_theirs(backend: Backend) {
    use futures::stream::{self, StreamExt};
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let page = i64::from(booking_service::store::MAX_PAGE);
    let cancelled = stream::iter(0..=page)
        .map(|i| {
            let staff = org.staff.clone();
            let day = days_ahead(2 + i / 16);
            let time = format!("{:02}:{:02}", 9 + (i % 16) / 2, (i % 2) * 30);
            async move {
                let input = BookingInput { patient_phone: Some(CALLER.into()), ..booking(smith.id, day, &time) };
                let booked = staff.book(&input).await.expect("booked");
                staff.cancel(booked.appointment_id, None).await.expect("cancelled");
            }
        })
        .buffer_unordered(4)
        .count()
        .await;
    assert_eq!(cancelled as i64, page + 1);
    let book = book_call("b", smith.id, &date_str(days_ahead(40)), "10:00", "Ada");
    only(&post(&org.agent, &message(vec![book], Some(CALLER), "call-p")).await).expect("booked");
    let find = call("f", "find_appointments", json!({}));
    let found = only(&post(&org.agent, &message(vec![find], Some(CALLER), "call-p")).await).expect("answered");
    assert!(found.starts_with("You have one upcoming appointment: with Dr."), "{found}");
}

/// Providers who left stay on the clinic's list, inactive: behind a whole page of them (by name),
/// the voice agent still offers, books and names the provider who did not.
async fn a_clinic_behind_a_page_of_departed_providers_still_offers_its_own(backend: Backend) {
    use futures::stream::{self, StreamExt};
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let page = booking_service::store::MAX_PAGE;
    let departed = stream::iter(0..=page)
        .map(|i| {
            let admin = org.admin.clone();
            async move {
                let body = shared::api::CreateProvider { name: format!("Aaron {i}"), ..Default::default() };
                let created = admin.create_provider(&body).await.expect("created");
                admin.deactivate_provider(created.id).await.expect("departed");
            }
        })
        .buffer_unordered(4)
        .count()
        .await;
    assert_eq!(departed, page as usize + 1);
    let listed =
        only(&post(&org.agent, &message(vec![call("l", "list_providers", json!({}))], Some(CALLER), "c")).await)
            .expect("listed");
    assert!(listed.contains(&smith.name) && !listed.contains("Aaron"), "{listed}");
    let book = call(
        "b",
        "book_appointment",
        json!({"provider_name": "Smith", "appointment_date": date_str(days_ahead(6)), "appointment_time": "10:00", "patient_name": "Ada"}),
    );
    only(&post(&org.agent, &message(vec![book], Some(CALLER), "c")).await).expect("booked by name");
    let find = call("f", "find_appointments", json!({}));
    let found = only(&post(&org.agent, &message(vec![find], Some(CALLER), "c")).await).expect("found");
    assert!(found.contains(&format!("with {} on", smith.name)), "{found}");
}

/// Each move sends the caller an email and an SMS: the voice agent moves one appointment five
/// times at most, as the manage link does, and the sixth is sent to the clinic's staff.
async fn a_caller_moves_one_appointment_five_times_at_most(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let book = book_call("b", smith.id, &date_str(days_ahead(12)), "09:00", "Ada");
    only(&post(&org.agent, &message(vec![book], Some(CALLER), "call-m")).await).expect("booked");
    let code = org.staff.appointments(&AppointmentQuery::default()).await.expect("list")[0].confirmation_code.clone();
    let move_to = |n: usize, time: &str| {
        let args =
            json!({"confirmation_code": code, "appointment_date": date_str(days_ahead(12)), "appointment_time": time});
        // A call of its own each time: the cap is the appointment's, not one call's.
        message(vec![call(&format!("m{n}"), "reschedule_appointment", args)], Some(CALLER), &format!("call-m{n}"))
    };
    for n in 0..5 {
        let time = if n % 2 == 0 { "10:00" } else { "11:00" };
        only(&post(&org.agent, &move_to(n, time)).await).unwrap_or_else(|e| panic!("move {}: {e}", n + 1));
    }
    let refused = only(&post(&org.agent, &move_to(5, "11:00")).await).expect_err("a sixth move");
    assert!(refused.contains("moved 5 times") && refused.contains("clinic's staff"), "{refused}");
    let read = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert_eq!(read[0].starts_at.format("%H:%M").to_string(), "10:00", "where the fifth move left it");
}

on_both_backends!(
    a_cancellation_and_a_booking_in_one_message_run_in_order,
    a_day_past_the_booking_window_is_answered_with_the_window,
    an_unclear_kind_is_asked_about_among_the_kinds_the_caller_can_book,
    a_clinic_behind_a_page_of_departed_providers_still_offers_its_own,
    the_provider_and_the_half_of_the_day_are_asked_only_when_unclear,
    a_caller_moves_one_appointment_five_times_at_most,
    a_caller_behind_a_page_of_cancelled_appointments_still_hears_theirs,
    a_caller_books_a_kind_of_visit_by_its_name,
    a_caller_cannot_move_a_visit_only_staff_book,
    a_caller_cannot_cancel_or_move_a_visit_that_has_begun,
    long_lists_say_what_is_left_and_a_departed_provider_is_said_so,
    a_day_without_openings_is_answered_with_the_next_one,
    a_caller_lists_checks_books_finds_moves_and_cancels,
    every_list_form_is_read_and_parallel_calls_answer_in_order,
    a_repeated_tool_call_id_gets_its_first_answer_on_any_instance,
    a_cancellation_keeps_its_answer_with_it,
    a_tool_call_id_reused_by_another_call_or_caller_gets_its_own_answer,
    a_reused_tool_call_id_is_replayed_only_for_the_same_arguments,
    the_same_slot_for_another_patient_in_the_call_is_not_the_first_ones_booking,
    a_caller_without_the_code_hears_their_appointments_and_is_asked_which,
    a_message_of_more_than_sixteen_tool_calls_runs_none_of_them,
    rebooking_the_same_slot_within_a_call_returns_the_existing_booking,
    a_slot_asked_for_again_after_its_booking_was_cancelled_is_booked_anew,
    a_caller_cannot_see_or_touch_another_callers_appointments,
    bad_requests_get_speakable_errors_never_a_5xx,
    other_message_types_are_answered_with_an_empty_object,
    the_tool_definitions_describe_all_seven_tools,
    with_a_secret_set_the_vapi_signature_is_required,
);
