//! SMS opt-outs, written once for both databases. They belong to a pair of numbers, not to a
//! clinic (a sender number may serve several), so they are kept and read outside any
//! organization's scope: written by the inbound SMS route (`Scope::OptOuts`), read by the
//! dispatcher (`Scope::Dispatch`), each role allowed that table only.

use super::rules::Scope;
use super::sql::Timestamp;
use super::*;

impl SqlStore {
    pub(super) async fn keep_opt_out(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<()> {
        let sql = "INSERT INTO sms_opt_outs (sender, phone, created_at) VALUES ($1, $2, $3)
                   ON CONFLICT (sender, phone) DO NOTHING";
        let mut tx = self.begin(Scope::OptOuts).await?;
        tx.query(sql, (sender.as_str(), phone.as_str(), Timestamp(now()))).execute().await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn drop_opt_out(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<bool> {
        let sql = "DELETE FROM sms_opt_outs WHERE sender = $1 AND phone = $2";
        let mut tx = self.begin(Scope::OptOuts).await?;
        let removed = tx.query(sql, (sender.as_str(), phone.as_str())).execute().await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    pub(super) async fn find_opt_out(&self, sender: &str, phone: &str) -> StoreResult<bool> {
        let sql = "SELECT 1 FROM sms_opt_outs WHERE sender = $1 AND phone = $2";
        let mut tx = self.begin(Scope::Dispatch).await?;
        let row: Option<(i32,)> = tx.query(sql, (sender, phone)).fetch_optional().await?;
        tx.commit().await?;
        Ok(row.is_some())
    }
}
