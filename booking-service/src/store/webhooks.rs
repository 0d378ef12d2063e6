//! The rule that queues a clinic's webhook messages, written once for both databases: every change
//! of an appointment calls [`fire`] in its own transaction (the booking statement on
//! PostgreSQL does the same in SQL), so a change and its announcements commit together.

use super::rows::WEBHOOK_COLUMNS;
use super::rules::enqueue;
use super::sql::Tx;
use super::*;

/// Queues one message per webhook of the organization that wants `kind`, announcing `appointment`
/// as it is now.
pub(super) async fn fire(
    tx: &mut Tx,
    appointment: &Appointment,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let org = appointment.org_id;
    let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = $1");
    let hooks: Vec<Webhook> = tx.query(&sql, (org,)).fetch_all().await?;
    let body = event::body(kind, now, appointment);
    for hook in hooks.into_iter().filter(|h| h.wants(kind)) {
        enqueue(tx, appointment, outbox_kind::WEBHOOK, &event::payload(hook.id, &body), now, now).await?;
    }
    Ok(())
}
