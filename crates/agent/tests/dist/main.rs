//! What ships: the generated files under `dist/` are current, the shipped task files validate,
//! and the Debian package (built with `cargo deb` from the test's own binary) holds the binary,
//! the unit, the task file as a conffile, the man page and completions, and its maintainer
//! scripts create the system user.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cronfleet(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cronfleet")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dist_files_are_current() {
    for (args, file) in [
        (&["completions", "bash"][..], "dist/completions/cronfleet.bash"),
        (&["completions", "zsh"][..], "dist/completions/_cronfleet"),
        (&["completions", "fish"][..], "dist/completions/cronfleet.fish"),
        (&["man"][..], "dist/man/cronfleet.1"),
    ] {
        let shipped = std::fs::read_to_string(root().join(file)).unwrap_or_default();
        assert!(shipped == cronfleet(args), "{file} is stale: run scripts/gen-dist and commit it");
    }
}

#[test]
fn version_names_the_commit() {
    let version = cronfleet(&["--version"]);
    let expected = format!("cronfleet {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected) && version.trim_end().ends_with(')'), "{version}");
    let commit = version.trim_end().rsplit('(').next().unwrap().trim_end_matches(')');
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit}");
}

#[test]
fn shipped_task_files_validate() {
    for file in ["dist/tasks.toml", "examples/tasks.toml"] {
        cronfleet(&["validate", root().join(file).to_str().unwrap()]);
    }
}

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_debian_package() {
    let cargo_deb =
        Command::new("cargo").args(["deb", "--version"]).output().is_ok_and(|o| o.status.success());
    if !cargo_deb || !have("dpkg-deb") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs cargo-deb and dpkg-deb (.ci/run installs them)"
        );
        eprintln!("skipped: `cargo install cargo-deb` (and dpkg) to test the Debian package");
        return;
    }
    // Package this test's binary: a target dir of our own whose release/ holds it.
    let scratch =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let target = scratch.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    let binary = target.join("release/cronfleet");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_cronfleet"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_cronfleet"), &binary).unwrap();
    }
    let deb = scratch.join("cronfleet.deb");
    let out = Command::new("cargo")
        .args(["deb", "-p", "cronfleet", "--no-build", "--fast", "--no-strip", "-o"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo deb: {}", String::from_utf8_lossy(&out.stderr));

    let contents = String::from_utf8(
        Command::new("dpkg-deb").arg("--contents").arg(&deb).output().unwrap().stdout,
    )
    .unwrap();
    for path in [
        "./usr/bin/cronfleet",
        "./usr/lib/systemd/system/cronfleet.service",
        "./etc/cronfleet/tasks.toml",
        "./usr/share/man/man1/cronfleet.1.gz",
        "./usr/share/bash-completion/completions/cronfleet",
        "./usr/share/zsh/vendor-completions/_cronfleet",
        "./usr/share/fish/vendor_completions.d/cronfleet.fish",
        "./usr/share/doc/cronfleet/task-file.md",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(path)), "{path} missing:\n{contents}");
    }
    let field = |name: &str| {
        let out = Command::new("dpkg-deb").args(["--field"]).arg(&deb).arg(name).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(field("Depends").contains("adduser"));
    assert_eq!(field("Package").trim(), "cronfleet");
    assert_eq!(field("Version").trim(), format!("{}-1", env!("CARGO_PKG_VERSION")));

    // Unpacked into a scratch root: the binary runs, the shipped task file validates, the
    // maintainer scripts parse and do what they should.
    let unpacked = scratch.join("root");
    let control = scratch.join("control");
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control).status().unwrap().success());
    let bin = unpacked.join("usr/bin/cronfleet");
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cronfleet "));
    let out = Command::new(&bin)
        .arg("validate")
        .arg(unpacked.join("etc/cronfleet/tasks.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap().trim(),
        "/etc/cronfleet/tasks.toml"
    );
    for script in ["postinst", "postrm", "prerm"] {
        let status = Command::new("sh").arg("-n").arg(control.join(script)).status().unwrap();
        assert!(status.success(), "{script} does not parse");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group --home /var/lib/cronfleet"));
    assert!(
        postinst.contains("deb-systemd-helper") && postinst.contains("cronfleet.service"),
        "{postinst}"
    );
    let unit =
        std::fs::read_to_string(unpacked.join("usr/lib/systemd/system/cronfleet.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=cronfleet",
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing from the unit");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
