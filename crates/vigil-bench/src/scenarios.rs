//! The scenarios, each run for Vigil and for LDK on the same work, their
//! runs interleaved (Vigil, LDK, Vigil, …) so drift on the machine hits
//! both alike.
//!
//! Every payment is 5,000 sat: above the dust limit (at 1,000 sat/kw an
//! HTLC below about 1,060 sat is dust), so each HTLC is on the commitment
//! transactions and signed, as real payments are. Payments alternate
//! direction so that channels never drain. Invoices
//! are made before the clock starts; a payment's time runs from `pay` to
//! the sender's `PaymentSent`, through every message, signature and store
//! write on both sides.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use lightning::types::payment::PaymentHash;
use lightning_invoice::Bolt11Invoice;
use serde_json::json;

use crate::ldk::LdkNode;
use crate::net::{BenchNode, Net};
use crate::report::{median, percentile, Row};
use crate::store::{CountingStore, StoreCounts, StoreKind};
use crate::vigil::VigilNode;

/// Each channel's size (half of it pushed to the other side).
pub const CHANNEL_SAT: u64 = 10_000_000;
/// Each payment's amount.
pub const AMOUNT_MSAT: u64 = 5_000_000;

/// How much work each scenario does.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Runs per side.
    pub runs: usize,
    /// Payments per run of `payments-mem`.
    pub sequential_mem: usize,
    /// Payments per run of `payments-disk` and `forward`.
    pub sequential_disk: usize,
    /// Payments per run of `payments-concurrent`.
    pub concurrent: usize,
    /// Payments in flight at once in `payments-concurrent`.
    pub window: usize,
    /// Channel counts of `restart`.
    pub restart_channels: Vec<usize>,
    /// Payment histories (events handled) of `restart`.
    pub restart_history: Vec<usize>,
    /// Unacknowledged event backlogs of `restart` (Vigil only).
    pub restart_backlog: Vec<usize>,
}

impl Sizes {
    /// The sizes `vigil-bench` runs.
    pub fn full() -> Self {
        Sizes {
            runs: 5,
            sequential_mem: 500,
            sequential_disk: 100,
            concurrent: 1_000,
            window: 400,
            restart_channels: vec![10, 100, 1_000],
            restart_history: vec![0, 1_000],
            restart_backlog: vec![1_000, 10_000],
        }
    }

    /// Tiny sizes, for the test that the harness works.
    pub fn quick() -> Self {
        Sizes {
            runs: 1,
            sequential_mem: 4,
            sequential_disk: 2,
            concurrent: 30,
            window: 10,
            restart_channels: vec![5],
            restart_history: vec![0, 3],
            restart_backlog: vec![3],
        }
    }
}

/// A network and the directory its stores live in.
pub struct Setup<N: BenchNode> {
    /// The network.
    pub net: Net<N>,
    _dir: tempfile::TempDir,
}

/// `nodes` nodes in a line with `channels` channels on each link.
///
/// # Panics
///
/// If a store cannot be created or a channel does not open: the harness
/// cannot run then.
pub fn setup<N: BenchNode>(nodes: usize, channels: usize, kind: StoreKind) -> Setup<N> {
    let links = nodes - 1;
    let chain = Net::<N>::chain(u32::try_from(links * channels).expect("a few thousand channels at most"));
    let dir = tempfile::tempdir().expect("a temporary directory for the stores");
    let made = (0..nodes)
        .map(|i| {
            let store = CountingStore::open(kind, dir.path(), &format!("node{i}")).expect("the store opens");
            N::create(10 + u8::try_from(i).expect("a few nodes"), chain.clone(), store)
        })
        .collect();
    let mut net = Net::new(chain, made);
    for i in 0..links {
        net.open_channels(i, channels, CHANNEL_SAT);
    }
    Setup { net, _dir: dir }
}

fn hash_of(invoice: &Bolt11Invoice) -> PaymentHash {
    PaymentHash(invoice.payment_hash().to_byte_array())
}

/// Pays `invoice` from `from` and runs the network until quiet.
///
/// # Errors
///
/// The payment was refused or did not succeed.
pub fn pay_once<N: BenchNode>(
    net: &mut Net<N>,
    from: usize,
    invoice: &Bolt11Invoice,
    ack: bool,
) -> Result<(), String> {
    net.nodes[from].pay(invoice)?;
    net.run(ack);
    match net.nodes[from].take_outcomes().as_slice() {
        [(hash, true)] if *hash == hash_of(invoice) => Ok(()),
        other => Err(format!("payment {} did not succeed alone: {other:?}", hash_of(invoice))),
    }
}

/// Sequential payments, `(from, to)` taken in turn; payments per second.
///
/// # Errors
///
/// A payment failed.
pub fn sequential<N: BenchNode>(net: &mut Net<N>, n: usize, pairs: &[(usize, usize)]) -> Result<f64, String> {
    let invoices: Vec<(usize, Bolt11Invoice)> = (0..n)
        .map(|k| {
            let (from, to) = pairs[k % pairs.len()];
            (from, net.nodes[to].invoice(AMOUNT_MSAT))
        })
        .collect();
    let started = Instant::now();
    for (from, invoice) in &invoices {
        pay_once(net, *from, invoice, true)?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `total` payments between nodes 0 and 1, alternating direction, with
/// `window` in flight at once: payments per second and each payment's
/// latency in ms.
///
/// # Errors
///
/// A payment failed, or the network stopped moving with payments open.
pub fn concurrent<N: BenchNode>(
    net: &mut Net<N>,
    total: usize,
    window: usize,
) -> Result<(f64, Vec<f64>), String> {
    let mut invoices: VecDeque<(usize, Bolt11Invoice)> =
        (0..total).map(|k| (k % 2, net.nodes[1 - k % 2].invoice(AMOUNT_MSAT))).collect();
    let mut open: HashMap<PaymentHash, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(total);
    let started = Instant::now();
    let mut idle = 0;
    while latencies.len() < total {
        while open.len() < window {
            let Some((from, invoice)) = invoices.pop_front() else { break };
            let started = Instant::now();
            net.nodes[from].pay(&invoice)?;
            open.insert(hash_of(&invoice), started);
        }
        let moved = net.step(true);
        for (hash, sent) in net.nodes.iter_mut().take(2).flat_map(|n| n.take_outcomes()) {
            let since = open.remove(&hash).ok_or_else(|| format!("an outcome for unknown payment {hash}"))?;
            if !sent {
                return Err(format!("payment {hash} failed"));
            }
            latencies.push(since.elapsed().as_secs_f64() * 1000.0);
        }
        idle = if moved { 0 } else { idle + 1 };
        if idle > 3 {
            return Err(format!("stalled with {} payments open", open.len()));
        }
    }
    Ok((total as f64 / started.elapsed().as_secs_f64(), latencies))
}

/// Runs `vigil` and `ldk` `runs` times each, interleaved.
fn interleave(
    runs: usize,
    mut vigil: impl FnMut() -> Result<f64, String>,
    mut ldk: impl FnMut() -> Result<f64, String>,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut v, mut l) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        v.push(vigil().map_err(|e| format!("vigil: {e}"))?);
        l.push(ldk().map_err(|e| format!("ldk: {e}"))?);
    }
    Ok((v, l))
}

/// Store counts per payment, per node, over one closure's payments.
fn per_payment(before: &[StoreCounts], after: &[StoreCounts], payments: usize) -> serde_json::Value {
    let p = payments as f64;
    let nodes: Vec<_> = before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let d = a.since(b);
            json!({ "fsyncs": d.transactions as f64 / p, "writes": d.writes as f64 / p, "bytes": d.bytes as f64 / p })
        })
        .collect();
    json!(nodes)
}

/// `payments-mem` or `payments-disk`: A→B and B→A in turn on one channel.
///
/// # Errors
///
/// A payment failed.
pub fn payments(kind: StoreKind, sizes: &Sizes) -> Result<Row, String> {
    let n = if kind == StoreKind::Memory { sizes.sequential_mem } else { sizes.sequential_disk };
    let mut v = setup::<VigilNode>(2, 1, kind);
    let mut l = setup::<LdkNode>(2, 1, kind);
    let pairs = [(0, 1), (1, 0)];
    let (vr, lr) =
        interleave(sizes.runs, || sequential(&mut v.net, n, &pairs), || sequential(&mut l.net, n, &pairs))?;
    let name = if kind == StoreKind::Memory { "payments-mem" } else { "payments-disk" };
    Ok(Row::new(name, "payments/s", true, vr, lr).with(json!({ "payments_per_run": n })))
}

/// `payments-concurrent`: nodes 0 and 1 pay each other with a window of payments in
/// flight, durable stores.
///
/// # Errors
///
/// A payment failed or the network stalled.
pub fn payments_concurrent(sizes: &Sizes) -> Result<Row, String> {
    let mut v = setup::<VigilNode>(2, 1, StoreKind::Sqlite);
    let mut l = setup::<LdkNode>(2, 1, StoreKind::Sqlite);
    let (mut vl, mut ll) = (Vec::new(), Vec::new());
    let (mut vc, mut lc) = (Vec::new(), Vec::new());
    let (vr, lr) = interleave(
        sizes.runs.min(3),
        || {
            let before = v.net.counts();
            let (tput, lat) = concurrent(&mut v.net, sizes.concurrent, sizes.window)?;
            vc.push(per_payment(&before, &v.net.counts(), sizes.concurrent));
            vl.extend(lat);
            Ok(tput)
        },
        || {
            let before = l.net.counts();
            let (tput, lat) = concurrent(&mut l.net, sizes.concurrent, sizes.window)?;
            lc.push(per_payment(&before, &l.net.counts(), sizes.concurrent));
            ll.extend(lat);
            Ok(tput)
        },
    )?;
    let latency = |l: &[f64]| json!({ "p50_ms": percentile(l, 50.0), "p99_ms": percentile(l, 99.0) });
    Ok(Row::new("payments-concurrent", "payments/s", true, vr, lr).with(json!({
        "payments_per_run": sizes.concurrent,
        "in_flight": sizes.window,
        "latency": { "vigil": latency(&vl), "ldk": latency(&ll) },
        "store_per_payment": { "vigil": vc.last(), "ldk": lc.last() },
    })))
}

/// `forward`: A→B→C, durable stores; payments forwarded per second at B.
///
/// # Errors
///
/// A payment failed.
pub fn forward(sizes: &Sizes) -> Result<Row, String> {
    let mut v = setup::<VigilNode>(3, 1, StoreKind::Sqlite);
    let mut l = setup::<LdkNode>(3, 1, StoreKind::Sqlite);
    let n = sizes.sequential_disk;
    let (vr, lr) = interleave(
        sizes.runs,
        || sequential(&mut v.net, n, &[(0, 2)]),
        || sequential(&mut l.net, n, &[(0, 2)]),
    )?;
    Ok(Row::new("forward", "forwards/s", true, vr, lr).with(json!({ "payments_per_run": n })))
}

/// `bytes`: bytes written and fsyncs per payment and node, sequential and
/// concurrent. The counts do not depend on the engine, so this runs on
/// the in-memory store.
///
/// # Errors
///
/// A payment failed.
pub fn bytes(sizes: &Sizes) -> Result<Vec<Row>, String> {
    fn count<N: BenchNode>(
        sizes: &Sizes,
    ) -> Result<(serde_json::Value, serde_json::Value, f64, f64), String> {
        let mut s = setup::<N>(2, 1, StoreKind::Memory);
        let n = sizes.sequential_mem;
        let before = s.net.counts();
        sequential(&mut s.net, n, &[(0, 1), (1, 0)])?;
        let seq = per_payment(&before, &s.net.counts(), n);
        let before = s.net.counts();
        concurrent(&mut s.net, sizes.concurrent, sizes.window)?;
        let conc = per_payment(&before, &s.net.counts(), sizes.concurrent);
        let mean = |v: &serde_json::Value, field: &str| {
            let nodes = v.as_array().expect("per node");
            nodes.iter().map(|n| n[field].as_f64().expect("a number")).sum::<f64>() / nodes.len() as f64
        };
        let (b, f) = (mean(&seq, "bytes"), mean(&conc, "fsyncs"));
        Ok((seq, conc, b, f))
    }
    let (vs, vc, vb, vf) = count::<VigilNode>(sizes).map_err(|e| format!("vigil: {e}"))?;
    let (ls, lc, lb, lf) = count::<LdkNode>(sizes).map_err(|e| format!("ldk: {e}"))?;
    let detail =
        json!({ "sequential": { "vigil": vs, "ldk": ls }, "concurrent": { "vigil": vc, "ldk": lc } });
    let fsyncs_seq = |v: &serde_json::Value| {
        v.as_array().expect("per node").iter().map(|n| n["fsyncs"].as_f64().expect("a number")).sum::<f64>()
            / 2.0
    };
    Ok(vec![
        Row::new("bytes", "bytes/payment/node", false, vec![vb], vec![lb]).with(detail.clone()),
        Row::new(
            "fsyncs-sequential",
            "fsyncs/payment/node",
            false,
            vec![fsyncs_seq(&vs)],
            vec![fsyncs_seq(&ls)],
        ),
        Row::new("fsyncs-concurrent", "fsyncs/payment/node", false, vec![vf], vec![lf])
            .with(json!({ "in_flight": sizes.window })),
    ])
}

/// Restart time of node 0 in `setup`, median of `runs`, in ms.
fn restart_ms<N: BenchNode>(net: &Net<N>, runs: usize) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let (node, took) = net.nodes[0].restart();
            drop(node);
            took.as_secs_f64() * 1000.0
        })
        .collect()
}

/// Pays `n` times between nodes 0 and 1, alternating direction,
/// acknowledging outcome events or not.
fn history<N: BenchNode>(net: &mut Net<N>, n: usize, ack: bool) -> Result<(), String> {
    for k in 0..n {
        let from = k % 2;
        let invoice = net.nodes[1 - from].invoice(AMOUNT_MSAT);
        pay_once(net, from, &invoice, ack)?;
    }
    Ok(())
}

/// `restart`: time from reading the store to a node ready to forward, for
/// `c` channels and a history of `h` payments (every event handled), and
/// for Vigil with `h` outcome events left unacknowledged (LDK cannot keep
/// such a backlog: see `docs/PERFORMANCE.md`). Stores are in memory, so
/// this is the cost of loading, not of disk reads.
///
/// # Errors
///
/// A payment failed.
pub fn restart(sizes: &Sizes) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let runs = sizes.runs;
    for &c in &sizes.restart_channels {
        eprintln!("vigil-bench: restart: {c} channels ...");
        let mut v = setup::<VigilNode>(2, c, StoreKind::Memory);
        let mut l = setup::<LdkNode>(2, c, StoreKind::Memory);
        let mut done = 0;
        for &h in &sizes.restart_history {
            let before = (v.net.counts(), l.net.counts());
            history(&mut v.net, h - done, true).map_err(|e| format!("vigil: {e}"))?;
            history(&mut l.net, h - done, true).map_err(|e| format!("ldk: {e}"))?;
            // What the payments of this step wrote, per payment and node
            // (channel opening and blocks excluded).
            let written = (h > done).then(|| {
                json!({ "vigil": per_payment(&before.0, &v.net.counts(), h - done),
                        "ldk": per_payment(&before.1, &l.net.counts(), h - done) })
            });
            done = h;
            let (vr, lr) = (restart_ms(&v.net, runs), restart_ms(&l.net, runs));
            rows.push(Row::new(format!("restart c={c} history={h}"), "ms", false, vr, lr).with(json!({
                "channels": c, "history_payments": h, "store_per_history_payment": written,
            })));
        }
        let mut backlog = 0;
        for &h in &sizes.restart_backlog {
            history(&mut v.net, h - backlog, false).map_err(|e| format!("vigil: {e}"))?;
            backlog = h;
            let (node, _) = v.net.nodes[0].restart();
            let replayed = node.unhandled_events();
            drop(node);
            let vr = restart_ms(&v.net, runs);
            rows.push(Row::new(format!("restart c={c} unacked={h}"), "ms", false, vr, Vec::new()).with(
                json!({
                    "channels": c, "unacknowledged_events": replayed,
                }),
            ));
        }
    }
    Ok(rows)
}

/// The time one `f` takes, median of `runs`.
pub fn time_median(runs: usize, mut f: impl FnMut()) -> Duration {
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    Duration::from_secs_f64(median(&times))
}
