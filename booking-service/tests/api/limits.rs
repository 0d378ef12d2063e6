//! Abuse limits (docs/API.md §9): requests per token subject and organization.

use crate::helpers::*;
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

on_both_backends!(a_token_past_its_rate_is_refused_while_others_go_on);
