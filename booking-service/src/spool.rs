//! The folders mail and SMS go to when no SMTP server or Twilio account is set (`MAIL_DIR`,
//! `SMS_DIR`): one file per message, named by its outbox id, so a retry replaces it. Files are
//! made readable by the service's user alone (0600, in a folder it makes 0700).

use std::io::Write;
use std::path::Path;

/// Writes `bytes` as `dir/name`: to a hidden partial file, flushed to disk, then renamed into
/// place and the rename flushed too, so a reader never sees half a message and a message the
/// outbox records as sent is on disk, power loss or not.
pub async fn write(dir: &Path, name: String, bytes: Vec<u8>) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut folder = std::fs::DirBuilder::new();
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create(true).truncate(true);
        // Messages hold patients' addresses and live link tokens: the service's user alone reads them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            folder.mode(0o700);
            file.mode(0o600);
        }
        folder.recursive(true).create(&dir)?;
        let partial = dir.join(format!(".{name}.partial"));
        // One a crash left behind would keep the mode it was made with.
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = file.open(&partial)?;
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

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[tokio::test]
    async fn a_message_is_readable_by_the_service_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("dir");
        let dir = root.path().join("sms");
        super::write(&dir, "job.json".into(), b"{}".to_vec()).await.expect("written");
        let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("job.json")), 0o600);
        assert_eq!(std::fs::read(dir.join("job.json")).expect("read"), b"{}");
    }
}
