//! A clinic's settings and the voice agent's side of it, written once for both databases: its
//! notification settings, its Vapi settings and the record of each call. A call's appointments are those whose audit rows name it: every
//! change a tool call makes writes its audit row, with the call's id, in the change's own
//! transaction, so the list can miss none.

use super::rows::{CallRow, SettingsRow};
use super::rules::Scope;
use super::sql::Timestamp;
use super::*;
use sqlx::types::Json;

impl SqlStore {
    pub(super) async fn load_settings(&self, org: OrgId) -> StoreResult<Option<ClinicSettings>> {
        let sql = "SELECT reminder_offsets_minutes, manage_cutoff_minutes, max_active_per_caller, sms_from
                   FROM organizations WHERE id = $1";
        let mut tx = self.begin(Scope::Read(org)).await?;
        let row: Option<SettingsRow> = tx.query(sql, (org,)).fetch_optional().await?;
        tx.commit().await?;
        Ok(row.map(ClinicSettings::from))
    }

    pub(super) async fn store_settings(&self, org: OrgId, s: &ClinicSettings) -> StoreResult<bool> {
        let sql = "UPDATE organizations SET reminder_offsets_minutes = $2, manage_cutoff_minutes = $3,
                          max_active_per_caller = $4, sms_from = $5
                   WHERE id = $1";
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let values = (
            org,
            Json(&s.reminder_offsets_minutes),
            count(s.manage_cutoff_minutes),
            count(s.max_active_per_caller),
            &s.sms_from,
        );
        let mut tx = self.begin(Scope::Write(org)).await?;
        let changed = tx.query(sql, values).execute().await?;
        tx.commit().await?;
        Ok(changed > 0)
    }

    pub(super) async fn store_vapi_settings(&self, org: OrgId, v: &VapiSettings) -> StoreResult<bool> {
        let sql = "UPDATE organizations SET vapi_assistant_id = $2, vapi_transfer_number = $3 WHERE id = $1";
        let mut tx = self.begin(Scope::Write(org)).await?;
        let changed = tx.query(sql, (org, &v.assistant_id, &v.transfer_number)).execute().await?;
        tx.commit().await?;
        Ok(changed > 0)
    }

    pub(super) async fn keep_call(&self, org: OrgId, c: &CallRecord) -> StoreResult<bool> {
        let sql = "INSERT INTO calls (org_id, call_id, customer_number, started_at, ended_at, ended_reason, summary, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (org_id, call_id) DO NOTHING";
        let values = (
            org,
            &c.call_id,
            &c.customer_number,
            Timestamp(c.started_at),
            c.ended_at.map(Timestamp),
            &c.ended_reason,
            &c.summary,
            Timestamp(now()),
        );
        let mut tx = self.begin(Scope::Write(org)).await?;
        let kept = tx.query(sql, values).execute().await?;
        tx.commit().await?;
        Ok(kept > 0)
    }

    pub(super) async fn list_calls(
        &self,
        org: OrgId,
        (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        page: &PageRequest<(DateTime<Utc>, String)>,
    ) -> StoreResult<Page<CallRecord>> {
        let mut tx = self.begin(Scope::Read(org)).await?;
        let ids = tx.dialect().json_distinct("a.appointment_id");
        let sql = format!(
            "SELECT c.call_id, c.customer_number, c.started_at, c.ended_at, c.ended_reason, c.summary,
                    (SELECT {ids} FROM audit_log a
                     WHERE a.org_id = c.org_id AND a.call_id = c.call_id AND a.subject = 'appointment') AS appointment_ids
             FROM calls c
             WHERE c.org_id = $1 AND ($2 IS NULL OR c.started_at >= $2) AND ($3 IS NULL OR c.started_at < $3)
               AND ($4 IS NULL OR (c.started_at, c.call_id) > ($4, $5))
             ORDER BY c.started_at, c.call_id LIMIT $6"
        );
        // Calls are named by Vapi's text ids: the sort key carries the id, the UUID part is unused.
        let (after, id) = page.after.as_ref().map(|((at, id), _)| (Timestamp(*at), id.as_str())).unzip();
        let values = (org, from.map(Timestamp), to.map(Timestamp), after, id, i64::from(page.limit) + 1);
        let rows: Vec<CallRow> = tx.query(&sql, values).fetch_all().await?;
        tx.commit().await?;
        Ok(Page::of(rows.into_iter().map(CallRecord::from).collect(), page.limit))
    }
}
