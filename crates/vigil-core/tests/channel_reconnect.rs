//! Reconnection and crashes at every point of the commitment dance.
//!
//! A scripted flow (A pays B, B pays A, B claims, A fails, both concurrently)
//! is cut after each single message delivery, by a disconnection or a crash
//! of either side (the node restarts from the snapshot of its last durable
//! monitor update), with synchronous and with delayed persistence. After
//! `channel_reestablish` the flow must complete with the right balances and
//! no error.

mod common;

use common::{OpenOptions, Pair, Who};
use vigil_core::channel::{ChannelMessage, CloseReason, Phase, UpdateStep};

#[derive(Debug, Clone, Copy)]
enum Cut {
    Disconnect,
    Crash(Who),
}

const A_PAYS: u64 = 10_000_000;
const B_PAYS: u64 = 5_000_000;

/// Resolves inbound HTLCs that are irrevocable and not yet resolved: B
/// fulfils A's payment, A fails B's.
fn resolve(pair: &mut Pair, preimages: &[(Who, u64, lightning::types::payment::PaymentPreimage)]) {
    for who in [Who::A, Who::B] {
        let irrevocable: Vec<u64> = pair.node_ref(who).irrevocable().iter().map(|u| u.htlc_id).collect();
        for id in irrevocable {
            let pending = pair
                .node_ref(who)
                .channel
                .snapshot()
                .ledger
                .htlc(false, id)
                .is_some_and(|h| h.removal.is_none());
            if !pending || !pair.node_ref(who).channel.is_usable() {
                continue;
            }
            let channel = &mut pair.node(who).channel;
            match who {
                Who::B => {
                    let (_, _, preimage) = preimages
                        .iter()
                        .find(|(from, i, _)| *from == Who::A && *i == id)
                        .expect("A's payment");
                    channel.fulfill_htlc(id, *preimage, None).expect("fulfill");
                }
                Who::A => channel.fail_htlc(id, vec![1; 32]).expect("fail"),
            }
            pair.commit(who);
        }
    }
}

/// Runs the flow, cutting it after `cut_at` deliveries. Returns the number of
/// deliveries the flow took.
fn run(opts: OpenOptions, cut_at: Option<(usize, Cut)>, delayed_persistence: bool) -> usize {
    let mut pair = Pair::open(opts);
    let (a0, b0) = (pair.balance(Who::A), pair.balance(Who::B));
    let mut preimages = Vec::new();
    let (id, p) = pair.add(Who::A, A_PAYS).expect("A adds");
    preimages.push((Who::A, id, p));
    let (id, p) = pair.add(Who::B, B_PAYS).expect("B adds");
    preimages.push((Who::B, id, p));
    pair.commit(Who::A);
    pair.commit(Who::B);
    if delayed_persistence {
        pair.a.auto_persist = false;
        pair.b.auto_persist = false;
    }
    let mut deliveries = 0;
    let mut cut_done = false;
    for round in 0..2_000 {
        resolve(&mut pair, &preimages);
        if delayed_persistence && round % 3 == 0 {
            // Persistence lags: one update completes every third round.
            pair.persist_one(if round % 2 == 0 { Who::A } else { Who::B });
        }
        if let Some((at, cut)) = cut_at {
            if !cut_done && deliveries == at {
                cut_done = true;
                match cut {
                    Cut::Disconnect => pair.disconnect(),
                    Cut::Crash(who) => pair.crash(who),
                }
                // With delayed persistence, reestablishment runs while the
                // survivor still has updates in flight.
                pair.reconnect();
                continue;
            }
        }
        let from = if round % 2 == 0 { Who::A } else { Who::B };
        let moved = pair.deliver(from) || pair.deliver(from.other());
        if moved {
            deliveries += 1;
        }
        if !moved {
            if delayed_persistence && (!pair.a.pending.is_empty() || !pair.b.pending.is_empty()) {
                pair.persist(Who::A);
                pair.persist(Who::B);
                continue;
            }
            let a = pair.commit(Who::A);
            let b = pair.commit(Who::B);
            if !a && !b && pair.a.to_peer.is_empty() && pair.b.to_peer.is_empty() {
                let left = pair.a.channel.snapshot().ledger.htlcs.len()
                    + pair.b.channel.snapshot().ledger.htlcs.len();
                if left == 0 {
                    break;
                }
            }
        }
    }
    let context = format!("cut {cut_at:?} delayed={delayed_persistence}");
    assert!(cut_at.is_none() || cut_done, "{context}: the cut happened");
    assert!(
        pair.a.errors.is_empty() && pair.b.errors.is_empty(),
        "{context}: {:?} / {:?}",
        pair.a.errors,
        pair.b.errors
    );
    assert_eq!(pair.phase(Who::A), Phase::Funded, "{context}");
    assert!(pair.a.channel.snapshot().ledger.htlcs.is_empty(), "{context}: A's HTLCs resolved");
    assert!(pair.b.channel.snapshot().ledger.htlcs.is_empty(), "{context}: B's HTLCs resolved");
    assert_eq!(pair.balance(Who::A), a0 - A_PAYS, "{context}: A paid B, B's payment failed");
    assert_eq!(pair.balance(Who::B), b0 + A_PAYS, "{context}");
    // The channel still works.
    pair.a.auto_persist = true;
    pair.b.auto_persist = true;
    pair.persist(Who::A);
    pair.persist(Who::B);
    let (id, preimage) = pair.pay(Who::A, 1_000_000);
    pair.claim(Who::B, id, preimage);
    assert_eq!(pair.balance(Who::A), a0 - A_PAYS - 1_000_000, "{context}");
    deliveries
}

#[test]
fn reconnect_at_every_point_of_the_dance() {
    for anchors in [false, true] {
        let opts = OpenOptions { anchors, ..OpenOptions::default() };
        let total = run(opts.clone(), None, false);
        assert!(total > 8, "the flow has many steps ({total})");
        for at in 0..=total {
            run(opts.clone(), Some((at, Cut::Disconnect)), false);
        }
    }
}

#[test]
fn crash_of_either_side_at_every_point_of_the_dance() {
    for anchors in [false, true] {
        let opts = OpenOptions { anchors, ..OpenOptions::default() };
        let total = run(opts.clone(), None, false);
        for at in 0..=total {
            for who in [Who::A, Who::B] {
                run(opts.clone(), Some((at, Cut::Crash(who))), false);
            }
        }
    }
}

#[test]
fn crash_with_delayed_persistence_loses_only_what_was_not_durable() {
    let opts = OpenOptions::default();
    let total = run(opts.clone(), None, true);
    for at in 0..=total {
        for who in [Who::A, Who::B] {
            run(opts.clone(), Some((at, Cut::Crash(who))), true);
        }
        run(opts.clone(), Some((at, Cut::Disconnect)), true);
    }
}

#[test]
fn a_node_restored_from_a_stale_backup_closes_without_broadcasting() {
    let mut pair = Pair::open(OpenOptions::default());
    let backup = pair.b.durable.last().expect("updates").snapshot.clone();
    for _ in 0..2 {
        let (id, preimage) = pair.pay(Who::A, 1_000_000);
        pair.claim(Who::B, id, preimage);
    }
    // B comes back from an old backup.
    pair.b.durable.push(vigil_core::channel::MonitorUpdate {
        channel_id: backup.channel_id,
        update_id: backup.next_update_id - 1,
        steps: Vec::new(),
        snapshot: backup,
    });
    pair.crash(Who::B);
    pair.reconnect();
    assert_eq!(pair.phase(Who::B), Phase::Closed(CloseReason::StaleLocalState));
    let closed = pair.b.durable_steps().find_map(|s| match s {
        UpdateStep::ChannelClosed { broadcast_holder_commitment, .. } => Some(*broadcast_holder_commitment),
        _ => None,
    });
    assert_eq!(closed, Some(false), "a stale node must not broadcast its commitment");
    // A, up to date, closes with its own commitment.
    assert!(matches!(pair.phase(Who::A), Phase::Closed(_)), "{:?}", pair.phase(Who::A));
    let a_closed = pair.a.durable_steps().find_map(|s| match s {
        UpdateStep::ChannelClosed { broadcast_holder_commitment, .. } => Some(*broadcast_holder_commitment),
        _ => None,
    });
    assert_eq!(a_closed, Some(true));
}

#[test]
fn channel_ready_is_retransmitted_when_lost() {
    let mut pair = Pair::open(OpenOptions::default());
    // Both sides see the first reestablish with next_commitment_number 1.
    pair.disconnect();
    for who in [Who::A, Who::B] {
        pair.node(who).channel.peer_connected();
        pair.pump(who);
    }
    pair.deliver(Who::A);
    pair.deliver(Who::B);
    pair.pump(Who::A);
    assert!(
        pair.a.to_peer.iter().any(|m| matches!(m, ChannelMessage::ChannelReady(_))),
        "channel_ready is sent again: {:?}",
        pair.a.to_peer
    );
    pair.settle();
    assert!(pair.a.errors.is_empty() && pair.b.errors.is_empty());
    let (id, preimage) = pair.pay(Who::A, 1_000_000);
    pair.claim(Who::B, id, preimage);
}
