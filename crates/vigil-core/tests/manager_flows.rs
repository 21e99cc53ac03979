//! The manager end to end, Vigil against Vigil: direct and forwarded
//! payments, MPP, keysend, fail-backs with their BOLT 4 codes, and
//! cooperative close. Every node is a `ChannelManager` over the embedded
//! chain (`tests/common/net.rs`).

mod common;

use common::net::Net;
use vigil_core::manager::{Event, PaymentStatus};

const SAT: u64 = 1000;

#[test]
fn direct_payment_is_claimed_and_both_sides_hear_once() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    let channel = net.open_channel(0, 1, 1_000_000, 0);
    let before = net.balance(0, channel);
    let invoice = net.invoice(1, Some(50_000 * SAT));
    let payment_id = net.pay(0, &invoice);
    let events = net.take_events(1);
    assert!(
        matches!(&events[..], [Event::PaymentClaimable { amount_msat, .. }] if *amount_msat == 50_000 * SAT),
        "{events:?}; errors {:?}",
        net.nodes[1].errors
    );
    net.claim_all(1, &events);
    let claimed = net.take_events(1);
    assert!(
        matches!(&claimed[..], [Event::PaymentClaimed { amount_msat, .. }] if *amount_msat == 50_000 * SAT),
        "{claimed:?}"
    );
    let sent = net.take_events(0);
    assert!(
        matches!(&sent[..], [Event::PaymentSent { payment_id: p, fee_paid_msat: 0, .. }] if *p == payment_id),
        "{sent:?}"
    );
    assert_eq!(net.balance(0, channel), before - 50_000 * SAT);
    let record = net.nodes[0]
        .manager
        .list_payments()
        .into_iter()
        .find(|r| r.payment_id == payment_id)
        .expect("record");
    assert!(matches!(record.status, PaymentStatus::Succeeded { .. }));
    // Nothing more comes, and nothing is left unacknowledged.
    net.pump();
    assert!(net.take_events(0).is_empty() && net.take_events(1).is_empty());
    for node in &net.nodes {
        for monitor in node.manager.chain_monitor().monitors() {
            assert!(
                monitor.events().is_empty(),
                "every monitor event is acknowledged: {:?}",
                monitor.events()
            );
        }
    }
}

/// A line A–B–C with one channel per link, pushed so that B can pay C too.
fn line() -> (Net, [lightning::ln::types::ChannelId; 2]) {
    let mut net = Net::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    let ab = net.open_channel(0, 1, 1_000_000, 0);
    let bc = net.open_channel(1, 2, 1_000_000, 0);
    (net, [ab, bc])
}

#[test]
fn forward_earns_the_fee_and_every_side_hears_once() {
    let (mut net, [ab, bc]) = line();
    let amount = 100_000 * SAT;
    let invoice = net.invoice(2, Some(amount));
    let payment_id = net.pay(0, &invoice);
    let claimable = net.take_events(2);
    assert!(
        matches!(&claimable[..], [Event::PaymentClaimable { .. }]),
        "{claimable:?}; B errors {:?}",
        net.nodes[1].errors
    );
    net.claim_all(2, &claimable);
    assert!(matches!(&net.take_events(2)[..], [Event::PaymentClaimed { .. }]));
    let fee = net.nodes[1].config.forwarding.fee_msat(amount);
    let forwarded = net.take_events(1);
    assert_eq!(
        forwarded,
        vec![Event::PaymentForwarded {
            prev_channel_id: ab,
            prev_htlc_id: 0,
            next_channel_id: bc,
            next_htlc_id: 0,
            inbound_amount_msat: amount + fee,
            outbound_amount_msat: amount,
            fee_earned_msat: fee,
        }]
    );
    let sent = net.take_events(0);
    assert!(
        matches!(&sent[..], [Event::PaymentSent { payment_id: p, fee_paid_msat, .. }] if *p == payment_id && *fee_paid_msat == fee),
        "{sent:?}"
    );
    assert_eq!(net.balance(1, ab), amount + fee, "B was paid amount and fee on A–B");
    assert_eq!(net.balance(1, bc), 1_000_000 * SAT - amount, "B paid the amount on B–C");
}

#[test]
fn multi_part_payment_over_two_channels() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    let c1 = net.open_channel(0, 1, 200_000, 0);
    let c2 = net.open_channel(0, 1, 200_000, 0);
    // More than either channel can carry alone.
    let amount = 300_000 * SAT;
    let invoice = net.invoice(1, Some(amount));
    net.pay(0, &invoice);
    let claimable = net.take_events(1);
    assert!(
        matches!(&claimable[..], [Event::PaymentClaimable { amount_msat, .. }] if *amount_msat == amount),
        "{claimable:?}; A {:?}",
        net.take_events(0)
    );
    net.claim_all(1, &claimable);
    assert!(
        matches!(&net.take_events(1)[..], [Event::PaymentClaimed { amount_msat, .. }] if *amount_msat == amount)
    );
    assert!(matches!(&net.take_events(0)[..], [Event::PaymentSent { .. }]));
    let paid = 400_000 * SAT - net.balance(0, c1) - net.balance(0, c2);
    assert_eq!(paid, amount, "both parts were claimed");
    assert!(
        net.balance(0, c1) < 200_000 * SAT && net.balance(0, c2) < 200_000 * SAT,
        "both channels carried a part"
    );
}

#[test]
fn keysend_is_received_and_claimed() {
    // Keysend needs a route without invoice hints: to a peer (our private
    // channels are not in any graph).
    let (mut net, _) = line();
    let idb = net.id(1);
    let payment_id = net.payment_id();
    let hash = net.nodes[0].manager.send_spontaneous_payment(idb, 20_000 * SAT, payment_id).expect("keysend");
    net.pump();
    let claimable = net.take_events(1);
    assert!(
        matches!(&claimable[..], [Event::PaymentClaimable { payment_hash, purpose: vigil_core::manager::PaymentPurpose::Keysend { .. }, .. }] if *payment_hash == hash),
        "{claimable:?}"
    );
    net.claim_all(1, &claimable);
    assert!(
        matches!(&net.take_events(0)[..], [Event::PaymentSent { payment_hash, .. }] if *payment_hash == hash)
    );
    let idc = net.id(2);
    let unreachable = net.nodes[0].manager.send_spontaneous_payment(idc, 1_000, net_id(7));
    assert!(matches!(unreachable, Err(vigil_core::manager::PayError::NoRoute(_))), "{unreachable:?}");
}

#[test]
fn refused_payment_fails_back_with_incorrect_payment_details() {
    let (mut net, [ab, _]) = line();
    let before = net.balance(0, ab);
    let invoice = net.invoice(2, Some(10_000 * SAT));
    let payment_id = net.pay(0, &invoice);
    let hash =
        lightning::types::payment::PaymentHash(bitcoin::hashes::Hash::to_byte_array(*invoice.payment_hash()));
    assert!(matches!(&net.take_events(2)[..], [Event::PaymentClaimable { .. }]));
    assert!(net.nodes[2].manager.fail_htlc_backwards(&hash));
    net.pump();
    let events = net.take_events(0);
    assert!(
        matches!(
            &events[..],
            [Event::PaymentPathFailed { failure_code: Some(vigil_core::onion::codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS), retrying: false, .. },
             Event::PaymentFailed { payment_id: p, .. }] if *p == payment_id
        ),
        "{events:?}"
    );
    assert_eq!(net.balance(0, ab), before, "the HTLC came back");
    assert!(net.take_events(1).is_empty(), "B forwarded nothing that earned a fee");
}

/// B charges more than Vigil's default: C learned B's terms from B's
/// `channel_update` and hints them, so A pays B's real fee.
#[test]
fn invoice_hints_carry_the_peers_terms() {
    let mut configs = vec![vigil_core::manager::ManagerConfig::default(); 3];
    configs[1].forwarding.fee_base_msat = 50_000;
    configs[1].forwarding.cltv_expiry_delta = 100;
    let mut net = Net::with_configs(configs);
    net.connect(0, 1);
    net.connect(1, 2);
    net.open_channel(0, 1, 1_000_000, 0);
    let bc = net.open_channel(1, 2, 1_000_000, 0);
    let terms = net.nodes[2].manager.peer_terms(&bc).expect("C has B's channel_update");
    assert_eq!((terms.fee_base_msat, terms.cltv_expiry_delta), (50_000, 100));
    let amount = 10_000 * SAT;
    let invoice = net.invoice(2, Some(amount));
    let hint = &invoice.route_hints()[0].0[0];
    assert_eq!((hint.fees.base_msat, hint.cltv_expiry_delta), (50_000, 100));
    net.pay(0, &invoice);
    let claimable = net.take_events(2);
    net.claim_all(2, &claimable);
    let fee = net.nodes[1].config.forwarding.fee_msat(amount);
    let sent = net.take_events(0);
    assert!(
        matches!(&sent[..], [Event::PaymentSent { fee_paid_msat, .. }] if *fee_paid_msat == fee),
        "{sent:?}"
    );
}

#[test]
fn cooperative_close_reaches_the_chain() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    let channel = net.open_channel(0, 1, 1_000_000, 0);
    let invoice = net.invoice(1, Some(1_000 * SAT));
    net.pay(0, &invoice);
    let claimable = net.take_events(1);
    net.claim_all(1, &claimable);
    net.take_events(0);
    net.nodes[0].manager.close_channel(channel).expect("close");
    net.pump();
    net.mine(1);
    for i in 0..2 {
        let events = net.take_events(i);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::ChannelClosed { channel_id, .. } if *channel_id == channel)),
            "node {i}: {events:?}"
        );
    }
    assert!(net.nodes[0].manager.list_channels().is_empty(), "the closed channel is gone");
}

fn net_id(n: u8) -> vigil_core::manager::PaymentId {
    vigil_core::manager::PaymentId([n; 32])
}

/// A close started while an HTLC is pending: the claim is still committed,
/// the payment completes, then the channel closes.
#[test]
fn close_waits_for_a_pending_payment() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    let channel = net.open_channel(0, 1, 1_000_000, 0);
    let invoice = net.invoice(1, Some(10_000 * SAT));
    net.pay(0, &invoice);
    let claimable = net.take_events(1);
    net.nodes[0].manager.close_channel(channel).expect("close");
    net.pump();
    net.claim_all(1, &claimable);
    net.mine(1);
    let events = [net.take_events(0), net.take_events(1)];
    assert!(events[0].iter().any(|e| matches!(e, Event::PaymentSent { .. })), "the payment completes");
    assert!(events[1].iter().any(|e| matches!(e, Event::PaymentClaimed { .. })));
    for (i, events) in events.iter().enumerate() {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::ChannelClosed { channel_id, .. } if *channel_id == channel)),
            "node {i} sees the close: {events:?}"
        );
    }
    assert!(net.nodes[0].manager.list_channels().is_empty(), "the closed channel is gone");
}

/// Two forwards with the same channels and amounts each get their own
/// `PaymentForwarded`.
#[test]
fn identical_forwards_are_reported_separately() {
    let (mut net, _) = line();
    let amount = 5_000 * SAT;
    let first = net.invoice(2, Some(amount));
    let second = net.invoice(2, Some(amount));
    net.pay(0, &first);
    net.pay(0, &second);
    let claimable = net.take_events(2);
    assert_eq!(claimable.len(), 2, "{claimable:?}");
    net.claim_all(2, &claimable);
    let forwarded = net.nodes[1].manager.unhandled_events();
    let n = forwarded.iter().filter(|(_, e)| matches!(e, Event::PaymentForwarded { .. })).count();
    assert_eq!(n, 2, "{forwarded:?}");
    net.take_events(1);
    for monitor in net.nodes[1].manager.chain_monitor().monitors() {
        assert!(monitor.events().is_empty(), "both downstream claims acknowledged: {:?}", monitor.events());
    }
}

/// The upstream channel is force-closed while the forward is pending: when
/// the downstream claim comes back, the preimage goes to the closed
/// channel's monitor (which claims on chain), and only then is the
/// forward reported.
#[test]
fn downstream_claim_reaches_a_closed_upstream_monitor() {
    let (mut net, [ab, _]) = line();
    let invoice = net.invoice(2, Some(20_000 * SAT));
    let hash =
        lightning::types::payment::PaymentHash(bitcoin::hashes::Hash::to_byte_array(*invoice.payment_hash()));
    net.pay(0, &invoice);
    let claimable = net.take_events(2);
    net.nodes[1].manager.force_close_channel(ab).expect("force-close");
    net.pump();
    net.claim_all(2, &claimable);
    let monitor = net.nodes[1].manager.chain_monitor().monitor(&ab).expect("the closed channel's monitor");
    assert!(monitor.is_closed());
    assert!(
        monitor.preimage(&hash).is_some(),
        "the closed upstream monitor has the preimage to claim on chain"
    );
    let events = net.take_events(1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PaymentForwarded { prev_channel_id, .. } if *prev_channel_id == ab)),
        "{events:?}"
    );
}

/// One part's channel closes before the payee claims: that part's
/// preimage and claim go to the closed channel's monitor, and
/// `PaymentClaimed` follows once both parts are durable.
#[test]
fn claim_with_a_part_on_a_closed_channel() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    let c1 = net.open_channel(0, 1, 200_000, 0);
    let _c2 = net.open_channel(0, 1, 200_000, 0);
    let amount = 300_000 * SAT;
    let invoice = net.invoice(1, Some(amount));
    let hash =
        lightning::types::payment::PaymentHash(bitcoin::hashes::Hash::to_byte_array(*invoice.payment_hash()));
    net.pay(0, &invoice);
    let claimable = net.take_events(1);
    assert_eq!(claimable.len(), 1, "{claimable:?}");
    net.nodes[1].manager.force_close_channel(c1).expect("force-close");
    net.pump();
    net.claim_all(1, &claimable);
    let events = net.take_events(1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PaymentClaimed { amount_msat, .. } if *amount_msat == amount)),
        "{events:?}"
    );
    let monitor = net.nodes[1].manager.chain_monitor().monitor(&c1).expect("the closed channel's monitor");
    assert!(monitor.preimage(&hash).is_some());
}

/// A payment the payee never claims is failed back before its HTLC nears
/// expiry, so no channel has to go on chain for it.
#[test]
fn unclaimed_payment_is_failed_back_before_expiry() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.open_channel(0, 1, 1_000_000, 0);
    let invoice = net.invoice(1, Some(10_000 * SAT));
    let id = net.pay(0, &invoice);
    let claimable = net.take_events(1);
    assert!(matches!(&claimable[..], [Event::PaymentClaimable { .. }]));
    let expiry = net.nodes[1]
        .manager
        .chain_monitor()
        .monitors()
        .next()
        .expect("monitor")
        .channel_snapshot()
        .ledger
        .htlcs[0]
        .cltv_expiry();
    let deadline = expiry - net.nodes[1].config.claim_deadline_blocks;
    net.mine(deadline - 1 - net.chain.height());
    assert!(net.take_events(0).is_empty(), "still claimable one block before the deadline");
    net.mine(1);
    let events = net.take_events(0);
    assert!(
        events.iter().any(|e| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == id)),
        "{events:?}"
    );
    let Event::PaymentClaimable { purpose, .. } = &claimable[0] else { unreachable!("matched") };
    assert!(net.nodes[1].manager.claim_funds(purpose.preimage()).is_err(), "too late to claim");
    for i in 0..2 {
        assert!(!net.take_events(i).iter().any(|e| matches!(e, Event::ChannelClosed { .. })));
    }
}

/// The payee restarts after the invoice expired, with the payment still
/// unclaimed: it is offered again (it arrived in time), not refused.
#[test]
fn payment_arrived_in_time_survives_invoice_expiry_across_restart() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.open_channel(0, 1, 1_000_000, 0);
    let invoice = net.nodes[1].manager.create_invoice(Some(10_000 * SAT), "short", 60).expect("invoice");
    net.pay(0, &invoice);
    assert!(matches!(&net.take_events(1)[..], [Event::PaymentClaimable { .. }]));
    net.now_secs += 3600;
    net.crash(1);
    net.reconnect(1);
    let again = net.take_events(1);
    assert!(matches!(&again[..], [Event::PaymentClaimable { .. }]), "{again:?}");
    net.claim_all(1, &again);
    assert!(net.take_events(0).iter().any(|e| matches!(e, Event::PaymentSent { .. })));
}

/// A forward whose outbound peer is reconnecting waits for it: if the peer
/// is back within `forward_wait_ticks`, the payment goes through; if not,
/// it fails back with `temporary_channel_failure`.
#[test]
fn forward_waits_for_a_reconnecting_peer_then_gives_up() {
    for comes_back in [true, false] {
        let (mut net, _) = line();
        let invoice = net.invoice(2, Some(10_000 * SAT));
        // B restarts (all its channels disconnected), and C stays away.
        net.crash(1);
        net.connect(0, 1);
        let id = net.pay(0, &invoice);
        net.tick();
        assert!(net.take_events(0).is_empty(), "still waiting after one tick");
        if comes_back {
            net.connect(1, 2);
            let claimable = net.take_events(2);
            net.claim_all(2, &claimable);
            let events = net.take_events(0);
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id)),
                "{events:?}"
            );
        } else {
            for _ in 0..4 {
                net.tick();
            }
            let events = net.take_events(0);
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::PaymentPathFailed {
                        failure_code: Some(vigil_core::onion::codes::TEMPORARY_CHANNEL_FAILURE),
                        ..
                    }
                )),
                "{events:?}"
            );
            assert!(events
                .iter()
                .any(|e| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == id)));
        }
    }
}
