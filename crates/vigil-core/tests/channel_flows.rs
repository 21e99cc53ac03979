//! Channel flows through the pairwise harness: open, payments both ways,
//! fulfil, fail, fee updates, cooperative close, for both channel types.

mod common;

use common::{OpenOptions, Pair, Who};
use vigil_core::channel::{ChannelEvent, CloseReason, Phase};

fn both_types() -> [OpenOptions; 2] {
    [OpenOptions::default(), OpenOptions { anchors: true, ..OpenOptions::default() }]
}

#[test]
fn open_pay_claim_and_close() {
    for opts in both_types() {
        let anchors = opts.anchors;
        let mut pair = Pair::open(opts);
        let a0 = pair.balance(Who::A);
        let b0 = pair.balance(Who::B);
        let (id, preimage) = pair.pay(Who::A, 50_000_000);
        assert_eq!(pair.b.irrevocable().len(), 1, "B's monitor learned the HTLC");
        pair.claim(Who::B, id, preimage);
        assert_eq!(pair.balance(Who::A), a0 - 50_000_000, "anchors={anchors}");
        assert_eq!(pair.balance(Who::B), b0 + 50_000_000);
        assert!(pair.a.preimages().iter().any(|(i, outbound, p)| *i == id && *outbound && *p == preimage));
        let tx = pair.close(Who::B);
        assert_eq!(tx.output.len(), 2);
        assert_eq!(pair.phase(Who::A), Phase::Closed(CloseReason::Cooperative));
        assert!(pair.a.has_event(|e| matches!(e, ChannelEvent::Closed { reason: CloseReason::Cooperative })));
        assert!(pair.checked > 5, "transactions were checked against consensus");
    }
}

#[test]
fn a_shutdown_waits_until_our_updates_are_signed() {
    use vigil_core::channel::ChannelMessage;
    let mut pair = Pair::open(OpenOptions::default());
    let (x1, p1) = pair.add(Who::A, 4_000_000).expect("add");
    pair.commit(Who::A);
    pair.deliver(Who::A); // update_add_htlc
    pair.deliver(Who::A); // commitment_signed; B's answers wait in its queue
                          // A adds again while its commitment awaits B's revoke_and_ack.
    let (x2, p2) = pair.add(Who::A, 3_000_000).expect("add");
    assert!(!pair.commit(Who::A), "no second commitment before the revocation");
    pair.deliver(Who::A); // the second update_add_htlc
    pair.b.channel.shutdown(None).expect("shutdown");
    pair.pump(Who::B);
    // A receives B's revoke_and_ack, commitment_signed and shutdown.
    while pair.deliver(Who::B) {}
    pair.pump(Who::A);
    let queue: Vec<&ChannelMessage> = pair.a.to_peer.iter().collect();
    let shutdown_at = queue.iter().position(|m| matches!(m, ChannelMessage::Shutdown(_)));
    let signed_at = queue.iter().position(|m| matches!(m, ChannelMessage::CommitmentSigned(_)));
    assert!(
        matches!((signed_at, shutdown_at), (Some(s), Some(h)) if s < h),
        "A's shutdown follows the commitment that signs its second HTLC: {queue:?}"
    );
    pair.settle();
    pair.claim(Who::B, x1, p1);
    pair.claim(Who::B, x2, p2);
    assert!(pair.a.errors.is_empty() && pair.b.errors.is_empty(), "{:?} {:?}", pair.a.errors, pair.b.errors);
    assert_eq!(pair.phase(Who::A), Phase::Closed(CloseReason::Cooperative));
    assert_eq!(pair.phase(Who::B), Phase::Closed(CloseReason::Cooperative));
}

#[test]
fn each_closing_signer_trims_with_its_own_dust_limit() {
    use vigil_core::channel::ChannelConfig;
    // B holds 450 sat: above A's dust limit (354), below its own (546).
    let mut pair = Pair::open(OpenOptions {
        push_msat: 450_000,
        config_b: ChannelConfig { dust_limit_sat: 546, ..ChannelConfig::default() },
        ..OpenOptions::default()
    });
    let tx = pair.close(Who::A);
    assert!(
        tx.output.iter().any(|o| o.value.to_sat() == 450),
        "A proposed, so A's dust limit applies and B's output stays: {tx:?}"
    );
}

#[test]
fn a_resent_fulfil_waits_for_its_preimage_to_be_durable() {
    use vigil_core::channel::ChannelMessage;
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 2_000_000);
    pair.b.auto_persist = false;
    pair.b.channel.fulfill_htlc(id, preimage, None).expect("fulfill");
    pair.pump(Who::B);
    assert!(pair.b.to_peer.is_empty(), "the fulfil waits for its update");
    pair.disconnect();
    pair.reconnect();
    assert!(
        !pair.b.to_peer.iter().any(|m| matches!(m, ChannelMessage::UpdateFulfillHtlc(_))),
        "still not durable after the reconnection"
    );
    assert!(pair.a.preimages().is_empty(), "A has not learned the preimage");
    pair.b.auto_persist = true;
    pair.persist(Who::B);
    pair.settle();
    pair.commit(Who::B);
    pair.settle();
    assert!(pair.a.preimages().iter().any(|(i, _, p)| *i == id && *p == preimage));
    assert!(pair.a.errors.is_empty() && pair.b.errors.is_empty());
}
