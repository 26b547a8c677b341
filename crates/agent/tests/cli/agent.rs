//! A real agent for the CLI's tests: `cronfleet agent` on a task file of the test's, its API
//! on a free port, and the CLI run against it as a user would (through `CRONFLEET_STATE_DIR`).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{blocking::Client, Method, StatusCode};
use serde_json::Value;

pub struct Agent {
    child: Option<Child>,
    pub dir: PathBuf,
    url: String,
    token: String,
}

/// What a command printed, and its exit code.
#[derive(Debug)]
pub struct Said {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Agent {
    /// Starts an agent on `tasks` in a fresh directory; waits until its API answers.
    pub fn start(name: &str, tasks: &str) -> Agent {
        let dir = std::env::temp_dir().join(format!("cronfleet-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tasks.toml"), tasks).unwrap();
        let mut agent = Agent { child: None, dir, url: String::new(), token: String::new() };
        agent.restart();
        agent
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts (again) the agent of this directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let state = self.state();
        let _ = std::fs::remove_file(state.join("api-addr"));
        let child = Command::new(env!("CARGO_BIN_EXE_cronfleet"))
            .args(["agent", "--config", self.dir.join("tasks.toml").to_str().unwrap()])
            .args(["--node", "cli-node", "--no-watch", "--listen", "127.0.0.1:0"])
            .args(["--state-dir", state.to_str().unwrap()])
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("agent.log"))
                    .unwrap(),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let began = Instant::now();
        self.url = loop {
            if let Ok(url) = std::fs::read_to_string(state.join("api-addr")) {
                break url.trim().to_owned();
            }
            assert!(began.elapsed() < Duration::from_secs(20), "no api-addr:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        };
        self.token = std::fs::read_to_string(state.join("api-token")).unwrap().trim().to_owned();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Stops the agent (SIGTERM) and waits until it has exited: the CLI then reads the state
    /// directory.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap();
    }

    /// The CLI, finding this agent (or its state directory) through `CRONFLEET_STATE_DIR`.
    pub fn cli(&self, args: &[&str]) -> Said {
        self.cli_in(None, args)
    }

    /// The CLI with `TZ` set to `tz` (the local zone it shows times in), or as the test's.
    pub fn cli_in(&self, tz: Option<&str>, args: &[&str]) -> Said {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cronfleet"));
        if let Some(tz) = tz {
            command.env("TZ", tz);
        }
        let out = command
            .args(args)
            .env("CRONFLEET_STATE_DIR", self.state())
            .env_remove("CRONFLEET_SERVER")
            .env_remove("CRONFLEET_TOKEN_FILE")
            .output()
            .unwrap();
        Said {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A request to the API with the agent's own (admin) token: the status and the JSON body
    /// (`null` when there is none).
    pub fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request =
            Client::new().request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// Runs `task` now and waits until it has ended; its run id.
    pub fn run(&self, task: &str) -> String {
        let said = self.cli(&["run", task, "-w"]);
        assert!(said.err.contains(": succeeded"), "{said:?}");
        let (_, runs) = self.api(Method::GET, &format!("/api/v1/runs?task={task}&limit=1"), None);
        runs["runs"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Waits until `f` gives a value.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let began = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
