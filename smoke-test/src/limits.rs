//! The process's open-file limit: every racer holds a connection, and in-process the service holds
//! the other end too, so a big race needs more descriptors than many shells allow by default.

/// Descriptors beyond the connections: the runtime, the database pool, files, the setup's clients.
const HEADROOM: u64 = 256;

/// Raises the soft limit (up to the hard one) so that `connections` connections fit, each counted
/// `ends` times; says what to change when they cannot.
pub fn ensure_room_for(connections: u64, ends: u64) -> Result<(), String> {
    let needed = connections.saturating_mul(ends).saturating_add(HEADROOM);
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit >= needed => Ok(()),
        Ok(limit) => Err(format!(
            "{connections} connections need about {needed} open files, but this process may open \
             only {limit}: raise the limit (ulimit -n {needed}) or lower --concurrency/--slots \
             (or --max-in-flight)"
        )),
        Err(e) => Err(format!("cannot read or raise the open-file limit: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_race_beyond_the_hard_limit_is_refused_with_the_numbers() {
        let (_, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
        let Some(connections) = hard.checked_add(1) else {
            return; // an unlimited hard limit cannot be exceeded
        };
        let e = ensure_room_for(connections, 1).expect_err("over the hard limit");
        assert!(e.contains("ulimit -n") && e.contains("open files"), "{e}");
    }

    #[test]
    fn a_small_race_fits() {
        assert_eq!(ensure_room_for(10, 2), Ok(()));
    }
}
