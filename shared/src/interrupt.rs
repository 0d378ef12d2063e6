//! How a test tool learns it is being stopped. CI runners cancel a job with SIGINT (GitHub, then
//! SIGTERM a few seconds later), or with SIGTERM alone (GitLab, Jenkins, Kubernetes): a tool that
//! heard only Ctrl-C died on SIGTERM without cleaning up or writing its report, leaving an earlier
//! run's report in place.

/// Resolves at the next SIGINT or SIGTERM (Ctrl-C or Ctrl-Break elsewhere), naming it. Each call
/// waits for a signal of its own, so a second call after the first resolved waits for a second
/// signal: what a tool cleaning up after the first gives up at.
pub async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            // No handler could be installed: the default action stays, and this never resolves.
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A SIGTERM the process sends itself is heard, not the default action (exit 143).
    #[tokio::test]
    async fn sigterm_is_heard() {
        let heard = tokio::spawn(interrupted());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let name = tokio::time::timeout(std::time::Duration::from_secs(5), heard).await.expect("in time");
        assert_eq!(name.expect("joined"), "SIGTERM");
    }
}
