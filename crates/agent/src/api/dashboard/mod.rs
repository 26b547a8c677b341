//! The dashboard: server-rendered HTML pages in the binary, no JavaScript framework, no CDN.
//! Usable on a phone (one column, tables scroll sideways). One small script, optional, follows
//! a running run's output live.
//!
//! The pages are `maud` templates: every value spliced in is escaped by construction; raw HTML
//! (`PreEscaped`) is only ever a constant, the doctype. Nothing is inline: the style sheet and
//! the live output script are static routes (`/static/style.css`, `/static/live.js`), so the
//! `Content-Security-Policy` every response carries allows no inline script or style.
//!
//! `pages.rs` has the pages that show things (tasks, timeline, nodes, a task, a run); this file
//! the routes, the layout every page shares, logging in and out, and the buttons.
//!
//! Login keeps the token in an HttpOnly, SameSite=Strict cookie; the buttons (run now,
//! pause/resume, kill) are forms posting to the dashboard, which checks the token is an admin
//! one and the request comes from the dashboard's own origin, then redirects back.

mod pages;

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use maud::{html, Markup, PreEscaped};

use self::pages::{nodes_page, overview, run_page, task_page, timeline};
use super::{auth::Role, segment, Api, COOKIE};

/// The dashboard's routes.
pub fn router(_api: Arc<Api>) -> Router<Arc<Api>> {
    Router::new()
        .route("/static/style.css", get(style_sheet))
        .route("/static/live.js", get(live_script))
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/timeline", get(timeline))
        .route("/nodes", get(nodes_page))
        .route("/tasks/{name}", get(task_page))
        .route("/tasks/{name}/{action}", post(act))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/kill", post(kill))
}

/// The policy every response carries: the pages load their one style sheet and their one
/// script from the dashboard itself, nothing inline (no `<script>`, `<style>` or `style=`:
/// what a page draws at computed places uses the classes of [`GEOMETRY`]), talk only to the
/// agent (the live output's EventSource), post forms only to it, and are framed by nobody.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Where the style sheet is: the version in the URL lets browsers keep it a day.
const STYLE_URL: &str = concat!("/static/style.css?v=", env!("CARGO_PKG_VERSION"));

/// `GET /static/style.css`: [`STYLE`] and [`GEOMETRY`].
async fn style_sheet() -> Response {
    static SHEET: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{STYLE}{}", geometry()));
    let headers = [
        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
        (header::CACHE_CONTROL, "public, max-age=86400"),
    ];
    (headers, SHEET.as_str()).into_response()
}

/// `GET /static/live.js`: follows a running run's output (EventSource sends the cookie), on
/// the run page, whose `<pre id="output">` names the stream in `data-follow`.
async fn live_script() -> Response {
    const LIVE: &str = "(function(){var pre=document.getElementById('output');\
var url=pre&&pre.dataset.follow;if(!url||!window.EventSource)return;\
pre.textContent='';var es=new EventSource(url);\
es.addEventListener('output',function(e){pre.textContent+=e.data;pre.scrollTop=pre.scrollHeight;});\
es.addEventListener('end',function(){es.close();setTimeout(function(){location.reload();},300);});})();\n";
    let headers = [
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, LIVE).into_response()
}

/// The classes that place things at computed positions without a `style` attribute (which
/// the policy forbids): `x{n}` is `left: n‰`, `w{n}` `width: n‰` (n from 0 to 1000: a tenth
/// of a percent is 86 s of the day's timeline), `h{n}` `height: n%` (0 to 100).
fn geometry() -> String {
    use std::fmt::Write;
    let mut css = String::new();
    for n in 0..=1000 {
        let percent = f64::from(n) / 10.0;
        let _ = write!(css, ".x{n}{{left:{percent}%}}.w{n}{{width:{percent}%}}");
    }
    for n in 0..=100 {
        let _ = write!(css, ".h{n}{{height:{n}%}}");
    }
    css.push('\n');
    css
}

/// The class of a position or length in percent, for [`geometry`]: tenths of a percent.
pub(super) fn permille(percent: f64) -> u32 {
    (percent * 10.0).round().clamp(0.0, 1000.0) as u32
}

/// The style sheet of every page.
const STYLE: &str = r#"
:root{--ok:#2e9d57;--bad:#d64541;--warn:#e5a00d;--mute:#9aa1a9;--run:#3b82f6;--bg:#f7f8fa;--fg:#1d2330}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;align-items:center;padding:.6rem 1rem;background:#1d2330;color:#fff}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700}header form{margin-left:auto}
main{padding:1rem;max-width:1200px;margin:auto}h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.4rem .55rem;border-bottom:1px solid #e4e7eb;white-space:nowrap;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;color:#5b6470}td.wrap{white-space:normal}
.strip{display:flex;gap:2px}.strip i{display:inline-block;width:8px;height:18px;border-radius:2px;background:var(--mute)}
.succeeded{background:var(--ok)!important}.failed,.timed_out,.abandoned,.lost{background:var(--bad)!important}.killed,.missed,.skipped{background:var(--warn)!important}.running{background:var(--run)!important}
.tag{display:inline-block;padding:0 .4rem;border-radius:3px;color:#fff;font-size:.8rem}
.btn{font:inherit;padding:.35rem .8rem;border:1px solid #1d2330;border-radius:4px;background:#fff;cursor:pointer}.btn.main{background:#1d2330;color:#fff}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}.actions form{margin:0}
.note{padding:.5rem .8rem;background:#fff7d6;border:1px solid #f0d77a;border-radius:4px;margin:.5rem 0}
.err{background:#fde2e1;border-color:#f3a6a3}
pre{background:#10141c;color:#e6e6e6;padding:.8rem;overflow:auto;border-radius:4px;max-height:70vh}
.tl{position:relative;height:22px;background:#eef0f3;border-radius:3px;min-width:600px}.tl i{position:absolute;top:3px;height:16px;min-width:2px;border-radius:2px}
.axis{position:relative;height:18px;font-size:.75rem;color:#5b6470;min-width:600px}.axis span{position:absolute;transform:translateX(-50%)}
.bars{display:flex;align-items:flex-end;gap:2px;height:120px;background:#fff;padding:4px;border:1px solid #e4e7eb}.bars a{flex:0 1 14px;min-width:3px;display:block}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;padding:.8rem;margin:0}dt{color:#5b6470}dd{margin:0;word-break:break-word}
.dst{color:#b45309;font-weight:600}
input[type=password]{font:inherit;padding:.4rem;width:100%;max-width:28rem}
@media (max-width:640px){main{padding:.5rem}th,td{padding:.3rem .4rem}}
"#;

/// A whole page.
fn page(title: &str, role: Option<Role>, body: Markup) -> Html<String> {
    let page = html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · cronfleet" }
                link rel="stylesheet" href=(STYLE_URL);
            }
            body {
                header {
                    a class="brand" href="/" { "cronfleet" }
                    @if let Some(role) = role {
                        a href="/" { "Tasks" }
                        a href="/timeline" { "Timeline" }
                        a href="/nodes" { "Nodes" }
                        span { (if role == Role::Admin { "admin" } else { "read-only" }) }
                        form method="post" action="/logout" { button class="btn" { "Log out" } }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(page.into_string())
}

/// The role of the dashboard's visitor, from the cookie (or a bearer token).
fn visitor(api: &Api, headers: &HeaderMap) -> Option<Role> {
    let (token, _) = super::token(headers)?;
    api.tokens.check(&token).map(|(role, _)| role)
}

/// A page asked for without a valid token: 401, with the login form (which comes back to
/// `next` after logging in).
fn to_login(next: &str) -> Response {
    (StatusCode::UNAUTHORIZED, login_form(None, next)).into_response()
}

async fn login_page() -> Html<String> {
    login_form(None, "/")
}

/// Where to go after logging in: a path of this site, else the overview.
fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if ok {
        next
    } else {
        "/"
    }
}

fn login_form(error: Option<&str>, next: &str) -> Html<String> {
    let body = html! {
        h1 { "Log in" }
        @if let Some(error) = error {
            p class="note err" { (error) }
        }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(local_path(next));
            p {
                label for="token" { "API token" }
                br;
                input type="password" id="token" name="token" autocomplete="current-password" required;
            }
            p { button class="btn main" id="login" { "Log in" } }
        }
        p {
            "The agent's admin token is in " code { "STATE_DIR/api-token" }
            "; read-only tokens come from the agent's " code { "--tokens" } " file."
        }
    };
    page("Log in", None, body)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(State(api): State<Arc<Api>>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim();
    let next = local_path(form.next.as_deref().unwrap_or("/"));
    if api.tokens.check(token).is_none() {
        return (StatusCode::UNAUTHORIZED, login_form(Some("That token is not valid."), next))
            .into_response();
    }
    let secure = if api.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// An admin's button press: the visitor must hold an admin token, and the request must come
/// from the dashboard's own pages. `None` when allowed, else the answer.
fn refused(api: &Api, headers: &HeaderMap) -> Option<Response> {
    match visitor(api, headers) {
        None => Some(to_login("/")),
        Some(Role::Read) => Some(StatusCode::FORBIDDEN.into_response()),
        Some(Role::Admin) if !super::same_origin(headers) => {
            Some(StatusCode::FORBIDDEN.into_response())
        }
        Some(Role::Admin) => None,
    }
}

async fn act(
    State(api): State<Arc<Api>>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    let result = match action.as_str() {
        "run" => api.agent.run_now(&name).await.map(|_| "started"),
        "pause" => api.agent.pause(&name, None).await.map(|()| "paused"),
        "resume" => api.agent.resume(&name).await.map(|()| "resumed"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let note = result.unwrap_or("failed");
    Redirect::to(&format!("/tasks/{}?note={note}", segment(&name))).into_response()
}

async fn kill(State(api): State<Arc<Api>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    let note = if api.agent.kill(&id).is_ok() { "killing" } else { "failed" };
    Redirect::to(&format!("/runs/{}?note={note}", segment(&id))).into_response()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        // maud leaves `'` as it is: attribute values are always in double quotes.
        let html = login_form(Some("<a href='x'>&\"</a>"), "/tasks/\"><b>").0;
        assert!(
            html.contains("<p class=\"note err\">&lt;a href='x'&gt;&amp;&quot;&lt;/a&gt;</p>"),
            "{html}"
        );
        assert!(html.contains("name=\"next\" value=\"/tasks/&quot;&gt;&lt;b&gt;\""), "{html}");
        let html = page("<t>", None, html! { p { "&" } }).0;
        assert!(!html.contains("<style") && !html.contains("<script"), "nothing inline: {html}");
        assert!(html.contains("<title>&lt;t&gt; · cronfleet</title>"), "{html}");
        assert!(html.contains("<main><p>&amp;</p></main>"), "{html}");
    }

    #[test]
    fn geometry_classes_cover_their_range() {
        let css = geometry();
        for rule in
            [".x0{left:0%}", ".x123{left:12.3%}", ".w1000{width:100%}", ".h100{height:100%}"]
        {
            assert!(css.contains(rule), "{rule}");
        }
        assert_eq!((permille(12.34), permille(-1.0), permille(100.4)), (123, 0, 1000));
        assert!(css.contains(&format!(".x{}{{", permille(100.0))));
    }
}
