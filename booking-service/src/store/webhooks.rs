//! A clinic's webhooks, written once for both databases, and the rule that queues their messages:
//! every change of an appointment calls [`fire`] in its own transaction (the booking statement on
//! PostgreSQL does the same in SQL), so a change and its announcements commit together.

use super::rules::Scope;
use super::sql::{Key, Timestamp, Tx};
use super::*;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: WebhookId,
    org_id: OrgId,
    url: String,
    events: Json<Vec<String>>,
    secret: String,
    created_at: Timestamp,
}

const WEBHOOK_COLUMNS: &str = "id, org_id, url, events, secret, created_at FROM webhooks";

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            org_id: r.org_id,
            url: r.url,
            events: r.events.0,
            secret: r.secret,
            created_at: r.created_at.0,
        }
    }
}

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
    let hooks: Vec<WebhookRow> = tx.query(&sql, (org,)).fetch_all().await?;
    let data = serde_json::to_value(appointment.to_api()).unwrap_or_default();
    for hook in hooks.into_iter().map(Webhook::from).filter(|h| h.wants(kind)) {
        let payload = event::payload(hook.id, kind, now, &data);
        tx.query(
            "INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            (Key(Uuid::now_v7()), org, appointment.id, outbox_kind::WEBHOOK, Json(&payload), Timestamp(now)),
        )
        .execute()
        .await?;
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn add_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let mut tx = self.begin(Scope::Write(w.org_id)).await?;
        let (count,): (i64,) =
            tx.query("SELECT count(*) FROM webhooks WHERE org_id = $1", (w.org_id,)).fetch_one().await?;
        if count >= MAX_WEBHOOKS {
            return Err(StoreError::InvalidState(format!("a clinic has at most {MAX_WEBHOOKS} webhooks")));
        }
        tx.query(
            "INSERT INTO webhooks (id, org_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            (w.id, w.org_id, &w.url, Json(&w.events), &w.secret, Timestamp(w.created_at)),
        )
        .execute()
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn list_webhooks(
        &self,
        org: OrgId,
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<Webhook>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} WHERE org_id = $1 AND ($2 IS NULL OR (created_at, id) > ($2, $3))
             ORDER BY created_at, id LIMIT $4"
        );
        let (after, id) = page.after.as_ref().map(|(at, id)| (Timestamp(*at), Key(*id))).unzip();
        let mut tx = self.begin(Scope::Read(org)).await?;
        let rows: Vec<WebhookRow> = tx.query(&sql, (org, after, id, i64::from(page.limit) + 1)).fetch_all().await?;
        tx.commit().await?;
        Ok(Page::of(rows.into_iter().map(Webhook::from).collect(), page.limit))
    }

    pub(super) async fn load_webhook(&self, org: OrgId, id: WebhookId) -> StoreResult<Option<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = $1 AND id = $2");
        let mut tx = self.begin(Scope::Read(org)).await?;
        let row: Option<WebhookRow> = tx.query(&sql, (org, id)).fetch_optional().await?;
        tx.commit().await?;
        Ok(row.map(Webhook::from))
    }

    pub(super) async fn remove_webhook(&self, org: OrgId, id: WebhookId) -> StoreResult<bool> {
        let mut tx = self.begin(Scope::Write(org)).await?;
        let removed = tx.query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2", (org, id)).execute().await?;
        tx.commit().await?;
        Ok(removed > 0)
    }
}
