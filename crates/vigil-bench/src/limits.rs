//! The physical limits: what one signature, verification, point
//! multiplication and store fsync cost on this machine, how many of them
//! a payment needs, and the ceilings that follow.
//!
//! The counts are the protocol's, not an implementation's (BOLT 2, one
//! non-dust HTLC on `static_remotekey` channels): a payment adds the HTLC
//! in one commitment round and removes it in another. In the first round
//! each side signs the other's commitment and its one HTLC transaction (2
//! signatures) and checks the same from the peer (2 verifications); in
//! the second, 1 and 1. So each node on the path makes 3 signatures and 3
//! verifications per channel the payment crosses. Durability: each node
//! must make the two commitments it accepts durable before it revokes the
//! ones before them, so at least 2 fsyncs per node and channel, when each
//! fsync carries everything a round wrote (Vigil's group commit does).
//!
//! The harness runs all the nodes of a scenario on one thread, so the
//! ceilings add every node's work.

use std::time::Instant;

use bitcoin::secp256k1::{ecdsa::Signature, Message, PublicKey, Scalar, Secp256k1, SecretKey};
use serde_json::json;
use vigil_store::KvStore;

use crate::report::{median, Row};
use crate::store::{CountingStore, StoreKind};

/// Signatures one node makes per payment and channel crossed.
pub const SIGNS_PER_NODE_CHANNEL: f64 = 3.0;
/// Verifications one node makes per payment and channel crossed.
pub const VERIFIES_PER_NODE_CHANNEL: f64 = 3.0;
/// The fewest fsyncs one node needs per payment and channel crossed.
pub const MIN_FSYNCS_PER_NODE_CHANNEL: f64 = 2.0;
/// Point multiplications one node needs per payment and channel crossed
/// for BOLT 3's key derivation: it handles 4 commitments (2 of its own, 2
/// of the peer's), and each needs the per-commitment point and the
/// revocation, delayed and two HTLC keys derived from it (about 6
/// multiplications, counted at the variable-base cost, which overstates
/// the generator ones).
pub const MULTS_PER_NODE_CHANNEL: f64 = 24.0;

/// What the primitives cost here, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// One ECDSA signature.
    pub sign_us: f64,
    /// One ECDSA verification.
    pub verify_us: f64,
    /// One point multiplication by a scalar (variable base).
    pub ecmult_us: f64,
    /// One store transaction (SQLite, `synchronous=FULL`): one fsync.
    pub fsync_us: f64,
}

fn per_op_us(iterations: u32, mut f: impl FnMut(u32)) -> f64 {
    let rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..iterations {
                f(i);
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
        })
        .collect();
    median(&rounds)
}

/// Measures the primitives (about a second).
///
/// # Panics
///
/// If a temporary SQLite store cannot be created.
pub fn measure(iterations: u32) -> Costs {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[7; 32]).expect("a valid key");
    let public = PublicKey::from_secret_key(&secp, &key);
    let message = |i: u32| {
        let mut m = [1u8; 32];
        m[..4].copy_from_slice(&i.to_le_bytes());
        Message::from_digest(m)
    };
    let sign_us = per_op_us(iterations, |i| {
        std::hint::black_box(secp.sign_ecdsa(&message(i), &key));
    });
    let signature: Signature = secp.sign_ecdsa(&message(0), &key);
    let verify_us = per_op_us(iterations, |_| {
        std::hint::black_box(secp.verify_ecdsa(&message(0), &signature, &public)).expect("it verifies");
    });
    let tweak = Scalar::from_be_bytes([3; 32]).expect("below the curve order");
    let ecmult_us = per_op_us(iterations, |_| {
        std::hint::black_box(public.mul_tweak(&secp, &tweak)).expect("a valid tweak");
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = CountingStore::open(StoreKind::Sqlite, dir.path(), "fsync").expect("a SQLite store");
    let value = [5u8; 200];
    let fsync_us = per_op_us((iterations / 20).max(10), |i| {
        store.write("bench", &format!("k{}", i % 16), &value).expect("the store writes");
    });
    Costs { sign_us, verify_us, ecmult_us, fsync_us }
}

/// Payments per second the signatures alone allow, for `node_channels`
/// (node, channel) pairs per payment (2 for a direct payment, 4 for one
/// forward), all on one thread.
pub fn signature_ceiling(costs: &Costs, node_channels: f64) -> f64 {
    1e6 / (node_channels
        * (SIGNS_PER_NODE_CHANNEL * costs.sign_us + VERIFIES_PER_NODE_CHANNEL * costs.verify_us))
}

/// Payments per second the signatures and BOLT 3's key derivation allow
/// together: the protocol's own CPU floor.
pub fn protocol_ceiling(costs: &Costs, node_channels: f64) -> f64 {
    1e6 / (1e6 / signature_ceiling(costs, node_channels)
        + node_channels * MULTS_PER_NODE_CHANNEL * costs.ecmult_us)
}

/// Payments per second the fsyncs alone allow, one after the other.
pub fn fsync_ceiling(costs: &Costs, node_channels: f64) -> f64 {
    1e6 / (node_channels * MIN_FSYNCS_PER_NODE_CHANNEL * costs.fsync_us)
}

/// The `limits` rows: the costs, the ceilings, and Vigil's measured rates
/// (payments per second in memory, on disk, and forwarded) as fractions
/// of them.
pub fn rows(costs: &Costs, mem: f64, disk: f64, forward: f64) -> Vec<Row> {
    let direct_cpu = signature_ceiling(costs, 2.0);
    let direct_fsync = fsync_ceiling(costs, 2.0);
    let forward_cpu = signature_ceiling(costs, 4.0);
    let forward_fsync = fsync_ceiling(costs, 4.0);
    let costs_json = json!({
        "sign_us": costs.sign_us, "verify_us": costs.verify_us,
        "ecmult_us": costs.ecmult_us, "fsync_us": costs.fsync_us,
        "per_node_and_channel": { "signs": SIGNS_PER_NODE_CHANNEL, "verifies": VERIFIES_PER_NODE_CHANNEL,
                                  "point_mults": MULTS_PER_NODE_CHANNEL, "min_fsyncs": MIN_FSYNCS_PER_NODE_CHANNEL },
    });
    // A scenario is bound by the lower of its two ceilings.
    let row = |name: &str, cpu: f64, protocol: f64, fsync: f64, measured: f64| {
        let (ceiling, bound) = if fsync < cpu { (fsync, "fsyncs") } else { (cpu, "signatures") };
        Row::new(name, "fraction of ceiling", true, vec![measured / ceiling], Vec::new()).with(json!({
            "ceiling_payments_per_s": ceiling, "bound": bound,
            "signature_ceiling_payments_per_s": cpu, "fsync_ceiling_payments_per_s": fsync,
            "protocol_ceiling_payments_per_s": protocol.min(fsync),
            "fraction_of_protocol_ceiling": measured / protocol.min(fsync),
            "vigil_payments_per_s": measured, "costs": costs_json,
        }))
    };
    let (direct_protocol, forward_protocol) = (protocol_ceiling(costs, 2.0), protocol_ceiling(costs, 4.0));
    vec![
        row("limits payments-mem", direct_cpu, direct_protocol, f64::INFINITY, mem),
        row("limits payments-disk", direct_cpu, direct_protocol, direct_fsync, disk),
        row("limits forward", forward_cpu, forward_protocol, forward_fsync, forward),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_follow_the_costs() {
        let costs = Costs { sign_us: 20.0, verify_us: 30.0, ecmult_us: 25.0, fsync_us: 1000.0 };
        // 2 nodes × (3 × 20 + 3 × 30) µs = 300 µs a payment.
        assert!((signature_ceiling(&costs, 2.0) - 1e6 / 300.0).abs() < 1e-6);
        // Plus 2 nodes × 24 multiplications × 25 µs = 1.2 ms: 1.5 ms.
        assert!((protocol_ceiling(&costs, 2.0) - 1e6 / 1500.0).abs() < 1e-6);
        // 2 nodes × 2 fsyncs × 1 ms = 4 ms a payment.
        assert!((fsync_ceiling(&costs, 2.0) - 250.0).abs() < 1e-9);
        let rows = rows(&costs, 1e6 / 600.0, 125.0, 50.0);
        assert!((rows[0].vigil - 0.5).abs() < 1e-9, "half the signature ceiling");
        assert!((rows[1].vigil - 0.5).abs() < 1e-9, "half the fsync ceiling");
        assert_eq!(rows[1].extra["bound"], "fsyncs");
        // With a nearly free fsync, the signatures bound the disk scenario.
        let fast_disk = Costs { fsync_us: 1.0, ..costs };
        assert_eq!(super::rows(&fast_disk, 1.0, 1.0, 1.0)[1].extra["bound"], "signatures");
    }
}
