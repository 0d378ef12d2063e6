//! Builds the service again when a migration is added or changed: `sqlx::migrate!` embeds the
//! migration folders at compile time, and cargo does not watch them by itself (the build script
//! sqlx's documentation gives for this).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
