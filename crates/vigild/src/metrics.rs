//! The Prometheus `/metrics` endpoint (text exposition format 0.0.4):
//! channels, HTLCs in flight, payments, unacknowledged events, and what the
//! store was asked to write and how long it took.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use vigil_node::{Direction, Node, PaymentState};

use crate::api::ApiState;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The metrics of `node`, as Prometheus text.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    let channels = node.list_channels();
    let usable = channels.iter().filter(|c| c.usable).count() as f64;
    let htlcs: usize = channels.iter().map(|c| c.pending_htlcs).sum();
    metric(
        &mut out,
        "vigil_channels",
        "gauge",
        "Channels, usable or not (opening, waiting for confirmations or for the peer).",
        &[("state=\"usable\"", usable), ("state=\"not_usable\"", channels.len() as f64 - usable)],
    );
    metric(
        &mut out,
        "vigil_htlcs_in_flight",
        "gauge",
        "HTLCs pending on our channels.",
        &[("", htlcs as f64)],
    );
    let payments = node.list_payments();
    let count = |dir: Direction, state: fn(&PaymentState) -> bool| {
        payments.iter().filter(|p| p.direction == dir && state(&p.state)).count() as f64
    };
    let pending = |s: &PaymentState| *s == PaymentState::Pending;
    let succeeded = |s: &PaymentState| *s == PaymentState::Succeeded;
    let failed = |s: &PaymentState| matches!(s, PaymentState::Failed(_));
    metric(
        &mut out,
        "vigil_payments",
        "gauge",
        "Payments by direction and status.",
        &[
            ("direction=\"outbound\",status=\"pending\"", count(Direction::Outbound, pending)),
            ("direction=\"outbound\",status=\"succeeded\"", count(Direction::Outbound, succeeded)),
            ("direction=\"outbound\",status=\"failed\"", count(Direction::Outbound, failed)),
            ("direction=\"inbound\",status=\"pending\"", count(Direction::Inbound, pending)),
            ("direction=\"inbound\",status=\"succeeded\"", count(Direction::Inbound, succeeded)),
        ],
    );
    metric(
        &mut out,
        "vigil_unacknowledged_monitor_events",
        "gauge",
        "Monitor events not yet acknowledged by the manager (they replay at restart).",
        &[("", node.unacknowledged_monitor_events() as f64)],
    );
    metric(
        &mut out,
        "vigil_unhandled_user_events",
        "gauge",
        "User events not yet acknowledged (POST /v1/events/ack).",
        &[("", node.unhandled_events().len() as f64)],
    );
    metric(&mut out, "vigil_peers", "gauge", "Connected peers.", &[("", node.list_peers().len() as f64)]);
    metric(
        &mut out,
        "vigil_block_height",
        "gauge",
        "The height the node followed the chain to.",
        &[("", f64::from(node.best_height()))],
    );
    let s = node.persist_stats();
    let counters = [
        ("vigil_persist_batches_total", "Store transactions (one fsync each).", s.batches),
        ("vigil_persist_monitor_writes_total", "Monitor updates made durable.", s.monitor_writes),
        ("vigil_persist_record_writes_total", "Payment records made durable.", s.record_writes),
        ("vigil_persist_bytes_total", "Value bytes written.", s.bytes),
        ("vigil_persist_failures_total", "Store transactions refused (retried).", s.failures),
    ];
    for (name, help, value) in counters {
        metric(&mut out, name, "counter", help, &[("", value as f64)]);
    }
    metric(
        &mut out,
        "vigil_persist_latency_seconds",
        "summary",
        "Time in store transactions.",
        &[("quantile=\"1\"", s.latency_max.as_secs_f64())],
    );
    let _ = writeln!(out, "vigil_persist_latency_seconds_sum {}", s.latency_total.as_secs_f64());
    let _ = writeln!(out, "vigil_persist_latency_seconds_count {}", s.batches);
    out
}

/// `GET /metrics`.
pub async fn handler(State(state): State<ApiState>) -> Response {
    let node = state.node.clone();
    let body = tokio::task::spawn_blocking(move || render(&node)).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
