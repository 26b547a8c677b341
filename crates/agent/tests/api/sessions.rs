//! The dashboard's sessions, as a browser would use them (cookies and forms by hand, redirects
//! not followed): logging in gives a session cookie that is not the token and opens the
//! dashboard only; logging out revokes it; idle and old sessions end; every form needs the
//! session's CSRF token and a same-site Origin, the login form its own token.

use std::time::{Duration, Instant};

use reqwest::{
    blocking::{Client, RequestBuilder, Response},
    redirect::Policy,
    Method, StatusCode,
};
use serde_json::Value;

use super::{enc, Agent, READ, TASKS};

/// The value of `name="NAME" value="..."` in a page.
fn field(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The `Set-Cookie` header of cookie `name`, whole.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// A cookie's value, from its `Set-Cookie` header.
fn value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// A browser: its client (no redirects followed), the agent's URL and the cookies it holds.
struct Browser {
    client: Client,
    url: String,
    /// The session cookie's name (`__Host-` prefixed over HTTPS).
    name: &'static str,
    login_cookie: Option<String>,
    session: Option<String>,
}

impl Browser {
    fn new(agent: &Agent) -> Browser {
        let client = Client::builder().redirect(Policy::none()).build().unwrap();
        Browser::with(client, &agent.url, "cronfleet_session")
    }

    fn with(client: Client, url: &str, name: &'static str) -> Browser {
        Browser { client, url: url.to_owned(), name, login_cookie: None, session: None }
    }

    fn login_name(&self) -> String {
        self.name.replace("session", "login")
    }

    /// A request with the cookies held and this site's Origin (as browsers send on POST).
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let origin = (method == Method::POST).then_some(self.url.as_str());
        self.request_from(method, path, origin)
    }

    /// A request with the cookies held, sent by a page of `origin`.
    fn request_from(&self, method: Method, path: &str, origin: Option<&str>) -> RequestBuilder {
        let mut cookies = Vec::new();
        if let Some(c) = &self.login_cookie {
            cookies.push(format!("{}={c}", self.login_name()));
        }
        if let Some(s) = &self.session {
            cookies.push(format!("{}={s}", self.name));
        }
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request
    }

    fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().unwrap()
    }

    /// A form posted with these fields.
    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.request(Method::POST, path).form(fields).send().unwrap()
    }

    /// The login form: its pre-session cookie (kept) and its CSRF token.
    fn login_form(&mut self) -> String {
        let r = self.get("/login");
        assert_eq!(r.status(), StatusCode::OK);
        if let Some(c) = set_cookie(&r, &self.login_name()) {
            self.login_cookie = Some(value(&c));
        }
        let page = r.text().unwrap();
        field(&page, "csrf").unwrap_or_else(|| panic!("no csrf field: {page}"))
    }

    /// Logs in with `token`; the session cookie's `Set-Cookie` header.
    fn login(&mut self, token: &str) -> String {
        let csrf = self.login_form();
        let r = self.post("/login", &[("token", token), ("next", "/tasks/tick"), ("csrf", &csrf)]);
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().unwrap());
        assert_eq!(r.headers()["location"], "/tasks/tick");
        let cookie = set_cookie(&r, self.name).expect("a session cookie");
        self.session = Some(value(&cookie));
        cookie
    }

    /// The session's CSRF token, from a page's forms.
    fn csrf(&self) -> String {
        let r = self.get("/tasks/tick");
        assert_eq!(r.status(), StatusCode::OK);
        field(&r.text().unwrap(), "csrf").expect("forms with the session's token")
    }
}

fn paused(agent: &Agent, task: &str) -> bool {
    agent.get(&format!("/api/v1/tasks/{task}"))["paused"].as_bool().unwrap()
}

#[test]
fn dashboard_sessions_and_csrf() {
    let agent = Agent::start("sessions", TASKS, &[]);
    let mut b = Browser::new(&agent);

    // Logging in: a random session id in an HttpOnly, SameSite=Strict cookie, not the token.
    let cookie = b.login(&agent.admin);
    let id = b.session.clone().unwrap();
    assert_eq!(id.len(), 64, "{cookie}");
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(id, agent.admin);
    assert!(!cookie.contains(&agent.admin), "{cookie}");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "not kept: {cookie}");
    let r = b.get("/");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().unwrap();
    assert!(page.contains("admin") && page.contains("id=\"logout\""), "{page}");
    let csrf = b.csrf();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, id);

    // The session opens the dashboard only: never /api/v1 or /metrics.
    for (method, path) in [
        (Method::GET, "/api/v1/tasks"),
        (Method::GET, "/api/v1/runs"),
        (Method::POST, "/api/v1/tasks/tick/pause"),
        (Method::GET, "/metrics"),
    ] {
        let r = b.request(method, path).send().unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "unauthorized");
    }
    assert!(!paused(&agent, "tick"));

    // A button without the session's CSRF token, with another's, or from another site: 403,
    // a page saying why, and nothing done.
    let mut other = Browser::new(&agent);
    other.login(&agent.admin);
    let others = other.csrf();
    assert_ne!(others, csrf);
    let from = |origin: &str, csrf: &str| {
        b.request_from(Method::POST, "/tasks/tick/pause", Some(origin)).form(&[("csrf", csrf)])
    };
    let refused = |what: &str, r: Response| {
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{what}");
        let h = r.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        let page = r.text().unwrap();
        assert!(page.contains("id=\"refused\"") && page.contains("Nothing was done."), "{what}");
        assert!(!paused(&agent, "tick"), "{what}: nothing done");
    };
    refused("no token", b.post("/tasks/tick/pause", &[]));
    refused("empty token", b.post("/tasks/tick/pause", &[("csrf", "")]));
    refused("wrong token", b.post("/tasks/tick/pause", &[("csrf", &"0".repeat(64))]));
    refused("another session's", b.post("/tasks/tick/pause", &[("csrf", &others)]));
    refused("not a form", b.request(Method::POST, "/tasks/tick/pause").send().unwrap());
    let in_query = b.post(&format!("/tasks/tick/pause?csrf={csrf}"), &[("next", "/")]);
    refused("in the query", in_query);
    refused("another Origin", from("http://evil.example", &csrf).send().unwrap());
    refused("Origin null", from("null", &csrf).send().unwrap());
    refused("another port", from("http://127.0.0.1:1", &csrf).send().unwrap());
    let twice = from(&agent.url, &csrf).header("origin", "http://evil.example");
    refused("two Origins", twice.send().unwrap());
    // A Referer from another site, without an Origin (the client sends none here).
    let r = Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/tasks/tick/pause", agent.url))
        .header("cookie", format!("cronfleet_session={id}"))
        .header("referer", "http://evil.example/page")
        .form(&[("csrf", &csrf)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!paused(&agent, "tick"));

    // Run now and kill, refused the same way: no run started, none killed.
    let r = b.post("/tasks/slow/run", &[]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .request_from(Method::POST, "/tasks/slow/run", Some("http://evil.example"))
        .form(&[("csrf", &csrf)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.runs("slow").is_empty(), "no run started");
    let (status, started) = agent.post("/api/v1/tasks/slow/run", None);
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = enc(started["run_id"].as_str().unwrap());
    agent.wait_for("the run in flight", 10, || {
        agent.runs("slow").iter().any(|r| r["outcome"] == "running").then_some(())
    });
    let r = b.post(&format!("/runs/{run}/kill"), &[("csrf", &others)]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.get(&format!("/api/v1/runs/{run}"))["outcome"], "running", "not killed");

    // The live output of the run page, by the session (not by /api/v1).
    let page = b.get(&format!("/runs/{run}")).text().unwrap();
    assert!(page.contains(&format!("data-follow=\"/runs/{run}/output\"")), "{page}");

    // With the token, from the dashboard's own site: done.
    let r = b.post("/tasks/tick/pause", &[("csrf", &csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/tasks/tick?note=paused");
    assert!(paused(&agent, "tick"));
    // Browsers that send no Origin send a same-site Referer (Referrer-Policy: same-origin).
    let r = Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/tasks/tick/resume", agent.url))
        .header("cookie", format!("cronfleet_session={id}"))
        .header("referer", format!("{}/tasks/tick", agent.url))
        .form(&[("csrf", &csrf)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!paused(&agent, "tick"));
    let r = b.post(&format!("/runs/{run}/kill"), &[("csrf", &csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    agent.wait_for("the run killed", 20, || {
        let outcome = agent.get(&format!("/api/v1/runs/{run}"))["outcome"].clone();
        (outcome == "killed").then_some(())
    });
    let r = b.get(&format!("/runs/{run}/output"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = r.text().unwrap();
    assert!(events.contains("event: output\ndata: started") && events.contains("event: end"));

    // A read-only session sees, but its buttons are refused even with its token.
    let mut reader = Browser::new(&agent);
    reader.login(READ);
    let page = reader.get("/tasks/tick").text().unwrap();
    assert!(page.contains("read-only") && !page.contains("id=\"pause\""), "{page}");
    let token = field(&page, "csrf").expect("its log out form");
    let r = reader.post("/tasks/tick/pause", &[("csrf", &token)]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().unwrap().contains("needs an admin token"));
    assert!(!paused(&agent, "tick"));

    // Logging out from another site, or without the token: refused, the session lives on.
    let r = b
        .request_from(Method::POST, "/logout", Some("http://evil.example"))
        .form(&[("csrf", &csrf)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b.post("/logout", &[]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(b.get("/").status(), StatusCode::OK);
    // Logging out revokes the session: the same cookie now gets the login form, everywhere.
    let r = b.post("/logout", &[("csrf", &csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");
    let gone = set_cookie(&r, "cronfleet_session").unwrap();
    assert!(gone.starts_with("cronfleet_session=;") && gone.contains("Max-Age=0"), "{gone}");
    for path in ["/", "/timeline", "/tasks/tick", &format!("/runs/{run}/output")] {
        let r = b.get(path);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.text().unwrap().contains("id=\"token\""), "{path}: the login form");
    }
    let r = b.post("/tasks/tick/pause", &[("csrf", &csrf)]);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!paused(&agent, "tick"));
    // The other sessions are not touched.
    assert_eq!(other.get("/").status(), StatusCode::OK);
    assert_eq!(reader.get("/").status(), StatusCode::OK);
    // Logging in again ends the session the browser had.
    let old = other.session.clone().unwrap();
    other.login(&agent.admin);
    assert_ne!(other.session.as_deref(), Some(old.as_str()));
    other.session = Some(old);
    assert_eq!(other.get("/").status(), StatusCode::UNAUTHORIZED);
    agent.stop();
}

#[test]
fn login_csrf_is_refused() {
    let agent = Agent::start("login-csrf", TASKS, &[]);
    let mut b = Browser::new(&agent);
    // The login form sets its pre-session cookie, and carries a token bound to it.
    let r = b.get("/login");
    let cookie = set_cookie(&r, "cronfleet_login").expect("a pre-session cookie");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert_eq!(r.headers()["cache-control"], "no-store");
    b.login_cookie = Some(value(&cookie));
    let csrf = field(&r.text().unwrap(), "csrf").unwrap();
    // The same cookie is kept by later forms (tabs), and so is the token.
    let r = b.get("/tasks/tick");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "cronfleet_login").is_none());
    assert_eq!(field(&r.text().unwrap(), "csrf").unwrap(), csrf);

    let admin = agent.admin.clone();
    let good = [("token", admin.as_str()), ("next", "/"), ("csrf", csrf.as_str())];
    let mut without_cookie = Browser::new(&agent);
    let other_csrf = without_cookie.login_form();
    without_cookie.login_cookie = None;
    let refused = |what: &str, r: Response| {
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(set_cookie(&r, "cronfleet_session").is_none(), "{what}: no session");
        let page = r.text().unwrap();
        assert!(page.contains("Refused: ") && page.contains("id=\"token\""), "{what}: {page}");
    };
    let cross = b.request_from(Method::POST, "/login", Some("http://evil.example")).form(&good);
    refused("another Origin", cross.send().unwrap());
    let cross =
        b.request_from(Method::POST, "/login", None).header("referer", "http://evil.example/");
    refused("another Referer", cross.form(&good).send().unwrap());
    refused("no token", b.post("/login", &[("token", &admin), ("next", "/")]));
    refused("another form's token", b.post("/login", &[("token", &admin), ("csrf", &other_csrf)]));
    refused("no pre-session cookie", without_cookie.post("/login", &good));
    refused("not a form", b.request(Method::POST, "/login").send().unwrap());
    // A wrong token: 401, the form again.
    let r = b.post("/login", &[("token", "not-a-token-at-all"), ("csrf", &csrf)]);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "cronfleet_session").is_none());
    // The right one, from the form: a session, and `next` only within the site.
    let r = b.post("/login", &[("token", &admin), ("next", "//evil.example/"), ("csrf", &csrf)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/");
    assert!(set_cookie(&r, "cronfleet_session").is_some());
    agent.stop();
}

#[test]
fn idle_and_old_sessions_end() {
    let env = [("CRONFLEET_TEST_SESSION_IDLE", "2s"), ("CRONFLEET_TEST_SESSION_LIFETIME", "4s")];
    let agent = Agent::start_env("session-expiry", TASKS, &[], &env);
    // Idle for longer than the idle timeout: ended.
    let mut b = Browser::new(&agent);
    b.login(&agent.admin);
    assert_eq!(b.get("/").status(), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(2500));
    let r = b.get("/");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "idle");
    assert!(r.text().unwrap().contains("id=\"token\""));
    assert_eq!(b.get("/").status(), StatusCode::UNAUTHORIZED, "and gone");

    // Used more often than the idle timeout, a session still ends at its lifetime.
    let mut b = Browser::new(&agent);
    let before = Instant::now();
    b.login(&agent.admin);
    let after = Instant::now();
    loop {
        let sent = Instant::now();
        let status = b.get("/nodes").status();
        if sent.duration_since(before) < Duration::from_secs(3) {
            assert_eq!(status, StatusCode::OK, "at {:?}", sent - before);
        }
        if sent.duration_since(after) >= Duration::from_secs(4) {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "at {:?}", sent - after);
            break;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    agent.stop();
}

/// Over HTTPS the cookies are `Secure` and `__Host-` prefixed (the plain names open nothing).
pub(super) fn over_tls(agent: &Agent, client: Client) {
    let mut b = Browser::with(client, &agent.url, "__Host-cronfleet_session");
    let cookie = b.login(&agent.admin);
    assert!(cookie.contains("; Secure") && cookie.contains("; Path=/"), "{cookie}");
    assert!(b.login_cookie.is_some(), "__Host-cronfleet_login");
    assert_eq!(b.get("/").status(), StatusCode::OK);
    b.name = "cronfleet_session";
    assert_eq!(b.get("/").status(), StatusCode::UNAUTHORIZED);
}
