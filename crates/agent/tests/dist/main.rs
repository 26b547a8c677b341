//! What ships: the generated files under `dist/` are current, the shipped task files validate,
//! the systemd unit is hardened (`systemd-analyze security` rates it OK) and valid, the man
//! pages (one per command) refer only to pages that exist and name their command's options,
//! and the Debian package (built with `cargo deb` from the test's own binary) holds the binary,
//! the unit, the task file as a conffile, every man page, completions, changelog and copyright,
//! passes lintian, and its maintainer scripts create the system user and keep the task file
//! out of the tasks' reach.

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
    // Stripped (into a copy) like a real build, for lintian.
    let out = Command::new("cargo")
        .args(["deb", "-p", "cronfleet", "--no-build", "--fast", "-o"])
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
        "./usr/share/doc/cronfleet/install.md",
        "./usr/share/doc/cronfleet/changelog.Debian.gz",
        "./usr/share/doc/cronfleet/copyright",
        "./usr/share/doc/cronfleet/examples/relax.conf",
        "./usr/share/doc/cronfleet/examples/run-as-root.conf",
        "./usr/share/lintian/overrides/cronfleet",
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
    assert!(field("Depends").contains("adduser") && field("Depends").contains("procps"));
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
    // Modes through dpkg-statoverride, never re-chmodded behind an admin's back.
    assert!(postinst.contains("dpkg-statoverride --update --add"), "{postinst}");
    assert!(!postinst.contains("chmod") && !postinst.contains("chown"), "{postinst}");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(!postrm.contains("deluser"), "purge keeps the system user: {postrm}");
    let unit =
        std::fs::read_to_string(unpacked.join("usr/lib/systemd/system/cronfleet.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(root().join("dist/systemd/cronfleet.service")).unwrap()
    );
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=cronfleet",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing from the unit");
    }
    assert!(!unit.contains("ReadWritePaths"), "the unit lets the agent write outside its state");

    // The changelog's latest entry is this version.
    let changelog = std::fs::read_to_string(root().join("dist/debian/changelog")).unwrap();
    let expected = format!("cronfleet ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        changelog.starts_with(&expected),
        "dist/debian/changelog needs an entry for {expected}"
    );

    // lintian: no error or warning (overrides in dist/debian/lintian-overrides, each with its
    // reason).
    if have("lintian") {
        let out = Command::new("lintian")
            .args(["--fail-on", "error,warning", "--display-info"])
            .arg(&deb)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !report.lines().any(|l| l.starts_with(['E', 'W'])),
            "lintian:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI needs lintian (.ci/run installs it)");
        eprintln!("lintian skipped: apt-get install lintian");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The exposure `systemd-analyze security --offline=true` gives the unit in `dir` (with the
/// drop-ins of `dir/cronfleet.service.d/`), and its report.
fn exposure(dir: &Path) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(dir.join("cronfleet.service"))
        // ASCII: `+` for a check passed, `-` for one failed.
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let score = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for cronfleet.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!("no exposure in:\n{report}{}", String::from_utf8_lossy(&out.stderr))
        });
    (score, report)
}

/// `systemd-analyze verify` on the unit in `dir` (with its drop-ins): no error, and no warning
/// about the unit or a drop-in (an unknown or misspelled setting is only a warning).
fn verify(dir: &Path, man: &Path) {
    let unit = std::fs::read_to_string(dir.join("cronfleet.service")).unwrap();
    // The test's binary stands in for /usr/bin/cronfleet, which verify wants executable.
    let unit = unit.replace("/usr/bin/cronfleet", env!("CARGO_BIN_EXE_cronfleet"));
    std::fs::write(dir.join("cronfleet.service"), unit).unwrap();
    let mut command = Command::new("systemd-analyze");
    command.args(["verify", "--no-pager"]);
    if have("man") {
        // Documentation=man:cronfleet(1) is checked against the shipped page.
        command.env("MANPATH", man);
    } else {
        command.arg("--man=no");
    }
    // The unit's directory first (its drop-ins), then the system's units (sysinit.target...).
    let mut path = dir.as_os_str().to_owned();
    path.push(":");
    let out = command.arg(dir.join("cronfleet.service")).env("SYSTEMD_UNIT_PATH", path).output();
    let out = out.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("cronfleet"),
        "systemd-analyze verify: {stderr}"
    );
}

/// The unit's sandbox: rated OK (3.0 or lower) by `systemd-analyze security`, also with the
/// drop-in for tasks with `user =` (the agent as root, keeping only what it needs); the unit
/// and both documented drop-ins (every line of relax.conf uncommented) pass `verify`.
#[test]
fn the_unit_is_hardened() {
    if !have("systemd-analyze") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs systemd-analyze (.ci/run installs systemd)"
        );
        eprintln!("skipped: needs systemd-analyze (Debian's systemd package)");
        return;
    }
    let scratch =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let dist = root().join("dist/systemd");
    let unit = std::fs::read_to_string(dist.join("cronfleet.service")).unwrap();
    let drop_in = |name: &str| {
        std::fs::read_to_string(
            dist.join("cronfleet.service.d").join(format!("{name}.conf.example")),
        )
        .unwrap()
    };
    let man = scratch.join("man");
    std::fs::create_dir_all(man.join("man1")).unwrap();
    std::fs::copy(root().join("dist/man/cronfleet.1"), man.join("man1/cronfleet.1")).unwrap();

    // As shipped.
    let shipped = scratch.join("shipped");
    std::fs::create_dir_all(&shipped).unwrap();
    std::fs::write(shipped.join("cronfleet.service"), &unit).unwrap();
    let (score, report) = exposure(&shipped);
    eprintln!("systemd-analyze security: {score} for the unit as shipped");
    assert!(score <= 3.0, "the unit's exposure is {score}, more than 3.0 (OK):\n{report}");
    verify(&shipped, &man);

    // With run-as-root.conf: root, with CAP_SETUID, CAP_SETGID and CAP_KILL only.
    let as_root = scratch.join("as-root");
    std::fs::create_dir_all(as_root.join("cronfleet.service.d")).unwrap();
    std::fs::write(as_root.join("cronfleet.service"), &unit).unwrap();
    std::fs::write(as_root.join("cronfleet.service.d/run-as-root.conf"), drop_in("run-as-root"))
        .unwrap();
    let (score, report) = exposure(&as_root);
    eprintln!("systemd-analyze security: {score} with run-as-root.conf");
    assert!(score <= 3.0, "with run-as-root.conf the exposure is {score}:\n{report}");
    let line = |check: &str| {
        report
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(check))
            .unwrap_or_else(|| panic!("no {check} in:\n{report}"))
            .to_owned()
    };
    assert!(line("User=/DynamicUser=").starts_with('-'), "{report}");
    for kept in ["CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)", "CapabilityBoundingSet=~CAP_KILL"]
    {
        assert!(line(kept).starts_with('-'), "run-as-root.conf drops {kept}:\n{report}");
    }
    for dropped in [
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
        "CapabilityBoundingSet=~CAP_SYS_PTRACE",
        "NoNewPrivileges=",
        "ProtectSystem=",
    ] {
        assert!(line(dropped).starts_with('+'), "run-as-root.conf keeps {dropped}:\n{report}");
    }
    verify(&as_root, &man);

    // Every setting relax.conf offers is a valid one.
    let relaxed = scratch.join("relaxed");
    std::fs::create_dir_all(relaxed.join("cronfleet.service.d")).unwrap();
    std::fs::write(relaxed.join("cronfleet.service"), &unit).unwrap();
    let uncommented: String = drop_in("relax")
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(setting) if setting.starts_with(|c: char| c.is_ascii_uppercase()) => {
                format!("{setting}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(uncommented.contains("\nReadWritePaths="), "{uncommented}");
    std::fs::write(relaxed.join("cronfleet.service.d/relax.conf"), uncommented).unwrap();
    verify(&relaxed, &man);
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
/// the package's user with the package's files (the task file readable, not writable, by it
/// and its tasks), keeps an admin's dpkg-statoverride across a reinstall, then purges it:
/// nothing is left behind but the system user, which a new install takes as it is.
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
    let out = run_in(
        &root,
        None,
        "getent passwd cronfleet && \
         stat -c '%n %U %G %a' /var/lib/cronfleet /etc/cronfleet /etc/cronfleet/tasks.toml && \
         dpkg-statoverride --list",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cronfleet:") && text.contains("/usr/sbin/nologin"), "{text}");
    for line in [
        "/var/lib/cronfleet cronfleet cronfleet 700",
        // The task file is root's: the agent's user reads it and cannot write or replace it.
        "/etc/cronfleet root cronfleet 750",
        "/etc/cronfleet/tasks.toml root cronfleet 640",
        "root cronfleet 750 /etc/cronfleet",
        "root cronfleet 640 /etc/cronfleet/tasks.toml",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    let out = run_in(
        &root,
        Some("cronfleet"),
        "cat /etc/cronfleet/tasks.toml >/dev/null && echo read; \
         (echo '# rewritten' >> /etc/cronfleet/tasks.toml) 2>/dev/null || echo no-write; \
         touch /etc/cronfleet/other 2>/dev/null || echo no-create; \
         mv /etc/cronfleet/tasks.toml /tmp/moved 2>/dev/null || echo no-move",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "read\nno-write\nno-create\nno-move\n");

    // The agent, as the package's user, on the package's files, with a task that tries to
    // rewrite the task file. Through the agent's API (tasks run as the agent's user and can
    // read its token) the file cannot be rewritten either.
    let task = "\n[[task]]\nname = \"rewrite-the-task-file\"\nschedule = \"* * * * * *\"\n\
                command = \"echo '# rewritten by a task' >> /etc/cronfleet/tasks.toml\"\n";
    let mut file = std::fs::read_to_string(root.join("etc/cronfleet/tasks.toml")).unwrap();
    file.push_str(task);
    std::fs::write(root.join("etc/cronfleet/tasks.toml"), &file).unwrap();
    std::fs::write(
        root.join("tmp/other.toml"),
        "[[task]]\nname = \"other\"\nschedule = \"@every 1h\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let out = run_in(
        &root,
        Some("cronfleet"),
        "cronfleet agent --config /etc/cronfleet/tasks.toml --state-dir /var/lib/cronfleet --listen 127.0.0.1:0 & \
         pid=$!; for i in $(seq 100); do [ -s /var/lib/cronfleet/api-addr ] && break; sleep 0.1; done; \
         for i in $(seq 100); do cronfleet runs --state-dir /var/lib/cronfleet \
             --task rewrite-the-task-file --json | grep -q '\"ended_at\":\"' && break; sleep 0.1; done; \
         cronfleet runs --state-dir /var/lib/cronfleet --task rewrite-the-task-file --json; \
         cronfleet apply /tmp/other.toml --state-dir /var/lib/cronfleet; echo apply=$?; \
         cronfleet doctor --state-dir /var/lib/cronfleet; kill $pid; wait $pid; echo exit=$?",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("ok    agent      running"), "{text}{stderr}");
    assert!(text.contains("ok    api token") && text.contains("exit=0"), "{text}");
    assert!(
        text.contains("\"outcome\":\"failed\"") && !text.contains("\"outcome\":\"succeeded\""),
        "a task rewrote the task file:\n{text}{stderr}"
    );
    assert!(!text.contains("apply=0"), "{text}{stderr}");
    assert!(
        stderr.contains("the agent may not write its task file /etc/cronfleet/tasks.toml"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(root.join("etc/cronfleet/tasks.toml")).unwrap(), file);

    // Root's CLI, given no option, finds the package's agent (in /var/lib/cronfleet): status,
    // reload and stop.
    let out = run_in(
        &root,
        None,
        "rm -f /var/lib/cronfleet/api-addr; \
         setpriv --reuid=cronfleet --regid=cronfleet --init-groups \
             cronfleet agent --config /etc/cronfleet/tasks.toml --state-dir /var/lib/cronfleet \
             --listen 127.0.0.1:0 2>/dev/null & \
         pid=$!; for i in $(seq 100); do [ -s /var/lib/cronfleet/api-addr ] && \
             [ -s /var/lib/cronfleet/agent.json ] && break; sleep 0.1; done; \
         cronfleet status; echo status=$?; cronfleet reload; echo reload=$?; \
         cronfleet stop; echo stop=$?; wait $pid; echo exit=$?",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("agent: running, pid") && text.contains("status=0"), "{text}{stderr}");
    assert!(text.contains("reloaded: 0 added") && text.contains("reload=0"), "{text}{stderr}");
    assert!(text.contains("stopped\nstop=0") && text.contains("exit=0"), "{text}{stderr}");

    // An admin's own override is kept across an upgrade (here: a reinstall): the mode is not
    // reset.
    let out = run_in(
        &root,
        None,
        "dpkg-statoverride --remove /etc/cronfleet/tasks.toml && \
         dpkg-statoverride --update --add root cronfleet 0440 /etc/cronfleet/tasks.toml && \
         dpkg -i /tmp/cronfleet.deb >/dev/null && stat -c '%U %G %a' /etc/cronfleet/tasks.toml && \
         dpkg-statoverride --list /etc/cronfleet/tasks.toml",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root cronfleet 440\nroot cronfleet 440 /etc/cronfleet/tasks.toml\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Purged: the binary, the task file, the state and the overrides are gone; the system
    // user stays (Debian's practice), and a new install takes it as it is.
    let uid = String::from_utf8(run_in(&root, None, "id -u cronfleet").stdout).unwrap();
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
    let out = run_in(&root, None, "id -u cronfleet && dpkg-statoverride --list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&uid) && !text.contains("cronfleet"), "{text}");
    let out = run_in(
        &root,
        None,
        "apt-get install -y -qq /tmp/cronfleet.deb >/dev/null && id -u cronfleet && \
         stat -c '%n %U %G %a' /etc/cronfleet/tasks.toml /var/lib/cronfleet",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{uid}/etc/cronfleet/tasks.toml root cronfleet 640\n\
             /var/lib/cronfleet cronfleet cronfleet 700\n"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
