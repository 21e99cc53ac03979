//! Building commitment transactions from a channel's balances and HTLCs.
//!
//! Vigil decides what goes into a commitment (BOLT 3 "Commitment Transaction
//! Construction"): which HTLCs are trimmed as dust, the fee, the anchors, and
//! whether `to_local`/`to_remote` survive the dust limit. LDK's
//! [`CommitmentTransaction`] then lays out the transaction (scripts, BIP69
//! ordering with the CLTV tie-break, the obscured commitment number) so the
//! result can be signed by LDK's signers.

use bitcoin::secp256k1::{self, ecdsa::Signature, Message, PublicKey, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{ScriptBuf, Transaction};
use lightning::ln::chan_utils::{
    build_htlc_transaction, get_htlc_redeemscript, ChannelTransactionParameters, CommitmentTransaction,
    HTLCOutputInCommitment,
};
use lightning::types::payment::PaymentHash;

use crate::fees;

/// BOLT 3 counts commitment numbers up from 0, LDK counts the same numbers
/// down from 2^48 - 1 (the per-commitment index).
pub const INITIAL_COMMITMENT_INDEX: u64 = (1 << 48) - 1;

/// The per-commitment index of commitment `number`.
pub fn commitment_index(number: u64) -> u64 {
    INITIAL_COMMITMENT_INDEX - number
}

/// An HTLC to place in a commitment, seen from the broadcaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentHtlc<T> {
    /// The caller's handle for this HTLC (for example its id and direction).
    pub tag: T,
    /// Whether the broadcaster offered it.
    pub offered: bool,
    /// Its value.
    pub amount_msat: u64,
    /// Its expiry.
    pub cltv_expiry: u32,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
}

/// What one commitment holds, before trimming and fees.
#[derive(Debug, Clone)]
pub struct CommitmentSpec<T> {
    /// The BOLT 3 commitment number (0 for the first commitment).
    pub number: u64,
    /// The broadcaster's per-commitment point for this number.
    pub per_commitment_point: PublicKey,
    /// The broadcaster's balance, HTLCs excluded, before the fee.
    pub to_broadcaster_msat: u64,
    /// The countersignatory's balance, HTLCs excluded, before the fee.
    pub to_countersignatory_msat: u64,
    /// The fee rate.
    pub feerate_per_kw: u32,
    /// The broadcaster's dust limit.
    pub dust_limit_sat: u64,
    /// Every HTLC committed, trimmed or not.
    pub htlcs: Vec<CommitmentHtlc<T>>,
}

/// A built commitment and how its HTLCs map onto it.
#[derive(Debug, Clone)]
pub struct BuiltCommitment<T> {
    /// LDK's commitment transaction, ready to sign.
    pub tx: CommitmentTransaction,
    /// The untrimmed HTLCs, in output order (the order of HTLC signatures).
    pub htlcs: Vec<(T, HTLCOutputInCommitment)>,
    /// The trimmed HTLCs, whose value went to the fee.
    pub trimmed: Vec<T>,
    /// The fee the transaction pays: inputs minus outputs.
    pub fee_sat: u64,
}

/// Builds the commitment `spec` describes, broadcast by the holder
/// (`holder_is_broadcaster`) or by the counterparty. `params` must be
/// populated (counterparty keys and funding outpoint known).
///
/// # Panics
///
/// If `params` is not populated.
pub fn build_commitment<T: Clone>(
    params: &ChannelTransactionParameters,
    holder_is_broadcaster: bool,
    spec: CommitmentSpec<T>,
    secp: &Secp256k1<secp256k1::All>,
) -> BuiltCommitment<T> {
    let anchors = params.channel_type_features.supports_anchors_zero_fee_htlc_tx();
    let (untrimmed, trimmed): (Vec<_>, Vec<_>) = spec.htlcs.into_iter().partition(|h| {
        !fees::is_trimmed(h.amount_msat, h.offered, spec.feerate_per_kw, spec.dust_limit_sat, anchors)
    });
    let cost = fees::funder_commitment_cost_sat(spec.feerate_per_kw, untrimmed.len(), anchors);
    let mut to_broadcaster = spec.to_broadcaster_msat / 1000;
    let mut to_countersignatory = spec.to_countersignatory_msat / 1000;
    let broadcaster_is_funder = holder_is_broadcaster == params.is_outbound_from_holder;
    // BOLT 3: a funder that cannot pay the whole fee pays what it has; its
    // output is then omitted (Appendix C, "fee greater than funder amount").
    if broadcaster_is_funder {
        to_broadcaster = to_broadcaster.saturating_sub(cost);
    } else {
        to_countersignatory = to_countersignatory.saturating_sub(cost);
    }
    if to_broadcaster < spec.dust_limit_sat {
        to_broadcaster = 0;
    }
    if to_countersignatory < spec.dust_limit_sat {
        to_countersignatory = 0;
    }
    let nondust: Vec<HTLCOutputInCommitment> = untrimmed
        .iter()
        .map(|h| HTLCOutputInCommitment {
            offered: h.offered,
            amount_msat: h.amount_msat,
            cltv_expiry: h.cltv_expiry,
            payment_hash: h.payment_hash,
            transaction_output_index: None,
        })
        .collect();
    let directed = if holder_is_broadcaster {
        params.as_holder_broadcastable()
    } else {
        params.as_counterparty_broadcastable()
    };
    let tx = CommitmentTransaction::new(
        commitment_index(spec.number),
        &spec.per_commitment_point,
        to_broadcaster,
        to_countersignatory,
        spec.feerate_per_kw,
        nondust,
        &directed,
        secp,
    );
    // LDK sorted the HTLCs into output order; give each its caller's tag back.
    let mut unused: Vec<Option<CommitmentHtlc<T>>> = untrimmed.into_iter().map(Some).collect();
    let htlcs = tx
        .nondust_htlcs()
        .iter()
        .map(|out| {
            let slot = unused
                .iter_mut()
                .find(|slot| {
                    slot.as_ref().is_some_and(|h| {
                        h.offered == out.offered
                            && h.amount_msat == out.amount_msat
                            && h.cltv_expiry == out.cltv_expiry
                            && h.payment_hash == out.payment_hash
                    })
                })
                .expect("every output HTLC comes from the untrimmed list");
            (slot.take().expect("found as Some above").tag, out.clone())
        })
        .collect();
    let outputs: u64 =
        tx.trust().built_transaction().transaction.output.iter().map(|o| o.value.to_sat()).sum();
    let fee_sat = params.channel_value_satoshis.saturating_sub(outputs);
    BuiltCommitment { tx, htlcs, trimmed: trimmed.into_iter().map(|h| h.tag).collect(), fee_sat }
}

/// The second-stage transaction spending `htlc` from `commitment` (HTLC-success
/// for a received HTLC, HTLC-timeout for an offered one), and the HTLC
/// output's witness script. `contest_delay` is the broadcaster's `to_self_delay`.
///
/// # Panics
///
/// If `htlc` has no output in the commitment.
pub fn htlc_transaction(
    commitment: &CommitmentTransaction,
    htlc: &HTLCOutputInCommitment,
    contest_delay: u16,
) -> (Transaction, ScriptBuf) {
    let trusted = commitment.trust();
    let keys = trusted.keys();
    let features = trusted.channel_type_features();
    let tx = build_htlc_transaction(
        &trusted.txid(),
        commitment.negotiated_feerate_per_kw(),
        contest_delay,
        htlc,
        features,
        &keys.broadcaster_delayed_payment_key,
        &keys.revocation_key,
    );
    (tx, get_htlc_redeemscript(htlc, features, keys))
}

/// The sighash type of the countersignatory's HTLC signatures: `ALL`, or
/// `SINGLE|ANYONECANPAY` with zero-fee-HTLC anchors so fees can be added.
pub fn countersignatory_htlc_sighash_type(commitment: &CommitmentTransaction) -> EcdsaSighashType {
    if commitment.trust().channel_type_features().supports_anchors_zero_fee_htlc_tx() {
        EcdsaSighashType::SinglePlusAnyoneCanPay
    } else {
        EcdsaSighashType::All
    }
}

/// The message an HTLC transaction's signature commits to.
pub fn htlc_sighash(
    htlc_tx: &Transaction,
    witness_script: &ScriptBuf,
    htlc: &HTLCOutputInCommitment,
    sighash_type: EcdsaSighashType,
) -> Message {
    let hash = SighashCache::new(htlc_tx)
        .p2wsh_signature_hash(0, witness_script, htlc.to_bitcoin_amount(), sighash_type)
        .expect("input 0 exists in an HTLC transaction");
    Message::from_digest(hash.to_byte_array())
}

/// Verifies the counterparty's signatures over our `commitment` (the
/// funding input) and over its HTLC transactions.
///
/// # Errors
///
/// `Err(None)` if the commitment signature is invalid or the number of HTLC
/// signatures is wrong; `Err(Some(i))` if the i-th HTLC signature is invalid.
///
/// # Panics
///
/// If `params` is not populated.
pub fn verify_countersignatures(
    params: &ChannelTransactionParameters,
    commitment: &CommitmentTransaction,
    signature: &Signature,
    htlc_signatures: &[Signature],
    secp: &Secp256k1<secp256k1::All>,
) -> Result<(), Option<usize>> {
    let counterparty = &params.counterparty_parameters.as_ref().expect("populated parameters").pubkeys;
    let funding_script = lightning::ln::chan_utils::make_funding_redeemscript(
        &params.holder_pubkeys.funding_pubkey,
        &counterparty.funding_pubkey,
    );
    let trusted = commitment.trust();
    let sighash = trusted.built_transaction().get_sighash_all(&funding_script, params.channel_value_satoshis);
    secp.verify_ecdsa(&sighash, signature, &counterparty.funding_pubkey).map_err(|_| None)?;
    if htlc_signatures.len() != commitment.nondust_htlcs().len() {
        return Err(None);
    }
    let contest_delay = params.as_holder_broadcastable().contest_delay();
    let sighash_type = countersignatory_htlc_sighash_type(commitment);
    let key = trusted.keys().countersignatory_htlc_key.to_public_key();
    for (i, (htlc, sig)) in commitment.nondust_htlcs().iter().zip(htlc_signatures).enumerate() {
        let (tx, script) = htlc_transaction(commitment, htlc, contest_delay);
        let msg = htlc_sighash(&tx, &script, htlc, sighash_type);
        secp.verify_ecdsa(&msg, sig, &key).map_err(|_| Some(i))?;
    }
    Ok(())
}

use bitcoin::hashes::Hash as _;
