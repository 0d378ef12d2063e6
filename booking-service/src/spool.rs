//! The folders mail and SMS go to when no SMTP server or Twilio account is set (`MAIL_DIR`,
//! `SMS_DIR`): one file per message, named by its outbox id, so a retry replaces it.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` as `dir/name`: to a hidden partial file, flushed to disk, then renamed into
/// place and the rename flushed too, so a reader never sees half a message and a message the
/// outbox records as sent is on disk, power loss or not.
pub async fn write(dir: &Path, name: String, bytes: Vec<u8>) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let partial = dir.join(format!(".{name}.partial"));
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, dir.join(&name))?;
        // A filesystem that cannot flush a folder (some network mounts) still has the message.
        match std::fs::File::open(&dir)?.sync_all() {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported) => Ok(()),
            done => done,
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{shown}: {e}"))
}
