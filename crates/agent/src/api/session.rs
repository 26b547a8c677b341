//! The dashboard's sessions and its protection against cross-site requests.
//!
//! Logging in with a valid token opens a session: a random id of 256 bits (`ring::rand`) sent
//! in a cookie, of which the agent keeps only the SHA-256 digest, with the token's role, a
//! CSRF token of its own, when it was opened and when it was last used. A session ends at the
//! first of: logging out (revoked here, whatever the browser keeps), [`Limits::idle`] without
//! a request, [`Limits::lifetime`] after logging in, the agent's end (sessions are kept in
//! memory only). Ids are compared in constant time, as tokens are ([`super::auth`]).
//!
//! Every form the dashboard posts carries a CSRF token in a hidden field: the session's own
//! (a synchronizer token), or on the login form, which has no session yet, an HMAC of a
//! pre-session cookie under a key drawn at start. Forms are also refused when their `Origin`
//! (else `Referer`) names another site than the one asked ([`same_origin`]).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{header, HeaderMap};
use ring::{
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use subtle::ConstantTimeEq;

use super::auth::Role;

/// The session cookie's name over plain HTTP.
pub const COOKIE: &str = "cronfleet_session";

/// Its name over HTTPS: the `__Host-` prefix makes the browser refuse it unless it is
/// `Secure`, for `Path=/` and set by this very host (no sibling domain can plant one).
pub const SECURE_COOKIE: &str = "__Host-cronfleet_session";

/// The pre-session cookie the login form's token is bound to.
pub const LOGIN_COOKIE: &str = "cronfleet_login";

/// Its name over HTTPS.
pub const SECURE_LOGIN_COOKIE: &str = "__Host-cronfleet_login";

/// The form field of the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Idle timeout by default: 30 minutes.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// Absolute lifetime by default: 12 hours.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept at once: beyond, logging in ends the one unused for longest.
const MAX_SESSIONS: usize = 1000;

/// Variables that shorten the timeouts, for tests (a duration like `2s`).
pub const IDLE_VAR: &str = "CRONFLEET_TEST_SESSION_IDLE";
/// See [`IDLE_VAR`].
pub const LIFETIME_VAR: &str = "CRONFLEET_TEST_SESSION_LIFETIME";

/// How long a session lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after logging in, used or not.
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { idle: IDLE, lifetime: LIFETIME }
    }
}

impl Limits {
    /// The defaults, or what [`IDLE_VAR`] and [`LIFETIME_VAR`] say (tests only: they are not
    /// documented for users).
    pub fn from_env() -> Limits {
        let read = |var: &str, default: Duration| {
            let Ok(text) = std::env::var(var) else { return default };
            match crate::config::units_duration(text.trim()) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    eprintln!("cronfleet: ignoring {var}={text:?}: not a duration");
                    default
                }
            }
        };
        Limits { idle: read(IDLE_VAR, IDLE), lifetime: read(LIFETIME_VAR, LIFETIME) }
    }
}

/// One session, as kept.
struct Session {
    /// SHA-256 of the id.
    digest: [u8; 32],
    role: Role,
    csrf: String,
    opened: Instant,
    seen: Instant,
}

impl Session {
    fn live(&self, limits: Limits, now: Instant) -> bool {
        now.saturating_duration_since(self.opened) < limits.lifetime
            && now.saturating_duration_since(self.seen) < limits.idle
    }
}

/// A valid session, as a request finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The role of the token it was opened with.
    pub role: Role,
    /// Its CSRF token, for the forms of the pages it is shown.
    pub csrf: String,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the system")]
pub struct RandomError;

/// The open sessions, and the key of the login form's tokens.
pub struct Sessions {
    limits: Limits,
    open: Mutex<Vec<Session>>,
    random: SystemRandom,
    login_key: hmac::Key,
}

impl Sessions {
    /// No sessions yet; a new key for login forms.
    ///
    /// # Errors
    /// When the system gives no random bytes.
    pub fn new(limits: Limits) -> Result<Sessions, RandomError> {
        let random = SystemRandom::new();
        let login_key = hmac::Key::generate(hmac::HMAC_SHA256, &random).map_err(|_| RandomError)?;
        Ok(Sessions { limits, open: Mutex::new(Vec::new()), random, login_key })
    }

    /// 32 random bytes, hex-encoded.
    pub fn random_hex(&self) -> Result<String, RandomError> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes).map_err(|_| RandomError)?;
        Ok(hex::encode(bytes))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `role` at `now`: its id, for the cookie (kept nowhere else). Ended
    /// sessions are dropped.
    ///
    /// # Errors
    /// When the system gives no random bytes.
    pub fn open(&self, role: Role, now: Instant) -> Result<String, RandomError> {
        let id = self.random_hex()?;
        let csrf = self.random_hex()?;
        let mut open = self.lock();
        let limits = self.limits;
        open.retain(|s| s.live(limits, now));
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = (0..open.len()).min_by_key(|&i| open[i].seen) {
                open.swap_remove(oldest);
            }
        }
        let digest = digest(&id);
        open.push(Session { digest, role, csrf, opened: now, seen: now });
        Ok(id)
    }

    /// The session of the cookie's `id` at `now`, which counts as its use; `None` (and the
    /// session dropped) when it has ended.
    pub fn find(&self, id: &str, now: Instant) -> Option<Found> {
        let mut open = self.lock();
        let at = position(&open, id)?;
        if !open[at].live(self.limits, now) {
            open.swap_remove(at);
            return None;
        }
        let session = &mut open[at];
        session.seen = session.seen.max(now);
        Some(Found { role: session.role, csrf: session.csrf.clone() })
    }

    /// Ends the session of the cookie's `id` (logging out); whether there was one.
    pub fn close(&self, id: &str) -> bool {
        let mut open = self.lock();
        match position(&open, id) {
            Some(at) => {
                open.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// How many sessions are kept (ended ones not yet dropped included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The login form's CSRF token for a pre-session cookie's value.
    pub fn login_token(&self, pre_session: &str) -> String {
        hex::encode(hmac::sign(&self.login_key, pre_session.as_bytes()))
    }

    /// Whether `token` is the login form's token for the pre-session cookie (in constant
    /// time).
    pub fn login_token_ok(&self, pre_session: &str, token: &str) -> bool {
        let Ok(tag) = hex::decode(token) else { return false };
        !pre_session.is_empty()
            && hmac::verify(&self.login_key, pre_session.as_bytes(), &tag).is_ok()
    }
}

/// Where the session of `id` is, comparing its digest with every session's in constant time
/// (the work does not depend on which one matches, or whether any does).
fn position(open: &[Session], id: &str) -> Option<usize> {
    let wanted = digest(id);
    let mut found = None;
    for (i, s) in open.iter().enumerate() {
        if bool::from(wanted.ct_eq(&s.digest)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

fn digest(id: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()).as_ref());
    out
}

/// Whether a form's CSRF token is the session's (in constant time).
pub fn csrf_ok(expected: &str, given: Option<&str>) -> bool {
    let given = given.unwrap_or_default();
    !expected.is_empty() && bool::from(digest(expected).ct_eq(&digest(given)))
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether a form comes from a page of the site it is sent to: its `Origin`, or without one
/// its `Referer`, names the host of the request's `Host` header (the scheme is not compared,
/// so that a proxy ending TLS in front of the agent works). A request with neither (older
/// browsers) passes this check and rests on its CSRF token; `Origin: null` (a sandboxed page,
/// a redirect across sites) is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let authority = |url: &str| -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    };
    // One of each at most: a browser never sends two.
    let one = |name| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => Some(v.to_str().ok()),
            (None, _) => None,
            (Some(_), Some(_)) => Some(None),
        }
    };
    let from = match one(header::ORIGIN).or_else(|| one(header::REFERER)) {
        Some(from) => from,
        None => return true,
    };
    from.and_then(authority).is_some_and(|a| a.eq_ignore_ascii_case(host.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(idle: u64, lifetime: u64) -> Sessions {
        let limits =
            Limits { idle: Duration::from_secs(idle), lifetime: Duration::from_secs(lifetime) };
        Sessions::new(limits).unwrap()
    }

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_when_closed() {
        let s = sessions(60, 3600);
        let t0 = Instant::now();
        let a = s.open(Role::Admin, t0).unwrap();
        let b = s.open(Role::Read, t0).unwrap();
        assert_eq!(a.len(), 64, "256 bits, hex");
        assert_ne!(a, b);
        let found = s.find(&a, t0).unwrap();
        assert_eq!(found.role, Role::Admin);
        assert_eq!(found.csrf.len(), 64);
        assert_ne!(found.csrf, a);
        assert_ne!(found.csrf, s.find(&b, t0).unwrap().csrf);
        assert_eq!(s.find(&a, t0), Some(found));
        assert_eq!(s.find(&b, t0).map(|f| f.role), Some(Role::Read));
        assert_eq!(s.find("", t0), None);
        assert_eq!(s.find(&a[1..], t0), None);
        assert_eq!(s.find(&a.to_uppercase(), t0), None);
        // Only digests are kept.
        assert!(s.lock().iter().all(|k| k.digest == digest(&a) || k.digest == digest(&b)));
        assert!(s.close(&a));
        assert!(!s.close(&a));
        assert_eq!(s.find(&a, t0), None);
        assert_eq!(s.find(&b, t0).map(|f| f.role), Some(Role::Read));
    }

    #[test]
    fn idle_and_absolute_timeouts() {
        let s = sessions(60, 300);
        let t0 = Instant::now();
        let min = |m: u64| t0 + Duration::from_secs(m * 60);
        // Used every 50 s, a session lives to its absolute end, not a second more.
        let a = s.open(Role::Admin, t0).unwrap();
        let mut t = t0;
        while t + Duration::from_secs(50) < min(5) {
            t += Duration::from_secs(50);
            assert!(s.find(&a, t).is_some(), "used at {:?}", t - t0);
        }
        assert!(s.find(&a, min(5) - Duration::from_millis(1)).is_some());
        assert!(s.find(&a, min(5)).is_none(), "past its lifetime");
        assert!(s.find(&a, t0).is_none(), "dropped when found ended");
        // Left alone for the idle timeout: ended.
        let b = s.open(Role::Read, t0).unwrap();
        assert!(s.find(&b, t0 + Duration::from_secs(59)).is_some());
        assert!(s.find(&b, t0 + Duration::from_secs(59 + 59)).is_some(), "use renews it");
        assert!(s.find(&b, t0 + Duration::from_secs(59 + 59 + 60)).is_none(), "idle");
        // Ended sessions are dropped when another is opened.
        let c = s.open(Role::Read, t0).unwrap();
        let _d = s.open(Role::Read, min(10)).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.find(&c, min(10)).is_none());
    }

    #[test]
    fn at_most_so_many_sessions_the_least_used_goes() {
        let s = sessions(3600, 3600);
        let t0 = Instant::now();
        let first = s.open(Role::Read, t0).unwrap();
        let second = s.open(Role::Read, t0 + Duration::from_millis(1)).unwrap();
        assert!(s.find(&first, t0 + Duration::from_millis(2)).is_some());
        for i in 0..MAX_SESSIONS - 1 {
            s.open(Role::Read, t0 + Duration::from_millis(3 + i as u64)).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.find(&second, t0 + Duration::from_secs(1)).is_none());
        assert!(s.find(&first, t0 + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn login_tokens_are_bound_to_the_pre_session_cookie_and_the_key() {
        let s = sessions(60, 60);
        let token = s.login_token("abc");
        assert!(s.login_token_ok("abc", &token));
        assert!(!s.login_token_ok("abd", &token));
        assert!(!s.login_token_ok("abc", ""));
        assert!(!s.login_token_ok("abc", "zz"));
        assert!(!s.login_token_ok("", &s.login_token("")));
        assert!(!sessions(60, 60).login_token_ok("abc", &token), "another agent's key");
        assert!(csrf_ok("x1", Some("x1")));
        assert!(!csrf_ok("x1", Some("x2")) && !csrf_ok("x1", None) && !csrf_ok("", Some("")));
    }

    #[test]
    fn cookies_and_origins() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            h
        };
        let h = headers(&[("cookie", "a=1; cronfleet_session=xyz"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "cronfleet"), None);
        assert_eq!(cookie(&headers(&[("cookie", "cronfleet_session=")]), COOKIE), None);

        let host = ("host", "127.0.0.1:7070");
        for (extra, same) in [
            (None, true),
            (Some(("origin", "http://127.0.0.1:7070")), true),
            (Some(("origin", "https://127.0.0.1:7070")), true),
            (Some(("origin", "http://127.0.0.1:7071")), false),
            (Some(("origin", "http://evil.example")), false),
            (Some(("origin", "null")), false),
            (Some(("referer", "http://127.0.0.1:7070/tasks/x?note=1")), true),
            (Some(("referer", "http://127.0.0.1:7070")), true),
            (Some(("referer", "http://127.0.0.1:7070.evil.example/")), false),
            (Some(("referer", "http://evil.example/http://127.0.0.1:7070/")), false),
            (Some(("referer", "ftp://127.0.0.1:7070/")), false),
        ] {
            let mut pairs = vec![host];
            pairs.extend(extra);
            assert_eq!(same_origin(&headers(&pairs)), same, "{extra:?}");
        }
        // The Origin is what counts when both are sent; no Host: refused.
        let h = headers(&[
            host,
            ("origin", "http://evil.example"),
            ("referer", "http://127.0.0.1:7070/"),
        ]);
        assert!(!same_origin(&h));
        assert!(!same_origin(&headers(&[("origin", "http://127.0.0.1:7070")])));
        let two = [host, ("origin", "http://127.0.0.1:7070"), ("origin", "http://evil.example")];
        assert!(!same_origin(&headers(&two)), "two Origins");
    }
}
