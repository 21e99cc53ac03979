//! What a monitor learns from blocks, with real signed commitments and HTLC
//! transactions mined on the embedded regtest chain: the funding spend
//! closes the channel, a preimage revealed on chain claims at once, a
//! timeout or trimmed HTLC fails after `ANTI_REORG_DELAY` confirmations, a
//! reorg undoes what is not final, and replayed blocks make no duplicates.

mod common;

use bitcoin::Transaction;
use common::disk::Rig;
use common::{test_source, OpenOptions, Pair, Who};
use lightning::ln::types::ChannelId;
use vigil_chain::testkit::TestKey;
use vigil_chain::ChainSource;
use vigil_core::chain_monitor::ChainMonitorConfig;
use vigil_core::channel::{HtlcFailure, HtlcSource, MonitorUpdate};
use vigil_core::monitor::{ChannelMonitor, ClosedBy, MonitorEvent, ANTI_REORG_DELAY};

fn monitor_of(updates: &[MonitorUpdate]) -> ChannelMonitor {
    let mut monitor = ChannelMonitor::from_first_update(&updates[0]).expect("funded");
    for u in &updates[1..] {
        monitor.apply(u).expect("applies");
    }
    monitor
}

fn block_txs(pair: &Pair, height: u32) -> Vec<Transaction> {
    let hash = pair.chain.block_hash(height).expect("chain").expect("block at height");
    pair.chain.block(&hash).expect("chain").expect("block").txdata
}

/// Mines `txs` in one block and returns its height.
fn mine(pair: &Pair, txs: &[Transaction]) -> u32 {
    for tx in txs {
        pair.chain.submit_transaction(tx).unwrap_or_else(|e| panic!("the transaction is valid: {e:?}"));
    }
    pair.chain.mine(1, &TestKey::new(99).address()).expect("mine");
    pair.chain.height()
}

/// Feeds the blocks `from..=to` to `monitor`.
fn feed(pair: &Pair, monitor: &mut ChannelMonitor, from: u32, to: u32) {
    for h in from..=to {
        monitor.block_connected(h, &block_txs(pair, h));
    }
}

fn new_events(monitor: &ChannelMonitor, seen: &mut usize) -> Vec<MonitorEvent> {
    let all: Vec<MonitorEvent> = monitor.events().iter().map(|e| e.event.clone()).collect();
    let fresh = all[*seen..].to_vec();
    *seen = all.len();
    fresh
}

fn forwarded() -> HtlcSource {
    HtlcSource::Forwarded {
        incoming_channel_id: ChannelId([9; 32]),
        incoming_htlc_id: 1,
        incoming_amount_msat: 5_100_000,
    }
}

#[test]
fn our_commitment_confirms_then_timeouts_and_trimmed_htlcs_fail_after_six_confirmations() {
    let mut pair = Pair::open(OpenOptions::default());
    let (big, _) = pair.pay(Who::A, 5_000_000);
    let (dust, _) = pair.pay(Who::A, 400_000);
    let mut a = monitor_of(&pair.a.durable);
    let mut seen = 0;
    let (commitment, htlc_txs) = pair.force_close_transactions(Who::A);
    assert_eq!(htlc_txs.len(), 1, "the small HTLC is trimmed");
    let closed_at = mine(&pair, std::slice::from_ref(&commitment));
    feed(&pair, &mut a, closed_at, closed_at);
    assert_eq!(
        new_events(&a, &mut seen),
        vec![MonitorEvent::ChannelClosed {
            closed_by: ClosedBy::FundingSpent { txid: commitment.compute_txid() }
        }]
    );
    assert!(a.is_closed());

    // The trimmed HTLC fails once the commitment is six blocks deep.
    pair.chain.mine(ANTI_REORG_DELAY - 2, &TestKey::new(99).address()).expect("mine");
    feed(&pair, &mut a, closed_at + 1, pair.chain.height());
    assert!(new_events(&a, &mut seen).is_empty(), "five confirmations are not final");
    pair.chain.mine(1, &TestKey::new(99).address()).expect("mine");
    feed(&pair, &mut a, pair.chain.height(), pair.chain.height());
    assert_eq!(
        new_events(&a, &mut seen),
        vec![MonitorEvent::PaymentPathFailed {
            htlc_id: dust,
            amount_msat: 400_000,
            failure: HtlcFailure::OnChainTimeout,
            source: test_source(),
        }]
    );

    // The other times out: its HTLC-timeout transaction is valid at expiry.
    let (_, timeout) = &htlc_txs[0];
    let expiry = timeout.lock_time.to_consensus_u32();
    let from = pair.chain.height() + 1;
    while pair.chain.height() < expiry {
        pair.chain.mine(1, &TestKey::new(99).address()).expect("mine");
    }
    feed(&pair, &mut a, from, pair.chain.height());
    let timed_out_at = mine(&pair, std::slice::from_ref(timeout));
    feed(&pair, &mut a, timed_out_at, timed_out_at);
    // A replayed block changes nothing.
    feed(&pair, &mut a, timed_out_at, timed_out_at);
    pair.chain.mine(ANTI_REORG_DELAY - 2, &TestKey::new(99).address()).expect("mine");
    feed(&pair, &mut a, timed_out_at + 1, pair.chain.height());
    assert!(new_events(&a, &mut seen).is_empty());
    assert_eq!(a.pending_outbound().count(), 1);
    pair.chain.mine(1, &TestKey::new(99).address()).expect("mine");
    feed(&pair, &mut a, pair.chain.height(), pair.chain.height());
    assert_eq!(
        new_events(&a, &mut seen),
        vec![MonitorEvent::PaymentPathFailed {
            htlc_id: big,
            amount_msat: 5_000_000,
            failure: HtlcFailure::OnChainTimeout,
            source: test_source(),
        }]
    );
    assert_eq!(a.pending_outbound().count(), 0);
    // Replaying every block again makes nothing new.
    feed(&pair, &mut a, closed_at, pair.chain.height());
    assert!(new_events(&a, &mut seen).is_empty());
    // A force-closed channel is not archived by the monitor alone: its
    // outputs still need sweeping.
    a.ack_up_to(vigil_core::monitor::MonitorEventId(u64::MAX));
    assert!(!a.is_archivable());
}

#[test]
fn a_preimage_revealed_on_chain_claims_at_once() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.add_with_source(Who::A, 5_000_000, forwarded()).expect("add");
    pair.commit(Who::A);
    pair.settle();
    let mut a = monitor_of(&pair.a.durable);
    let mut seen = 0;
    // B goes on chain with its commitment and claims with the preimage.
    let (commitment, htlc_txs) = pair.force_close_transactions(Who::B);
    let closed_at = mine(&pair, std::slice::from_ref(&commitment));
    let claimed_at = mine(&pair, &[htlc_txs[0].1.clone()]);
    feed(&pair, &mut a, closed_at, closed_at);
    assert_eq!(
        new_events(&a, &mut seen),
        vec![MonitorEvent::ChannelClosed {
            closed_by: ClosedBy::FundingSpent { txid: commitment.compute_txid() }
        }]
    );
    feed(&pair, &mut a, claimed_at, claimed_at);
    assert_eq!(
        new_events(&a, &mut seen),
        vec![MonitorEvent::ForwardedHtlcClaimed {
            htlc_id: id,
            amount_msat: 5_000_000,
            preimage,
            source: forwarded(),
            on_chain: true,
        }],
        "no confirmations needed: the preimage is known for good"
    );
    assert_eq!(
        a.preimage(&lightning::types::payment::PaymentHash(bitcoin::hashes::Hash::to_byte_array(
            <bitcoin::hashes::sha256::Hash as bitcoin::hashes::Hash>::hash(&preimage.0)
        ))),
        Some(preimage)
    );
    feed(&pair, &mut a, closed_at, claimed_at);
    assert!(new_events(&a, &mut seen).is_empty(), "replayed blocks make no duplicates");
}

#[test]
fn a_reorg_before_six_confirmations_undoes_a_failure() {
    let mut pair = Pair::open(OpenOptions::default());
    let (dust, _) = pair.pay(Who::A, 400_000);
    let mut a = monitor_of(&pair.a.durable);
    let mut seen = 0;
    let (commitment, _) = pair.force_close_transactions(Who::A);
    let closed_at = mine(&pair, std::slice::from_ref(&commitment));
    pair.chain.mine(ANTI_REORG_DELAY - 2, &TestKey::new(99).address()).expect("mine");
    let tip = pair.chain.height();
    feed(&pair, &mut a, closed_at, tip);
    assert_eq!(new_events(&a, &mut seen).len(), 1, "closed");
    // The blocks from the commitment's up are reorganized away.
    for h in (closed_at..=tip).rev() {
        a.block_disconnected(h);
    }
    // The replacement chain does not contain the commitment.
    for h in closed_at..closed_at + 2 * ANTI_REORG_DELAY {
        a.block_connected(h, &[]);
    }
    assert!(new_events(&a, &mut seen).is_empty(), "the failure was not final");
    assert_eq!(a.pending_outbound().count(), 1);
    // Restart in the middle: the monitor round-trips with its state.
    let mut a = ChannelMonitor::deserialize(&a.serialize()).expect("decodes");
    // The commitment confirms again later.
    let again = closed_at + 2 * ANTI_REORG_DELAY;
    a.block_connected(again, &[commitment]);
    for h in again + 1..again + ANTI_REORG_DELAY {
        a.block_connected(h, &[]);
    }
    let failed: Vec<_> = a
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            MonitorEvent::PaymentPathFailed { htlc_id, .. } => Some(*htlc_id),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![dust]);
    let closed = a.events().iter().filter(|e| matches!(e.event, MonitorEvent::ChannelClosed { .. })).count();
    assert_eq!(closed, 1, "the channel closed once");
}

#[test]
fn the_chain_monitor_releases_block_events_once_their_state_is_durable() {
    let mut pair = Pair::open(OpenOptions::default());
    let (dust, _) = pair.pay(Who::A, 400_000);
    let mut rig = Rig::new(ChainMonitorConfig::default());
    rig.feed(&pair.a.durable.clone());
    rig.complete_all();
    let channel_id = pair.a.channel.channel_id();
    let (commitment, _) = pair.force_close_transactions(Who::A);
    let closed_at = mine(&pair, &[commitment]);
    pair.chain.mine(ANTI_REORG_DELAY - 1, &TestKey::new(99).address()).expect("mine");
    for h in closed_at..=pair.chain.height() {
        rig.cm.block_connected(h, &block_txs(&pair, h));
    }
    rig.take_requests();
    assert!(!rig.in_flight.is_empty(), "what the monitor learned is written");
    assert!(rig.events().is_empty(), "nothing is released before it is durable");
    // A crash before the write completes forgets it; the blocks come again.
    rig.crash();
    assert!(rig.events().is_empty());
    for h in closed_at..=pair.chain.height() {
        rig.cm.block_connected(h, &block_txs(&pair, h));
    }
    rig.take_requests();
    rig.complete_all();
    let events: Vec<MonitorEvent> = rig.events().into_iter().map(|e| e.event).collect();
    assert!(matches!(events[0], MonitorEvent::ChannelClosed { .. }));
    assert!(matches!(events[1], MonitorEvent::PaymentPathFailed { htlc_id, .. } if htlc_id == dust));
    assert_eq!(events.len(), 2);
    // Durable now: a crash replays them with the same ids.
    rig.crash();
    let replayed = rig.events();
    assert_eq!(replayed.len(), 2);
    assert!(replayed.iter().all(|e| e.channel_id == channel_id));
}

/// The HTLCs of `monitor`'s on-chain failures so far.
fn failed_paths(monitor: &ChannelMonitor) -> Vec<u64> {
    monitor
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            MonitorEvent::PaymentPathFailed { htlc_id, .. } => Some(*htlc_id),
            _ => None,
        })
        .collect()
}

/// A monitor written after the node's last durable chain position is ahead
/// of it: at restart it sees blocks again. When a reorg happened while the
/// node was down, those blocks are others: here the commitment that closed
/// the channel at height `h` is at `h - 1` on the new chain. The monitor
/// must take the new height, and a later reorg of block `h` must not make it
/// forget the close (it then broadcast its own commitment forever, which the
/// chain refused, and never finished enforcement: found by `vigil-sim`).
#[test]
fn blocks_seen_again_after_a_reorg_the_node_missed_replace_what_the_monitor_learnt() {
    let mut pair = Pair::open(OpenOptions::default());
    let (dust, _) = pair.pay(Who::A, 400_000);
    let mut a = monitor_of(&pair.a.durable);
    let (commitment, _) = pair.force_close_transactions(Who::A);
    let h = pair.chain.height() + 10;
    // The old chain: the commitment at h, and one block on top.
    a.block_connected(h, std::slice::from_ref(&commitment));
    a.block_connected(h + 1, &[]);
    assert!(a.funding_spent());
    // The node restarts from h - 2 on the new chain: the commitment at h - 1.
    let mut a = ChannelMonitor::deserialize(&a.serialize()).expect("decodes");
    a.block_connected(h - 1, std::slice::from_ref(&commitment));
    a.block_connected(h, &[]);
    a.block_connected(h + 1, &[]);
    // Blocks h and up leave the chain: the close stays, at h - 1.
    for height in (h..=h + 1).rev() {
        a.block_disconnected(height);
    }
    assert!(a.funding_spent(), "the commitment at h - 1 is still on the chain");
    // The trimmed HTLC fails ANTI_REORG_DELAY blocks after h - 1, once.
    let final_height = h - 1 + ANTI_REORG_DELAY - 1;
    for height in h..final_height {
        a.block_connected(height, &[]);
    }
    assert!(failed_paths(&a).is_empty(), "not final one block before");
    a.block_connected(final_height, &[]);
    assert_eq!(failed_paths(&a), vec![dust], "final at the new height");
    // The same blocks seen again (a restart from an older position) change
    // nothing and make no duplicate.
    let before = a.serialize();
    a.block_connected(h - 1, std::slice::from_ref(&commitment));
    for height in h..=final_height {
        a.block_connected(height, &[]);
    }
    assert_eq!(failed_paths(&a), vec![dust]);
    assert_eq!(a.serialize(), before, "the same blocks teach the same state");
}
