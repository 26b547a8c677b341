//! The runner with real child processes: output, exit codes, env, limits, timeouts, kills.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use cronfleet::{
    config::Program,
    runner::{run, Exit, RunError, RunSpec},
};
use tokio_util::sync::CancellationToken;

fn shell(line: &str) -> RunSpec {
    RunSpec {
        program: Program::Shell(line.to_owned()),
        env: BTreeMap::new(),
        workdir: None,
        user: None,
        timeout: None,
        kill_grace: Duration::from_secs(5),
        output_limit: 256 * 1024,
        secrets: cronfleet::mask::Secrets::default(),
        children: None,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronfleet-runner-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Alive, and not a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A secret is masked even written in pieces, slowly (so that it spans reads of the pipe),
/// and an output limit never cuts one in half to show its start.
#[tokio::test]
async fn secrets_are_masked_in_the_output_even_split_across_writes() {
    let mut spec = shell(
        "echo \"queue at $QUEUE_URL\"; printf 'amqp://svc:'; sleep 0.3; printf 'hunter22@mq\\n' >&2; \
         echo short: abc",
    );
    spec.env.insert("QUEUE_URL".into(), "amqp://svc:hunter22@mq".into());
    spec.secrets = cronfleet::mask::Secrets::new(["amqp://svc:hunter22@mq", "abc"]);
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    let out = String::from_utf8(r.output).unwrap();
    assert_eq!(out, "queue at ***\n***\nshort: abc\n", "values under 4 bytes are not masked");
    spec.output_limit = 12;
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(
        String::from_utf8(r.output).unwrap(),
        "queue at ***\n[cronfleet: 16 more bytes of output dropped]\n"
    );
}

#[tokio::test]
async fn exit_code_and_interleaved_output() {
    let r = run(&shell("echo out; echo err >&2; echo out2; exit 3"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.exit, Exit::Code(3));
    assert_eq!(String::from_utf8(r.output).unwrap(), "out\nerr\nout2\n");
    assert!(!r.timed_out && !r.killed);
    assert!(r.ended >= r.started);
}

#[tokio::test]
async fn argv_runs_without_a_shell() {
    let spec = RunSpec {
        program: Program::Argv(vec!["printf".into(), "%s|".into(), "a b".into(), "$HOME".into()]),
        ..shell("")
    };
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(
        (r.exit, String::from_utf8(r.output).unwrap().as_str()),
        (Exit::Code(0), "a b|$HOME|")
    );
}

#[tokio::test]
async fn env_and_workdir() {
    let dir = temp_dir("workdir");
    let mut spec = shell("echo \"$CRONFLEET_TASK $GREETING\"; pwd");
    spec.env = BTreeMap::from([
        ("CRONFLEET_TASK".into(), "backup".into()),
        ("GREETING".into(), "hello world".into()),
    ]);
    spec.workdir = Some(dir.display().to_string());
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    let dir = dir.canonicalize().unwrap();
    assert_eq!(
        String::from_utf8(r.output).unwrap(),
        format!("backup hello world\n{}\n", dir.display())
    );
}

#[tokio::test]
async fn output_beyond_the_limit_is_counted_not_kept() {
    // 100 MB of output, 64 KiB kept.
    let mut spec = shell("head -c 100000000 /dev/zero; echo done >&2");
    spec.output_limit = 64 * 1024;
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(r.exit, Exit::Code(0));
    assert_eq!(r.dropped, 100_000_000 + 5 - 64 * 1024);
    let marker = format!("\n[cronfleet: {} more bytes of output dropped]\n", r.dropped);
    assert_eq!(r.output.len(), 64 * 1024 + marker.len());
    assert!(r.output.ends_with(marker.as_bytes()));
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = temp_dir("grandchild");
    let pidfile = dir.join("pid");
    let mut spec = shell(&format!("sleep 1000 & echo $! > {}; wait", pidfile.display()));
    spec.timeout = Some(Duration::from_millis(500));
    spec.kill_grace = Duration::from_millis(500);
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    assert!(r.timed_out);
    assert_eq!(r.exit, Exit::Signal(libc::SIGTERM));
    let grandchild: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    // The sleep was in the shell's group: it got the signal too.
    for _ in 0..50 {
        if !alive(grandchild) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("grandchild {grandchild} survived the timeout");
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_the_grace() {
    let mut spec = shell("trap '' TERM; while :; do sleep 0.05; done");
    spec.timeout = Some(Duration::from_millis(300));
    spec.kill_grace = Duration::from_millis(300);
    let began = std::time::Instant::now();
    let r = run(&spec, CancellationToken::new()).await.unwrap();
    assert!(r.timed_out);
    assert_eq!(r.exit, Exit::Signal(libc::SIGKILL));
    assert!(began.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn cancel_stops_a_run() {
    let token = CancellationToken::new();
    let stopper = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stopper.cancel();
    });
    let r = run(&shell("sleep 1000"), token).await.unwrap();
    assert!(r.killed && !r.timed_out);
    assert_eq!(r.exit, Exit::Signal(libc::SIGTERM));
}

#[tokio::test]
async fn death_by_signal() {
    let r = run(&shell("kill -KILL $$"), CancellationToken::new()).await.unwrap();
    assert_eq!(r.exit, Exit::Signal(libc::SIGKILL));
}

#[tokio::test]
async fn cpu_time_and_peak_memory() {
    let r =
        run(&shell("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"), CancellationToken::new())
            .await
            .unwrap();
    assert_eq!(r.exit, Exit::Code(0));
    assert!(r.user_cpu + r.system_cpu > Duration::from_millis(10), "{:?}", r.user_cpu);
    // A small shell's peak is below this process's own size: Linux would count ours for it
    // (the fork's copy before exec), so it is not known rather than wrong.
    assert_eq!(r.max_rss, None);
    // A run that holds 100 MB has a peak of its own, and it is reported.
    let r = run(
        &shell("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.output), "100000000\n");
    let peak = r.max_rss.unwrap();
    assert!((100_000_000..1_000_000_000).contains(&peak), "{peak}");
}

#[tokio::test]
async fn a_program_that_does_not_exist() {
    let spec = RunSpec { program: Program::Argv(vec!["/nonexistent/program".into()]), ..shell("") };
    let err = run(&spec, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/program"));
    // Through a shell it is the shell's 127.
    let r = run(&shell("/nonexistent/program"), CancellationToken::new()).await.unwrap();
    assert_eq!(r.exit, Exit::Code(127));
    assert!(String::from_utf8_lossy(&r.output).contains("not found"));
}

#[tokio::test]
async fn unknown_user() {
    let mut spec = shell("true");
    spec.user = Some("nobody-by-this-name".into());
    assert!(matches!(run(&spec, CancellationToken::new()).await, Err(RunError::UnknownUser(_))));
}
