//! The commitment dance under load: many HTLCs in both directions at once,
//! delivered in random interleavings (each direction stays in order, as BOLT
//! requires), with fulfils, fails, malformed fails and fee updates, for both
//! channel types. Balances must match on both sides and add up.

mod common;

use common::{OpenOptions, Pair, Rng, Who};
use vigil_core::channel::{ChannelMessage, UpdateStep};

/// Delivers messages in a random interleaving, sometimes signing pending
/// changes, until nothing moves; then signs until nothing is pending.
fn shuffle_settle(pair: &mut Pair, rng: &mut Rng) {
    for _ in 0..100_000 {
        pair.pump(Who::A);
        pair.pump(Who::B);
        if rng.chance(20) {
            let who = if rng.chance(50) { Who::A } else { Who::B };
            pair.commit(who);
        }
        let a_has = !pair.a.to_peer.is_empty();
        let b_has = !pair.b.to_peer.is_empty();
        match (a_has, b_has) {
            (false, false) => break,
            (true, false) => pair.deliver(Who::A),
            (false, true) => pair.deliver(Who::B),
            (true, true) => pair.deliver(if rng.chance(50) { Who::A } else { Who::B }),
        };
    }
    loop {
        let a = pair.commit(Who::A);
        let b = pair.commit(Who::B);
        pair.settle();
        if !a && !b {
            break;
        }
    }
}

fn value_msat(pair: &Pair) -> u64 {
    pair.a.channel.snapshot().params.channel_value_satoshis * 1000
}

/// Both sides agree on both balances, the balances add up to the channel
/// value, and no HTLC is left.
fn assert_consistent(pair: &Pair, context: &str) {
    let a = pair.a.channel.snapshot();
    let b = pair.b.channel.snapshot();
    assert!(
        pair.a.errors.is_empty() && pair.b.errors.is_empty(),
        "{context}: {:?} {:?}",
        pair.a.errors,
        pair.b.errors
    );
    assert!(a.ledger.htlcs.is_empty() && b.ledger.htlcs.is_empty(), "{context}: HTLCs left");
    assert_eq!(a.ledger.settled_ours_msat, b.ledger.settled_theirs_msat, "{context}");
    assert_eq!(a.ledger.settled_theirs_msat, b.ledger.settled_ours_msat, "{context}");
    assert_eq!(a.ledger.settled_ours_msat + a.ledger.settled_theirs_msat, value_msat(pair), "{context}");
    assert_eq!(a.local_number, b.remote_number, "{context}");
    assert_eq!(b.local_number, a.remote_number, "{context}");
}

#[test]
fn many_htlcs_both_ways_in_random_interleavings() {
    for anchors in [false, true] {
        for seed in 1..=12u64 {
            let context = format!("anchors={anchors} seed={seed}");
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut pair = Pair::open(OpenOptions { anchors, ..OpenOptions::default() });
            let a0 = pair.balance(Who::A);
            let mut sent = Vec::new();
            for i in 0..6u64 {
                for from in [Who::A, Who::B] {
                    // A mix of dust (trimmed) and regular HTLCs.
                    let amount = if i % 3 == 0 { 200_000 + i * 1000 } else { 3_000_000 + i * 100_000 };
                    let (id, preimage) =
                        pair.add(from, amount).unwrap_or_else(|e| panic!("{context}: add: {e}"));
                    sent.push((from, id, preimage, amount));
                }
                if rng.chance(50) {
                    pair.commit(Who::A);
                }
                if i == 3 {
                    // A fee update in the middle of the traffic.
                    pair.b.channel.update_fee_estimate(1500);
                    pair.a.channel.update_fee(1500).expect("update_fee");
                }
            }
            shuffle_settle(&mut pair, &mut rng);
            assert_eq!(pair.a.channel.snapshot().ledger.base_feerate_per_kw, 1500, "{context}");
            assert_eq!(pair.b.channel.snapshot().ledger.base_feerate_per_kw, 1500, "{context}");
            assert_eq!(pair.a.irrevocable().len(), 6, "{context}: A saw every HTLC of B irrevocable once");
            assert_eq!(pair.b.irrevocable().len(), 6, "{context}: B saw every HTLC of A irrevocable once");

            // Resolve: fulfil two thirds, fail or fail-malformed the rest.
            let mut expected_a = a0 as i128;
            for (k, (from, id, preimage, amount)) in sent.iter().enumerate() {
                let to = from.other();
                let channel = &mut pair.node(to).channel;
                match k % 3 {
                    0 | 1 => {
                        channel.fulfill_htlc(*id, *preimage, None).expect("fulfill");
                        let delta = *amount as i128;
                        expected_a += if *from == Who::A { -delta } else { delta };
                    }
                    _ if k % 2 == 0 => channel.fail_htlc(*id, vec![7; 40]).expect("fail"),
                    _ => channel
                        .fail_malformed_htlc(*id, 0x8000 | 0x4000 | 5, [9; 32])
                        .expect("fail malformed"),
                }
                if rng.chance(30) {
                    pair.commit(to);
                }
            }
            shuffle_settle(&mut pair, &mut rng);
            assert_consistent(&pair, &context);
            assert_eq!(pair.balance(Who::A) as i128, expected_a, "{context}: A's balance");
            assert_eq!(
                pair.balance(Who::A) + pair.balance(Who::B),
                value_msat(&pair),
                "{context}: value is conserved"
            );
            let learned = pair.a.preimages().into_iter().filter(|(_, outbound, _)| *outbound).count();
            assert_eq!(learned, 4, "{context}: A learned the preimages of its 4 fulfilled HTLCs");
        }
    }
}

#[test]
fn inbound_htlcs_are_reported_irrevocable_exactly_once() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 10_000_000);
    let (id2, _) = pair.pay(Who::A, 20_000_000);
    pair.claim(Who::B, id, preimage);
    pair.fail(Who::B, id2);
    let reported: Vec<u64> = pair.b.irrevocable().iter().map(|u| u.htlc_id).collect();
    assert_eq!(reported, vec![id, id2]);
    assert!(pair.a.irrevocable().is_empty(), "A received nothing");
}

#[test]
fn fee_updates_are_committed_and_change_the_commitment_fee() {
    for anchors in [false, true] {
        let mut pair = Pair::open(OpenOptions { anchors, ..OpenOptions::default() });
        pair.b.channel.update_fee_estimate(3000);
        pair.a.channel.update_fee(3000).expect("update_fee");
        pair.pump(Who::A);
        pair.commit(Who::A);
        pair.settle();
        pair.commit(Who::B);
        pair.settle();
        for who in [Who::A, Who::B] {
            let snap = pair.node_ref(who).channel.snapshot();
            assert_eq!(snap.ledger.base_feerate_per_kw, 3000, "anchors={anchors} {who:?}");
            assert!(snap.ledger.fees.is_empty());
            let commitment = pair.node_ref(who).latest_holder_commitment().expect("a commitment");
            assert_eq!(commitment.negotiated_feerate_per_kw(), 3000);
        }
        // A payment still works at the new rate.
        let (id, preimage) = pair.pay(Who::A, 5_000_000);
        pair.claim(Who::B, id, preimage);
        assert!(pair.a.errors.is_empty() && pair.b.errors.is_empty());
    }
}

#[test]
fn messages_wait_for_their_monitor_update() {
    let mut pair = Pair::open(OpenOptions::default());
    pair.b.auto_persist = false;
    pair.add(Who::A, 10_000_000).expect("add");
    pair.commit(Who::A);
    pair.deliver(Who::A); // update_add_htlc
    pair.deliver(Who::A); // commitment_signed
    assert!(!pair.b.pending.is_empty(), "B holds an update for its new commitment");
    assert!(pair.b.to_peer.is_empty(), "B's revoke_and_ack waits for that update to be durable");
    pair.persist_one(Who::B);
    pair.pump(Who::B);
    assert!(
        matches!(pair.b.to_peer.front(), Some(ChannelMessage::RevokeAndAck(_))),
        "durable, the revoke_and_ack goes: {:?}",
        pair.b.to_peer
    );
    // Update ids strictly increase, one by one.
    pair.persist(Who::B);
    pair.b.auto_persist = true;
    pair.settle();
    for node in [&pair.a, &pair.b] {
        let ids: Vec<u64> = node.durable.iter().map(|u| u.update_id).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
        assert_eq!(ids[0], 1);
        assert!(node.durable.iter().all(|u| u.snapshot.next_update_id == u.update_id + 1));
    }
    assert!(pair.b.durable_steps().any(|s| matches!(s, UpdateStep::HtlcIrrevocablyCommitted { .. })));
}
