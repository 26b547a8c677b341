//! Puts the git commit the binary is built from into `CRONFLEET_COMMIT`, for `--version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CRONFLEET_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit, a checkout).
    for path in ["../../.git/HEAD", "../../.git/refs/heads"] {
        println!("cargo:rerun-if-changed={path}");
    }
    // `sqlx::migrate!` embeds these: a new or changed file rebuilds the crate.
    println!("cargo:rerun-if-changed=migrations");
}
