//! The dashboard in a real browser: headless Chromium driven through ChromeDriver (WebDriver),
//! against a real agent. Screenshots go to `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test is skipped with a message, except under CI (`CI` set), where it fails.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use reqwest::blocking::Client;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const READ: &str = "dashboard-read-token-0123";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// A WebDriver session.
struct Browser {
    http: Client,
    base: String,
    _driver: Killed,
    shots: PathBuf,
}

impl Browser {
    fn start(chromium: &Path, driver: &Path) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Killed(child);
        let http = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let began = Instant::now();
        while http.get(format!("{url}/status")).send().is_err() {
            assert!(began.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The console, to find what the content security policy refused.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
            }
        }}});
        let session: Value =
            http.post(format!("{url}/session")).json(&caps).send().unwrap().json().unwrap();
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"));
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { http, base: format!("{url}/session/{id}"), _driver: driver, shots }
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let reply: Value = request.send().unwrap().json().unwrap();
        reply["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null).as_str().unwrap().to_owned()
    }

    /// Waits for the page at a URL ending in `suffix` (after a click that navigates).
    fn wait_url(&self, suffix: &str) {
        let began = Instant::now();
        while !self.url().ends_with(suffix) {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "still at {}, not …{suffix}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_find(&self, css: &str) -> Option<String> {
        let found = self.cmd("POST", "/element", json!({"using": "css selector", "value": css}));
        found[ELEMENT].as_str().map(str::to_owned)
    }

    fn find(&self, css: &str) -> String {
        self.try_find(css).unwrap_or_else(|| {
            let raw = self.cmd("POST", "/element", json!({"using": "css selector", "value": css}));
            panic!("no {css} on {}: {raw}\n{}", self.url(), self.cmd("GET", "/source", Value::Null))
        })
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_in(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), json!({}));
        self.cmd("POST", &format!("/element/{id}/value"), json!({ "text": text }));
    }

    fn text(&self, css: &str) -> String {
        match self.try_find(css) {
            Some(id) => self
                .cmd("GET", &format!("/element/{id}/text"), Value::Null)
                .as_str()
                .unwrap_or("")
                .to_owned(),
            None => String::new(),
        }
    }

    fn script(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    /// The browser's console messages since the last call.
    fn console(&self) -> Vec<String> {
        let log = self.cmd("POST", "/se/log", json!({"type": "browser"}));
        let entries = log.as_array().unwrap_or_else(|| panic!("no browser log: {log}"));
        entries.iter().map(|e| e["message"].as_str().unwrap_or_default().to_owned()).collect()
    }

    fn screenshot(&self, name: &str) {
        let data = self.cmd("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Reloads the page until `css` has text containing `want`.
    fn wait_for(&self, css: &str, want: &str, reload: bool) {
        let began = Instant::now();
        loop {
            if self.text(css).contains(want) {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "{css} never showed {want:?}; it shows {:?}",
                self.text(css)
            );
            std::thread::sleep(Duration::from_millis(300));
            if reload {
                self.cmd("POST", "/refresh", json!({}));
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
    }
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let (Some(chromium), Some(driver)) = (find("chromium"), find("chromedriver")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs chromium and chromedriver (.ci/run installs them)"
        );
        eprintln!("skipped: install Debian's chromium and chromium-driver to run the browser test");
        return;
    };
    let dir = std::env::temp_dir().join(format!("cronfleet-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tasks.toml"),
        r#"
[[task]]
name = "hello"
schedule = "0 9 * * MON-FRI"
timezone = "Europe/Berlin"
command = "echo hello-from-dashboard"

[[task]]
name = "long"
schedule = "@yearly"
command = "echo begun; sleep 2; echo still-going; sleep 60"

[[task]]
name = "tick"
schedule = "*/2 * * * * *"
command = "true"
"#,
    )
    .unwrap();
    std::fs::write(dir.join("tokens"), format!("read {READ}\n")).unwrap();
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(dir.join("tokens"), private).unwrap();
    let state = dir.join("state");
    let agent = Killed(
        Command::new(env!("CARGO_BIN_EXE_cronfleet"))
            .args([
                "agent",
                "--config",
                dir.join("tasks.toml").to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args([
                "--state-dir",
                state.to_str().unwrap(),
                "--tokens",
                dir.join("tokens").to_str().unwrap(),
            ])
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let began = Instant::now();
    let url = loop {
        if let Ok(u) = std::fs::read_to_string(state.join("api-addr")) {
            break u.trim().to_owned();
        }
        assert!(began.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    };
    let admin = std::fs::read_to_string(state.join("api-token")).unwrap().trim().to_owned();
    let b = Browser::start(&chromium, &driver);

    // Not logged in: the login form (401); a wrong token is refused; the right one leads back
    // to the page asked for.
    b.go(&format!("{url}/tasks/hello"));
    b.wait_for("h1", "Log in", false);
    b.type_in("#token", "not-a-token-at-all");
    b.click("#login");
    b.wait_for("body", "That token is not valid.", false);
    b.type_in("#token", &admin);
    b.click("#login");
    b.wait_url("/tasks/hello");
    // The browser holds a session, not the token, in a cookie no script can read.
    let cookies = b.cmd("GET", "/cookie", Value::Null);
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cronfleet_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"))
        .clone();
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert_eq!(session["path"], "/", "{session}");
    let id = session["value"].as_str().unwrap().to_owned();
    assert!(id.len() == 64 && id != admin, "{session}");
    assert_eq!(b.script("return document.cookie"), json!(""));
    b.go(&format!("{url}/"));

    // The overview: every task, in words, with its hosts and next run.
    b.wait_for("#tasks", "hello", false);
    let row = b.text("tr[data-task=hello]");
    assert!(row.contains("at 09:00, Monday through Friday") || row.contains("09:00"), "{row}");
    assert!(row.contains("every host"), "{row}");
    b.wait_for("tr[data-task=tick]", "100%", true);
    b.screenshot("overview");

    // The task page: run now, and see the new run appear.
    b.click("tr[data-task=hello] a");
    b.wait_url("/tasks/hello");
    assert!(b.text("#next").lines().count() == 10, "{}", b.text("#next"));
    b.click("#run-now");
    b.wait_for("#note", "Run started.", false);
    b.wait_for("#runs", "succeeded", true);
    b.screenshot("task");
    b.click("#runs tbody tr a");
    b.wait_for("#output", "hello-from-dashboard", false);
    b.screenshot("run");

    // Live output of a running run, then kill it from the page.
    let http = Client::new();
    let started: Value = http
        .post(format!("{url}/api/v1/tasks/long/run"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = started["run_id"].as_str().unwrap().replace('#', "%23");
    std::thread::sleep(Duration::from_millis(500));
    b.go(&format!("{url}/runs/{id}"));
    b.wait_for("#output", "begun", false);
    // Printed after the page was loaded: only the live script (under the content security
    // policy, from /static/live.js) can have brought it.
    b.wait_for("#output", "still-going", false);
    b.screenshot("live");
    b.click("#kill");
    b.wait_for("body", "killed", true);

    // Pause and resume from the task page.
    b.go(&format!("{url}/tasks/tick"));
    b.click("#pause");
    b.wait_for("#note", "Task paused.", false);
    b.click("#resume");
    b.wait_for("#note", "Task resumed.", false);

    // The timeline has bars for the runs.
    b.go(&format!("{url}/timeline"));
    assert!(b.try_find("tr[data-task=tick] .tl i.succeeded").is_some(), "{}", b.text("body"));
    assert!(b.try_find("tr[data-task=hello] .tl i").is_some());
    // The style sheet applies, bars placed by its classes (no style attributes).
    let placed = b.script(
        "var i=document.querySelector('tr[data-task=tick] .tl i');var s=getComputedStyle(i);\
         return [getComputedStyle(document.querySelector('header')).display,s.position,\
         parseFloat(s.left)>0]",
    );
    assert_eq!(placed, json!(["flex", "absolute", true]));
    b.screenshot("timeline");
    // Nothing on any page so far was refused by the content security policy.
    let refused: Vec<String> =
        b.console().into_iter().filter(|m| m.contains("Content Security Policy")).collect();
    assert!(refused.is_empty(), "{refused:#?}");

    // On a phone: nothing wider than the screen (tables scroll inside their box).
    b.cmd("POST", "/window/rect", json!({"width": 390, "height": 844}));
    b.go(&format!("{url}/"));
    let fits = b.script("return document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(fits, true);
    b.screenshot("phone");
    b.cmd("POST", "/window/rect", json!({"width": 1280, "height": 900}));

    // Logging out ends the session: the cookie it had opens nothing any more.
    b.go(&format!("{url}/"));
    b.click("#logout");
    b.wait_url("/login");
    let old = Client::new()
        .get(format!("{url}/"))
        .header("cookie", format!("cronfleet_session={id}"))
        .send()
        .unwrap();
    assert_eq!(old.status(), reqwest::StatusCode::UNAUTHORIZED);
    b.go(&format!("{url}/tasks/hello"));
    b.wait_for("h1", "Log in", false);

    // A read-only token sees everything but no buttons.
    b.go(&format!("{url}/login"));
    b.type_in("#token", READ);
    b.click("#login");
    b.wait_url("/");
    b.go(&format!("{url}/tasks/hello"));
    assert!(b.text("body").contains("read-only"));
    assert!(b.try_find("#run-now").is_none() && b.try_find("#pause").is_none());
    drop(agent);
}
