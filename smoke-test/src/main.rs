//! `cargo run -p smoke-test`: see `smoke-test --help`. Exit 0 pass, 1 fail, 2 could not judge.

use clap::Parser;

/// mimalloc: under a burst of thousands of requests glibc's malloc grows and locks its arenas page
/// by page; mimalloc halved the 2,000-request burst's p95 (bench/README.md). It is built without
/// transparent huge pages (`no_thp`): with them, nearly half of a burst's CPU went to the kernel
/// zeroing 2 MiB pages that mimalloc had just released and touched again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = smoke_test::cli::Args::try_parse_from(&raw).unwrap_or_else(|e| smoke_test::refused(&raw, e));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("smoke-test: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let run = runtime.block_on(smoke_test::run(args));
    // Let the in-process service's background tasks go without waiting on them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(run.exit_code());
}
