//! Restart on the real stack: Vigil nodes on SQLite stores, talking over
//! loopback TCP, are killed at each stage of a payment and started again
//! from their store alone. The payment completes, no channel closes, and
//! each outcome is delivered until handled and never after.
//!
//! (The core's `manager_restart` tests crash nodes before every single
//! write; here the writes are synchronous, so the kill points are the
//! stages between messages and events.)

mod vnet;

use vigil_core::manager::{Event, ManagerConfig, PaymentId};
use vnet::{Net, SAT};

/// A→B, with B killed while the payment waits for its claim, and again
/// after `PaymentClaimed` was delivered but not handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payee_killed_before_and_after_claiming() {
    let mut net = Net::new(2).await;
    net.connect(0, 1).await;
    net.open(0, 1, 1_000_000).await;
    let invoice =
        net.node(1).with_manager(|m| m.create_invoice(Some(50_000 * SAT), "t", 3600)).expect("invoice");
    let id = PaymentId([1; 32]);
    net.node(0).with_manager(|m| m.pay_invoice(&invoice, None, id)).expect("pay");
    net.wait(1, false, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    // Killed before claiming: the payment is offered again after restart.
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    let claimable = net.wait(1, true, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    let Event::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched") };
    net.node(1).with_manager(|m| m.claim_funds(purpose.preimage())).expect("claim");
    net.wait(1, false, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    // Killed with PaymentClaimed delivered, not handled: it comes back once.
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    net.wait(1, true, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id)).await;
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    net.settle().await;
    while let Some((eid, e)) = net.node(1).next_event() {
        assert!(!matches!(e, Event::PaymentClaimed { .. }), "an acknowledged PaymentClaimed never returns");
        net.node(1).event_handled(eid);
    }
    assert_eq!(net.count(1, |e| matches!(e, Event::PaymentClaimed { .. })), 1);
    assert_eq!(net.count(0, |e| matches!(e, Event::PaymentSent { .. })), 1);
    net.no_closes();
}

/// A→B→C with the forwarder killed after forwarding and before the claim
/// comes back, then the payer killed with `PaymentSent` unhandled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_and_payer_killed_mid_payment() {
    let mut net = Net::new(3).await;
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    net.open(0, 1, 1_000_000).await;
    net.open(1, 2, 1_000_000).await;
    let amount = 100_000 * SAT;
    let invoice = net.node(2).with_manager(|m| m.create_invoice(Some(amount), "t", 3600)).expect("invoice");
    let id = PaymentId([2; 32]);
    net.node(0).with_manager(|m| m.pay_invoice(&invoice, None, id)).expect("pay");
    let claimable = net.wait(2, true, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    // B forwarded; it dies before C's claim reaches it.
    net.kill(1);
    let Event::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched") };
    net.node(2).with_manager(|m| m.claim_funds(purpose.preimage())).expect("claim");
    net.wait(2, true, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    net.start(1).await;
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    let forwarded = net.wait(1, true, |e| matches!(e, Event::PaymentForwarded { .. })).await;
    let fee = ManagerConfig::default().forwarding.fee_msat(amount);
    assert!(matches!(forwarded, Event::PaymentForwarded { fee_earned_msat, .. } if fee_earned_msat == fee));
    net.wait(0, false, |e| matches!(e, Event::PaymentSent { .. })).await;
    net.kill(0);
    net.start(0).await;
    net.connect(0, 1).await;
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id)).await;
    for i in [0, 1] {
        net.kill(i);
        net.start(i).await;
    }
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    net.settle().await;
    for i in 0..3 {
        while let Some((eid, e)) = net.node(i).next_event() {
            assert!(
                !matches!(
                    e,
                    Event::PaymentSent { .. } | Event::PaymentForwarded { .. } | Event::PaymentClaimed { .. }
                ),
                "node {i}: an acknowledged outcome never returns: {e:?}"
            );
            net.node(i).event_handled(eid);
        }
    }
    assert_eq!(net.count(0, |e| matches!(e, Event::PaymentSent { .. })), 1);
    assert_eq!(net.count(1, |e| matches!(e, Event::PaymentForwarded { .. })), 1);
    net.no_closes();
}
