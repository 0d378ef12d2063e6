//! The mail sink the email scenario reads from (filled in with the confirmation-email work).

use crate::cli::Cli;
use crate::target::Target;

pub struct Mailbox;

impl Mailbox {
    pub async fn for_run(_cli: &Cli, _target: &Target) -> Result<Option<Mailbox>, String> {
        Ok(None)
    }
}
