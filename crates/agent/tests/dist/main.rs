//! What ships: the generated files under `dist/` are current, the shipped task files validate,
//! the man pages (one per command) refer only to pages that exist and name their command's
//! options, and the Debian package (built with `cargo deb` from the test's own binary) holds the
//! binary, the unit, the task file as a conffile, every man page and the completions, and its
//! maintainer scripts create the system user.

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
        (&["man", "task", "ls"][..], "dist/man/cronfleet-task-ls.1"),
    ] {
        let shipped = std::fs::read_to_string(root().join(file)).unwrap_or_default();
        assert!(shipped == cronfleet(args), "{file} is stale: run scripts/gen-dist and commit it");
    }
    // Every page, and no page of a command that is gone.
    let fresh = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    cronfleet(&["man", "--dir", fresh.to_str().unwrap()]);
    let made = pages(&fresh);
    let shipped = pages(&root().join("dist/man"));
    let names = |p: &[(String, String)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&shipped), names(&made), "dist/man is stale: run scripts/gen-dist");
    for ((name, shipped), (_, made)) in shipped.iter().zip(&made) {
        assert!(shipped == made, "dist/man/{name} is stale: run scripts/gen-dist and commit it");
    }
    let _ = std::fs::remove_dir_all(&fresh);
}

/// The `.1` files of a directory, by name, with their text.
fn pages(dir: &Path) -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    pages.sort();
    pages
}

/// A page as text: roff's font changes dropped, its escaped dashes and quotes plain.
fn plain(page: &str) -> String {
    page.replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\-", "-")
        .replace("\\*(Aq", "'")
}

/// The `cronfleet-*(1)` pages a page refers to (`cronfleet` for cronfleet(1)).
fn references(page: &str) -> Vec<String> {
    let text = plain(page);
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("cronfleet") {
        rest = &rest[at..];
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '-').collect();
        if rest[name.len()..].starts_with("(1)") {
            found.push(name.clone());
        }
        rest = &rest[name.len()..];
    }
    found
}

/// The long options `cronfleet ARGS --help` lists.
fn options_of(words: &[&str]) -> Vec<String> {
    let mut args = words.to_vec();
    args.push("--help");
    let help = cronfleet(&args);
    // An option's line is indented by 2 (`  -n, --limit <N>`) or 6 (`      --json`) spaces;
    // its description, further.
    help.lines()
        .filter(|l| {
            let indent = l.len() - l.trim_start().len();
            (indent == 2 || indent == 6) && l.trim_start().starts_with('-')
        })
        .filter_map(|l| l.split([' ', ',', '=']).find(|w| w.starts_with("--")))
        .map(str::to_owned)
        .collect()
}

/// The long options a page describes (its `.TP` items).
fn page_options(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .flat_map(|w| w[1].split([' ', ',']))
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

/// The shipped pages: one per command, each reference to a page has its page, and each page
/// names its command's options (as `--help` lists them) and says its exit status.
#[test]
fn every_page_referred_to_is_shipped_and_names_its_options() {
    let shipped = pages(&root().join("dist/man"));
    let names: Vec<&str> = shipped.iter().map(|(n, _)| n.as_str()).collect();
    // cronfleet(1) and a page per command of `cronfleet --help` (and of `task`).
    for command in [
        "agent",
        "next",
        "prev",
        "reload",
        "stop",
        "status",
        "runs",
        "logs",
        "run",
        "pause",
        "resume",
        "kill",
        "task",
        "task-ls",
        "task-show",
        "task-create",
        "task-edit",
        "task-rm",
        "plan",
        "apply",
        "nodes",
        "doctor",
        "completions",
        "man",
        "validate",
        "import-crontab",
        "import-gotorch",
    ] {
        let file = format!("cronfleet-{command}.1");
        assert!(names.contains(&file.as_str()), "no {file} in dist/man: {names:?}");
    }
    assert!(names.contains(&"cronfleet.1"));
    let mut referred = 0;
    for (name, page) in &shipped {
        for reference in references(page) {
            let file = format!("{reference}.1");
            assert!(names.contains(&file.as_str()), "{name} refers to {reference}(1): no {file}");
            referred += 1;
        }
        let command = name.trim_end_matches(".1");
        let words: Vec<&str> = match command.strip_prefix("cronfleet-") {
            // import-crontab is one word; task-ls is `task ls`.
            Some(rest) if rest.starts_with("import-") => vec![rest],
            Some(rest) => rest.split('-').collect(),
            None => Vec::new(),
        };
        let text = plain(page);
        let th = format!(".TH {command} 1 ");
        assert!(text.contains(&th), "{name}: no {th:?}");
        let options = options_of(&words);
        assert!(options.contains(&"--help".to_owned()), "{words:?}: {options:?}");
        let described = page_options(&text);
        for option in &options {
            assert!(described.contains(option), "{name} does not describe {option}: {described:?}");
        }
        for section in
            [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH \"EXIT STATUS\"", ".SH \"SEE ALSO\""]
        {
            assert!(text.contains(section), "{name}: no {section}");
        }
    }
    assert!(referred > 40, "only {referred} references found");
    // The agent's page has what an operator looks for.
    let agent = plain(&shipped.iter().find(|(n, _)| n == "cronfleet-agent.1").unwrap().1);
    for what in [
        "CRONFLEET_STATE_DIR",
        "CRONFLEET_LISTEN",
        "CRONFLEET_STORE",
        "CRONFLEET_SCHEDULED_AT",
        "STATE_DIR/state.db",
        "STATE_DIR/api-token",
        "/run/cronfleet.pid",
        "--shutdown-grace",
    ] {
        assert!(agent.contains(what), "cronfleet-agent.1 does not name {what}");
    }
    let runs = plain(&shipped.iter().find(|(n, _)| n == "cronfleet-runs.1").unwrap().1);
    for what in ["CRONFLEET_STATE_DIR", "CRONFLEET_SERVER", "CRONFLEET_TOKEN", "STATE_DIR/state.db"]
    {
        assert!(runs.contains(what), "cronfleet-runs.1 does not name {what}");
    }
}

/// `man` reads every page without a warning (when man is installed).
#[test]
fn man_reads_every_page_without_warnings() {
    if !Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "CI needs man (man-db)");
        eprintln!("skipped: no man");
        return;
    }
    for (name, _) in pages(&root().join("dist/man")) {
        // As lintian reads them (manpage-has-errors-from-man).
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
            .arg(root().join("dist/man").join(&name))
            .env("LC_ALL", "C.UTF-8")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.trim().is_empty(), "{name}: {warnings}");
    }
}

#[test]
fn generated_docs_are_current() {
    let api = std::fs::read_to_string(root().join("docs/api-reference.md")).unwrap_or_default();
    assert!(
        api == cronfleet(&["docs", "api"]),
        "docs/api-reference.md is stale: run scripts/gen-dist"
    );
    let reference = std::fs::read_to_string(root().join("docs/task-file.md")).unwrap();
    for what in ["task-fields", "notifier-fields"] {
        let marker = format!("<!-- generated by `cronfleet docs {what}`");
        let start =
            reference.find(&marker).unwrap_or_else(|| panic!("no {marker} in docs/task-file.md"));
        let region = &reference[start..];
        let region = &region
            [region.find('\n').unwrap() + 1..region.find("<!-- end of generated -->").unwrap()];
        assert!(
            region.trim_end() == cronfleet(&["docs", what]).trim_end(),
            "the {what} table of docs/task-file.md is stale: run scripts/gen-dist"
        );
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
        "./usr/share/man/man1/cronfleet-agent.1.gz",
        "./usr/share/man/man1/cronfleet-runs.1.gz",
        "./usr/share/man/man1/cronfleet-task-ls.1.gz",
        "./usr/share/bash-completion/completions/cronfleet",
        "./usr/share/zsh/vendor-completions/_cronfleet",
        "./usr/share/fish/vendor_completions.d/cronfleet.fish",
        "./usr/share/doc/cronfleet/task-file.md",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(path)), "{path} missing:\n{contents}");
    }
    for (page, _) in pages(&root().join("dist/man")) {
        let path = format!("./usr/share/man/man1/{page}.gz");
        assert!(contents.lines().any(|l| l.ends_with(&path)), "{path} missing:\n{contents}");
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

fn run_in(root: &Path, user: Option<&str>, script: &str) -> std::process::Output {
    let mut c = Command::new("chroot");
    if let Some(user) = user {
        c.arg(format!("--userspec={user}:{user}"));
    }
    c.arg(root).args(["/bin/sh", "-c", script]).env("DEBIAN_FRONTEND", "noninteractive");
    c.output().unwrap()
}

/// Installs the package into a fresh Debian (debootstrap, minbase), runs the agent there as
/// the package's user with the package's files, then purges it: nothing is left behind.
#[test]
fn the_debian_package_installs_runs_and_purges_in_a_fresh_debian() {
    let root_user = nix::unistd::geteuid().is_root();
    let tools = have("dpkg-deb") && Command::new("debootstrap").arg("--version").output().is_ok();
    let cargo_deb =
        Command::new("cargo").args(["deb", "--version"]).output().is_ok_and(|o| o.status.success());
    if !(root_user && tools && cargo_deb) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with debootstrap and cargo-deb"
        );
        eprintln!("skipped: needs root, debootstrap and cargo-deb");
        return;
    }
    let scratch =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("debian-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let target = scratch.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    if std::fs::hard_link(env!("CARGO_BIN_EXE_cronfleet"), target.join("release/cronfleet"))
        .is_err()
    {
        std::fs::copy(env!("CARGO_BIN_EXE_cronfleet"), target.join("release/cronfleet")).unwrap();
    }
    let root = scratch.join("root");
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .arg("http://deb.debian.org/debian")
        .output()
        .unwrap();
    assert!(out.status.success(), "debootstrap: {}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new("cargo")
        .args(["deb", "-p", "cronfleet", "--no-build", "--fast", "--no-strip", "-o"])
        .arg(root.join("tmp/cronfleet.deb"))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(self::root())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo deb: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).unwrap();

    let out =
        run_in(&root, None, "apt-get update -qq && apt-get install -y -qq /tmp/cronfleet.deb");
    assert!(
        out.status.success(),
        "install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_in(&root, None, "getent passwd cronfleet && stat -c '%U %a' /var/lib/cronfleet && stat -c '%G %a' /etc/cronfleet/tasks.toml");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cronfleet:") && text.contains("/usr/sbin/nologin"), "{text}");
    assert!(text.contains("cronfleet 700") && text.contains("cronfleet 664"), "{text}");

    // The agent, as the package's user, on the package's files.
    let out = run_in(
        &root,
        Some("cronfleet"),
        "cronfleet agent --config /etc/cronfleet/tasks.toml --state-dir /var/lib/cronfleet --listen 127.0.0.1:0 & \
         pid=$!; for i in $(seq 100); do [ -s /var/lib/cronfleet/api-addr ] && break; sleep 0.1; done; \
         cronfleet doctor --state-dir /var/lib/cronfleet; kill $pid; wait $pid; echo exit=$?",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok    agent      running"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ok    api token") && text.contains("exit=0"), "{text}");

    // Purged: the binary, the task file, the state and the user are gone.
    let out = run_in(&root, None, "apt-get purge -y -qq cronfleet");
    assert!(out.status.success(), "purge: {}", String::from_utf8_lossy(&out.stderr));
    for gone in [
        "usr/bin/cronfleet",
        "etc/cronfleet",
        "var/lib/cronfleet",
        "usr/lib/systemd/system/cronfleet.service",
    ] {
        assert!(!root.join(gone).exists(), "{gone} left behind");
    }
    let out = run_in(&root, None, "getent passwd cronfleet || echo no-user");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no-user");
    let _ = std::fs::remove_dir_all(&scratch);
}
