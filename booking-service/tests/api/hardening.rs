//! The service on the open internet, tried as an attacker would: floods of made-up label values,
//! clients that send too slowly or not at all, a shutdown with such clients connected, request
//! ids made to pollute the logs, NUL bytes in text that PostgreSQL cannot store.

use crate::helpers::*;
use booking_service::domain::{AppointmentId, OrgId};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use shared::Role;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `127.0.0.1:PORT` of a test service.
fn host(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(host(app)).await.expect("connect")
}

/// Whether the server closed `stream` (end of file or reset) within `within`; bytes it sends
/// first (an answer) are read and skipped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// One HTTP/1.1 answer read off a raw socket: its status and its body (by `Content-Length`).
async fn read_answer(stream: &mut TcpStream, within: Duration) -> Option<(u16, String)> {
    let read = async {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    return Some((status, String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).to_string()));
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

/// The value of `label` in every sample line of the exposition.
fn label_values(metrics: &str, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let start = l.find(&key)? + key.len();
            let rest = &l[start..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

/// The series of the exposition (sample lines without their value), histogram buckets left out.
fn series(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("le=\""))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

async fn metrics(app: &TestApp) -> String {
    app.anon.request(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text")
}

async fn a_flood_of_made_up_methods_paths_and_tool_names_adds_no_series(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let before_text = metrics(&app).await;
    let before = series(&before_text);

    // 600 requests, each with a method and a path of its own, on routes that exist and not.
    let anon = app.anon.clone();
    let answered = futures::stream::iter(0..600)
        .map(|i| {
            let anon = anon.clone();
            async move {
                let method = Method::from_bytes(format!("FLOOD{i}").as_bytes()).expect("a method token");
                let path = match i % 3 {
                    0 => format!("/flood-{i}/x?y={i}"),
                    1 => "/api/providers".to_owned(),
                    _ => "/healthz".to_owned(),
                };
                anon.request(method, &path).send().await.map(|r| r.status().as_u16())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(answered.iter().all(|s| matches!(s, Ok(400 | 404 | 405))), "{:?}", &answered[..5]);

    // Made-up tool names, 16 to a message (the most one message may hold).
    for message in 0..6 {
        let calls: Vec<Value> = (0..16)
            .map(|i| {
                json!({"id": format!("call-{message}-{i}"), "type": "function",
                       "function": {"name": format!("made-up-tool-{message}-{i}"), "arguments": {}}})
            })
            .collect();
        let body = json!({"message": {"type": "tool-calls", "toolCallList": calls,
                                      "call": {"id": format!("flood-{message}"), "customer": {"number": "+15551234567"}}}});
        let response = org.agent.request(Method::POST, "/api/vapi/tools").json(&body).send().await.expect("sent");
        assert_eq!(response.status(), 200);
    }

    let after = metrics(&app).await;
    for planted in ["FLOOD", "flood-", "made-up-tool"] {
        assert!(!after.contains(planted), "a label value came from a request: {planted}");
    }
    // Other tests share the process's recorder, so the series this test may have added are those
    // its flood could reach: a folded method or route, or the unknown tool.
    let added: Vec<String> = series(&after)
        .difference(&before)
        .filter(|s| s.contains(r#"method="other""#) || s.contains(r#"tool="unknown""#))
        .cloned()
        .collect();
    assert!(added.len() <= 24, "{} series added by the flood: {added:#?}", added.len());

    let methods = label_values(&after, "method");
    let allowed: BTreeSet<String> =
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"].map(String::from).into();
    assert!(methods.is_subset(&allowed), "methods: {methods:?}");

    let doc: Value = app.anon.send(app.anon.request(Method::GET, "/openapi.json")).await.expect("openapi");
    let mut routes: BTreeSet<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
    routes.insert("unmatched".into());
    let seen = label_values(&after, "route");
    assert!(seen.is_subset(&routes), "routes that are no route template: {:?}", seen.difference(&routes));

    let definitions: Value =
        org.agent.send(org.agent.request(Method::GET, "/api/vapi/tool-definitions")).await.expect("definitions");
    let mut tools: BTreeSet<String> = definitions
        .as_array()
        .expect("tool definitions")
        .iter()
        .filter_map(|d| d["function"]["name"].as_str().map(String::from))
        .collect();
    tools.insert("unknown".into());
    let seen = label_values(&after, "tool");
    let unknown = |metrics: &str| -> f64 {
        let lines = metrics.lines().filter(|l| l.starts_with(r#"vapi_tool_calls_total{tool="unknown""#));
        lines.filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum()
    };
    assert!(unknown(&after) - unknown(&before_text) >= 96.0, "the 96 made-up tools were counted as unknown");
    assert!(seen.is_subset(&tools), "tool labels that are no tool: {:?}", seen.difference(&tools));
}

/// A request that outlives its deadline (held up by the database here) is answered 503
/// `unavailable` saying so, not as if the database could not be reached.
async fn a_request_past_its_deadline_says_so(backend: Backend) {
    let app = spawn_app_with(backend, |c| (c.request_timeout_secs, c.vapi_deadline_ms) = (1, 500)).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let (blocker, locked) = hold_the_write_lock(backend, app.db.url.clone(), "appointments", Duration::from_secs(3));
    locked.await.expect("the lock is taken");
    let late = org.staff.book(&booking(provider.id, days_ahead(3), "10:00")).await;
    let err = assert_error(late, 503, "unavailable");
    assert!(err.to_string().contains("longer than its deadline"), "{err}");
    blocker.await.expect("blocker");
}

/// A request's line and headers are bounded (each open connection could be made to hold them):
/// past 64 KiB the answer is 431, under it the request is served.
async fn an_oversized_request_head_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for (pad, status) in [(60_000, 200), (100_000, 431)] {
        let mut socket = connect(&app).await;
        let head = format!("GET /healthz HTTP/1.1\r\nHost: clinic\r\nX-Pad: {}\r\n\r\n", "a".repeat(pad));
        socket.write_all(head.as_bytes()).await.ok();
        let answer = read_answer(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(answer.map(|(s, _)| s), Some(status), "{pad} bytes of header");
    }
}

async fn half_sent_headers_are_cut_after_the_header_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.header_read_timeout_secs = 1;
        c.idle_timeout_secs = 60;
    })
    .await;
    let mut sockets = Vec::new();
    for _ in 0..50 {
        let mut socket = connect(&app).await;
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nX-Wait: ").await.expect("half a header");
        sockets.push(socket);
    }
    // One more drips a byte every 200 ms: moving bytes must not keep a header open.
    let mut drip = connect(&app).await;
    drip.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("request line");
    let dripping = tokio::spawn(async move {
        for _ in 0..50 {
            if drip.write_all(b"X").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    // And one that connects and never sends a byte: it owes its first header as much.
    sockets.push(connect(&app).await);
    let started = Instant::now();
    for (i, socket) in sockets.iter_mut().enumerate() {
        assert!(
            closed_within(socket, Duration::from_secs(5)).await,
            "socket {i} still open after {:?}",
            started.elapsed()
        );
    }
    assert!(dripping.await.expect("drip task"), "a header dripping a byte at a time was never cut");
    assert_eq!(app.anon.healthz().await.expect("the service still answers").status, "ok");
}

async fn idle_connections_are_closed_after_the_idle_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.header_read_timeout_secs = 60;
        c.idle_timeout_secs = 1;
    })
    .await;
    // A kept-alive connection after its answer, and one that never sent a byte.
    let mut kept_alive = connect(&app).await;
    kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n\r\n").await.expect("request");
    let (status, _) = read_answer(&mut kept_alive, Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(status, 200);
    let mut silent = connect(&app).await;
    assert!(closed_within(&mut kept_alive, Duration::from_secs(5)).await, "the idle kept-alive connection stayed open");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "the silent connection stayed open");
}

async fn a_slow_body_is_answered_408_not_503(backend: Backend) {
    for (body_timeout, request_timeout) in [(1, 30), (30, 1)] {
        let app = spawn_app_with(backend, |c| {
            c.body_read_timeout_secs = body_timeout;
            c.request_timeout_secs = request_timeout;
            c.vapi_deadline_ms = 800;
        })
        .await;
        let org = app.org("UTC").await;
        let token = token(Role::Agent, Some(org.id));
        let mut socket = connect(&app).await;
        let head = format!(
            "POST /api/vapi/booking HTTP/1.1\r\nHost: clinic\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{{\"tool_name\": "
        );
        socket.write_all(head.as_bytes()).await.expect("headers and a little body");
        let started = Instant::now();
        let (status, body) = read_answer(&mut socket, Duration::from_secs(8)).await.expect("an answer");
        let case = format!("body timeout {body_timeout} s, request timeout {request_timeout} s");
        assert_eq!(status, 408, "{case}: {body}");
        let body: Value = serde_json::from_str(&body).expect("a JSON error body");
        assert_eq!(body["success"], false, "{case}");
        assert_eq!(body["error"]["code"], "request_timeout", "{case}: {body}");
        assert!(started.elapsed() < Duration::from_secs(5), "{case}: answered after {:?}", started.elapsed());
    }
}

/// An HTTP/2 connection (h2c, with prior knowledge) carries a bounded number of requests at once:
/// the server announces the bound in its SETTINGS (hyper then refuses a stream beyond it).
async fn an_http2_connection_carries_a_bounded_number_of_requests_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, connection) = h2::client::handshake(connect(&app).await).await.expect("an HTTP/2 connection");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready for a request");
    let health = axum::http::Request::get(format!("{}/healthz", app.base)).body(()).expect("a request");
    let (answer, _) = client.send_request(health, true).expect("sent");
    assert_eq!(answer.await.expect("answered").status(), 200);
    let most = booking_service::server::MAX_STREAMS_PER_CONNECTION;
    assert_eq!(client.current_max_send_streams(), most as usize, "hyper's default would be 200");
}

/// Between the requests of an HTTP/2 connection only the idle timeout applies: the frames a client
/// sends between them (here a PING; a WINDOW_UPDATE after a large answer likewise) begin no
/// request, and cut at the header timeout the connection would reset a proxy reusing it just then.
async fn an_http2_connection_between_requests_waits_for_the_idle_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.header_read_timeout_secs = 1;
        c.idle_timeout_secs = 60;
    })
    .await;
    let (client, mut connection) = h2::client::handshake(connect(&app).await).await.expect("an HTTP/2 connection");
    let mut ping_pong = connection.ping_pong().expect("the connection's pings");
    tokio::spawn(connection);
    let health = || axum::http::Request::get(format!("{}/healthz", app.base)).body(()).expect("a request");
    let mut client = client.ready().await.expect("ready for a request");
    let (answer, _) = client.send_request(health(), true).expect("sent");
    assert_eq!(answer.await.expect("answered").status(), 200);
    ping_pong.ping(h2::Ping::opaque()).await.expect("a pong");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut client = client.ready().await.expect("still open past the header timeout");
    let (answer, _) = client.send_request(health(), true).expect("sent");
    assert_eq!(answer.await.expect("answered on the same connection").status(), 200);
}

async fn connections_beyond_the_limit_wait_for_a_free_one(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.max_connections = 4;
        c.idle_timeout_secs = 60;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fifth = connect(&app).await;
    fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n\r\n").await.expect("request");
    assert!(
        read_answer(&mut fifth, Duration::from_secs(1)).await.is_none(),
        "a fifth connection was served while four were open"
    );
    drop(held.pop());
    let (status, _) = read_answer(&mut fifth, Duration::from_secs(5)).await.expect("served once a slot is free");
    assert_eq!(status, 200);
}

/// A client arriving while every slot is taken has one connection kept alive between requests
/// close for it, so it is served at once rather than after the idle timeout; the other kept-alive
/// one stays, and one still owing its first request (bounded by the header timeout) is left alone.
async fn kept_alive_connections_make_room_when_every_slot_is_taken(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.max_connections = 3;
        c.idle_timeout_secs = 60;
    })
    .await;
    const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n\r\n";
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut socket = connect(&app).await;
        socket.write_all(HEALTH).await.expect("request");
        assert_eq!(read_answer(&mut socket, Duration::from_secs(5)).await.map(|(status, _)| status), Some(200));
        kept.push(socket);
    }
    let mut silent = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fourth = connect(&app).await;
    fourth.write_all(HEALTH).await.expect("request");
    let answered = read_answer(&mut fourth, Duration::from_secs(5)).await;
    assert_eq!(answered.map(|(status, _)| status), Some(200), "not served while two connections sat idle");
    let mut open = Vec::new();
    for mut socket in kept {
        if !closed_within(&mut socket, Duration::from_millis(500)).await {
            open.push(socket);
        }
    }
    assert_eq!(open.len(), 1, "one kept-alive connection closed for the new client, not both");
    for socket in [&mut open[0], &mut silent] {
        socket.write_all(HEALTH).await.expect("a request");
        assert_eq!(read_answer(socket, Duration::from_secs(5)).await.map(|(status, _)| status), Some(200));
    }
}

async fn shutdown_ends_within_its_grace_with_slow_clients_connected(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.shutdown_grace_secs = 1;
        c.header_read_timeout_secs = 120;
        c.idle_timeout_secs = 120;
        c.body_read_timeout_secs = 120;
        c.request_timeout_secs = 120;
    })
    .await;
    let org = app.org("UTC").await;
    let token = token(Role::Agent, Some(org.id));
    let mut half_header = connect(&app).await;
    half_header.write_all(b"GET /healthz HTTP/1.1\r\nHost: cli").await.expect("half a header");
    let mut silent = connect(&app).await;
    let mut slow_body = connect(&app).await;
    let head = format!(
        "POST /api/vapi/booking HTTP/1.1\r\nHost: clinic\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{{"
    );
    slow_body.write_all(head.as_bytes()).await.expect("a slow upload");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    let took = started.elapsed();
    stopped.expect("the service stopped despite its slow clients").expect("stopped cleanly");
    assert!(took < Duration::from_secs(4), "shutdown took {took:?} with a grace of 1 s");
    for (name, socket) in [("half header", &mut half_header), ("silent", &mut silent), ("slow body", &mut slow_body)] {
        assert!(closed_within(socket, Duration::from_secs(2)).await, "the {name} client is still connected");
    }
}

/// The dispatcher claims nothing once shutdown begins, rather than once the last request has
/// drained: a message queued during the drain stays in the outbox for another instance (or the
/// next start), and the batch in hand keeps the whole grace to finish.
async fn the_dispatcher_claims_nothing_once_shutdown_begins(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.body_read_timeout_secs = 60;
        c.request_timeout_secs = 60;
        // New requests are taken until the grace less the request timeout.
        c.shutdown_grace_secs = 90;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    // A slow upload keeps the server draining after shutdown begins.
    let mut slow_body = connect(&app).await;
    let head = format!(
        "POST /api/vapi/booking HTTP/1.1\r\nHost: clinic\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{{",
        token(Role::Agent, Some(org.id))
    );
    slow_body.write_all(head.as_bytes()).await.expect("a slow upload");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (store, agent) = (app.store.clone(), org.agent.clone());
    let stopped = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let input = shared::api::BookingInput {
        patient_email: Some("ada@example.com".into()),
        ..booking(provider.id, days_ahead(3), "10:00")
    };
    let booked = agent.book(&input).await.expect("booked while the server drains");
    // Twenty polls of a dispatcher that went on claiming.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let queued = store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox");
    assert!(!queued.is_empty(), "the booking queued its messages");
    assert!(queued.iter().all(|m| m.sent_at.is_none() && m.attempts == 0 && m.claims == 0), "{queued:#?}");

    drop(slow_body);
    stopped.await.expect("task").expect("the server stopped cleanly");
}

/// Under steady traffic the requests in flight never run out: the drain takes new ones until its
/// last call (the grace less the request timeout and 2 s), then closes the listener, and every
/// request it took is answered before the grace ends rather than cut there. Here an upload that
/// takes 600 ms starts every 150 ms for 7 s; the grace is 5 s (the last call 1 s after the stop)
/// and the request timeout 2 s. A connection the last call closes before its request was read
/// ends then, about 1 s after the stop; one cut at the grace's end would end 5 s after it.
async fn under_steady_traffic_every_request_taken_is_answered(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.shutdown_grace_secs = 5;
        c.request_timeout_secs = 2;
        c.vapi_deadline_ms = 1500;
    })
    .await;
    let org = app.org("UTC").await;
    let (address, token) = (host(&app), token(Role::Agent, Some(org.id)));
    enum Upload {
        /// Refused, or reset before its body went: never taken.
        NotTaken,
        Answered(u16),
        /// Closed without an answer, at that instant.
        Closed(Instant),
    }
    async fn upload(address: String, token: String) -> Upload {
        let Ok(mut socket) = TcpStream::connect(&address).await else { return Upload::NotTaken };
        let body = r#"{"provider_id": "not a uuid"}"#;
        let head = format!(
            "POST /api/vapi/booking HTTP/1.1\r\nHost: clinic\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if socket.write_all(head.as_bytes()).await.is_err() {
            return Upload::NotTaken;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        if socket.write_all(body.as_bytes()).await.is_err() {
            return Upload::NotTaken;
        }
        match read_answer(&mut socket, Duration::from_secs(8)).await {
            Some((status, _)) => Upload::Answered(status),
            None => Upload::Closed(Instant::now()),
        }
    }
    let traffic = tokio::spawn(async move {
        let mut uploads = tokio::task::JoinSet::new();
        for _ in 0..47 {
            uploads.spawn(upload(address.clone(), token.clone()));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        uploads.join_all().await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stopped_at = Instant::now();
    app.stop().await.expect("stopped cleanly");
    let uploads = traffic.await.expect("traffic");
    let answered: Vec<u16> =
        uploads.iter().filter_map(|u| if let Upload::Answered(s) = u { Some(*s) } else { None }).collect();
    assert!(answered.len() >= 10, "uploads during the drain were taken: {answered:?}");
    assert!(answered.iter().all(|status| *status == 422), "every upload read is answered: {answered:?}");
    let cut: Vec<Duration> = uploads
        .iter()
        .filter_map(|u| if let Upload::Closed(at) = u { Some(at.duration_since(stopped_at)) } else { None })
        .filter(|after| *after >= Duration::from_secs(3))
        .collect();
    assert!(cut.is_empty(), "requests cut near the grace's end, this long after the stop: {cut:?}");
}

/// A booking held up by the database when shutdown begins still gets its answer, while `/readyz`
/// already tells load balancers to go elsewhere.
async fn readyz_answers_503_once_shutdown_begins_while_requests_in_flight_finish(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let (blocker, locked) =
        hold_the_write_lock(backend, app.db.url.clone(), "appointments", Duration::from_millis(2000));
    locked.await.expect("the lock is held");
    let agent = org.agent.clone();
    let input = booking(provider.id, days_ahead(3), "10:00");
    let in_flight = tokio::spawn(async move { agent.book(&input).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the booking is waiting for the lock");

    let anon = app.anon.clone();
    let base = app.base.clone();
    let stopped = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = anon.request(Method::GET, "/readyz").send().await.expect("readyz answered while draining");
    assert_eq!(ready.status(), 503, "readyz during shutdown");
    let health: Value = ready.json().await.expect("JSON");
    assert_eq!(health["status"], "shutting down");

    in_flight.await.expect("task").expect("the in-flight booking was answered, not cut off");
    stopped.await.expect("task").expect("the server stopped cleanly");
    blocker.await.expect("blocker");
    let refused = reqwest::get(format!("{base}/healthz")).await;
    assert!(refused.is_err(), "the service still answers after stopping");
}

/// A Vapi tool call whose body was slow to arrive is still answered by the tool deadline, which
/// runs from its headers: a spoken "taking too long" (200) before the request timeout's bare 503,
/// which Vapi cannot speak. Here the body takes 2 s, the booking waits on a held lock, the tool
/// deadline is 2.5 s and the request timeout 4 s (counted from the body, the deadline would end
/// at 4.5 s).
async fn a_tool_call_with_a_slow_body_is_answered_by_the_tool_deadline(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.request_timeout_secs = 4;
        c.vapi_deadline_ms = 2500;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let failed = async || {
        let text = metrics(&app).await;
        let line = text.lines().find(|l| {
            l.starts_with("vapi_tool_calls_total{")
                && l.contains(r#"tool="book_appointment""#)
                && l.contains(r#"outcome="failed""#)
        });
        line.and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).unwrap_or(0.0)
    };
    let failed_before = failed().await;
    let (blocker, locked) = hold_the_write_lock(backend, app.db.url.clone(), "appointments", Duration::from_secs(6));
    locked.await.expect("the lock is held");
    let calls = vec![crate::vapi::book_call("c1", provider.id, &date_str(days_ahead(3)), "10:00", "Ada")];
    let body = crate::vapi::message(calls, Some("+15551230000"), "call-slow").to_string();
    let token = token(Role::Agent, Some(org.id));
    let mut socket = connect(&app).await;
    let head = format!(
        "POST /api/vapi/tools HTTP/1.1\r\nHost: clinic\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    let (first, rest) = body.split_at(body.len() / 2);
    socket.write_all(format!("{head}{first}").as_bytes()).await.expect("headers and half the body");
    tokio::time::sleep(Duration::from_secs(2)).await;
    socket.write_all(rest.as_bytes()).await.expect("the rest of the body");
    let (status, answer) = read_answer(&mut socket, Duration::from_secs(8)).await.expect("an answer");
    assert_eq!(status, 200, "answered after {:?}: {answer}", started.elapsed());
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    let said = crate::vapi::only(&answer).expect_err("the booking did not finish");
    assert!(said.contains("taking too long"), "{said}");
    // Counted as a call the service could not answer (what VoiceToolsFailing alerts on), not as a
    // refusal.
    assert!(failed().await > failed_before, "counted as failed");
    blocker.await.expect("blocker");
}

async fn no_answer_is_kept_in_a_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let cache_control = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("answered");
        let kept = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(String::from);
        (response.status().as_u16(), kept)
    };
    for (request, status) in [
        (org.staff.request(Method::GET, "/api/appointments"), 200),
        (org.staff.request(Method::GET, "/api/providers"), 200),
        (app.anon.request(Method::GET, "/api/appointments"), 401),
        (app.anon.request(Method::GET, "/healthz"), 200),
    ] {
        assert_eq!(cache_control(request).await, (status, Some("no-store".to_owned())));
    }
}

async fn an_unfit_request_id_is_replaced_by_a_fresh_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let echoed = |sent: String| {
        let anon = app.anon.clone();
        async move {
            let response =
                anon.request(Method::GET, "/healthz").header("x-request-id", &sent).send().await.expect("answered");
            assert_eq!(response.status(), 200);
            response.headers().get("x-request-id").expect("an id").to_str().expect("text").to_owned()
        }
    };
    for unfit in ["x".repeat(8000), "a b key=value".to_owned(), "id\"injected".to_owned(), String::new()] {
        let got = echoed(unfit.clone()).await;
        assert_ne!(got, unfit, "an unfit request id was kept");
        assert!(got.len() <= 64 && !got.is_empty(), "{got}");
        assert!(got.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{got}");
    }
    let fit = "req-2027.01_15-abc";
    assert_eq!(echoed(fit.to_owned()).await, fit, "a short plain id is kept for tracing across services");
}

/// A NUL byte, which PostgreSQL cannot store or compare, in text a client sends: refused as bad
/// input (a reason, a cursor's sort key), or, where Vapi sends it, an id with one is not an id and
/// a report's text reads it as a space. Never a 500, and alike on both databases.
async fn a_nul_byte_in_any_text_is_refused_or_cleaned_never_a_500(backend: Backend) {
    use crate::vapi::{call, clinic, message, only, post, CALLER};
    use base64::Engine;
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app).await;
    let a = org.staff.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    assert_error(org.staff.cancel(a.appointment_id, Some("moved\0away")).await, 422, "validation_failed");
    let away = shared::api::CreateTimeOff {
        starts_at: format!("{}T12:00:00Z", date_str(days_ahead(5))),
        ends_at: format!("{}T13:00:00Z", date_str(days_ahead(5))),
        reason: Some("lunch\0".into()),
    };
    assert_error(org.staff.create_time_off(provider.id, &away).await, 422, "validation_failed");
    let key = serde_json::to_vec(&json!(["Dr.\0", uuid::Uuid::nil()])).expect("json");
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
    let page = shared::api::PageQuery { limit: None, cursor: Some(cursor) };
    assert_error(org.staff.providers_page(&page).await, 422, "validation_failed");

    let arguments = json!({"provider_id": provider.id, "appointment_date": date_str(days_ahead(4)),
        "appointment_time": "11:00", "patient_name": "Ada"});
    let nameless =
        post(&org.agent, &message(vec![call("t\0", "book_appointment", arguments.clone())], Some(CALLER), "c1")).await;
    assert_eq!(nameless["results"], json!([]), "a tool call whose id holds a NUL is not one");
    let booked =
        post(&org.agent, &message(vec![call("t1", "book_appointment", arguments)], Some(CALLER), "call\0one")).await;
    assert!(only(&booked).is_ok(), "booked as a call of unknown id: {booked}");
    let report = |id: &str| {
        json!({"message": {"type": "end-of-call-report", "endedReason": "customer\0ended",
        "analysis": {"summary": "Booked\0Ada."}, "call": {"id": id, "customer": {"number": CALLER}}}})
    };
    post(&org.agent, &report("call\0two")).await;
    post(&org.agent, &report("c3")).await;
    let calls = org.staff.calls(&Default::default()).await.expect("calls");
    let kept: Vec<_> =
        calls.iter().map(|c| (c.call_id.as_str(), c.ended_reason.as_deref(), c.summary.as_deref())).collect();
    assert_eq!(kept, [("c3", Some("customer ended"), Some("Booked Ada."))]);
}

/// A cursor is the client's to hold, so it can be forged: one whose date no database stores (a year
/// before 4713 BC, which PostgreSQL refuses to compare) is not a cursor this list gave, never a 500.
async fn a_forged_cursor_of_a_far_date_is_refused_never_a_500(backend: Backend) {
    use base64::Engine;
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let status = |client: &shared::ApiClient, path: &str, key: serde_json::Value| {
        let bytes = serde_json::to_vec(&json!([key, uuid::Uuid::nil()])).expect("json");
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let request = client.request(reqwest::Method::GET, path).query(&[("cursor", cursor)]);
        async move { request.send().await.expect("sent").status().as_u16() }
    };
    for far in ["-5000-01-01T00:00:00Z", "+20000-01-01T00:00:00Z"] {
        assert_eq!(status(&org.staff, "/api/appointments", json!(far)).await, 422, "{far}");
        assert_eq!(status(&org.admin, "/api/webhooks", json!(far)).await, 422, "{far}");
        assert_eq!(status(&org.staff, "/api/calls", json!([far, "call-1"])).await, 422, "{far}");
    }
    assert_eq!(status(&org.admin, "/api/closures", json!("-5000-01-01")).await, 422);
    // Nor a place before the first (an offset below 0, which PostgreSQL refuses).
    let trail = format!("/api/appointments/{}/audit", uuid::Uuid::new_v4());
    for place in [-1, i64::MIN] {
        assert_eq!(status(&org.admin, "/api/audit", json!(["2027-01-01T00:00:00Z", place])).await, 422, "{place}");
        assert_eq!(status(&org.staff, &trail, json!(place)).await, 422, "{place}");
    }
    // A cursor of a date a database keeps still pages.
    assert_eq!(status(&org.admin, "/api/closures", json!("2027-01-01")).await, 200);
    assert_eq!(status(&org.staff, "/api/appointments", json!("2027-01-01T00:00:00Z")).await, 200);
    assert_eq!(status(&org.admin, "/api/audit", json!(["2027-01-01T00:00:00Z", 2])).await, 200);
}

/// A signed token whose organization is gone (deleted while the token lives) finds nothing to
/// write into: 404, never a 500 from the foreign key.
async fn a_token_of_a_deleted_clinic_writes_nothing_and_gets_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let platform = app.client(token(shared::Role::Platform, None));
    platform.delete_organization(org.id).await.expect("deleted");
    let kind =
        shared::api::CreateAppointmentType { name: "Check-up".into(), duration_minutes: 30, ..Default::default() };
    assert_error(org.admin.create_appointment_type(&kind).await, 404, "not_found");
}

on_both_backends!(
    a_forged_cursor_of_a_far_date_is_refused_never_a_500,
    a_token_of_a_deleted_clinic_writes_nothing_and_gets_404,
    a_nul_byte_in_any_text_is_refused_or_cleaned_never_a_500,
    a_flood_of_made_up_methods_paths_and_tool_names_adds_no_series,
    an_oversized_request_head_is_refused,
    a_request_past_its_deadline_says_so,
    half_sent_headers_are_cut_after_the_header_timeout,
    idle_connections_are_closed_after_the_idle_timeout,
    a_slow_body_is_answered_408_not_503,
    a_tool_call_with_a_slow_body_is_answered_by_the_tool_deadline,
    connections_beyond_the_limit_wait_for_a_free_one,
    kept_alive_connections_make_room_when_every_slot_is_taken,
    an_http2_connection_carries_a_bounded_number_of_requests_at_once,
    an_http2_connection_between_requests_waits_for_the_idle_timeout,
    shutdown_ends_within_its_grace_with_slow_clients_connected,
    readyz_answers_503_once_shutdown_begins_while_requests_in_flight_finish,
    under_steady_traffic_every_request_taken_is_answered,
    the_dispatcher_claims_nothing_once_shutdown_begins,
    an_unfit_request_id_is_replaced_by_a_fresh_one,
    no_answer_is_kept_in_a_cache,
);
