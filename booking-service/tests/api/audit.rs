//! The clinic's audit log (docs/API.md, `GET /api/audit`): the changes the clinic makes to
//! itself are kept with who made them, beside the appointments' own rows, and only the clinic's
//! admins read it.

use crate::helpers::*;
use shared::api::{
    AuditEntry, CreateAppointmentType, CreateProvider, CreateWebhook, Settings, UpdateAppointmentType, UpdateProvider,
    VapiSettings, WindowQuery,
};
use sqlx::Connection;

fn actions(log: &[AuditEntry]) -> Vec<(&str, &str)> {
    log.iter().map(|e| (e.subject.as_str(), e.action.as_str())).collect()
}

async fn every_change_the_clinic_makes_to_itself_is_kept_with_who_made_it(backend: Backend) {
    // The webhook's endpoint is on this machine.
    let app = spawn_app_with(backend, |c| c.webhook_allow_private = true).await;
    let org = app.org("UTC").await;
    let smith = org.provider_with(CreateProvider { name: "Dr. Smith".into(), ..Default::default() }).await;
    org.admin
        .update_provider(smith.id, &UpdateProvider { name: Some("Dr. Jane Smith".into()), ..Default::default() })
        .await
        .expect("renamed");
    let kind = CreateAppointmentType { name: "Check-up".into(), duration_minutes: 30, ..Default::default() };
    let kind = org.admin.create_appointment_type(&kind).await.expect("type");
    let longer = UpdateAppointmentType { duration_minutes: Some(45), ..Default::default() };
    org.admin.update_appointment_type(kind.id, &longer).await.expect("longer");
    org.admin.deactivate_appointment_type(kind.id).await.expect("deactivated");
    let hook = CreateWebhook { url: "http://127.0.0.1:9/hook".into(), events: None };
    let hook = org.admin.create_webhook(&hook).await.expect("webhook");
    org.admin.delete_webhook(hook.id).await.expect("removed");
    let settings = Settings { manage_cutoff_minutes: 60, ..org.admin.settings().await.expect("settings") };
    org.admin.set_settings(&settings).await.expect("saved");
    let vapi = VapiSettings { assistant_id: Some("asst-1".into()), transfer_number: None };
    org.admin.set_vapi_settings(&vapi).await.expect("saved");
    org.staff.book(&booking(smith.id, days_ahead(3), "10:00")).await.expect("booked");
    org.admin.deactivate_provider(smith.id).await.expect("deactivated");

    // Refused changes leave nothing: a stranger's provider, a staff token, a bad setting.
    let missing = UpdateProvider { active: Some(true), ..Default::default() };
    assert_error(org.admin.update_provider(uuid::Uuid::new_v4(), &missing).await, 404, "not_found");
    assert_error(org.staff.set_settings(&settings).await, 403, "forbidden");
    let bad = Settings { manage_cutoff_minutes: 20_000, ..settings.clone() };
    assert_error(org.admin.set_settings(&bad).await, 422, "validation_failed");
    // Refused by the database inside the change's transaction: another clinic's sender number, a
    // webhook already removed.
    let other = app.org("UTC").await;
    let theirs = Settings { sms_from: Some("+15550104000".into()), ..other.admin.settings().await.expect("settings") };
    other.admin.set_settings(&theirs).await.expect("their number");
    let taken = Settings { sms_from: theirs.sms_from.clone(), ..settings.clone() };
    assert_error(org.admin.set_settings(&taken).await, 422, "validation_failed");
    assert_error(org.admin.delete_webhook(hook.id).await, 404, "not_found");

    let log = org.admin.audit_log(&WindowQuery::default()).await.expect("log");
    assert_eq!(
        actions(&log),
        [
            ("provider", "provider_added"),
            ("provider", "provider_changed"),
            ("appointment_type", "appointment_type_added"),
            ("appointment_type", "appointment_type_changed"),
            ("appointment_type", "appointment_type_changed"),
            ("webhook", "webhook_added"),
            ("webhook", "webhook_removed"),
            ("settings", "settings_changed"),
            ("settings", "vapi_settings_changed"),
            ("appointment", "booked"),
            ("provider", "provider_changed"),
        ]
    );
    let by: Vec<&str> = log.iter().map(|e| e.actor.as_str()).collect();
    assert!(by.iter().enumerate().all(|(i, a)| *a == if i == 9 { "test-staff" } else { "test-admin" }), "{by:?}");
    let subjects = [smith.id, smith.id, kind.id, kind.id, kind.id, hook.id, hook.id, org.id, org.id];
    assert_eq!(log.iter().take(9).map(|e| e.subject_id).collect::<Vec<_>>(), subjects);
    // What each asked for: the new provider, the rename, the deactivation, the endpoint (never
    // its secret), the settings as checked.
    assert_eq!(log[0].details["name"], "Dr. Smith");
    assert_eq!(log[1].details, serde_json::json!({ "name": "Dr. Jane Smith" }));
    assert_eq!(log[4].details, serde_json::json!({ "active": false }));
    assert_eq!(log[5].details, serde_json::json!({ "origin": "http://127.0.0.1:9", "events": [] }));
    let whole = serde_json::to_string(&log).expect("json");
    assert!(!whole.contains(&hook.secret.expect("shown once")), "the secret is not kept in the log");
    assert_eq!(log[7].details["manage_cutoff_minutes"], 60);
    assert_eq!(log[8].details["assistant_id"], "asst-1");

    // A page at a time, and within a window: the same rows.
    let paged = org.admin.audit_log(&WindowQuery { limit: Some(2), ..Default::default() }).await.expect("paged");
    assert_eq!(paged, log);
    let from = log[7].at.to_rfc3339();
    let later = org.admin.audit_log(&WindowQuery { from: Some(from.clone()), ..Default::default() }).await;
    assert_eq!(later.expect("from"), log[7..]);
    let before = org.admin.audit_log(&WindowQuery { to: Some(from), ..Default::default() }).await;
    assert_eq!(before.expect("to"), log[..7]);

    // The clinic's admins only, and only their own clinic's.
    assert_error(org.staff.audit_log(&WindowQuery::default()).await, 403, "forbidden");
    assert_error(org.agent.audit_log(&WindowQuery::default()).await, 403, "forbidden");
    let theirs = other.admin.audit_log(&WindowQuery::default()).await.expect("its own");
    assert_eq!(actions(&theirs), [("settings", "settings_changed")]);
    assert_eq!(theirs[0].subject_id, other.id);
    let unknown = WindowQuery { from: Some("last week".into()), ..Default::default() };
    assert_error(org.admin.audit_log(&unknown).await, 422, "validation_failed");
    let (from, to) = ("2027-01-15T15:30:00Z".to_owned(), "2027-01-15T15:29:59Z".to_owned());
    let swapped = WindowQuery { from: Some(from), to: Some(to), ..Default::default() };
    assert_error(org.admin.audit_log(&swapped).await, 422, "validation_failed");
}

/// The cursors of a clinic's log carry nothing of other clinics' writes (the row id, one sequence
/// for every clinic, told how many rows they wrote between two pages); rows written at one
/// instant are paged through each once, in order, whatever the page size.
async fn the_logs_cursors_tell_nothing_of_other_clinics(backend: Backend) {
    use base64::Engine;
    let app = spawn_app(backend).await;
    let (org, other) = (app.org("UTC").await, app.org("UTC").await);
    let changes = |names: &'static [&'static str], clinic: &TestOrg| {
        let admin = clinic.admin.clone();
        async move {
            for name in names {
                let name = CreateProvider { name: format!("Dr. {name}"), ..Default::default() };
                admin.create_provider(&name).await.expect("a provider");
            }
        }
    };
    changes(&["Ngata"], &org).await;
    changes(&["Adams", "Brown", "Clark", "Davis", "Evans"], &other).await;
    changes(&["Jones", "Smith"], &org).await;
    // Three more rows of one instant, as one transaction writes them.
    let first = org.admin.audit_log(&WindowQuery::default()).await.expect("log")[0].clone();
    let same_instant = "INSERT INTO audit_log (org_id, appointment_id, subject, action, actor, details, at)
                        SELECT org_id, appointment_id, subject, action, actor, details, at FROM audit_log
                        WHERE id = (SELECT min(id) FROM audit_log WHERE org_id = $1)";
    for _ in 0..3 {
        match backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
                sqlx::query(same_instant).bind(org.id).execute(&mut conn).await.expect("copied");
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("connect");
                sqlx::query(same_instant).bind(org.id.to_string()).execute(&mut conn).await.expect("copied");
            }
        }
    }
    let log = org.admin.audit_log(&WindowQuery::default()).await.expect("log");
    assert_eq!(log.len(), 4 + 2, "the first provider's row, three copies of it, the two others: {log:?}");
    assert_eq!(log[0], first);
    for limit in [1, 2, 3] {
        let paged = org.admin.audit_log(&WindowQuery { limit: Some(limit), ..Default::default() }).await;
        assert_eq!(paged.expect("paged"), log, "{limit} a page");
    }
    let (mut cursor, mut places) = (None::<String>, Vec::new());
    loop {
        let mut request = org.admin.request(reqwest::Method::GET, "/api/audit").query(&[("limit", "1")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let page: shared::api::Page<AuditEntry> = org.admin.send(request).await.expect("a page");
        let Some(next) = page.next else { break };
        let key: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&next).expect("base64"))
                .expect("json");
        places.push(key[0][1].as_i64().expect("a place"));
        cursor = Some(next);
    }
    // The last row hands out no cursor.
    assert_eq!(places, [1, 2, 3, 4, 1], "each row's place among its clinic's rows of its instant");
}

on_both_backends!(
    every_change_the_clinic_makes_to_itself_is_kept_with_who_made_it,
    the_logs_cursors_tell_nothing_of_other_clinics
);
