//! The HTTP JSON API (described by `openapi.json`, served at
//! `/v1/openapi.json`), and the Prometheus `/metrics`.
//!
//! Every request needs `Authorization: Bearer <token>`, the token kept in
//! `<data-dir>/<network>/api.token` (mode 0600); without it the answer is
//! 401. Requests are JSON objects: an unknown field, a missing one or a
//! value of the wrong type or an impossible value is a 400 whose JSON error
//! names the field:
//!
//! ```json
//! {"error": {"code": "invalid_input", "field": "amount_sat", "message": "…"}}
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::secp256k1::PublicKey;
use lightning::ln::types::ChannelId;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::manager::{EventId, PaymentId};
use vigil_node::{Node, OpError, PaymentState};

use crate::json;

/// The API's routes: method and path. The OpenAPI description must list
/// exactly these (a test checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/info"),
    ("get", "/v1/peers"),
    ("post", "/v1/peers"),
    ("get", "/v1/channels"),
    ("post", "/v1/channels"),
    ("post", "/v1/channels/close"),
    ("post", "/v1/invoices"),
    ("get", "/v1/payments"),
    ("post", "/v1/payments/pay"),
    ("post", "/v1/payments/keysend"),
    ("post", "/v1/wallet/address"),
    ("get", "/v1/wallet/balance"),
    ("post", "/v1/wallet/send"),
    ("get", "/v1/chain/info"),
    ("post", "/v1/chain/mine"),
    ("get", "/v1/events"),
    ("get", "/v1/events/stream"),
    ("post", "/v1/events/ack"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
];

/// The OpenAPI description of the API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The longest a request may wait for a payment or for events.
pub const MAX_WAIT_SECS: u64 = 300;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The node.
    pub node: Arc<Node>,
    /// The bearer token.
    pub token: Arc<String>,
    /// Whether channels opened without saying are anchor channels.
    pub anchors_default: bool,
    /// When vigild started.
    pub started: Instant,
    /// Added to the node's event ids (which count from 1 in each run) so
    /// that the API's ids never repeat across restarts: the start time in
    /// seconds, shifted left by 20 bits. An id from an earlier run is then
    /// below it, and cannot acknowledge an event of this run by mistake.
    pub event_id_base: u64,
    /// Set when vigild stops: event streams end.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl ApiState {
    /// The base for event ids of a run started now.
    pub fn event_id_base_now() -> u64 {
        let secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        secs << 20
    }

    fn api_event_id(&self, id: EventId) -> u64 {
        self.event_id_base.saturating_add(id.0)
    }

    /// The node's id for an API event id, if it is of this run.
    fn node_event_id(&self, id: u64) -> Option<EventId> {
        id.checked_sub(self.event_id_base).filter(|n| *n > 0).map(EventId)
    }

    /// A cursor (`after`, `Last-Event-ID`) in the node's ids: one from an
    /// earlier run means every event of this run is new.
    fn node_cursor(&self, after: Option<u64>) -> Option<u64> {
        after.and_then(|a| a.checked_sub(self.event_id_base))
    }
}

/// An error answer: a status and a JSON body naming what went wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    message: String,
}

impl ApiError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "field": self.field, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let (status, code, field) = match &e {
            OpError::InvalidInput { field, .. } => {
                (StatusCode::BAD_REQUEST, "invalid_input", Some(field.to_string()))
            }
            OpError::InsufficientFunds { .. } => (StatusCode::CONFLICT, "insufficient_funds", None),
            OpError::PeerUnreachable(_) => (StatusCode::BAD_GATEWAY, "peer_unreachable", None),
            OpError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            OpError::Unsupported(_) => (StatusCode::NOT_IMPLEMENTED, "unsupported", None),
            _ => (StatusCode::CONFLICT, "refused", None),
        };
        let message = match &e {
            OpError::InvalidInput { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        Self { status, code, field, message }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The API's router over `state`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/peers", get(peers).post(connect))
        .route("/v1/channels", get(channels).post(open_channel))
        .route("/v1/channels/close", post(close_channel))
        .route("/v1/invoices", post(invoice))
        .route("/v1/payments", get(payments))
        .route("/v1/payments/pay", post(pay))
        .route("/v1/payments/keysend", post(keysend))
        .route("/v1/wallet/address", post(new_address))
        .route("/v1/wallet/balance", get(balance))
        .route("/v1/wallet/send", post(send_onchain))
        .route("/v1/chain/info", get(chain_info))
        .route("/v1/chain/mine", post(mine))
        .route("/v1/events", get(events))
        .route("/v1/events/stream", get(event_stream))
        .route("/v1/events/ack", post(ack))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(crate::metrics::handler))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if same(token.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            field: None,
            message: "wrong token: use the one in <data-dir>/regtest/api.token".into(),
        }
        .into_response(),
        None => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            field: None,
            message: "missing `Authorization: Bearer <token>`; the token is in <data-dir>/regtest/api.token"
                .into(),
        }
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        field: None,
        message: "no such endpoint; see /v1/openapi.json".into(),
    }
}

/// Runs node work that may block (a store transaction and its fsync, a
/// call to the chain's RPC) without holding up the async workers that
/// serve the other requests and the peers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Parses a JSON body (empty means `{}`), naming the field at fault.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let de = &mut serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let quoted = message.split('`').nth(1).map(str::to_string);
        let field = if path != "." && path != "?" {
            path
        } else if message.starts_with("unknown field") || message.starts_with("missing field") {
            quoted.unwrap_or_else(|| "body".into())
        } else {
            "body".into()
        };
        ApiError::invalid(field, message)
    })?;
    de.end().map_err(|e| ApiError::invalid("body", format!("{e} (after the JSON object)")))?;
    Ok(value)
}

fn node_id(field: &str, s: &str) -> Result<PublicKey, ApiError> {
    s.trim().parse().map_err(|_| ApiError::invalid(field, "not a node id (33 bytes of hex)"))
}

fn channel_id(s: &str) -> Result<ChannelId, ApiError> {
    json::parse_hex32(s)
        .map(ChannelId)
        .ok_or_else(|| ApiError::invalid("channel_id", "not a channel id (32 bytes of hex)"))
}

fn socket_addr(s: &str) -> Result<std::net::SocketAddr, ApiError> {
    s.trim().parse().map_err(|_| ApiError::invalid("address", "not an IP:port address"))
}

fn wait_secs(field: &str, secs: Option<u64>, default: u64) -> Result<Duration, ApiError> {
    match secs.unwrap_or(default) {
        s if s > MAX_WAIT_SECS => Err(ApiError::invalid(field, format!("at most {MAX_WAIT_SECS}"))),
        s => Ok(Duration::from_secs(s)),
    }
}

async fn info(State(s): State<ApiState>) -> ApiResult {
    let channels = s.node.list_channels();
    let tip = blocking(|| s.node.chain_tip().ok());
    Ok(Json(json!({
        "node_id": s.node.node_id().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "network": "regtest",
        "listening": s.node.listening_addr().map(|a| a.to_string()),
        "chain": if s.node.embedded_chain().is_some() { "embedded" } else { "rpc" },
        "block_height": s.node.best_height(),
        "chain_tip_height": tip.map(|t| t.height),
        "peers": s.node.list_peers().len(),
        "channels": channels.len(),
        "usable_channels": channels.iter().filter(|c| c.usable).count(),
        "uptime_secs": s.started.elapsed().as_secs(),
        "last_error": s.node.last_error(),
    })))
}

async fn peers(State(s): State<ApiState>) -> ApiResult {
    Ok(Json(json!(s.node.list_peers().iter().map(ToString::to_string).collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    node_id: String,
    address: String,
}

async fn connect(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: ConnectRequest = parse(&body)?;
    let peer = node_id("node_id", &r.node_id)?;
    let addr = socket_addr(&r.address)?;
    s.node.connect_peer(peer, addr).await?;
    Ok(Json(json!({ "connected": peer.to_string() })))
}

async fn channels(State(s): State<ApiState>) -> ApiResult {
    Ok(Json(json!(s.node.list_channels().iter().map(json::channel).collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    node_id: String,
    address: Option<String>,
    amount_sat: u64,
    #[serde(default)]
    push_msat: u64,
    anchors: Option<bool>,
}

async fn open_channel(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: OpenRequest = parse(&body)?;
    let peer = node_id("node_id", &r.node_id)?;
    let addr = r.address.as_deref().map(socket_addr).transpose()?;
    if r.amount_sat == 0 {
        return Err(ApiError::invalid("amount_sat", "must be positive"));
    }
    let anchors = r.anchors.unwrap_or(s.anchors_default);
    let id = s.node.open_channel(peer, addr, r.amount_sat, r.push_msat, anchors).await?;
    Ok(Json(json!({
        "temporary_channel_id": json::hex(&id.0),
        "next": "the wallet funds the channel once the peer accepts; it is usable after 6 confirmations",
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    channel_id: String,
    #[serde(default)]
    force: bool,
}

async fn close_channel(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: CloseRequest = parse(&body)?;
    let id = channel_id(&r.channel_id)?;
    blocking(|| s.node.close_channel(id, r.force))?;
    Ok(Json(json!({ "channel_id": r.channel_id, "force": r.force })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceRequest {
    amount_msat: Option<u64>,
    #[serde(default)]
    description: String,
    expiry_secs: Option<u32>,
}

async fn invoice(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: InvoiceRequest = parse(&body)?;
    let invoice =
        blocking(|| s.node.create_invoice(r.amount_msat, &r.description, r.expiry_secs.unwrap_or(3600)))?;
    Ok(Json(json!({
        "invoice": invoice.to_string(),
        "payment_hash": json::hex(invoice.payment_hash().as_ref()),
        "amount_msat": r.amount_msat,
        "expires_at": invoice.expires_at().map(|d| d.as_secs()),
    })))
}

async fn payments(State(s): State<ApiState>) -> ApiResult {
    Ok(Json(json!(s.node.list_payments().iter().map(json::payment).collect::<Vec<_>>())))
}

/// Waits up to `wait` for the payment to be decided; answers with it (or
/// with its id alone if it is not listed yet).
async fn outcome(node: &Node, id: PaymentId, wait: Duration) -> ApiResult {
    let deadline = Instant::now() + wait;
    loop {
        let info = node.payment(&id);
        if Instant::now() >= deadline || info.as_ref().is_some_and(|p| p.state != PaymentState::Pending) {
            return Ok(Json(
                info.as_ref().map_or_else(|| json!({ "payment_id": json::hex(&id.0) }), json::payment),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    invoice: String,
    amount_msat: Option<u64>,
    wait_secs: Option<u64>,
}

async fn pay(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: PayRequest = parse(&body)?;
    let wait = wait_secs("wait_secs", r.wait_secs, 60)?;
    let id = blocking(|| s.node.pay_invoice(&r.invoice, r.amount_msat))?;
    outcome(&s.node, id, wait).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysendRequest {
    node_id: String,
    amount_msat: u64,
    wait_secs: Option<u64>,
}

async fn keysend(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: KeysendRequest = parse(&body)?;
    let payee = node_id("node_id", &r.node_id)?;
    let wait = wait_secs("wait_secs", r.wait_secs, 60)?;
    let (id, _) = blocking(|| s.node.keysend(payee, r.amount_msat))?;
    outcome(&s.node, id, wait).await
}

async fn new_address(State(s): State<ApiState>) -> ApiResult {
    Ok(Json(json!({ "address": blocking(|| s.node.new_address())?.to_string() })))
}

async fn balance(State(s): State<ApiState>) -> ApiResult {
    let b = blocking(|| s.node.balances());
    Ok(Json(json!({
        "onchain_confirmed_sat": b.onchain_confirmed_sat,
        "onchain_pending_sat": b.onchain_pending_sat,
        "lightning_msat": b.lightning_msat,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    address: String,
    amount_sat: u64,
}

async fn send_onchain(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: SendRequest = parse(&body)?;
    let txid = blocking(|| s.node.send_onchain(&r.address, r.amount_sat))?;
    Ok(Json(json!({ "txid": txid.to_string() })))
}

async fn chain_info(State(s): State<ApiState>) -> ApiResult {
    let tip = blocking(|| s.node.chain_tip()).map_err(|e| ApiError {
        status: StatusCode::BAD_GATEWAY,
        code: "chain_unavailable",
        field: None,
        message: format!("the chain source does not answer: {e}"),
    })?;
    Ok(Json(json!({
        "height": tip.height,
        "tip": tip.hash.to_string(),
        "followed_height": s.node.best_height(),
        "embedded": s.node.embedded_chain().is_some(),
        "mempool": s.node.embedded_chain().map(|c| c.mempool_entries().len()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MineRequest {
    blocks: u32,
    address: Option<String>,
}

async fn mine(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: MineRequest = parse(&body)?;
    let node = s.node.clone();
    let hashes = tokio::task::spawn_blocking(move || node.mine(r.blocks, r.address.as_deref()))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            field: None,
            message: e.to_string(),
        })??;
    Ok(Json(json!({
        "blocks": hashes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "height": s.node.chain_tip().map(|t| t.height).ok(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
    wait_secs: Option<u64>,
}

async fn events(
    State(s): State<ApiState>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let wait = wait_secs("wait_secs", q.wait_secs, 0)?;
    let deadline = Instant::now() + wait;
    loop {
        let events: Vec<Value> = s
            .node
            .unhandled_events()
            .iter()
            .filter(|(id, _)| s.node_cursor(q.after).is_none_or(|after| id.0 > after))
            .map(|(id, e)| json::event(s.api_event_id(*id), e))
            .collect();
        if !events.is_empty() || Instant::now() >= deadline {
            return Ok(Json(json!(events)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after: Option<u64>,
}

/// How often an idle event stream sends a comment, so proxies and clients
/// see the connection is alive.
const STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Server-sent events: every unhandled event after `after` (or after the
/// `Last-Event-ID` a reconnecting client sends), then each new one as it
/// comes, as `id: <event id>`, `event: <kind>`, `data: <JSON>`. Events stay
/// unhandled until `POST /v1/events/ack`, so a client that reconnects
/// without a cursor sees again what it did not acknowledge.
async fn event_stream(
    State(s): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "not an event id"))?,
        ),
    };
    let after = s.node_cursor(q.after.max(last_event_id));
    let stream =
        futures_util::stream::unfold((s, after, VecDeque::new()), |(s, after, mut ready)| async move {
            let mut after = after;
            loop {
                if let Some(next) = ready.pop_front() {
                    return Some((Ok::<_, std::convert::Infallible>(next), (s, after, ready)));
                }
                if s.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    return None;
                }
                let node = s.node.clone();
                let notified = node.event_notified();
                for (id, e) in node.unhandled_events() {
                    if after.is_none_or(|a| id.0 > a) {
                        let value = json::event(s.api_event_id(id), &e);
                        let kind = value["type"].as_str().unwrap_or("event").to_owned();
                        ready.push_back(
                            SseEvent::default()
                                .id(value["id"].to_string())
                                .event(kind)
                                .data(value.to_string()),
                        );
                        after = Some(id.0);
                    }
                }
                if ready.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_millis(250), notified).await;
                }
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    id: u64,
}

async fn ack(State(s): State<ApiState>, body: Bytes) -> ApiResult {
    let r: AckRequest = parse(&body)?;
    if !s.node_event_id(r.id).is_some_and(|id| blocking(|| s.node.event_handled(id))) {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            field: Some("id".into()),
            message: format!(
                "no unhandled event {} in this run of vigild (after a restart, unacknowledged events come again with new ids)",
                r.id
            ),
        });
    }
    Ok(Json(json!({ "acknowledged": r.id })))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_description_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut described: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object().expect("operations").keys().map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        described.sort();
        let mut routes: Vec<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_string(), (*p).to_string())).collect();
        routes.sort();
        assert_eq!(described, routes);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct R {
            amount_sat: u64,
        }
        let field = |body: &str| parse::<R>(&Bytes::from(body.to_string())).expect_err("bad").field;
        assert_eq!(field(r#"{"amount_sat": "x"}"#).as_deref(), Some("amount_sat"));
        assert_eq!(field(r#"{"amount_sat": -1}"#).as_deref(), Some("amount_sat"));
        assert_eq!(field(r#"{"amount_sat": 1, "bogus": 2}"#).as_deref(), Some("bogus"));
        assert_eq!(field(r#"{}"#).as_deref(), Some("amount_sat"));
        assert_eq!(field(r#"{"amount_sat": 1"#).as_deref(), Some("body"));
        assert!(parse::<R>(&Bytes::from_static(br#"{"amount_sat": 5}"#)).is_ok());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
