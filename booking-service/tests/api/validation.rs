use crate::helpers::*;
use reqwest::Method;
use serde_json::json;
use shared::api::{
    self as api, AppointmentQuery, BookingInput, CreateOrganization, CreateProvider, Weekday, WorkingHours,
};

async fn every_bad_input_gets_its_code_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let good = booking(provider.id, days_ahead(3), "10:00");
    let with = |f: &dyn Fn(&mut BookingInput)| {
        let mut input = good.clone();
        f(&mut input);
        input
    };
    let cases: Vec<(&str, BookingInput, &str)> = vec![
        ("missing provider_id", with(&|i| i.provider_id = None), "provider_id"),
        ("missing date", with(&|i| i.appointment_date = None), "appointment_date"),
        ("missing time", with(&|i| i.appointment_time = None), "appointment_time"),
        ("malformed date", with(&|i| i.appointment_date = Some("15/01/2027".into())), "appointment_date"),
        ("impossible date", with(&|i| i.appointment_date = Some("2027-02-30".into())), "appointment_date"),
        ("25:99", with(&|i| i.appointment_time = Some("25:99".into())), "appointment_time"),
        ("2 PM", with(&|i| i.appointment_time = Some("2 PM".into())), "appointment_time"),
        ("past", with(&|i| i.appointment_date = Some(date_str(days_ahead(-2)))), "appointment_date"),
        ("beyond 365 days", with(&|i| i.appointment_date = Some(date_str(days_ahead(367)))), "appointment_date"),
        ("4 minutes", with(&|i| i.duration_minutes = Some(4)), "duration_minutes"),
        ("481 minutes", with(&|i| i.duration_minutes = Some(481)), "duration_minutes"),
        ("bad phone", with(&|i| i.patient_phone = Some("call me".into())), "patient_phone"),
        ("bad email", with(&|i| i.patient_email = Some("ada@".into())), "patient_email"),
        ("header injection", with(&|i| i.patient_email = Some("a@b.com\r\nBcc: x@y.com".into())), "patient_email"),
        ("name on two lines", with(&|i| i.patient_name = Some("Ada\r\nBcc: x@y.com".into())), "patient_name"),
        ("long notes", with(&|i| i.notes = Some("x".repeat(2001))), "notes"),
    ];
    for (case, input, field) in cases {
        let err = org.agent.book(&input).await.expect_err(case);
        assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{case}: {err}");
        assert_eq!(err.code(), Some("validation_failed"), "{case}");
        assert!(err.to_string().contains(field), "{case}: the message names {field}: {err}");
    }

    let raw = |body: String, content_type: Option<&str>| {
        let mut req = org.agent.request(Method::POST, "/api/vapi/booking").body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async { org.agent.send::<serde_json::Value>(req).await }
    };
    let json_body = |v: serde_json::Value| v.to_string();
    assert_error(raw("{not json".into(), Some("application/json")).await, 400, "bad_request");
    assert_error(
        raw(json_body(json!({"tool_name": "book_appointment", "tool_input": good})), None).await,
        415,
        "unsupported_media_type",
    );
    assert_error(
        raw(json_body(json!({"tool_name": "book_appointment", "tool_input": good})), Some("text/plain")).await,
        415,
        "unsupported_media_type",
    );
    let huge = json!({"tool_name": "book_appointment", "tool_input": good, "padding": "x".repeat(70 * 1024)});
    assert_error(raw(json_body(huge), Some("application/json")).await, 413, "payload_too_large");
    let err = assert_error(
        raw(json_body(json!({"tool_name": "book_appointment", "tool_input": {"provider_id": provider.id, "duration_minutes": "thirty"}})), Some("application/json")).await,
        422,
        "validation_failed",
    );
    assert!(err.to_string().contains("duration_minutes"), "{err}");
    assert_error(
        raw(json_body(json!({"tool_name": "cancel_everything", "tool_input": good})), Some("application/json")).await,
        422,
        "validation_failed",
    );
    assert_error(raw(json_body(json!({"tool_input": good})), Some("application/json")).await, 422, "validation_failed");
    assert_error(org.agent.book(&booking(uuid::Uuid::new_v4(), days_ahead(3), "10:00")).await, 404, "not_found");
    let bad_key = org.agent.book_request(&good, Some("with space"));
    assert_error(org.agent.send::<serde_json::Value>(bad_key).await, 422, "validation_failed");

    // Not one of those requests wrote anything.
    let written = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(org.admin.providers().await.expect("providers").len(), 1);
}

async fn bad_organization_and_provider_fields_are_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let err = assert_error(
        app.platform
            .create_organization(&CreateOrganization { name: "Clinic".into(), timezone: "Mars/Olympus".into() })
            .await,
        422,
        "validation_failed",
    );
    assert!(err.to_string().contains("timezone"));
    // Names the zone database keeps for old times: one offset all year (EST is never EDT), a sign
    // read the other way round (Etc/GMT+5 is UTC-5), no place at all.
    for legacy in ["EST", "MST", "HST", "Etc/GMT+5", "EST5EDT", "NZ", "WET"] {
        let body = CreateOrganization { name: "Clinic".into(), timezone: legacy.into() };
        let err = assert_error(app.platform.create_organization(&body).await, 422, "validation_failed");
        assert!(err.to_string().contains("America/New_York"), "{legacy}: {err}");
    }
    for fine in ["UTC", "Etc/UTC", "GMT", "Zulu", "America/Argentina/Buenos_Aires", "US/Eastern"] {
        let body = CreateOrganization { name: "Clinic".into(), timezone: fine.into() };
        assert_eq!(app.platform.create_organization(&body).await.expect(fine).timezone, fine);
    }
    assert_error(
        app.platform.create_organization(&CreateOrganization { name: " ".into(), timezone: "UTC".into() }).await,
        422,
        "validation_failed",
    );
    let org = app.org("UTC").await;
    let bad: Vec<(&str, CreateProvider)> = vec![
        ("name", CreateProvider { name: "".into(), ..Default::default() }),
        ("timezone", CreateProvider { name: "A".into(), timezone: Some("Nowhere".into()), ..Default::default() }),
        ("timezone", CreateProvider { name: "A".into(), timezone: Some("EST".into()), ..Default::default() }),
        (
            "appointment_minutes",
            CreateProvider { name: "A".into(), appointment_minutes: Some(1000), ..Default::default() },
        ),
        (
            "working_hours",
            CreateProvider {
                name: "A".into(),
                working_hours: Some(vec![WorkingHours {
                    weekday: Weekday::Mon,
                    start: "17:00".into(),
                    end: "09:00".into(),
                }]),
                ..Default::default()
            },
        ),
    ];
    for (field, body) in bad {
        let err = assert_error(org.admin.create_provider(&body).await, 422, "validation_failed");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let unknown_weekday = org
        .admin
        .request(Method::POST, "/api/providers")
        .json(&json!({"name": "A", "working_hours": [{"weekday": "someday", "start": "09:00", "end": "17:00"}]}));
    assert_error(org.admin.send::<serde_json::Value>(unknown_weekday).await, 422, "validation_failed");
    // What was expected, in JSON's words: an integer, not serde's i64.
    let quoted =
        org.admin.request(Method::POST, "/api/providers").json(&json!({"name": "A", "appointment_minutes": "30"}));
    let err = assert_error(org.admin.send::<serde_json::Value>(quoted).await, 422, "validation_failed").to_string();
    assert!(
        err.contains("appointment_minutes") && err.contains("expected an integer") && !err.contains("i64"),
        "{err}"
    );
    assert!(org.admin.providers().await.expect("list").is_empty(), "no invalid provider was written");
    let provider = org.provider().await;
    assert_error(org.agent.availability(provider.id, "tomorrow").await, 422, "validation_failed");
    let missing_date = org.agent.request(Method::GET, &format!("/api/providers/{}/availability", provider.id));
    assert_error(org.agent.send::<serde_json::Value>(missing_date).await, 422, "validation_failed");
    let not_a_uuid = org.agent.request(Method::GET, "/api/providers/42");
    assert_error(org.agent.send::<serde_json::Value>(not_a_uuid).await, 404, "not_found");
}

/// A misspelt field is refused, naming it, rather than read as absent: absent in a PATCH keeps the
/// value (the change meant is silently not made), absent in a PUT resets it.
async fn a_field_a_route_does_not_know_is_refused_by_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let sent = |method: Method, path: &str, body: serde_json::Value| {
        let request = org.admin.request(method, path).json(&body);
        async { org.admin.send::<serde_json::Value>(request).await }
    };
    let refused = |result, field: &str| {
        let err = assert_error(result, 422, "validation_failed").to_string();
        assert!(err.contains(&format!("unknown field `{field}`")), "{field}: {err}");
    };

    let path = format!("/api/providers/{}", provider.id);
    refused(sent(Method::PATCH, &path, json!({"actve": false})).await, "actve");
    assert!(org.admin.provider(provider.id).await.expect("provider").active, "the provider was not deactivated");

    let vapi = api::VapiSettings { assistant_id: Some("asst_front_desk".into()), transfer_number: None };
    org.admin.set_vapi_settings(&vapi).await.expect("vapi settings");
    refused(sent(Method::PUT, "/api/vapi/settings", json!({"assistantId": "asst_other"})).await, "assistantId");
    assert_eq!(org.admin.vapi_settings().await.expect("vapi settings"), vapi, "the assistant was not cleared");

    let settings = org.admin.settings().await.expect("settings");
    let mut body = serde_json::to_value(&settings).expect("settings as JSON");
    body["reminder_offset_minutes"] = json!([30]);
    refused(sent(Method::PUT, "/api/settings", body).await, "reminder_offset_minutes");
    assert_eq!(org.admin.settings().await.expect("settings"), settings);

    let hours = json!({"working_hours": [{"weekday": "sat", "start": "09:00", "end": "12:00", "closed": true}]});
    refused(sent(Method::PATCH, &path, hours).await, "closed");
    assert!(org.admin.provider(provider.id).await.expect("provider").working_hours.is_empty(), "hours unchanged");

    let kind = json!({"name": "Check-up", "duration_minutes": 20, "bookable_by_agents": false});
    refused(sent(Method::POST, "/api/appointment-types", kind).await, "bookable_by_agents");
    assert!(org.admin.appointment_types().await.expect("types").is_empty(), "no type was written");

    // The seed booking body is the voice agent's tool input: what the service does not read is
    // left alone.
    let mut input = serde_json::to_value(booking(provider.id, days_ahead(3), "10:00")).expect("booking as JSON");
    input["caller_mood"] = json!("cheerful");
    let seed = json!({"tool_name": "book_appointment", "tool_input": input, "call_id": "c-1"});
    let booked = org.agent.send::<serde_json::Value>(org.agent.request(Method::POST, "/api/vapi/booking").json(&seed));
    assert_eq!(booked.await.expect("booked")["status"], "pending");
}

on_both_backends!(
    every_bad_input_gets_its_code_and_writes_nothing,
    bad_organization_and_provider_fields_are_named,
    a_field_a_route_does_not_know_is_refused_by_name
);
