//! The on-chain accounts behind the value check: after force-closes with
//! HTLCs in flight, every node's value is accounted for to BOLT 3's
//! rounding, and a node short of a payment it received is reported.

use vigil_core::manager::{Event, PaymentId};
use vigil_sim::world::World;

/// A forwarded payment whose downstream channel is force-closed while the
/// HTLC is on it: it resolves on chain, and every node's account balances.
#[test]
fn closed_channels_are_accounted_for_and_a_missing_claim_is_reported() {
    let mut world = World::new(3);
    let invoice = world.nodes[2].manager.create_invoice(Some(40_000_000), "t", 3600).expect("invoice");
    world.nodes[0].manager.pay_invoice(&invoice, None, PaymentId([7; 32])).expect("pay");
    // Until the payee has the HTLC (claimable), then the forwarder closes
    // the downstream channel with it still there.
    for _ in 0..40 {
        world.settle_rounds(1);
        if world.nodes[2].user.delivered.iter().any(|e| matches!(e, Event::PaymentClaimable { .. })) {
            break;
        }
    }
    let downstream = world.nodes[1]
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.counterparty_node_id == world.nodes[2].id() && c.pending_htlcs > 0)
        .expect("the HTLC is on a downstream channel")
        .channel_id;
    world.nodes[1].manager.force_close_channel(downstream).expect("force-close");
    world.requested_closes.insert(downstream);
    world.settle();
    world.settle_onchain();
    world.settle();

    let violations = vigil_sim::check::check(&world);
    assert!(violations.is_empty(), "{violations:#?}");
    let accounts = world.accounts(&world.closing_trees());
    println!("{accounts:#?}");
    // The forwarder (the closer, and the funder) paid the commitment's fee;
    // the payee swept its claim on chain.
    assert!(accounts[1].fees_sat > 0, "the funder paid the commitment fee");
    assert!(accounts[2].held_sat > world.initial_fee_sat[2], "the payee swept its claim");
    let claimed = world.nodes[2].user.delivered.iter().any(|e| matches!(e, Event::PaymentClaimed { .. }));
    assert!(claimed, "the payee claimed");

    // The same world with the payee's claim forgotten: its chain holdings
    // are then 40,000 sat more than its account says, and the nodes
    // together are no longer short of only what was trimmed.
    world.nodes[2].user.delivered.retain(|e| !matches!(e, Event::PaymentClaimed { .. }));
    let violations = vigil_sim::check::check(&world);
    assert!(
        violations.iter().any(|v| v.starts_with("node 2: holds") && v.contains("40000000 msat ahead")),
        "{violations:#?}"
    );
    assert!(violations.iter().any(|v| v.starts_with("the nodes are")), "{violations:#?}");
}
