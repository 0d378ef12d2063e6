//! The retention job: every hour, deletes the idempotency records, remembered tool answers and
//! delivered or dead outbox messages older than `RETENTION_DAYS`, in batches so that no
//! transaction holds locks for long. Audit rows, appointments and waiting messages are kept.

use crate::store::{self, DynStore};
use std::time::Duration;
use tokio::task::JoinHandle;

const EVERY: Duration = Duration::from_secs(3600);
const BATCH: i64 = 1000;

/// Prunes once now and then every hour, until the task is aborted (each batch is its own
/// transaction, so stopping between or within one loses nothing).
pub fn spawn(store: DynStore, keep: chrono::Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = prune(&store, keep).await {
                tracing::warn!(error = %e, "the retention job could not prune");
            }
            tokio::time::sleep(EVERY).await;
        }
    })
}

/// Deletes, batch after batch, everything that has served its time; the number deleted.
pub async fn prune(store: &DynStore, keep: chrono::Duration) -> store::StoreResult<u64> {
    let before = store::now() - keep;
    let mut total = 0;
    loop {
        let deleted = store.prune(before, BATCH).await?;
        total += deleted;
        if deleted == 0 {
            if total > 0 {
                tracing::info!(deleted = total, "retention: pruned old records");
            }
            return Ok(total);
        }
    }
}
