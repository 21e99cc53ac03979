//! Interoperability with LDK 0.2.7: a Vigil `Node` and an in-process LDK
//! node talk BOLT 2 over loopback TCP (both behind LDK's `PeerManager` and
//! `lightning-net-tokio`), on one embedded regtest chain.
//!
//! Covered: channel opening in both directions (static_remote_key, no
//! anchors, unannounced), payments both ways, a payee rejection LDK must
//! attribute to the payee, and a cooperative close started by Vigil.
//!
//! Set `VIGIL_LDK_LOG=debug` (or `trace`) to see LDK's log on stderr.

mod common;

use bitcoin::hashes::{sha256, Hash};
use lightning::bolt11_invoice::{Bolt11InvoiceDescription, Description};
use lightning::events::{ClosureReason, Event as LdkEvent, PaymentFailureReason, PaymentPurpose};
use lightning::ln::channelmanager::{Bolt11InvoiceParameters, PaymentId as LdkPaymentId, Retry};
use lightning::ln::types::ChannelId;
use lightning::routing::router::RouteParametersConfig;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use vigil_chain::ChainSource;
use vigil_core::manager::{Event as VigilEvent, PaymentId as VigilPaymentId};

use common::Harness;

fn hash_of(preimage: &PaymentPreimage) -> PaymentHash {
    PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array())
}

/// LDK pays a Vigil invoice of `amount_msat`; Vigil claims it. Returns the
/// payment hash.
async fn ldk_pays_vigil(h: &mut Harness, amount_msat: u64) -> PaymentHash {
    let invoice = h
        .vigil
        .with_manager(|m| m.create_invoice(Some(amount_msat), "LDK pays Vigil", 3600))
        .expect("Vigil makes an invoice");
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.ldk
        .manager
        .pay_for_bolt11_invoice(
            &invoice,
            LdkPaymentId(hash.0),
            None,
            RouteParametersConfig::default(),
            Retry::Attempts(0),
        )
        .unwrap_or_else(|e| panic!("LDK refused to pay Vigil's invoice: {e:?}\n{}", h.report()));
    let claimable = h
        .wait_vigil(
            "PaymentClaimable",
            |e| matches!(e, VigilEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let VigilEvent::PaymentClaimable { amount_msat: got, purpose, .. } = claimable else {
        unreachable!("matched above")
    };
    assert_eq!(got, amount_msat, "Vigil sees the amount LDK sent");
    assert_eq!(hash_of(&purpose.preimage()), hash, "Vigil derives the invoice's preimage");
    h.vigil.with_manager(|m| m.claim_funds(purpose.preimage())).expect("Vigil claims");
    let claimed = h
        .wait_vigil(
            "PaymentClaimed",
            |e| matches!(e, VigilEvent::PaymentClaimed { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    assert!(matches!(claimed, VigilEvent::PaymentClaimed { amount_msat: a, .. } if a == amount_msat));
    let sent = h
        .wait_ldk(
            "PaymentSent",
            |e| matches!(e, LdkEvent::PaymentSent { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentSent { payment_preimage, fee_paid_msat, .. } = sent else {
        unreachable!("matched above")
    };
    assert_eq!(payment_preimage, purpose.preimage(), "LDK learns the preimage Vigil claimed with");
    assert_eq!(fee_paid_msat.unwrap_or(0), 0, "a direct payment pays no routing fee");
    hash
}

/// Vigil pays an LDK invoice of `amount_msat`; LDK claims it.
async fn vigil_pays_ldk(h: &mut Harness, amount_msat: u64, payment_id: [u8; 32]) {
    let description = Description::new("Vigil pays LDK".into()).expect("a short description");
    let invoice = h
        .ldk
        .manager
        .create_bolt11_invoice(Bolt11InvoiceParameters {
            amount_msats: Some(amount_msat),
            description: Bolt11InvoiceDescription::Direct(description),
            invoice_expiry_delta_secs: Some(3600),
            ..Default::default()
        })
        .expect("LDK makes an invoice");
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.vigil
        .with_manager(|m| m.pay_invoice(&invoice, None, VigilPaymentId(payment_id)))
        .unwrap_or_else(|e| panic!("Vigil refused to pay LDK's invoice: {e}\n{}", h.report()));
    let claimable = h
        .wait_ldk(
            "PaymentClaimable",
            |e| matches!(e, LdkEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentClaimable { amount_msat: got, purpose, .. } = claimable else {
        unreachable!("matched above")
    };
    assert_eq!(got, amount_msat, "LDK sees the amount Vigil sent");
    assert!(matches!(purpose, PaymentPurpose::Bolt11InvoicePayment { .. }), "{purpose:?}");
    let preimage = purpose.preimage().expect("LDK knows the preimage of its own invoice");
    h.ldk.manager.claim_funds(preimage);
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
    let VigilEvent::PaymentSent { payment_id: id, preimage: got, fee_paid_msat, .. } = sent else {
        unreachable!("matched above")
    };
    assert_eq!(id, VigilPaymentId(payment_id));
    assert_eq!(got, preimage, "Vigil learns LDK's preimage");
    assert_eq!(fee_paid_msat, 0, "a direct payment pays no routing fee");
}

/// Vigil's balance on `channel_id` (HTLCs excluded), in msat.
fn vigil_balance(h: &Harness, channel_id: ChannelId) -> u64 {
    h.vigil
        .with_manager(|m| m.list_channels())
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .map_or(0, |c| c.balance_msat)
}

#[tokio::test(flavor = "multi_thread")]
async fn ldk_opens_to_vigil_and_pays_both_ways() {
    let mut h = Harness::new().await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    let ldk_channel = h
        .ldk
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("LDK's channel");
    assert!(ldk_channel.is_outbound && !ldk_channel.is_announced);
    let channel_type = ldk_channel.channel_type.expect("a negotiated channel type");
    assert!(channel_type.supports_static_remote_key() && !channel_type.supports_anchors_zero_fee_htlc_tx());

    ldk_pays_vigil(&mut h, 100_000_000).await;
    h.settle().await;
    assert_eq!(vigil_balance(&h, channel_id), 100_000_000, "Vigil's ledger holds what it was paid");

    vigil_pays_ldk(&mut h, 30_000_000, [1; 32]).await;
    h.settle().await;
    assert_eq!(vigil_balance(&h, channel_id), 70_000_000, "Vigil's ledger after paying LDK back");
    let ldk_channel = h
        .ldk
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("LDK's channel");
    assert_eq!(
        ldk_channel.inbound_capacity_msat + ldk_channel.unspendable_punishment_reserve.unwrap_or(0) * 1000,
        70_000_000,
        "LDK counts Vigil's balance the same (inbound capacity plus Vigil's reserve)\n{}",
        h.report()
    );
    assert!(ldk_channel.pending_inbound_htlcs.is_empty() && ldk_channel.pending_outbound_htlcs.is_empty());
    assert_eq!(h.vigil.last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn vigil_opens_to_ldk_and_pays() {
    let mut h = Harness::new().await;
    let channel_id = h.vigil_opens(1_000_000, 0).await;
    let ldk_channel = h
        .ldk
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("LDK's channel");
    assert!(!ldk_channel.is_outbound && !ldk_channel.is_announced);
    let channel_type = ldk_channel.channel_type.expect("a negotiated channel type");
    assert!(channel_type.supports_static_remote_key() && !channel_type.supports_anchors_zero_fee_htlc_tx());

    let before = vigil_balance(&h, channel_id);
    vigil_pays_ldk(&mut h, 50_000_000, [2; 32]).await;
    h.settle().await;
    assert_eq!(before - vigil_balance(&h, channel_id), 50_000_000, "Vigil's ledger after paying LDK");
    let ldk_channel = h
        .ldk
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("LDK's channel");
    assert!(ldk_channel.pending_inbound_htlcs.is_empty() && ldk_channel.pending_outbound_htlcs.is_empty());
    assert_eq!(h.vigil.last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn vigil_rejects_with_a_code_ldk_decodes() {
    let mut h = Harness::new().await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    let invoice =
        h.vigil.with_manager(|m| m.create_invoice(Some(20_000_000), "refused", 3600)).expect("invoice");
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.ldk
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
    assert!(h.vigil.with_manager(|m| m.fail_htlc_backwards(&hash)), "Vigil had the payment to refuse");

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
    let ldk_channel = h
        .ldk
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .expect("LDK's channel");
    assert!(ldk_channel.pending_outbound_htlcs.is_empty(), "the HTLC is gone on LDK's side");
    assert!(ldk_channel.is_usable, "the channel stays usable");
    assert_eq!(h.vigil.last_error(), None, "{}", h.report());
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_close_with_ldk() {
    let mut h = Harness::new().await;
    let channel_id = h.ldk_opens(1_000_000, 0).await;
    ldk_pays_vigil(&mut h, 100_000_000).await;
    h.settle().await;
    let funding = h
        .ldk
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .and_then(|c| c.funding_txo)
        .expect("LDK knows the funding outpoint");

    h.vigil
        .with_manager(|m| m.close_channel(channel_id))
        .unwrap_or_else(|e| panic!("Vigil close_channel: {e}"));
    let closing = h
        .wait_for("a closing transaction in the mempool", |h| {
            h.chain.mempool().expect("mempool").into_iter().find(|tx| {
                tx.input.iter().any(|i| {
                    i.previous_output.txid == funding.txid
                        && i.previous_output.vout == u32::from(funding.index)
                })
            })
        })
        .await;
    let closed = h
        .wait_ldk(
            "ChannelClosed",
            |e| matches!(e, LdkEvent::ChannelClosed { channel_id: c, .. } if *c == channel_id),
        )
        .await;
    assert!(
        matches!(
            closed,
            LdkEvent::ChannelClosed { reason: ClosureReason::CounterpartyInitiatedCooperativeClosure, .. }
        ),
        "LDK saw a cooperative close started by Vigil: {closed:?}"
    );
    // Vigil's output: what it was paid (it pays no closing fee; LDK funded).
    assert!(
        closing.output.iter().any(|o| o.value.to_sat() == 100_000),
        "the closing transaction pays Vigil its 100 000 sat: {closing:?}"
    );
    let closing_txid = closing.compute_txid();
    for _ in 0..7 {
        h.mine(1).await;
        if h.vigil_events
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
        h.ldk.manager.list_channels().iter().all(|c| c.channel_id != channel_id),
        "LDK forgot the channel"
    );
    let vigil_channels = h.vigil.with_manager(|m| m.list_channels());
    assert!(
        vigil_channels
            .iter()
            .filter(|c| c.channel_id == channel_id)
            .all(|c| !c.usable && matches!(c.phase, vigil_core::channel::Phase::Closed(_))),
        "Vigil's channel is closed: {vigil_channels:?}"
    );
    assert_eq!(h.vigil.last_error(), None, "{}", h.report());
}
