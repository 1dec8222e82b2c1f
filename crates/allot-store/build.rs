//! `sqlx::migrate!` embeds the migration files at compile time, but cargo does not know
//! they are inputs: without this, a new migration is not picked up by an incremental build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
