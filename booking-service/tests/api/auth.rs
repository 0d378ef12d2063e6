use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;
use shared::Role;

fn sign(claims: &serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).expect("sign")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn bad_tokens_are_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let valid = json!({"sub": "u", "role": "admin", "org_id": org.id, "exp": now() + 600});
    let with = |patch: serde_json::Value| {
        let mut claims = valid.clone();
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                claims.as_object_mut().expect("object").remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none_token),
        ("wrong key", sign(&valid, Algorithm::HS256, b"another-secret-that-is-32-bytes-long!!")),
        ("wrong algorithm", sign(&valid, Algorithm::HS384, SECRET.as_bytes())),
        ("expired", sign(&with(json!({"exp": now() - 120})), Algorithm::HS256, SECRET.as_bytes())),
        ("future nbf", sign(&with(json!({"nbf": now() + 600})), Algorithm::HS256, SECRET.as_bytes())),
        ("future iat", sign(&with(json!({"iat": now() + 600})), Algorithm::HS256, SECRET.as_bytes())),
        ("missing exp", sign(&with(json!({"exp": null})), Algorithm::HS256, SECRET.as_bytes())),
        ("malformed exp", sign(&with(json!({"exp": "tomorrow"})), Algorithm::HS256, SECRET.as_bytes())),
        ("missing org_id", sign(&with(json!({"org_id": null})), Algorithm::HS256, SECRET.as_bytes())),
        ("non-UUID org_id", sign(&with(json!({"org_id": "clinic-1"})), Algorithm::HS256, SECRET.as_bytes())),
        ("missing sub", sign(&with(json!({"sub": null})), Algorithm::HS256, SECRET.as_bytes())),
        // Written as the actor of each change: a NUL is text PostgreSQL cannot store (a 500).
        ("sub with a NUL", sign(&with(json!({"sub": "a\0b"})), Algorithm::HS256, SECRET.as_bytes())),
        ("sub of 257 characters", sign(&with(json!({"sub": "u".repeat(257)})), Algorithm::HS256, SECRET.as_bytes())),
        ("unknown role", sign(&with(json!({"role": "root"})), Algorithm::HS256, SECRET.as_bytes())),
        ("garbage", "not-a-jwt".into()),
    ];
    for (case, token) in cases {
        let result = app.client(token).providers().await;
        let err = result.expect_err(case);
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{case}: {err}");
        assert_eq!(err.code(), Some("unauthorized"), "{case}");
    }
    assert_error(app.anon.providers().await, 401, "unauthorized");
    // A subject of 256 characters writes as any other.
    let long_sub = app.client(sign(&with(json!({"sub": "u".repeat(256)})), Algorithm::HS256, SECRET.as_bytes()));
    long_sub
        .create_provider(&shared::api::CreateProvider { name: "Dr. Long".into(), ..Default::default() })
        .await
        .expect("256");
    // Within the 60 s leeway an expired token still passes; the valid one does.
    let lenient = sign(&with(json!({"exp": now() - 30})), Algorithm::HS256, SECRET.as_bytes());
    app.client(lenient).providers().await.expect("within leeway");
    // NumericDates may be fractional (RFC 7519), `iat` too.
    let fractional = sign(&with(json!({"iat": now() as f64 - 0.5})), Algorithm::HS256, SECRET.as_bytes());
    app.client(fractional).providers().await.expect("a fractional iat");
    let future = sign(&with(json!({"iat": (now() + 600) as f64 + 0.5})), Algorithm::HS256, SECRET.as_bytes());
    assert_error(app.client(future).providers().await, 401, "unauthorized");
}

/// A valid token whose role a route does not admit gets 403 `forbidden`, before the route reads
/// its body, path or query, and changes nothing: among others, the voice agent on the staff
/// routes that cancel and move appointments.
async fn roles_outside_a_route_get_403(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let platform_in_org = app.client(token(Role::Platform, Some(org.id)));
    assert_error(
        org.admin
            .create_organization(&shared::api::CreateOrganization { name: "x".into(), timezone: "UTC".into() })
            .await,
        403,
        "forbidden",
    );
    assert_error(
        org.staff.create_provider(&shared::api::CreateProvider { name: "x".into(), ..Default::default() }).await,
        403,
        "forbidden",
    );
    assert_error(org.agent.appointments(&Default::default()).await, 403, "forbidden");
    assert_error(platform_in_org.book(&booking(provider.id, days_ahead(2), "10:00")).await, 403, "forbidden");
    assert_error(org.agent.deactivate_provider(provider.id).await, 403, "forbidden");
    // The voice agent changes bookings only through its tools, for the calling number: the staff
    // routes refuse it even an appointment it booked itself, with a well-formed body.
    let booked = org.agent.book(&booking(provider.id, days_ahead(2), "11:00")).await.expect("booked");
    let id = booked.appointment_id;
    let move_it = move_to(days_ahead(3), "12:00");
    assert_error(org.agent.cancel(id, Some("no longer needed")).await, 403, "forbidden");
    assert_error(org.agent.reschedule(id, &move_it).await, 403, "forbidden");
    let (cancel_path, reschedule_path) =
        (format!("/api/appointments/{id}/cancel"), format!("/api/appointments/{id}/reschedule"));
    // A role the route refuses learns nothing of what it would read: 403 before a body that is
    // not JSON or lacks a field, a path that is not an id, a query out of range.
    let refused = [
        (&org.staff, Method::POST, "/api/providers", Some(("application/json", "{}"))),
        (&org.staff, Method::POST, "/api/providers", Some(("text/plain", "x"))),
        (&org.agent, Method::GET, "/api/appointments/not-an-id", None),
        (&org.agent, Method::GET, "/api/appointments?limit=0", None),
        (&platform_in_org, Method::POST, "/api/vapi/booking", Some(("application/json", r#"{"tool_name": 1}"#))),
        (&org.staff, Method::POST, "/api/vapi/tools", Some(("application/json", "not json"))),
        (&org.admin, Method::POST, "/api/orgs", Some(("application/json", "{}"))),
        (&org.agent, Method::POST, &cancel_path, None),
        (&org.agent, Method::POST, &cancel_path, Some(("application/json", r#"{"reason": 1}"#))),
        (&org.agent, Method::POST, &reschedule_path, Some(("application/json", "{}"))),
        (&org.agent, Method::POST, &reschedule_path, Some(("text/plain", "x"))),
    ];
    for (client, method, path, body) in refused {
        let mut request = client.request(method.clone(), path);
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let answer = client.send::<serde_json::Value>(request).await;
        assert_error(answer, 403, "forbidden");
    }
    // The refused calls changed nothing.
    let still = org.staff.appointment(id).await.expect("still there");
    assert_eq!(still.status, shared::api::AppointmentStatus::Pending);
    assert_eq!(still.starts_at, booked.starts_at);
    // Reads are open to staff and agents.
    org.staff.provider(provider.id).await.expect("staff reads providers");
    org.agent.availability(provider.id, &date_str(days_ahead(2))).await.expect("agent reads availability");
}

on_both_backends!(bad_tokens_are_refused_with_401, roles_outside_a_route_get_403);
