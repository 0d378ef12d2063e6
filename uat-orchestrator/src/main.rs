fn main() {
    eprintln!("uat-orchestrator: not built yet. See the open issue for it; the booking service itself runs with `cargo run -p booking-service`.");
    std::process::exit(2);
}
