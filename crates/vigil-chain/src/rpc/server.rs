//! The bitcoind-compatible JSON-RPC server of the embedded chain.
//!
//! HTTP handling follows Bitcoin Core's `httprpc.cpp`: POST only (405
//! otherwise), HTTP basic authentication against the cookie or the configured
//! user (401 with `WWW-Authenticate` otherwise), JSON-RPC 1.0 requests answered
//! with `result` and `error` and an HTTP status derived from the error, and
//! JSON-RPC 2.0 requests answered with HTTP 200 and `result` xor `error`.
//! Batches are arrays of requests.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::codes::*;
use super::cookie::{CookieError, CookieFile};
use super::methods::{self, Context};
use super::RpcError;
use crate::RegtestChain;

/// Bitcoin Core's default RPC port on regtest.
pub const DEFAULT_RPC_PORT: u16 = 18443;
/// The largest request body accepted.
const MAX_BODY: usize = 32 << 20;
/// How long a request with wrong credentials waits before its 401, as
/// Bitcoin Core does against password guessing.
const AUTH_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// How the server listens and authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Where to write the cookie, or `None` for no cookie authentication.
    pub cookie_path: Option<PathBuf>,
    /// A fixed user and password (`rpcuser`/`rpcpassword`), if any.
    pub user_password: Option<(String, String)>,
}

impl RpcServerConfig {
    /// Bitcoin Core's regtest defaults: 127.0.0.1:18443, with the cookie in
    /// `<data_dir>/regtest/.cookie`.
    pub fn regtest_default(data_dir: &Path) -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_RPC_PORT)),
            cookie_path: Some(data_dir.join("regtest").join(".cookie")),
            user_password: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcServerError {
    /// The address could not be bound (in use, or not permitted).
    #[error("cannot listen for RPC on {addr}: {source} (is another bitcoind or vigild running? choose another port)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The cookie could not be written.
    #[error(transparent)]
    Cookie(#[from] CookieError),
    /// Neither a cookie nor a user and password was configured, so nobody
    /// could authenticate.
    #[error("the RPC server needs a cookie path or a user and password")]
    NoAuthentication,
}

/// A running RPC server. [`RpcServer::stop`] shuts it down and removes the
/// cookie; dropping it does the same without waiting.
#[derive(Debug)]
pub struct RpcServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    cookie: Option<CookieFile>,
}

#[derive(Clone)]
struct App {
    chain: Arc<RegtestChain>,
    /// Accepted `user:password` strings.
    credentials: Arc<Vec<String>>,
    started: Instant,
}

impl RpcServer {
    /// Binds, writes the cookie, and serves `chain` until stopped. Must be
    /// called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`RpcServerError`] if the address cannot be bound, the cookie cannot be
    /// written, or no authentication is configured.
    pub async fn start(chain: Arc<RegtestChain>, config: RpcServerConfig) -> Result<Self, RpcServerError> {
        if config.cookie_path.is_none() && config.user_password.is_none() {
            return Err(RpcServerError::NoAuthentication);
        }
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| RpcServerError::Bind { addr: config.bind, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| RpcServerError::Bind { addr: config.bind, source })?;
        let mut credentials = Vec::new();
        let cookie = match &config.cookie_path {
            Some(path) => {
                let cookie = CookieFile::create(path.clone())?;
                let (user, password) = cookie.credentials();
                credentials.push(format!("{user}:{password}"));
                Some(cookie)
            }
            None => None,
        };
        if let Some((user, password)) = &config.user_password {
            credentials.push(format!("{user}:{password}"));
        }
        let app = App { chain, credentials: Arc::new(credentials), started: Instant::now() };
        let router = Router::new().fallback(handle).with_state(app);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "RPC server stopped with an error");
            }
        });
        tracing::info!(%local_addr, "bitcoind-compatible RPC server listening");
        if !local_addr.ip().is_loopback() {
            tracing::warn!(%local_addr, "the RPC server listens beyond this machine; anyone who can reach it and knows the credentials controls the chain");
        }
        Ok(Self { local_addr, shutdown: Some(tx), task: Some(task), cookie })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cookie file, if cookie authentication is on.
    pub fn cookie_path(&self) -> Option<&Path> {
        self.cookie.as_ref().map(|c| c.path())
    }

    /// Stops accepting requests, waits for those in progress, and removes the
    /// cookie.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Compares in time independent of where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(headers: &HeaderMap, credentials: &[String]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    credentials.iter().fold(false, |ok, c| ok | constant_time_eq(c.as_bytes(), &decoded))
}

async fn handle(State(app): State<App>, request: Request) -> Response {
    if request.method() != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "JSONRPC server handles only POST requests").into_response();
    }
    // Authenticate before reading the body, and slow down guessing as Core
    // does.
    if !authorized(request.headers(), &app.credentials) {
        tracing::warn!("RPC request with wrong or missing credentials");
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"jsonrpc\""));
        return response;
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let (status, reply) = match tokio::task::spawn_blocking(move || process(&app, &body)).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(error = %e, "RPC handler panicked");
            let error = RpcError::new(INTERNAL_ERROR, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, Some(legacy_reply(Err(error), Value::Null)))
        }
    };
    match reply {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(value) => {
            let mut text = value.to_string();
            text.push('\n');
            (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
        }
    }
}

fn error_object(error: &RpcError) -> Value {
    let mut o = Map::new();
    o.insert("code".into(), json!(error.code));
    o.insert("message".into(), json!(error.message));
    if let Some(data) = &error.data {
        o.insert("data".into(), data.clone());
    }
    Value::Object(o)
}

fn legacy_reply(result: Result<Value, RpcError>, id: Value) -> Value {
    match result {
        Ok(value) => json!({"result": value, "error": null, "id": id}),
        Err(error) => json!({"result": null, "error": error_object(&error), "id": id}),
    }
}

/// The HTTP status of a JSON-RPC 1.0 error, as Core's `JSONErrorReply`.
fn legacy_status(error: &RpcError) -> StatusCode {
    match error.code {
        INVALID_REQUEST => StatusCode::BAD_REQUEST,
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Handles a whole HTTP body: one request or a batch.
fn process(app: &App, body: &[u8]) -> (StatusCode, Option<Value>) {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let error = RpcError::new(PARSE_ERROR, "Parse error");
            return (StatusCode::INTERNAL_SERVER_ERROR, Some(legacy_reply(Err(error), Value::Null)));
        }
    };
    match parsed {
        Value::Array(requests) => {
            let replies: Vec<Value> = requests.iter().filter_map(|r| single(app, r).1).collect();
            (StatusCode::OK, Some(Value::Array(replies)))
        }
        Value::Object(_) => single(app, &parsed),
        _ => {
            let error = RpcError::new(PARSE_ERROR, "Top-level object parse error");
            (StatusCode::INTERNAL_SERVER_ERROR, Some(legacy_reply(Err(error), Value::Null)))
        }
    }
}

/// Handles one request object. Returns `None` for a JSON-RPC 2.0
/// notification, which gets no reply.
fn single(app: &App, request: &Value) -> (StatusCode, Option<Value>) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let is_notification = request.get("id").is_none();
    let version = request.get("jsonrpc");
    let v2 = version.and_then(Value::as_str) == Some("2.0");
    let result = parse_call(request).and_then(|(method, params)| {
        if version.is_some() && !v2 && version.and_then(Value::as_str) != Some("1.0") {
            return Err(RpcError::new(INVALID_REQUEST, "JSON-RPC version not supported"));
        }
        tracing::debug!(method, "RPC call");
        let ctx = Context { chain: &app.chain, started: app.started };
        methods::dispatch(&ctx, method, &params)
    });
    if v2 {
        if is_notification {
            return (StatusCode::NO_CONTENT, None);
        }
        let reply = match result {
            Ok(value) => json!({"jsonrpc": "2.0", "result": value, "id": id}),
            Err(error) => json!({"jsonrpc": "2.0", "error": error_object(&error), "id": id}),
        };
        return (StatusCode::OK, Some(reply));
    }
    let status = result.as_ref().err().map_or(StatusCode::OK, legacy_status);
    (status, Some(legacy_reply(result, id)))
}

fn parse_call(request: &Value) -> Result<(&str, Value), RpcError> {
    let object =
        request.as_object().ok_or_else(|| RpcError::new(INVALID_REQUEST, "Invalid Request object"))?;
    let method = match object.get("method") {
        None => return Err(RpcError::new(INVALID_REQUEST, "Missing method")),
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err(RpcError::new(INVALID_REQUEST, "Method must be a string")),
    };
    let params = match object.get("params") {
        None | Some(Value::Null) => Value::Null,
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => return Err(RpcError::new(INVALID_REQUEST, "Params must be an array or object")),
    };
    Ok((method, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_accepts_only_listed_credentials() {
        let creds = vec!["__cookie__:secret".to_string(), "alice:pw".to_string()];
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, &creds), "no header");
        for (value, expected) in [
            ("Basic X19jb29raWVfXzpzZWNyZXQ=", true), // __cookie__:secret
            ("Basic YWxpY2U6cHc=", true),             // alice:pw
            ("Basic YWxpY2U6cHd4", false),            // alice:pwx
            ("Bearer YWxpY2U6cHc=", false),
            ("Basic !!!", false),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(authorized(&headers, &creds), expected, "{value}");
        }
    }
}
