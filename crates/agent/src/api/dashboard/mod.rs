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
//! Logging in with a token opens a session ([`super::session`]): its random id in an
//! HttpOnly, SameSite=Strict cookie (Secure over HTTPS), never the token. Every form (run now,
//! pause/resume, kill, log in, log out) posts to the dashboard with a CSRF token in a hidden
//! field, and is refused with a 403 page when the token is not the session's (the login
//! form's: not the one bound to its pre-session cookie) or its `Origin`/`Referer` names
//! another site; the buttons also need an admin session. A request with a bearer token (a
//! script's: browsers never send one by themselves) needs no session and no CSRF token.

mod pages;

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{rejection::FormRejection, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use maud::{html, Markup, PreEscaped};

use self::pages::{nodes_page, overview, run_page, task_page, timeline};
use super::{
    auth::Role,
    segment,
    session::{self, CSRF_FIELD},
    Api,
};

/// The dashboard's routes.
pub fn router(_api: Arc<Api>) -> Router<Arc<Api>> {
    // Pages show data and carry CSRF tokens: no cache keeps them.
    let pages = Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/timeline", get(timeline))
        .route("/nodes", get(nodes_page))
        .route("/tasks/{name}", get(task_page))
        .route("/tasks/{name}/{action}", post(act))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/kill", post(kill))
        .route("/runs/{id}/output", get(live_output))
        .layer(middleware::map_response(no_store));
    Router::new()
        .route("/static/style.css", get(style_sheet))
        .route("/static/live.js", get(live_script))
        .merge(pages)
}

async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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

/// `GET /static/live.js`: follows a running run's output (EventSource sends the session
/// cookie), on the run page, whose `<pre id="output">` names the stream in `data-follow`
/// (`/runs/{id}/output`).
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

/// A whole page; `visitor`: who is logged in (the header's links and its log out button).
fn page(title: &str, visitor: Option<&Visitor>, body: Markup) -> Html<String> {
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
                    @if let Some(visitor) = visitor {
                        a href="/" { "Tasks" }
                        a href="/timeline" { "Timeline" }
                        a href="/nodes" { "Nodes" }
                        span { (if visitor.role == Role::Admin { "admin" } else { "read-only" }) }
                        span class="zone" title="Every time on these pages is in this zone" {
                            "times: " (pages::zone_name())
                        }
                        @if visitor.csrf.is_some() {
                            form method="post" action="/logout" {
                                (csrf_field(visitor))
                                button class="btn" id="logout" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(page.into_string())
}

/// Who asks for a page: the role, and the CSRF token of the session (`None` with a bearer
/// token, whose requests need none: browsers never send one by themselves).
pub(super) struct Visitor {
    pub(super) role: Role,
    pub(super) csrf: Option<String>,
}

/// The hidden field that carries the session's CSRF token in every form of a page.
pub(super) fn csrf_field(visitor: &Visitor) -> Markup {
    html! {
        @if let Some(csrf) = &visitor.csrf {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
        }
    }
}

/// The session cookie's name: `__Host-` prefixed over HTTPS.
fn session_cookie(api: &Api) -> &'static str {
    if api.tls {
        session::SECURE_COOKIE
    } else {
        session::COOKIE
    }
}

/// The pre-session cookie's name.
fn login_cookie(api: &Api) -> &'static str {
    if api.tls {
        session::SECURE_LOGIN_COOKIE
    } else {
        session::LOGIN_COOKIE
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site, Secure over HTTPS;
/// `max_age` in seconds (0: delete it).
fn set_cookie(api: &Api, name: &str, value: &str, max_age: Option<u64>) -> String {
    let secure = if api.tls { "; Secure" } else { "" };
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}")
}

/// The visitor: by a bearer token when the request sends one, else by its session cookie
/// (whose use renews the session's idle timeout).
pub(super) fn visitor(api: &Api, headers: &HeaderMap) -> Option<Visitor> {
    if let Some(token) = super::bearer(headers) {
        return api.tokens.check(&token).map(|(role, _)| Visitor { role, csrf: None });
    }
    let id = session::cookie(headers, session_cookie(api))?;
    let found = api.sessions.find(id, Instant::now())?;
    Some(Visitor { role: found.role, csrf: Some(found.csrf) })
}

/// A page asked for without a valid session: 401, with the login form (which comes back to
/// `next` after logging in).
pub(super) fn to_login(api: &Api, headers: &HeaderMap, next: &str) -> Response {
    login_response(api, headers, StatusCode::UNAUTHORIZED, None, next)
}

async fn login_page(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    login_response(&api, &headers, StatusCode::OK, None, "/")
}

/// The login form, with its CSRF token: bound to the browser's pre-session cookie, which is
/// set when the request has none.
fn login_response(
    api: &Api,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    next: &str,
) -> Response {
    let name = login_cookie(api);
    let had = session::cookie(headers, name)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    let (pre, set) = match had {
        Some(pre) => (pre.to_owned(), None),
        None => match api.sessions.random_hex() {
            Ok(pre) => {
                let cookie = set_cookie(api, name, &pre, None);
                (pre, Some(cookie))
            }
            Err(e) => return failed(&e.to_string()),
        },
    };
    let form = login_form(error, next, &api.sessions.login_token(&pre));
    let mut response = (status, form).into_response();
    if let Some(cookie) = set.and_then(|c| HeaderValue::try_from(c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// 500, as a page.
fn failed(why: &str) -> Response {
    let body = html! { h1 { "Error" } p class="note err" { (why) } };
    (StatusCode::INTERNAL_SERVER_ERROR, page("Error", None, body)).into_response()
}

/// 403, as a page saying why; nothing was done.
fn refused(visitor: Option<&Visitor>, why: &str) -> Response {
    let body = html! {
        h1 { "Refused" }
        p class="note err" id="refused" { (why) }
        p { "Nothing was done. " a href="/" { "Back to the tasks" } }
    };
    (StatusCode::FORBIDDEN, page("Refused", visitor, body)).into_response()
}

/// Why a form from another site is refused.
const CROSS_SITE: &str = "Refused: this form was sent from another site than this dashboard \
    (its Origin or Referer names another host).";

/// Why a form without the session's CSRF token is refused.
const NO_CSRF: &str = "Refused: this form did not carry this session's form token (it was not \
    sent from this dashboard's own pages, or from a page opened before logging in again). \
    Reload the page and try again.";

/// Where to go after logging in: a path of this site, else the overview.
fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if ok {
        next
    } else {
        "/"
    }
}

fn login_form(error: Option<&str>, next: &str, csrf: &str) -> Html<String> {
    let body = html! {
        h1 { "Log in" }
        @if let Some(error) = error {
            p class="note err" { (error) }
        }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(local_path(next));
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
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

#[derive(Default, serde::Deserialize)]
struct LoginForm {
    token: Option<String>,
    next: Option<String>,
    csrf: Option<String>,
}

/// `POST /login`: a same-site form with the token bound to the pre-session cookie, and a valid
/// token, opens a session (a session the browser had is ended) and goes on to `next`.
async fn login(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let next = local_path(form.next.as_deref().unwrap_or("/"));
    if !session::same_origin(&headers) {
        return login_response(&api, &headers, StatusCode::FORBIDDEN, Some(CROSS_SITE), next);
    }
    let pre = session::cookie(&headers, login_cookie(&api)).unwrap_or_default();
    if !api.sessions.login_token_ok(pre, form.csrf.as_deref().unwrap_or_default()) {
        let why = "Refused: this login form had expired (the agent restarted?) or was not \
            this dashboard's own. Log in again below.";
        return login_response(&api, &headers, StatusCode::FORBIDDEN, Some(why), next);
    }
    let token = form.token.unwrap_or_default();
    let Some((role, _)) = api.tokens.check(token.trim()) else {
        let why = Some("That token is not valid.");
        return login_response(&api, &headers, StatusCode::UNAUTHORIZED, why, next);
    };
    if let Some(old) = session::cookie(&headers, session_cookie(&api)) {
        api.sessions.close(old);
    }
    let id = match api.sessions.open(role, Instant::now()) {
        Ok(id) => id,
        Err(e) => return failed(&e.to_string()),
    };
    // No Max-Age: the cookie lasts the browser's session at most; the agent ends the session
    // at its own limits anyway.
    let cookie = set_cookie(&api, session_cookie(&api), &id, None);
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

/// A form's CSRF token (any other field is ignored).
#[derive(Default, serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

impl CsrfForm {
    fn of(form: Result<Form<CsrfForm>, FormRejection>) -> Option<String> {
        form.ok().and_then(|Form(f)| f.csrf)
    }
}

/// `POST /logout`: ends the session here (whatever the browser keeps) and deletes the cookie.
async fn logout(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let name = session_cookie(&api);
    let visitor = visitor(&api, &headers);
    if !session::same_origin(&headers) {
        return refused(visitor.as_ref(), CROSS_SITE);
    }
    let csrf = CsrfForm::of(form);
    if let (Some(expected), Some(id)) =
        (visitor.as_ref().and_then(|v| v.csrf.as_deref()), session::cookie(&headers, name))
    {
        if !session::csrf_ok(expected, csrf.as_deref()) {
            return refused(visitor.as_ref(), NO_CSRF);
        }
        api.sessions.close(id);
    }
    // No session (it had ended, or never was): there is nothing to end but the cookie.
    let cookie = set_cookie(&api, name, "", Some(0));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// A button's press: the visitor must be an admin and, by a session, its form must come from
/// this dashboard (same site, the session's CSRF token). `None` when allowed, else the answer.
fn press(api: &Api, headers: &HeaderMap, csrf: Option<&str>) -> Option<Response> {
    let Some(visitor) = visitor(api, headers) else {
        return Some(to_login(api, headers, "/"));
    };
    if let Some(expected) = &visitor.csrf {
        if !session::same_origin(headers) {
            return Some(refused(Some(&visitor), CROSS_SITE));
        }
        if !session::csrf_ok(expected, csrf) {
            return Some(refused(Some(&visitor), NO_CSRF));
        }
    }
    if visitor.role != Role::Admin {
        return Some(refused(Some(&visitor), "Refused: this needs an admin token."));
    }
    None
}

async fn act(
    State(api): State<Arc<Api>>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if let Some(r) = press(&api, &headers, CsrfForm::of(form).as_deref()) {
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

async fn kill(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if let Some(r) = press(&api, &headers, CsrfForm::of(form).as_deref()) {
        return r;
    }
    let note = if api.agent.kill(&id).is_ok() { "killing" } else { "failed" };
    Redirect::to(&format!("/runs/{}?note={note}", segment(&id))).into_response()
}

/// `GET /runs/{id}/output`: a run's output as server-sent events, for the run page's live
/// script (the API's `?follow=true` stream, opened by the session).
async fn live_output(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if visitor(&api, &headers).is_none() {
        return to_login(&api, &headers, &format!("/runs/{}", segment(&id)));
    }
    super::routes::follow_output(api, id).await.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        // maud leaves `'` as it is: attribute values are always in double quotes.
        let html = login_form(Some("<a href='x'>&\"</a>"), "/tasks/\"><b>", "t\"").0;
        assert!(
            html.contains("<p class=\"note err\">&lt;a href='x'&gt;&amp;&quot;&lt;/a&gt;</p>"),
            "{html}"
        );
        assert!(html.contains("name=\"next\" value=\"/tasks/&quot;&gt;&lt;b&gt;\""), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"t&quot;\""), "{html}");
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
