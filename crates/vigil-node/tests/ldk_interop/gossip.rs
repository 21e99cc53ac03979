//! Paying over the public graph: LDK node 0 and LDK node 1 share an
//! announced channel, Vigil has a private channel to LDK node 0 only. LDK
//! node 0 gossips the public channel (`channel_announcement`, its
//! `channel_update`s, the nodes' `node_announcement`s) to Vigil, whose
//! `P2PGossipSync` feeds the manager's `NetworkGraph`; Vigil then pays an
//! invoice of LDK node 1 that carries no route hints.

use bitcoin::hashes::Hash;
use lightning::events::Event as LdkEvent;
use lightning::routing::gossip::NodeId;
use lightning::types::payment::PaymentHash;
use vigil_core::manager::{Event as VigilEvent, ManagerConfig, PaymentId as VigilPaymentId};

use crate::common::ldk::LdkNode;
use crate::common::pay::{ldk_channel, vigil_balance};
use crate::common::{Harness, Who};

#[tokio::test(flavor = "multi_thread")]
async fn pays_over_the_public_graph() {
    let mut public = LdkNode::config();
    public.channel_handshake_config.announce_for_forwarding = true;
    let mut h = Harness::with_nodes(vec![ManagerConfig::default()], vec![public, LdkNode::config()]).await;
    h.connect(0, 0).await;
    h.connect_ldks(0, 1).await;
    let private = h.open(Who::Vigil(0), Who::Ldk(0), 1_000_000, 0).await;
    let announced = h.open(Who::Ldk(0), Who::Ldk(1), 1_000_000, 0).await;
    assert!(!ldk_channel(&h, 0, private).is_announced, "Vigil's channel is private");
    let view = ldk_channel(&h, 0, announced);
    assert!(view.is_announced, "the LDK channel is announced");
    let scid = view.short_channel_id.expect("a confirmed channel has a short channel id");

    // The funding has six confirmations: announcement_signatures are
    // exchanged and each LDK node broadcasts the channel_announcement
    // with its channel_update. Node announcements are the user's to send.
    h.mine(1).await;
    for ldk in &h.ldks {
        ldk.peer_manager.broadcast_node_announcement([0; 3], [0; 32], Vec::new());
    }
    let (ldk0, ldk1) = (h.node_id(Who::Ldk(0)), h.node_id(Who::Ldk(1)));
    let graph = h.vigil().with_manager(|m| m.network_graph());
    h.wait_for("the public channel, both its updates and both nodes in Vigil's graph", |_| {
        let graph = graph.read_only();
        let channel = graph.channels().get(&scid)?;
        let nodes = [ldk0, ldk1]
            .map(|n| graph.node(&NodeId::from_pubkey(&n)).and_then(|n| n.announcement_info.clone()));
        (channel.one_to_two.is_some() && channel.two_to_one.is_some() && nodes.iter().all(Option::is_some))
            .then_some(())
    })
    .await;
    let (fee_base, fee_ppm) = {
        let graph = graph.read_only();
        let channel = graph.channels().get(&scid).expect("seen above");
        let mut ends = [channel.node_one, channel.node_two];
        ends.sort();
        let mut expected = [NodeId::from_pubkey(&ldk0), NodeId::from_pubkey(&ldk1)];
        expected.sort();
        assert_eq!(ends, expected, "the channel joins the two LDK nodes");
        let from_ldk0 = if channel.node_one == NodeId::from_pubkey(&ldk0) {
            channel.one_to_two.as_ref()
        } else {
            channel.two_to_one.as_ref()
        }
        .expect("seen above");
        (u64::from(from_ldk0.fees.base_msat), u64::from(from_ldk0.fees.proportional_millionths))
    };
    assert_eq!(graph.read_only().channels().len(), 1, "Vigil's graph holds the public channel only");
    {
        let (vigil_graph, ldk_graph) = (graph.read_only(), h.ldks[0].graph.read_only());
        let (ours, theirs) = (
            vigil_graph.channels().get(&scid).expect("seen above"),
            ldk_graph.channels().get(&scid).expect("LDK 0 has its own public channel in its graph"),
        );
        assert_eq!(
            (&ours.announcement_message, &ours.one_to_two, &ours.two_to_one),
            (&theirs.announcement_message, &theirs.one_to_two, &theirs.two_to_one),
            "Vigil holds the announcement and updates LDK 0 holds"
        );
    }

    let amount = 40_000_000;
    let fee = fee_base + amount * fee_ppm / 1_000_000;
    let invoice = h.ldks[1].invoice_with_hints(amount, Vec::new());
    assert!(invoice.route_hints().is_empty());
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    let before = vigil_balance(&h, private);
    h.vigil()
        .with_manager(|m| m.pay_invoice(&invoice, None, VigilPaymentId([21; 32])))
        .unwrap_or_else(|e| panic!("Vigil found no route over the public graph: {e}\n{}", h.report()));
    let claimable = h
        .wait_ldk_at(
            1,
            "PaymentClaimable",
            |e| matches!(e, LdkEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentClaimable { amount_msat, purpose, receiving_channel_ids, .. } = claimable else {
        unreachable!("matched above")
    };
    assert_eq!(amount_msat, amount);
    assert_eq!(receiving_channel_ids.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![announced]);
    let preimage = purpose.preimage().expect("LDK knows the preimage of its own invoice");
    h.ldks[1].manager.claim_funds(preimage);
    h.wait_ldk_at(
        1,
        "PaymentClaimed",
        |e| matches!(e, LdkEvent::PaymentClaimed { payment_hash, .. } if *payment_hash == hash),
    )
    .await;
    let sent = h
        .wait_vigil(
            "PaymentSent",
            |e| matches!(e, VigilEvent::PaymentSent { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    assert_eq!(
        sent,
        VigilEvent::PaymentSent {
            payment_id: VigilPaymentId([21; 32]),
            payment_hash: hash,
            preimage,
            fee_paid_msat: fee
        },
        "Vigil paid LDK 0's advertised fee"
    );
    let forwarded = h.wait_ldk("PaymentForwarded", |e| matches!(e, LdkEvent::PaymentForwarded { .. })).await;
    let LdkEvent::PaymentForwarded {
        prev_channel_id,
        next_channel_id,
        total_fee_earned_msat,
        outbound_amount_forwarded_msat,
        ..
    } = forwarded
    else {
        unreachable!("matched above")
    };
    assert_eq!((prev_channel_id, next_channel_id), (Some(private), Some(announced)));
    assert_eq!((total_fee_earned_msat, outbound_amount_forwarded_msat), (Some(fee), Some(amount)));
    h.settle().await;
    assert_eq!(before - vigil_balance(&h, private), amount + fee, "Vigil's ledger");
    assert!(h.closures().is_empty(), "{:?}", h.closures());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}
