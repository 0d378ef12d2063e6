//! The rule that queues a clinic's webhook messages, written once for both databases: every change
//! of an appointment calls [`fire`] in its own transaction (the booking statement on
//! PostgreSQL does the same in SQL), so a change and its announcements commit together.

use super::rules::enqueue;
use super::sql::{Db, Dialect, Tx};
use super::*;

/// Queues one message per webhook of the organization that wants `kind`, announcing `appointment`
/// as it is now.
pub(super) async fn fire(tx: &mut Tx, appointment: &Appointment, kind: &str, now: DateTime<Utc>) -> Db {
    let sql = format!("SELECT w.id FROM webhooks w WHERE w.org_id = $1 AND {}", wanting(tx.dialect(), "$2"));
    let hooks: Vec<(WebhookId,)> = tx.query(&sql, (appointment.org_id, kind)).fetch_all().await?;
    let body = event::body(kind, now, appointment);
    for (hook,) in hooks {
        enqueue(tx, appointment, outbox_kind::WEBHOOK, &event::payload(hook, &body), now, now).await?;
    }
    Ok(())
}

/// Whether the webhook `w` wants the event the placeholder `event` names: it lists it, or lists
/// none (every event). [`fire`] and the PostgreSQL booking statement ask it.
pub(super) fn wanting(d: Dialect, event: &str) -> String {
    let listed = d.json_elements("w.events");
    format!("(NOT EXISTS (SELECT 1 FROM {listed}) OR EXISTS (SELECT 1 FROM {listed} e WHERE e.value = {event}))")
}
