//! The agent's HTTP API (`/api/v1`, JSON), its metrics (`/metrics`) and its dashboard (`/`).
//!
//! Loopback by default; a non-loopback address needs TLS (`--tls-cert`/`--tls-key`) or
//! `--insecure-listen`. Every route but `/healthz` (and `/metrics` with `--public-metrics`)
//! needs a bearer token: `read` tokens see, `admin` tokens also act. The agent's own admin
//! token lives in `STATE_DIR/api-token` (mode 0600); the address it listens on in
//! `STATE_DIR/api-addr`, which is how the CLI finds a local agent. The dashboard has sessions
//! of its own ([`session`]), which `/api/v1` and `/metrics` never accept.

pub mod auth;
mod dashboard;
pub mod error;
mod extract;
pub mod model;
#[cfg(test)]
mod openapi;
mod routes;
mod session;
mod wire;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderMap, HeaderName, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Router,
};
use tokio::net::TcpListener;

use self::{
    auth::{Role, Tokens},
    error::ApiError,
};
use crate::agent::Agent;

/// How the API is served.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// More tokens.
    pub tokens_file: Option<PathBuf>,
    /// Certificate chain and private key (PEM) for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Allow a non-loopback address without TLS.
    pub insecure_listen: bool,
    /// Serve `/metrics` without a token.
    pub public_metrics: bool,
}

/// What the handlers share.
pub struct Api {
    /// The agent.
    pub agent: Arc<Agent>,
    tokens: Tokens,
    public_metrics: bool,
    /// Served over HTTPS (the dashboard's cookies are then Secure).
    tls: bool,
    /// The dashboard's sessions.
    sessions: session::Sessions,
}

/// Text escaped for one segment of a URL path (a run id's `#`, say).
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request's bearer token, if it sends `Authorization` (empty when its scheme is not
/// `Bearer`). The scheme's name is case-insensitive (RFC 9110, 11.1): `bearer` and `BEARER`
/// are `Bearer`. Cookies are no token: the dashboard's session cookie opens the dashboard
/// only.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .unwrap_or_default()
        .trim_start()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    Some(token.to_owned())
}

/// The role of the request's bearer token, if valid.
fn role_of(api: &Api, request: &Request) -> Result<Role, ApiError> {
    let Some(token) = bearer(request.headers()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is needed",
        ));
    };
    let Some((role, _)) = api.tokens.check(&token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid",
        ));
    };
    Ok(role)
}

async fn require(api: Arc<Api>, needed: Role, mut request: Request, next: Next) -> Response {
    match role_of(&api, &request) {
        Ok(role) if role >= needed => {
            request.extensions_mut().insert(role);
            next.run(request).await
        }
        Ok(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this needs an admin token")
            .into_response(),
        Err(e) => {
            let mut r = e.into_response();
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
            }
            r
        }
    }
}

async fn read_only(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    require(api, Role::Read, request, next).await
}

async fn admin_only(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    require(api, Role::Admin, request, next).await
}

async fn metrics_gate(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    if api.public_metrics {
        let mut request = request;
        request.extensions_mut().insert(Role::Read);
        return next.run(request).await;
    }
    require(api, Role::Read, request, next).await
}

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The largest request body, in bytes (413 beyond).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Every route.
pub fn router(api: Arc<Api>) -> Router {
    let read = Router::new()
        .route("/api/v1/tasks", get(routes::tasks))
        .route("/api/v1/tasks/{name}", get(routes::task))
        .route("/api/v1/runs", get(routes::runs))
        .route("/api/v1/runs/{id}", get(routes::run))
        .route("/api/v1/runs/{id}/output", get(routes::output))
        .route("/api/v1/node", get(routes::node))
        .route("/api/v1/nodes", get(routes::nodes))
        .route("/api/v1/plan", post(routes::plan))
        .route("/api/v1/openapi.json", get(routes::openapi))
        .route_layer(middleware::from_fn_with_state(api.clone(), read_only));
    let admin = Router::new()
        .route("/api/v1/tasks", post(routes::create_task))
        .route(
            "/api/v1/tasks/{name}",
            put(routes::replace_task).patch(routes::patch_task).delete(routes::delete_task),
        )
        .route("/api/v1/tasks/{name}/run", post(routes::run_task))
        .route("/api/v1/tasks/{name}/pause", post(routes::pause_task))
        .route("/api/v1/tasks/{name}/resume", post(routes::resume_task))
        .route("/api/v1/runs/{id}/kill", post(routes::kill))
        .route("/api/v1/reload", post(routes::reload))
        .route("/api/v1/stop", post(routes::stop))
        .route("/api/v1/apply", post(routes::apply))
        .route_layer(middleware::from_fn_with_state(api.clone(), admin_only));
    let metrics = Router::new()
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), metrics_gate));
    Router::new()
        .merge(read)
        .merge(admin)
        .merge(metrics)
        .merge(dashboard::router(api.clone()))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        .layer(middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::map_response(security_headers))
        .with_state(api)
}

/// Headers every response carries: the dashboard's content security policy (no inline
/// script or style, no framing), no content sniffing, no referrer to other sites. The API's
/// JSON gets them too: a response opened in a browser is then inert as well.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, dashboard::CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

async fn security_headers(mut response: Response) -> Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address other than loopback without TLS, not allowed in so many words.
    #[error(
        "refusing to serve the API on {0} without TLS: give --tls-cert and --tls-key, \
         or --insecure-listen if the network is trusted"
    )]
    Insecure(std::net::IpAddr),
    /// A file of the state directory.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was done to it.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The tokens.
    #[error(transparent)]
    Tokens(#[from] auth::TokensError),
    /// The TLS certificate or key (the option, the file and what is wrong with it).
    #[error("{0}")]
    Tls(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The API checked and bound, not serving yet: everything that can refuse a start (the
/// address, the tokens, the TLS files) is done before the agent starts any task.
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
    url: String,
    tokens: Tokens,
    tls: Option<tokio_rustls::TlsAcceptor>,
    public_metrics: bool,
    sessions: session::Sessions,
}

impl Bound {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Checks the API's configuration and binds its address, for `state_dir`'s agent (its own
/// admin token is there).
///
/// # Errors
/// A bad tokens file, TLS files, a refused address, or a failed bind.
pub async fn bind(config: Config, state_dir: &std::path::Path) -> Result<Bound, StartError> {
    let ip = config.listen.ip();
    if !ip.is_loopback() && config.tls.is_none() && !config.insecure_listen {
        return Err(StartError::Insecure(ip));
    }
    crate::private::dir(state_dir).map_err(|source| StartError::File {
        action: "create",
        path: state_dir.to_owned(),
        source,
    })?;
    let mut tokens = Tokens::default();
    tokens.add(Role::Admin, &auth::own_token(&state_dir.join("api-token"))?, "agent");
    if let Some(file) = &config.tokens_file {
        tokens.load(file)?;
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let sessions = session::Sessions::new(session::Limits::from_env())
        .map_err(|_| StartError::Tokens(auth::TokensError::Random))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Listening on every address: local clients use loopback.
    let mut local = addr;
    if addr.ip().is_unspecified() {
        local.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("{scheme}://{local}");
    let public_metrics = config.public_metrics;
    Ok(Bound { listener, addr, url, tokens, tls, public_metrics, sessions })
}

/// Binds the API and serves it in the background; returns the address it listens on, which
/// is also written to `STATE_DIR/api-addr` (as a URL).
///
/// # Errors
/// A bad tokens file, TLS files, a refused address, or a failed bind.
pub async fn start(agent: Arc<Agent>, config: Config) -> Result<SocketAddr, StartError> {
    let bound = bind(config, &agent.options.state_dir).await?;
    serve_bound(agent, bound).await
}

/// Serves a bound API for `agent` in the background; returns the address it listens on,
/// which is also written to `STATE_DIR/api-addr` (as a URL).
///
/// # Errors
/// When `api-addr` cannot be written.
pub async fn serve_bound(agent: Arc<Agent>, bound: Bound) -> Result<SocketAddr, StartError> {
    let Bound { listener, addr, url, tokens, tls, public_metrics, sessions } = bound;
    // Written whole or not at all (a new file renamed into place): the CLI reading it while
    // the agent starts must never see an empty or half-written address.
    let addr_file = agent.options.state_dir.join("api-addr");
    crate::private::write(&addr_file, format!("{url}\n").as_bytes())
        .map_err(|source| StartError::File { action: "write", path: addr_file.clone(), source })?;
    let api = Arc::new(Api { agent, tokens, public_metrics, tls: tls.is_some(), sessions });
    api.agent.register(Some(url.clone())).await;
    let background = api.agent.services.background.clone();
    let app = router(api);
    tracing::info!(url, "API listening");
    // The listener ends with the agent; connections in progress end with the process.
    background.spawn(serve(listener, app, tls));
    Ok(addr)
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    use tokio_rustls::rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| StartError::Tls(format!("--tls-cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        let message = format!("--tls-cert {}: no certificate in the file", cert.display());
        return Err(StartError::Tls(message));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| StartError::Tls(format!("--tls-key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(format!("--tls-cert/--tls-key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections for ever, each served by hyper (over TLS when given; the errors hyper
/// answers by itself get the API's JSON body: [`wire`]).
async fn serve(listener: TcpListener, app: Router, tls: Option<tokio_rustls::TlsAcceptor>) {
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let io = TokioIo::new(wire::JsonErrors::new(stream));
                            http.serve_connection(io, service).await
                        }
                        _ => return,
                    }
                }
                None => {
                    let io = TokioIo::new(wire::JsonErrors::new(stream));
                    http.serve_connection(io, service).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "API connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every `/api/v1` route registered in `router` is in the OpenAPI document, and the
    /// document has no other (the API tests check each documented route answers).
    #[test]
    fn openapi_lists_exactly_the_routes() {
        let source = include_str!("mod.rs");
        let mut routes = BTreeSet::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + 7..];
            let path: String = rest
                .trim_start()
                .trim_start_matches('"')
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            let end = rest
                .find(".route(")
                .unwrap_or(rest.len())
                .min(rest.find(';').unwrap_or(rest.len()));
            let call = &rest[..end];
            if !path.starts_with("/api/v1") {
                continue;
            }
            for method in ["get", "post", "put", "patch", "delete"] {
                let bare =
                    call.contains(&format!("({method}(")) || call.contains(&format!(" {method}("));
                if bare || call.contains(&format!(".{method}(")) {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
        }
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(routes.len(), 20, "{routes:?}");
        assert_eq!(routes, documented);
    }
}
