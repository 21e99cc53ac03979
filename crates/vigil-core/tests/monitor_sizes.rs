//! How many bytes the monitor costs: one update, a whole monitor with 0, 10
//! and 483 pending HTLCs, and the bytes written per payment. The figures are
//! printed (`cargo test -p vigil-core --test monitor_sizes -- --nocapture`);
//! the assertions only check how they relate, never a timing.

mod common;

use common::disk::Rig;
use common::{OpenOptions, Pair, Who};
use vigil_core::chain_monitor::ChainMonitorConfig;
use vigil_core::channel::{ChannelConfig, MonitorUpdate};
use vigil_core::monitor::{ChannelMonitor, MonitorEventId};
use vigil_core::ser::Encode;

fn monitor_of(updates: &[MonitorUpdate]) -> ChannelMonitor {
    let mut monitor = ChannelMonitor::from_first_update(&updates[0]).expect("funded");
    for u in &updates[1..] {
        monitor.apply(u).expect("applies");
    }
    monitor
}

/// A channel with `n` pending HTLCs from A to B, all in one commitment.
fn with_pending(n: u64) -> Pair {
    let opts = OpenOptions {
        funding_sat: 10_000_000,
        push_msat: 0,
        config_a: ChannelConfig::default(),
        config_b: ChannelConfig::default(),
        ..OpenOptions::default()
    };
    let mut pair = Pair::open(opts);
    for i in 0..n {
        pair.add(Who::A, 2_000_000 + i).expect("add");
    }
    pair.commit(Who::A);
    pair.settle();
    pair
}

#[test]
fn monitor_and_update_sizes() {
    let mut sizes = Vec::new();
    for n in [0u64, 10, 483] {
        let pair = with_pending(n);
        let monitor = monitor_of(&pair.b.durable);
        assert_eq!(monitor.events().len() as u64, n, "every HTLC is accepted");
        let last = pair.b.durable.last().expect("updates");
        let bytes = monitor.serialize().len();
        println!(
            "monitor with {n:>3} pending HTLCs: {bytes:>8} bytes; its latest update: {:>7} bytes",
            last.to_bytes().len()
        );
        sizes.push(bytes);
    }
    assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "a monitor grows with its HTLCs: {sizes:?}");

    // One payment, sent, claimed and acknowledged, on both sides.
    let mut pair = with_pending(0);
    let mut rigs = [Rig::new(ChainMonitorConfig::default()), Rig::new(ChainMonitorConfig::default())];
    for (rig, who) in rigs.iter_mut().zip([Who::A, Who::B]) {
        rig.feed(&pair.node_ref(who).durable.clone());
        rig.complete_all();
    }
    let known = [pair.a.durable.len(), pair.b.durable.len()];
    let before: Vec<usize> = rigs.iter().map(|r| r.bytes_written).collect();
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    pair.claim(Who::B, id, preimage);
    for ((rig, who), known) in rigs.iter_mut().zip([Who::A, Who::B]).zip(known) {
        let updates = pair.node_ref(who).durable[known..].to_vec();
        for u in &updates {
            println!("{who:?} update {:>2}: {:>6} bytes", u.update_id, u.to_bytes().len());
        }
        rig.feed(&updates);
        rig.complete_all();
        let channel_id = updates[0].channel_id;
        let ids: Vec<MonitorEventId> = rig.events().iter().map(|e| e.id).collect();
        assert_eq!(rig.cm.ack(&channel_id, &ids), 1, "one event per side");
        rig.cm.flush();
        rig.take_requests();
        rig.complete_all();
    }
    let per_side: Vec<usize> = rigs.iter().zip(before).map(|(r, b)| r.bytes_written - b).collect();
    println!("bytes written for one payment: sender {}, receiver {}", per_side[0], per_side[1]);
    assert!(per_side.iter().all(|b| *b > 0));
}
