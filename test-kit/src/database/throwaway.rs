//! A PostgreSQL cluster of the test process's own, from the installed binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The folder holding `initdb` and `postgres`: on `PATH`, else Debian's newest.
fn binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `initdb` and `postgres` refuse to run as root: then they run as the `postgres` user.
fn as_cluster_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the cluster and a watchdog that stops and removes it when this process ends;
/// returns its administrative URL.
pub fn start() -> Result<String, String> {
    let bin = binaries().ok_or("initdb and postgres are not installed")?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("booking-test-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if root {
        let owned = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status();
        if !owned.is_ok_and(|s| s.success()) {
            return Err("running as root, and the postgres user cannot own the cluster folder".into());
        }
    }
    let data = dir.join("data");
    let init = as_cluster_owner(&bin.join("initdb"), root)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.success() {
        return Err(format!("initdb failed ({init})"));
    }
    let port = free_port().map_err(|e| e.to_string())?;
    let mut postgres = as_cluster_owner(&bin.join("postgres"), root);
    postgres.arg("-D").arg(&data).arg("-k").arg(&dir).args([
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=300",
    ]);
    // The watchdog: a shell that runs the server, and stops it and removes the folder once
    // this process is gone.
    let pg_ctl = bin.join("pg_ctl");
    let stop = if root {
        format!("runuser -u postgres -- '{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display())
    } else {
        format!("'{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display())
    };
    let program = format!("{:?}", postgres.get_program());
    let args: Vec<String> = postgres.get_args().map(|a| format!("'{}'", a.to_string_lossy())).collect();
    let script = format!(
        "{program} {} >/dev/null 2>&1 & while kill -0 {parent} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        args.join(" "),
        parent = std::process::id(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err("the throwaway cluster did not start within 30 s".into())
}
