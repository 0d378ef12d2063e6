//! How a test tool learns it is being stopped. CI runners cancel a job with SIGINT (GitHub, then
//! SIGTERM a few seconds later), or with SIGTERM alone (GitLab, Jenkins, Kubernetes): a tool that
//! heard only Ctrl-C died on SIGTERM without cleaning up or writing its report, leaving an earlier
//! run's report in place.

use tokio::sync::watch;

/// The signals a tool has received since it began listening, counted by one task installed at
/// its start, so that none is missed between two waits: the first stops the run, the second gives
/// up its cleanup, and the third ends the process at once (its report files already say that it
/// could not judge; a temporary database is left behind). Two signals of one kind that arrive
/// before the task runs count as one, as Tokio delivers them. The task ends with the last
/// `Interrupts` of it dropped.
#[derive(Clone)]
pub struct Interrupts {
    heard: watch::Receiver<(u32, &'static str)>,
}

/// The exit code of a process ended by a third signal: could not judge.
const GIVEN_UP: i32 = 2;

impl Interrupts {
    /// Starts listening for SIGINT and SIGTERM (Ctrl-C elsewhere), the handlers installed before
    /// it returns. Needs a Tokio runtime.
    pub fn listen() -> Self {
        let (tell, heard) = watch::channel((0, ""));
        #[cfg(unix)]
        let handlers = {
            use tokio::signal::unix::{signal, SignalKind};
            signal(SignalKind::interrupt()).and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
        };
        #[cfg(not(unix))]
        let handlers = tokio::signal::windows::ctrl_c();
        tokio::spawn(async move {
            // Without handlers the default action stays, and no wait ever resolves.
            #[cfg(unix)]
            let Ok((mut int, mut term)) = handlers
            else {
                return;
            };
            #[cfg(not(unix))]
            let Ok(mut ctrl_c) = handlers
            else {
                return;
            };
            loop {
                #[cfg(unix)]
                let name = tokio::select! {
                    () = tell.closed() => return,
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                #[cfg(not(unix))]
                let name = tokio::select! {
                    () = tell.closed() => return,
                    _ = ctrl_c.recv() => "Ctrl-C",
                };
                let mut count = 0;
                tell.send_modify(|(n, last)| {
                    *n += 1;
                    *last = name;
                    count = *n;
                });
                if count >= 3 {
                    eprintln!("{name} a third time: stopping at once");
                    std::process::exit(GIVEN_UP);
                }
            }
        });
        Self { heard }
    }

    /// The last signal received, if any was.
    pub fn heard(&self) -> Option<&'static str> {
        let (n, last) = *self.heard.borrow();
        (n > 0).then_some(last)
    }

    /// Resolves once the `nth` signal has been received (at once if it already was), naming the
    /// last one; never, if no handler could be installed.
    pub async fn nth(&self, nth: u32) -> &'static str {
        let mut heard = self.heard.clone();
        let last = heard.wait_for(|(n, _)| *n >= nth).await.map(|seen| seen.1);
        match last {
            Ok(name) => name,
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A SIGTERM the process sends itself is heard (not the default action, exit 143), and counted:
    /// a wait for the first resolves after it, as one begun later does; a wait for the second does
    /// not.
    #[tokio::test]
    async fn sigterm_is_heard_and_counted() {
        let interrupts = Interrupts::listen();
        assert_eq!(interrupts.heard(), None);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let within = std::time::Duration::from_secs(5);
        assert_eq!(tokio::time::timeout(within, interrupts.nth(1)).await, Ok("SIGTERM"));
        assert_eq!(tokio::time::timeout(within, interrupts.nth(1)).await, Ok("SIGTERM"), "asked again");
        assert_eq!(interrupts.heard(), Some("SIGTERM"));
        let second = tokio::time::timeout(std::time::Duration::from_millis(300), interrupts.nth(2)).await;
        assert!(second.is_err(), "one signal counted as two");
    }
}
