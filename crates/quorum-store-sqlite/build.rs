//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the folder, and
//! Cargo would not otherwise see a new file in it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
