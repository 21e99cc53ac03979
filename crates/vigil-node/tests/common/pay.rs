//! Payments between Vigil node 0 and an LDK node (node 0 unless an `_at`
//! variant names another) of a [`Harness`], carried
//! to the end on both sides (claimable, claimed, sent), and the balances
//! and channel views the tests check afterwards.

use bitcoin::hashes::{sha256, Hash};
use lightning::bolt11_invoice::{Bolt11InvoiceDescription, Description};
use lightning::events::{Event as LdkEvent, PaymentPurpose};
use lightning::ln::channel_state::ChannelDetails as LdkChannelDetails;
use lightning::ln::channelmanager::{Bolt11InvoiceParameters, PaymentId as LdkPaymentId, Retry};
use lightning::ln::types::ChannelId;
use lightning::routing::router::RouteParametersConfig;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use vigil_core::manager::{Event as VigilEvent, PaymentId as VigilPaymentId};

use super::Harness;

/// The payment hash of `preimage`.
pub fn hash_of(preimage: &PaymentPreimage) -> PaymentHash {
    PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array())
}

/// LDK pays a Vigil invoice of `amount_msat`; Vigil claims it. Returns the
/// payment hash.
pub async fn ldk_pays_vigil(h: &mut Harness, amount_msat: u64) -> PaymentHash {
    ldk_pays_vigil_at(h, 0, amount_msat).await
}

/// [`ldk_pays_vigil`] from LDK node `l` (to Vigil node 0).
pub async fn ldk_pays_vigil_at(h: &mut Harness, l: usize, amount_msat: u64) -> PaymentHash {
    let invoice = h
        .vigil()
        .with_manager(|m| m.create_invoice(Some(amount_msat), "LDK pays Vigil", 3600))
        .expect("Vigil makes an invoice");
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.ldks[l]
        .manager
        .pay_for_bolt11_invoice(
            &invoice,
            LdkPaymentId(hash.0),
            None,
            RouteParametersConfig::default(),
            Retry::Attempts(0),
        )
        .unwrap_or_else(|e| panic!("LDK refused to pay Vigil's invoice: {e:?}\n{}", h.report()));
    vigil_claims_at(h, l, hash, amount_msat).await;
    hash
}

/// Vigil waits for the payment `hash` of `amount_msat`, claims it, and LDK
/// learns the preimage (with no routing fee).
pub async fn vigil_claims(h: &mut Harness, hash: PaymentHash, amount_msat: u64) {
    vigil_claims_at(h, 0, hash, amount_msat).await;
}

/// [`vigil_claims`] of a payment from LDK node `l`.
pub async fn vigil_claims_at(h: &mut Harness, l: usize, hash: PaymentHash, amount_msat: u64) {
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
    h.vigil().with_manager(|m| m.claim_funds(purpose.preimage())).expect("Vigil claims");
    let claimed = h
        .wait_vigil(
            "PaymentClaimed",
            |e| matches!(e, VigilEvent::PaymentClaimed { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    assert!(matches!(claimed, VigilEvent::PaymentClaimed { amount_msat: a, .. } if a == amount_msat));
    let sent = h
        .wait_ldk_at(
            l,
            "PaymentSent",
            |e| matches!(e, LdkEvent::PaymentSent { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentSent { payment_preimage, fee_paid_msat, .. } = sent else {
        unreachable!("matched above")
    };
    assert_eq!(payment_preimage, purpose.preimage(), "LDK learns the preimage Vigil claimed with");
    assert_eq!(fee_paid_msat.unwrap_or(0), 0, "a direct payment pays no routing fee");
}

/// An LDK invoice (made by `create_bolt11_invoice`) of LDK node `i`.
pub fn ldk_invoice(h: &Harness, i: usize, amount_msat: u64) -> lightning::bolt11_invoice::Bolt11Invoice {
    let description = Description::new("Vigil pays LDK".into()).expect("a short description");
    h.ldks[i]
        .manager
        .create_bolt11_invoice(Bolt11InvoiceParameters {
            amount_msats: Some(amount_msat),
            description: Bolt11InvoiceDescription::Direct(description),
            invoice_expiry_delta_secs: Some(3600),
            ..Default::default()
        })
        .expect("LDK makes an invoice")
}

/// Vigil pays an LDK invoice of `amount_msat`; LDK claims it. Returns the
/// channels LDK received the payment over (one per part).
pub async fn vigil_pays_ldk(h: &mut Harness, amount_msat: u64, payment_id: [u8; 32]) -> Vec<ChannelId> {
    vigil_pays_ldk_at(h, 0, amount_msat, payment_id).await
}

/// [`vigil_pays_ldk`] to LDK node `l` (from Vigil node 0).
pub async fn vigil_pays_ldk_at(
    h: &mut Harness,
    l: usize,
    amount_msat: u64,
    payment_id: [u8; 32],
) -> Vec<ChannelId> {
    let invoice = ldk_invoice(h, l, amount_msat);
    let hash = PaymentHash(invoice.payment_hash().to_byte_array());
    h.vigil()
        .with_manager(|m| m.pay_invoice(&invoice, None, VigilPaymentId(payment_id)))
        .unwrap_or_else(|e| panic!("Vigil refused to pay LDK's invoice: {e}\n{}", h.report()));
    let claimable = h
        .wait_ldk_at(
            l,
            "PaymentClaimable",
            |e| matches!(e, LdkEvent::PaymentClaimable { payment_hash, .. } if *payment_hash == hash),
        )
        .await;
    let LdkEvent::PaymentClaimable { amount_msat: got, purpose, receiving_channel_ids, .. } = claimable
    else {
        unreachable!("matched above")
    };
    assert_eq!(got, amount_msat, "LDK sees the amount Vigil sent");
    assert!(matches!(purpose, PaymentPurpose::Bolt11InvoicePayment { .. }), "{purpose:?}");
    let preimage = purpose.preimage().expect("LDK knows the preimage of its own invoice");
    h.ldks[l].manager.claim_funds(preimage);
    h.wait_ldk_at(
        l,
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
    receiving_channel_ids.into_iter().map(|(c, _)| c).collect()
}

/// The balance (HTLCs excluded, in msat) of the Vigil node holding
/// `channel_id`.
pub fn vigil_balance(h: &Harness, channel_id: ChannelId) -> u64 {
    h.vigils
        .iter()
        .flat_map(|v| v.with_manager(|m| m.list_channels()))
        .find(|c| c.channel_id == channel_id)
        .map_or(0, |c| c.balance_msat)
}

/// LDK node `i`'s view of `channel_id`.
pub fn ldk_channel(h: &Harness, i: usize, channel_id: ChannelId) -> LdkChannelDetails {
    h.ldks[i]
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == channel_id)
        .unwrap_or_else(|| panic!("LDK {i} has no channel {channel_id}\n{}", h.report()))
}
