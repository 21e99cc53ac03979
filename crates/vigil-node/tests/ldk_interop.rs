//! Interoperability with LDK 0.2.7: Vigil `Node`s and in-process LDK nodes
//! talk BOLT 2 over loopback TCP (all behind LDK's `PeerManager` and
//! `lightning-net-tokio`), on one embedded regtest chain.
//!
//! Covered: channel opening in both directions (static_remote_key, no
//! anchors, unannounced), payments both ways, keysend, multi-part payments
//! over two channels both ways, forwarding in both roles (Vigil between two
//! LDK nodes, LDK between two Vigil nodes), a payee rejection LDK must
//! attribute to the payee, a connection lost in the middle of the
//! commitment dance, and cooperative closes started by either side.
//!
//! Private-channel `channel_update`s flow both ways: LDK hints Vigil's real
//! terms in its invoices, and Vigil hints LDK's.
//!
//! Also, in submodules: `option_anchors_zero_fee_htlc_tx` channels opened
//! each way ([`anchors`]), and a payment routed over a public channel
//! Vigil learned from LDK's gossip ([`gossip`]).
//!
//! Set `VIGIL_LDK_LOG=debug` (or `trace`) to see LDK's log on stderr.

#[path = "ldk_interop/anchors.rs"]
mod anchors;
mod common;
#[path = "ldk_interop/gossip.rs"]
mod gossip;

use bitcoin::hashes::Hash;
use bitcoin::{Transaction, Txid};
use lightning::bolt11_invoice::{Bolt11Invoice, RouteHint, RouteHintHop, RoutingFees};
use lightning::chain::transaction::OutPoint;
use lightning::events::{ClosureReason, Event as LdkEvent, PaymentFailureReason, PaymentPurpose};
use lightning::ln::channelmanager::{PaymentId as LdkPaymentId, Retry};
use lightning::ln::types::ChannelId;
use lightning::routing::router::RouteParametersConfig;
use lightning::types::payment::PaymentHash;
use lightning::util::config::UserConfig;
use vigil_chain::ChainSource;
use vigil_core::manager::{
    Event as VigilEvent, ForwardingPolicy, ManagerConfig, PaymentId as VigilPaymentId,
};

use common::ldk::LdkNode;
use common::pay::{
    hash_of, ldk_channel, ldk_invoice, ldk_pays_vigil, vigil_balance, vigil_claims, vigil_pays_ldk,
};
use common::relay::Direction;
use common::{Harness, Who};

#[tokio::test(flavor = "multi_thread")]
async fn ldk_opens_to_vigil_and_pays_both_ways() {
    let mut h = Harness::new().await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    let ldk_view = ldk_channel(&h, 0, channel_id);
    assert!(ldk_view.is_outbound && !ldk_view.is_announced);
    let channel_type = ldk_view.channel_type.expect("a negotiated channel type");
    assert!(channel_type.supports_static_remote_key() && !channel_type.supports_anchors_zero_fee_htlc_tx());

    ldk_pays_vigil(&mut h, 100_000_000).await;
    h.settle().await;
    assert_eq!(vigil_balance(&h, channel_id), 100_000_000, "Vigil's ledger holds what it was paid");

    vigil_pays_ldk(&mut h, 30_000_000, [1; 32]).await;
    h.settle().await;
    assert_eq!(vigil_balance(&h, channel_id), 70_000_000, "Vigil's ledger after paying LDK back");
    let ldk_view = ldk_channel(&h, 0, channel_id);
    assert_eq!(
        ldk_view.inbound_capacity_msat + ldk_view.unspendable_punishment_reserve.unwrap_or(0) * 1000,
        70_000_000,
        "LDK counts Vigil's balance the same (inbound capacity plus Vigil's reserve)\n{}",
        h.report()
    );
    assert!(ldk_view.pending_inbound_htlcs.is_empty() && ldk_view.pending_outbound_htlcs.is_empty());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn vigil_opens_to_ldk_and_pays() {
    let mut h = Harness::new().await;
    let channel_id = h.vigil_opens(1_000_000, 0).await;
    let ldk_view = ldk_channel(&h, 0, channel_id);
    assert!(!ldk_view.is_outbound && !ldk_view.is_announced);
    let channel_type = ldk_view.channel_type.expect("a negotiated channel type");
    assert!(channel_type.supports_static_remote_key() && !channel_type.supports_anchors_zero_fee_htlc_tx());

    let before = vigil_balance(&h, channel_id);
    vigil_pays_ldk(&mut h, 50_000_000, [2; 32]).await;
    h.settle().await;
    assert_eq!(before - vigil_balance(&h, channel_id), 50_000_000, "Vigil's ledger after paying LDK");
    let ldk_view = ldk_channel(&h, 0, channel_id);
    assert!(ldk_view.pending_inbound_htlcs.is_empty() && ldk_view.pending_outbound_htlcs.is_empty());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn vigil_rejects_with_a_code_ldk_decodes() {
    let mut h = Harness::new().await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    let invoice =
        h.vigil().with_manager(|m| m.create_invoice(Some(20_000_000), "refused", 3600)).expect("invoice");
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.ldk()
        .manager
        .pay_for_bolt11_invoice(
            &invoice,
            LdkPaymentId(hash.0),
            None,
            RouteParametersConfig::default(),
            Retry::Attempts(0),
        )
        .unwrap_or_else(|e| panic!("LDK refused to pay: {e:?}"));
    h.wait_vigil(
        "PaymentClaimable",
        |e| matches!(e, VigilEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
    )
    .await;
    assert!(h.vigil().with_manager(|m| m.fail_htlc_backwards(&hash)), "Vigil had the payment to refuse");

    let path_failed = h
        .wait_ldk(
            "PaymentPathFailed",
            |e| matches!(e, LdkEvent::PaymentPathFailed { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentPathFailed { payment_failed_permanently, ref failure, .. } = path_failed else {
        unreachable!("matched above")
    };
    assert!(
        payment_failed_permanently,
        "LDK must read Vigil's failure as the payee's final answer (incorrect_or_unknown_payment_details): \
         {path_failed:?}\n{}",
        h.report()
    );
    assert!(
        matches!(failure, lightning::events::PathFailure::OnPath { network_update: None }),
        "a payee rejection blames no channel: {failure:?}"
    );
    let failed = h
        .wait_ldk(
            "PaymentFailed",
            |e| matches!(e, LdkEvent::PaymentFailed { payment_hash: Some(p), .. } if *p == hash),
        )
        .await;
    assert!(
        matches!(
            failed,
            LdkEvent::PaymentFailed { reason: Some(PaymentFailureReason::RecipientRejected), .. }
        ),
        "LDK attributes the failure to the recipient: {failed:?}"
    );
    h.settle().await;
    assert_eq!(vigil_balance(&h, channel_id), 0, "nothing moved");
    let ldk_view = ldk_channel(&h, 0, channel_id);
    assert!(ldk_view.pending_outbound_htlcs.is_empty(), "the HTLC is gone on LDK's side");
    assert!(ldk_view.is_usable, "the channel stays usable");
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn keysend_from_vigil_to_ldk() {
    let mut h = Harness::new().await;
    let channel_id = h.vigil_opens(1_000_000, 0).await;
    let before = vigil_balance(&h, channel_id);
    let (ldk_id, amount) = (h.ldk().node_id(), 25_000_000);
    let hash = h
        .vigil()
        .with_manager(|m| m.send_spontaneous_payment(ldk_id, amount, VigilPaymentId([6; 32])))
        .unwrap_or_else(|e| panic!("Vigil refused to send a keysend: {e}\n{}", h.report()));
    let claimable = h
        .wait_ldk(
            "PaymentClaimable",
            |e| matches!(e, LdkEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentClaimable { amount_msat, purpose, .. } = claimable else {
        unreachable!("matched above")
    };
    assert_eq!(amount_msat, amount, "LDK sees the amount Vigil sent");
    let PaymentPurpose::SpontaneousPayment(preimage) = purpose else {
        panic!("LDK reads a keysend: {purpose:?}")
    };
    assert_eq!(hash_of(&preimage), hash, "the preimage in the onion is the payment's");
    h.ldk().manager.claim_funds(preimage);
    h.wait_ldk(
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
            payment_id: VigilPaymentId([6; 32]),
            payment_hash: hash,
            preimage,
            fee_paid_msat: 0
        }
    );
    h.settle().await;
    assert_eq!(before - vigil_balance(&h, channel_id), amount, "Vigil's ledger after the keysend");
    assert!(h.closures().is_empty(), "{:?}", h.closures());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn mpp_over_two_channels() {
    let mut h = Harness::new().await;
    let a = h.ldk_opens(1_000_000, 0).await;
    let b = h.ldk_opens(1_000_000, 0).await;

    // LDK to Vigil: more than either channel can carry.
    let amount = 1_500_000_000;
    for c in [a, b] {
        let limit = ldk_channel(&h, 0, c).next_outbound_htlc_limit_msat;
        assert!(limit < amount, "one channel could carry it all ({limit} msat)");
    }
    let hash = ldk_pays_vigil(&mut h, amount).await;
    h.settle().await;
    let paths = h.ldk_events[0]
        .iter()
        .filter(|e| matches!(e, LdkEvent::PaymentPathSuccessful { payment_hash: Some(p), .. } if *p == hash))
        .count();
    assert_eq!(paths, 2, "LDK split the payment over both channels\n{}", h.report());
    assert!(
        !h.vigil_events[0].iter().any(|e| matches!(e, VigilEvent::PaymentClaimable { .. })),
        "Vigil announced the payment once, whole: {:?}",
        h.vigil_events[0]
    );
    let (on_a, on_b) = (vigil_balance(&h, a), vigil_balance(&h, b));
    assert!(on_a > 0 && on_b > 0 && on_a + on_b == amount, "Vigil's ledgers: {on_a} + {on_b} msat");

    // Vigil to LDK: LDK accepts at most 10% of a channel in flight (its
    // default), so 150 000 sat must go over both.
    let amount = 150_000_000;
    for c in [a, b] {
        let max = ldk_channel(&h, 0, c).inbound_htlc_maximum_msat.expect("LDK's inbound limit");
        assert!(max < amount, "one channel could carry it all ({max} msat)");
    }
    let mut receiving = vigil_pays_ldk(&mut h, amount, [3; 32]).await;
    receiving.sort();
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(receiving, both, "Vigil split the payment over both channels\n{}", h.report());
    h.settle().await;
    assert_eq!(vigil_balance(&h, a) + vigil_balance(&h, b), 1_500_000_000 - amount, "Vigil's ledgers");
    assert!(h.closures().is_empty(), "{:?}", h.closures());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

/// LDK node 0 — Vigil — LDK node 1, private channels opened towards LDK
/// node 1. Returns the harness and the channels (in, out of Vigil).
async fn ldk_vigil_ldk() -> (Harness, ChannelId, ChannelId) {
    let mut h =
        Harness::with_nodes(vec![ManagerConfig::default()], vec![LdkNode::config(), LdkNode::config()]).await;
    h.connect(0, 0).await;
    h.connect(1, 0).await;
    let inbound = h.open(Who::Ldk(0), Who::Vigil(0), 1_000_000, 0).await;
    let outbound = h.open(Who::Vigil(0), Who::Ldk(1), 1_000_000, 0).await;
    (h, inbound, outbound)
}

/// LDK node `payer` pays `invoice` of LDK node `payee`, which claims it.
/// Returns the fee the payer paid.
async fn ldk_pays_ldk(h: &mut Harness, payer: usize, payee: usize, invoice: &Bolt11Invoice) -> u64 {
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.ldks[payer]
        .manager
        .pay_for_bolt11_invoice(
            invoice,
            LdkPaymentId(hash.0),
            None,
            RouteParametersConfig::default(),
            Retry::Attempts(0),
        )
        .unwrap_or_else(|e| panic!("LDK {payer} refused to pay LDK {payee}: {e:?}\n{}", h.report()));
    let claimable = h
        .wait_ldk_at(
            payee,
            "PaymentClaimable",
            |e| matches!(e, LdkEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched above") };
    let preimage = purpose.preimage().expect("LDK knows the preimage of its own invoice");
    h.ldks[payee].manager.claim_funds(preimage);
    let sent = h
        .wait_ldk_at(
            payer,
            "PaymentSent",
            |e| matches!(e, LdkEvent::PaymentSent { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentSent { payment_preimage, fee_paid_msat, .. } = sent else {
        unreachable!("matched above")
    };
    assert_eq!(payment_preimage, preimage);
    fee_paid_msat.expect("LDK knows the fee it paid")
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_ldk_vigil_ldk() {
    let (mut h, inbound, outbound) = ldk_vigil_ldk().await;
    let amount = 50_000_000;
    // An invoice built by hand with the hint LDK 1 makes itself (the test
    // below): Vigil's default terms.
    let policy = ForwardingPolicy::default();
    let scid = ldk_channel(&h, 1, outbound).get_inbound_payment_scid().expect("an alias Vigil routes by");
    let hint = RouteHint(vec![RouteHintHop {
        src_node_id: h.vigil().node_id(),
        short_channel_id: scid,
        fees: RoutingFees {
            base_msat: policy.fee_base_msat,
            proportional_millionths: policy.fee_proportional_millionths,
        },
        cltv_expiry_delta: policy.cltv_expiry_delta,
        htlc_minimum_msat: None,
        htlc_maximum_msat: None,
    }]);
    let invoice = h.ldks[1].invoice_with_hints(amount, vec![hint]);
    let fee = policy.fee_msat(amount);
    assert_eq!(fee, 6_000, "1000 msat + 100 ppm of 50 000 sat");

    let paid = ldk_pays_ldk(&mut h, 0, 1, &invoice).await;
    assert_eq!(paid, fee, "LDK 0 paid Vigil's fee");
    let forwarded =
        h.wait_vigil("PaymentForwarded", |e| matches!(e, VigilEvent::PaymentForwarded { .. })).await;
    assert_eq!(
        forwarded,
        VigilEvent::PaymentForwarded {
            prev_channel_id: inbound,
            prev_htlc_id: 0,
            next_channel_id: outbound,
            next_htlc_id: 0,
            inbound_amount_msat: amount + fee,
            outbound_amount_msat: amount,
            fee_earned_msat: fee,
        }
    );
    h.settle().await;
    assert_eq!(vigil_balance(&h, inbound), amount + fee, "Vigil's ledger upstream");
    for (i, c) in [(0, inbound), (1, outbound)] {
        let view = ldk_channel(&h, i, c);
        assert!(view.pending_inbound_htlcs.is_empty() && view.pending_outbound_htlcs.is_empty());
    }
    assert!(h.closures().is_empty(), "{:?}", h.closures());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_ldk_vigil_ldk_with_hints_made_by_ldk() {
    let (mut h, _inbound, outbound) = ldk_vigil_ldk().await;
    let view = ldk_channel(&h, 1, outbound);
    assert!(
        view.counterparty.forwarding_info.is_some(),
        "LDK 1 learned Vigil's forwarding terms (from Vigil's channel_update): {:?}",
        view.counterparty
    );
    let invoice = ldk_invoice(&h, 1, 50_000_000);
    assert_eq!(invoice.route_hints().len(), 1, "LDK 1's invoice hints its channel with Vigil");
    let fee = ldk_pays_ldk(&mut h, 0, 1, &invoice).await;
    assert_eq!(fee, ForwardingPolicy::default().fee_msat(50_000_000));
}

/// Vigil node 0 — LDK — Vigil node 1, private channels opened towards
/// Vigil node 1, the LDK node configured from `config` (and allowed to
/// forward over private channels, which LDK refuses by default with
/// `unknown_next_peer`). Returns the harness and the channels.
async fn vigil_ldk_vigil(mut config: UserConfig) -> (Harness, ChannelId, ChannelId) {
    config.accept_forwards_to_priv_channels = true;
    let mut h = Harness::with_nodes(vec![ManagerConfig::default(); 2], vec![config]).await;
    h.connect(0, 0).await;
    h.connect(0, 1).await;
    let first = h.open(Who::Vigil(0), Who::Ldk(0), 1_000_000, 0).await;
    let second = h.open(Who::Ldk(0), Who::Vigil(1), 1_000_000, 0).await;
    (h, first, second)
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_vigil_ldk_vigil() {
    let (mut h, first, second) = vigil_ldk_vigil(LdkNode::config()).await;
    let amount = 50_000_000;
    let invoice = h.vigils[1]
        .with_manager(|m| m.create_invoice(Some(amount), "through LDK", 3600))
        .expect("Vigil 1 makes an invoice");
    let hints = invoice.route_hints();
    assert_eq!(hints.len(), 1, "one hint, through LDK: {hints:?}");
    let hop = &hints[0].0[0];
    assert_eq!(hop.src_node_id, h.node_id(Who::Ldk(0)));
    // Vigil hints its own terms (it does not know LDK's): they cover LDK's
    // default fee (1000 msat base, no proportional part) and CLTV delta (72).
    let fee =
        u64::from(hop.fees.base_msat) + amount * u64::from(hop.fees.proportional_millionths) / 1_000_000;
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());

    h.vigils[0]
        .with_manager(|m| m.pay_invoice(&invoice, None, VigilPaymentId([5; 32])))
        .unwrap_or_else(|e| panic!("Vigil 0 refused to pay: {e}\n{}", h.report()));
    let claimable = h
        .wait_vigil_at(
            1,
            "PaymentClaimable",
            |e| matches!(e, VigilEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let VigilEvent::PaymentClaimable { amount_msat, purpose, .. } = claimable else {
        unreachable!("matched above")
    };
    assert_eq!(amount_msat, amount);
    h.vigils[1].with_manager(|m| m.claim_funds(purpose.preimage())).expect("Vigil 1 claims");
    h.wait_vigil_at(
        1,
        "PaymentClaimed",
        |e| matches!(e, VigilEvent::PaymentClaimed { payment_hash, .. } if *payment_hash == hash),
    )
    .await;
    let sent = h
        .wait_vigil_at(
            0,
            "PaymentSent",
            |e| matches!(e, VigilEvent::PaymentSent { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    assert!(
        matches!(sent, VigilEvent::PaymentSent { preimage, fee_paid_msat, .. }
            if preimage == purpose.preimage() && fee_paid_msat == fee),
        "Vigil 0 paid the hinted fee ({fee} msat): {sent:?}"
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
    assert_eq!((prev_channel_id, next_channel_id), (Some(first), Some(second)));
    assert_eq!((total_fee_earned_msat, outbound_amount_forwarded_msat), (Some(fee), Some(amount)));
    h.settle().await;
    assert_eq!(vigil_balance(&h, second), amount, "Vigil 1's ledger");
    assert!(h.closures().is_empty(), "{:?}", h.closures());
    for vigil in &h.vigils {
        assert_eq!(vigil.last_error(), None, "{}", h.report());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_vigil_ldk_vigil_with_ldk_fees_above_vigils() {
    let mut config = LdkNode::config();
    // 1000 msat + 0.1%: 51 000 msat on 50 000 sat, where Vigil's terms give 6000.
    config.channel_config.forwarding_fee_proportional_millionths = 1000;
    let (mut h, _first, _second) = vigil_ldk_vigil(config).await;
    let amount = 50_000_000;
    let invoice = h.vigils[1]
        .with_manager(|m| m.create_invoice(Some(amount), "through LDK", 3600))
        .expect("Vigil 1 makes an invoice");
    let hop = invoice.route_hints()[0].0[0].clone();
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.vigils[0]
        .with_manager(|m| m.pay_invoice(&invoice, None, VigilPaymentId([7; 32])))
        .unwrap_or_else(|e| panic!("Vigil 0 refused to pay: {e}"));
    let outcome = h
        .wait_for("the payment claimable at Vigil 1, or a path failed at Vigil 0", |h| {
            let claimable = h.vigil_events[1].iter().any(
                |e| matches!(e, VigilEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
            );
            let failed = h.vigil_events[0].iter().find(|e| matches!(e, VigilEvent::PaymentPathFailed { .. }));
            (claimable || failed.is_some()).then(|| failed.cloned())
        })
        .await;
    assert_eq!(
        outcome, None,
        "LDK failed the forward (0x100c is fee_insufficient): the hint carried {:?}, LDK charges \
         1000 msat + 1000 ppm and told Vigil 1 so in its channel_update",
        hop.fees
    );
}

/// Cuts the relay, waits until both sides saw the connection drop, and
/// connects again through the relay.
async fn cut_and_reconnect(h: &mut Harness, relay: &common::relay::Relay) {
    relay.cut();
    h.wait_disconnected(0, 0).await;
    h.connect_at(0, 0, relay.addr()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnect_mid_payment() {
    let mut h = Harness::with_nodes(vec![ManagerConfig::default()], vec![LdkNode::config()]).await;
    let relay = h.connect_via_relay(0, 0).await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    let amount = 20_000_000;
    let durable = |h: &Harness| {
        h.vigil().with_manager(|m| m.chain_monitor().durable_update_id(&channel_id)).expect("a monitor")
    };
    let invoice = |h: &Harness| {
        h.vigil().with_manager(|m| m.create_invoice(Some(amount), "reconnect", 3600)).expect("an invoice")
    };
    let pay = |h: &Harness, invoice: &Bolt11Invoice| {
        let hash = PaymentHash(invoice.payment_hash().to_byte_array());
        h.ldk()
            .manager
            .pay_for_bolt11_invoice(
                invoice,
                LdkPaymentId(hash.0),
                None,
                RouteParametersConfig::default(),
                Retry::Attempts(0),
            )
            .unwrap_or_else(|e| panic!("LDK refused to pay: {e:?}"));
        hash
    };

    // 1. LDK's update_add_htlc and commitment_signed are lost: LDK sends
    // them again after channel_reestablish.
    let first = invoice(&h);
    relay.black_hole(Direction::ToTarget);
    let hash = pay(&h, &first);
    h.wait_for("LDK's update lost", |_| (relay.dropped(Direction::ToTarget) > 0).then_some(())).await;
    cut_and_reconnect(&mut h, &relay).await;
    vigil_claims(&mut h, hash, amount).await;
    h.settle().await;

    // 2. Vigil takes the HTLC and commits to it (its monitor holds the new
    // commitment), but its revoke_and_ack and commitment_signed are lost.
    let second = invoice(&h);
    let before = durable(&h);
    relay.black_hole(Direction::FromTarget);
    let hash = pay(&h, &second);
    h.wait_for("Vigil's answer to the new HTLC lost", |h| {
        (durable(h) > before && relay.dropped(Direction::FromTarget) > 0).then_some(())
    })
    .await;
    assert_eq!(ldk_channel(&h, 0, channel_id).pending_outbound_htlcs.len(), 1, "the HTLC is in flight");
    cut_and_reconnect(&mut h, &relay).await;
    vigil_claims(&mut h, hash, amount).await;
    h.settle().await;

    // 3. Vigil claims; LDK takes the preimage (PaymentSent) but its
    // revoke_and_ack and commitment_signed are lost.
    let third = invoice(&h);
    let hash = pay(&h, &third);
    let claimable = h
        .wait_vigil(
            "PaymentClaimable",
            |e| matches!(e, VigilEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let VigilEvent::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched above") };
    relay.black_hole(Direction::ToTarget);
    h.vigil().with_manager(|m| m.claim_funds(purpose.preimage())).expect("Vigil claims");
    h.wait_ldk(
        "PaymentSent",
        |e| matches!(e, LdkEvent::PaymentSent { payment_hash, .. } if *payment_hash == hash),
    )
    .await;
    h.wait_for("LDK's answer to the fulfill lost", |_| {
        (relay.dropped(Direction::ToTarget) > 0).then_some(())
    })
    .await;
    cut_and_reconnect(&mut h, &relay).await;
    h.wait_vigil(
        "PaymentClaimed",
        |e| matches!(e, VigilEvent::PaymentClaimed { payment_hash, .. } if *payment_hash == hash),
    )
    .await;
    h.wait_for("the channel settled on both sides", |h| {
        let view = ldk_channel(h, 0, channel_id);
        let settled = view.pending_inbound_htlcs.is_empty() && view.pending_outbound_htlcs.is_empty();
        (settled && vigil_balance(h, channel_id) == 3 * amount).then_some(())
    })
    .await;
    assert!(h.usable(Who::Vigil(0), channel_id) && h.usable(Who::Ldk(0), channel_id), "{}", h.report());
    assert!(h.closures().is_empty(), "no channel closed: {:?}", h.closures());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

/// The transaction spending `funding`, once it is in the mempool.
async fn closing_tx(h: &mut Harness, funding: OutPoint) -> Transaction {
    h.wait_for("a closing transaction in the mempool", |h| {
        h.chain.mempool().expect("mempool").into_iter().find(|tx| {
            tx.input.iter().any(|i| {
                i.previous_output.txid == funding.txid && i.previous_output.vout == u32::from(funding.index)
            })
        })
    })
    .await
}

/// Mines until Vigil reports `channel_id` closed (at most seven blocks),
/// then checks both sides are done with it.
async fn vigil_sees_close(h: &mut Harness, channel_id: ChannelId, closing_txid: Txid) {
    for _ in 0..7 {
        h.mine(1).await;
        if h.vigil_events[0]
            .iter()
            .any(|e| matches!(e, VigilEvent::ChannelClosed { channel_id: c, .. } if *c == channel_id))
        {
            break;
        }
    }
    h.wait_vigil(
        "ChannelClosed",
        |e| matches!(e, VigilEvent::ChannelClosed { channel_id: c, .. } if *c == channel_id),
    )
    .await;
    let info = h.chain.transaction(&closing_txid).expect("chain").expect("the closing transaction is known");
    assert!(info.block.is_some(), "the closing transaction is mined: {info:?}");
    assert!(
        h.ldk().manager.list_channels().iter().all(|c| c.channel_id != channel_id),
        "LDK forgot the channel"
    );
    let vigil_channels = h.vigil().with_manager(|m| m.list_channels());
    assert!(
        vigil_channels
            .iter()
            .filter(|c| c.channel_id == channel_id)
            .all(|c| !c.usable && matches!(c.phase, vigil_core::channel::Phase::Closed(_))),
        "Vigil's channel is closed: {vigil_channels:?}"
    );
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}

/// A cooperative close of a channel LDK opened and then paid Vigil 100 000
/// sat on, started by Vigil or by LDK.
async fn close_cooperatively(started_by_vigil: bool) {
    let mut h = Harness::new().await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    ldk_pays_vigil(&mut h, 100_000_000).await;
    h.settle().await;
    let funding = ldk_channel(&h, 0, channel_id).funding_txo.expect("LDK knows the funding outpoint");
    if started_by_vigil {
        h.vigil()
            .with_manager(|m| m.close_channel(channel_id))
            .unwrap_or_else(|e| panic!("Vigil close_channel: {e}"));
    } else {
        let vigil_id = h.vigil().node_id();
        h.ldk()
            .manager
            .close_channel(&channel_id, &vigil_id)
            .unwrap_or_else(|e| panic!("LDK close_channel: {e:?}"));
    }
    let closing = closing_tx(&mut h, funding).await;
    let closed = h
        .wait_ldk(
            "ChannelClosed",
            |e| matches!(e, LdkEvent::ChannelClosed { channel_id: c, .. } if *c == channel_id),
        )
        .await;
    let expected = if started_by_vigil {
        ClosureReason::CounterpartyInitiatedCooperativeClosure
    } else {
        ClosureReason::LocallyInitiatedCooperativeClosure
    };
    assert!(
        matches!(&closed, LdkEvent::ChannelClosed { reason, .. } if *reason == expected),
        "LDK saw a cooperative close started by the right side: {closed:?}"
    );
    // Vigil's output: what it was paid (LDK, the funder, pays the fee).
    assert!(
        closing.output.iter().any(|o| o.value.to_sat() == 100_000),
        "the closing transaction pays Vigil its 100 000 sat: {closing:?}"
    );
    vigil_sees_close(&mut h, channel_id, closing.compute_txid()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_close_with_ldk() {
    close_cooperatively(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ldk_initiated_close() {
    close_cooperatively(false).await;
}
