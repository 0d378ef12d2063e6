//! Report files written whole: a run killed mid-write leaves the previous file or none, never a
//! truncated report that a CI step would then fail to parse.

use std::path::{Path, PathBuf};

/// The path a raw command line gives `flag` (`--flag PATH` or `--flag=PATH`; the last one counts,
/// as for clap): where a run whose command line its parser refused must still say that it could
/// not judge, an earlier run's file standing there otherwise.
pub fn flag_path(args: &[std::ffi::OsString], flag: &str) -> Option<PathBuf> {
    let with_value = format!("{flag}=");
    let mut found = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == flag {
            found = args.next().map(PathBuf::from);
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix(&with_value)) {
            found = Some(PathBuf::from(value));
        }
    }
    found
}

/// Why a run could not judge when its parser refused the command line: the first line of the
/// parser's message ("error: invalid value '0' for '--concurrency <N>': ...").
pub fn refusal(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    format!("the command line was refused: {}", first.strip_prefix("error: ").unwrap_or(first))
}

/// Writes `report` as JSON to `<prefix>-<unix ms>.json` in `folder`, making the folder; returns
/// the file's path.
pub fn write_json(folder: &Path, prefix: &str, report: &impl serde::Serialize) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let path = folder.join(format!("{prefix}-{}.json", chrono::Utc::now().timestamp_millis()));
    write_whole(&path, &serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?)?;
    Ok(path)
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    // As readable as a file created in place (0666 less the umask), not tempfile's owner-only.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut file = builder.tempfile_in(folder)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path).map(drop).map_err(|e| e.error)
}

/// Whether a report can later be written at `path`: it is not a folder, and its folder can be
/// written in. Checked before a run, so that a long run does not end in "cannot write".
pub fn can_write(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other(format!("{} is a folder, not a file", path.display())));
    }
    can_write_in(path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Whether reports can later be written in `folder`, without making it: the nearest part of it
/// that exists is a folder that takes a new file (the rest is made when the report is written).
pub fn can_write_in(folder: &Path) -> std::io::Result<()> {
    // A relative path's last ancestor is "", the current folder.
    let existing = folder
        .ancestors()
        .map(|a| if a.as_os_str().is_empty() { Path::new(".") } else { a })
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(std::io::Error::other(format!("{} is a file, not a folder", existing.display())));
    }
    tempfile::Builder::new().tempfile_in(existing).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flags_path_is_read_from_the_raw_command_line() {
        let args = |line: &str| line.split(' ').map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(flag_path(&args("tool --junit a.xml -c 0"), "--junit"), Some(PathBuf::from("a.xml")));
        assert_eq!(flag_path(&args("tool --junit=a.xml --junit b.xml"), "--junit"), Some(PathBuf::from("b.xml")));
        assert_eq!(flag_path(&args("tool --junit-dir x --junit"), "--junit"), None);
        assert_eq!(flag_path(&args("tool --report r.json"), "--junit"), None);
    }

    /// The file is replaced, not truncated and written again: whoever holds the previous one
    /// (here, a second name of it) still reads it whole, and no temporary file is left.
    #[test]
    fn a_file_is_replaced_whole_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("report.json");
        std::fs::write(&path, "previous").expect("a previous report");
        let held = dir.path().join("held.json");
        std::fs::hard_link(&path, &held).expect("a second name");
        write_whole(&path, b"next").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "next");
        assert_eq!(std::fs::read_to_string(&held).expect("read"), "previous");
        assert_eq!(std::fs::read_dir(dir.path()).expect("the folder").count(), 2);
    }

    #[test]
    fn a_report_path_is_checked_before_a_run() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        can_write(&dir.path().join("new/report.json")).expect("its folder can be made");
        assert_eq!(std::fs::read_dir(dir.path()).expect("the folder").count(), 0, "nothing made or left");
        let folder = can_write(dir.path()).expect_err("a folder is no file");
        assert!(folder.to_string().contains("is a folder"), "{folder}");
        std::fs::write(dir.path().join("file"), "x").expect("a file");
        assert!(can_write_in(&dir.path().join("file/reports")).is_err(), "below a file");
    }

    /// Created like a file written in place: readable by others unless the umask says otherwise.
    #[cfg(unix)]
    #[test]
    fn a_file_is_as_readable_as_one_written_in_place() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (whole, in_place) = (dir.path().join("whole"), dir.path().join("in-place"));
        write_whole(&whole, b"x").expect("written");
        std::fs::write(&in_place, b"x").expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&whole), mode(&in_place));
    }
}
