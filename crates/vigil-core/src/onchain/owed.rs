//! What a closed channel owes us on chain, read from the monitor alone.
//!
//! The funding spend decides the case: our commitment, an unrevoked
//! commitment of the counterparty, a revoked one, or the cooperative close
//! (which pays our shutdown script directly and owes nothing more). Each
//! output we can take is listed with how to spend it and from which height
//! a spend can be mined. Outputs of the transactions that spend the
//! commitment's outputs are listed too (level 2): the delayed output of our
//! own HTLC transactions, and the output of the counterparty's HTLC
//! transactions spent from a revoked commitment, which is ours to take with
//! the revocation key.
//!
//! Everything is found by script: an output is owed when its script is one
//! we can sign for. No list of expected outputs is stored, so a reorg or a
//! restart simply recomputes the same list.

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{OutPoint, ScriptBuf, Transaction, TxOut};
use lightning::ln::chan_utils::{
    get_countersigner_payment_script, get_htlc_redeemscript, get_revokeable_redeemscript,
    HTLCOutputInCommitment, TxCreationKeys,
};
use lightning::sign::{
    ChannelDerivationParameters, DelayedPaymentOutputDescriptor, HTLCDescriptor,
    StaticPaymentOutputDescriptor,
};
use lightning::types::payment::PaymentPreimage;

use super::ClaimKind;
use crate::channel::commitment::commitment_index;
use crate::monitor::ChannelMonitor;

/// How an owed output is spent.
#[derive(Debug, Clone)]
pub(super) enum Spend {
    /// Our delayed output (`to_local`, or the output of our HTLC
    /// transaction), after its CSV delay.
    Delayed(Box<DelayedPaymentOutputDescriptor>),
    /// Our `to_remote` output on the counterparty's commitment.
    StaticPayment(Box<StaticPaymentOutputDescriptor>),
    /// An HTLC output of our commitment, through the second-stage
    /// transaction the counterparty signed.
    HolderHtlc(Box<HTLCDescriptor>),
    /// An HTLC output of the counterparty's commitment, spent directly: with
    /// the preimage for an HTLC they offered, after the timeout for one we
    /// offered.
    CounterpartyHtlc {
        htlc: HTLCOutputInCommitment,
        point: PublicKey,
        script: ScriptBuf,
        preimage: Option<PaymentPreimage>,
    },
    /// A revokeable output of a revoked commitment (their `to_local`, or the
    /// output of their HTLC transaction), with the revocation key.
    RevokedOutput { secret: SecretKey },
    /// An HTLC output of a revoked commitment, with the revocation key.
    RevokedHtlc { secret: SecretKey, htlc: HTLCOutputInCommitment, script: ScriptBuf, revocation: PublicKey },
}

/// An output the channel owes us.
#[derive(Debug, Clone)]
pub(super) struct Owed {
    pub kind: ClaimKind,
    pub outpoint: OutPoint,
    pub output: TxOut,
    /// The first block height a spend can be mined at (CSV and CLTV).
    pub mineable_at: u32,
    /// The height after which the counterparty may take the output
    /// instead, for HTLCs whose other path opens later.
    pub deadline: Option<u32>,
    pub spend: Spend,
}

impl ChannelMonitor {
    /// Every output the confirmed funding spend and its spends owe us, with
    /// how to spend each.
    pub(super) fn owed(&self) -> Vec<Owed> {
        let Some(spend) = &self.funding_spend else { return Vec::new() };
        let Some(tx) = &spend.tx else { return Vec::new() };
        if self.closing_tx.as_ref().is_some_and(|c| c.compute_txid() == spend.txid) {
            return Vec::new();
        }
        let secp = Secp256k1::new();
        let mut owed = Vec::new();
        if self.holder.as_ref().is_some_and(|(h, _)| h.trust().txid() == spend.txid) {
            self.owed_on_holder(tx, spend.height, &mut owed);
            return owed;
        }
        self.owed_to_remote(tx, spend.height, &mut owed);
        if let Some(c) = self.counterparty.iter().find(|c| c.txid == spend.txid) {
            let keys = c.commitment.trust().keys().clone();
            let point = c.commitment.per_commitment_point();
            self.owed_counterparty_htlcs(
                tx,
                spend.height,
                c.commitment.nondust_htlcs(),
                &keys,
                point,
                &mut owed,
            );
        } else if let Some(r) = self.revoked.iter().find(|r| r.txid == spend.txid) {
            self.owed_on_revoked(tx, spend.height, r.number, &r.htlcs, &secp, &mut owed);
        }
        owed
    }

    /// Every HTLC output of the confirmed commitment, whoever it belongs
    /// to: until each is spent, an HTLC of the channel is undecided (a
    /// preimage may still come, or the counterparty may still time it out).
    pub(super) fn commitment_htlc_outpoints(&self) -> Vec<(OutPoint, u32)> {
        let Some(spend) = &self.funding_spend else { return Vec::new() };
        let txid = spend.txid;
        let htlcs: Vec<HTLCOutputInCommitment> =
            if let Some((h, _)) = self.holder.as_ref().filter(|(h, _)| h.trust().txid() == txid) {
                h.nondust_htlcs().clone()
            } else if let Some(c) = self.counterparty.iter().find(|c| c.txid == txid) {
                c.commitment.nondust_htlcs().clone()
            } else if let Some(r) = self.revoked.iter().find(|r| r.txid == txid) {
                r.htlcs.clone()
            } else {
                Vec::new()
            };
        htlcs
            .iter()
            .filter_map(|h| h.transaction_output_index.map(|vout| (OutPoint { txid, vout }, h.cltv_expiry)))
            .collect()
    }

    fn channel_type(&self) -> &lightning::types::features::ChannelTypeFeatures {
        &self.params.channel_type_features
    }

    fn anchors(&self) -> bool {
        self.channel_type().supports_anchors_zero_fee_htlc_tx()
    }

    /// Our commitment confirmed: `to_local` and the second-stage outputs
    /// after the CSV delay the counterparty chose, and the HTLC outputs
    /// through their second-stage transactions.
    fn owed_on_holder(&self, tx: &Transaction, height: u32, owed: &mut Vec<Owed>) {
        let (holder, _) = self.holder.as_ref().expect("the caller checked the holder commitment");
        let trusted = holder.trust();
        let keys = trusted.keys();
        let txid = trusted.txid();
        let delay = self.params.as_holder_broadcastable().contest_delay();
        let script =
            get_revokeable_redeemscript(&keys.revocation_key, delay, &keys.broadcaster_delayed_payment_key)
                .to_p2wsh();
        let delayed = |outpoint: OutPoint, output: &TxOut| DelayedPaymentOutputDescriptor {
            outpoint: ldk_outpoint(outpoint),
            per_commitment_point: holder.per_commitment_point(),
            to_self_delay: delay,
            output: output.clone(),
            revocation_pubkey: keys.revocation_key,
            channel_keys_id: self.snapshot.channel_keys_id,
            channel_value_satoshis: self.params.channel_value_satoshis,
            channel_transaction_parameters: Some(self.params.clone()),
        };
        // `to_local`, and (level 2) the outputs of our HTLC transactions:
        // the same script.
        let level_two = self.spends.iter().map(|s| (&s.tx, s.height));
        for (t, h) in std::iter::once((tx, height)).chain(level_two) {
            let t_txid = t.compute_txid();
            for (vout, output) in t.output.iter().enumerate().filter(|(_, o)| o.script_pubkey == script) {
                let outpoint = OutPoint { txid: t_txid, vout: vout as u32 };
                owed.push(Owed {
                    kind: ClaimKind::DelayedOutput,
                    outpoint,
                    output: output.clone(),
                    mineable_at: h + u32::from(delay),
                    deadline: None,
                    spend: Spend::Delayed(Box::new(delayed(outpoint, output))),
                });
            }
        }
        let anchors_delay = u32::from(self.anchors());
        for (htlc, counterparty_sig) in holder.nondust_htlcs().iter().zip(&holder.counterparty_htlc_sigs) {
            let vout = htlc.transaction_output_index.expect("nondust HTLCs have an output");
            let preimage = if htlc.offered { None } else { self.preimages.get(&htlc.payment_hash).copied() };
            if !htlc.offered && preimage.is_none() {
                continue; // theirs after the timeout, unless we learn the preimage
            }
            let (kind, mineable_at, deadline) = if htlc.offered {
                (ClaimKind::HtlcTimeout, (htlc.cltv_expiry + 1).max(height + anchors_delay), None)
            } else {
                (ClaimKind::HtlcSuccess, height + anchors_delay, Some(htlc.cltv_expiry))
            };
            let desc = HTLCDescriptor {
                channel_derivation_parameters: ChannelDerivationParameters {
                    value_satoshis: self.params.channel_value_satoshis,
                    keys_id: self.snapshot.channel_keys_id,
                    transaction_parameters: self.params.clone(),
                },
                commitment_txid: txid,
                per_commitment_number: holder.commitment_number(),
                per_commitment_point: holder.per_commitment_point(),
                feerate_per_kw: holder.negotiated_feerate_per_kw(),
                htlc: htlc.clone(),
                preimage,
                counterparty_sig: *counterparty_sig,
            };
            owed.push(Owed {
                kind,
                outpoint: OutPoint { txid, vout },
                output: tx.output[vout as usize].clone(),
                mineable_at,
                deadline,
                spend: Spend::HolderHtlc(Box::new(desc)),
            });
        }
    }

    /// Our `to_remote` output on a commitment of the counterparty's, found
    /// by its script (so even a commitment we do not know pays us).
    fn owed_to_remote(&self, tx: &Transaction, height: u32, owed: &mut Vec<Owed>) {
        let script =
            get_countersigner_payment_script(self.channel_type(), &self.params.holder_pubkeys.payment_point);
        let txid = tx.compute_txid();
        for (vout, output) in tx.output.iter().enumerate().filter(|(_, o)| o.script_pubkey == script) {
            let outpoint = OutPoint { txid, vout: vout as u32 };
            owed.push(Owed {
                kind: ClaimKind::ToRemote,
                outpoint,
                output: output.clone(),
                mineable_at: height + u32::from(self.anchors()),
                deadline: None,
                spend: Spend::StaticPayment(Box::new(StaticPaymentOutputDescriptor {
                    outpoint: ldk_outpoint(outpoint),
                    output: output.clone(),
                    channel_keys_id: self.snapshot.channel_keys_id,
                    channel_value_satoshis: self.params.channel_value_satoshis,
                    channel_transaction_parameters: Some(self.params.clone()),
                })),
            });
        }
    }

    /// HTLC outputs of an unrevoked counterparty commitment: those they
    /// offered with the preimage, those we offered after their timeout.
    fn owed_counterparty_htlcs(
        &self,
        tx: &Transaction,
        height: u32,
        htlcs: &[HTLCOutputInCommitment],
        keys: &TxCreationKeys,
        point: PublicKey,
        owed: &mut Vec<Owed>,
    ) {
        let txid = tx.compute_txid();
        let anchors_delay = u32::from(self.anchors());
        for htlc in htlcs {
            let Some(vout) = htlc.transaction_output_index else { continue };
            // `offered` is from the broadcaster's view: they offered it to us.
            let preimage = if htlc.offered { self.preimages.get(&htlc.payment_hash).copied() } else { None };
            if htlc.offered && preimage.is_none() {
                continue;
            }
            let (kind, mineable_at, deadline) = if htlc.offered {
                (ClaimKind::CounterpartyHtlcSuccess, height + anchors_delay, Some(htlc.cltv_expiry))
            } else {
                (ClaimKind::CounterpartyHtlcTimeout, (htlc.cltv_expiry + 1).max(height + anchors_delay), None)
            };
            owed.push(Owed {
                kind,
                outpoint: OutPoint { txid, vout },
                output: tx.output[vout as usize].clone(),
                mineable_at,
                deadline,
                spend: Spend::CounterpartyHtlc {
                    htlc: htlc.clone(),
                    point,
                    script: get_htlc_redeemscript(htlc, self.channel_type(), keys),
                    preimage,
                },
            });
        }
    }

    /// A revoked commitment confirmed: its `to_local`, every HTLC output,
    /// and the outputs of its second-stage HTLC transactions are ours with
    /// the revocation key.
    fn owed_on_revoked(
        &self,
        tx: &Transaction,
        height: u32,
        number: u64,
        htlcs: &[HTLCOutputInCommitment],
        secp: &Secp256k1<bitcoin::secp256k1::All>,
        owed: &mut Vec<Owed>,
    ) {
        let Some(secret) = self.secrets.get_secret(commitment_index(number)) else { return };
        let Ok(secret) = SecretKey::from_slice(&secret) else { return };
        let point = PublicKey::from_secret_key(secp, &secret);
        let counterparty = &self.params.counterparty_parameters.as_ref().expect("funded channel").pubkeys;
        let keys =
            TxCreationKeys::from_channel_static_keys(&point, counterparty, &self.params.holder_pubkeys, secp);
        let revokeable = get_revokeable_redeemscript(
            &keys.revocation_key,
            self.params.holder_selected_contest_delay,
            &keys.broadcaster_delayed_payment_key,
        )
        .to_p2wsh();
        let txid = tx.compute_txid();
        // Their `to_local`, and (level 2) the outputs of their HTLC
        // transactions: the same script, which they can take themselves
        // once its CSV delay (ours to choose) has passed.
        let delay = u32::from(self.params.holder_selected_contest_delay);
        let level_two = self.spends.iter().map(|s| (&s.tx, s.height));
        for (t, h) in std::iter::once((tx, height)).chain(level_two) {
            let t_txid = t.compute_txid();
            for (vout, output) in t.output.iter().enumerate().filter(|(_, o)| o.script_pubkey == revokeable) {
                owed.push(Owed {
                    kind: ClaimKind::Justice,
                    outpoint: OutPoint { txid: t_txid, vout: vout as u32 },
                    output: output.clone(),
                    mineable_at: h,
                    deadline: Some(h + delay),
                    spend: Spend::RevokedOutput { secret },
                });
            }
        }
        for htlc in htlcs {
            let Some(vout) = htlc.transaction_output_index else { continue };
            let script = get_htlc_redeemscript(htlc, self.channel_type(), &keys);
            let Some(output) = tx.output.get(vout as usize).filter(|o| o.script_pubkey == script.to_p2wsh())
            else {
                continue;
            };
            owed.push(Owed {
                kind: ClaimKind::Justice,
                outpoint: OutPoint { txid, vout },
                output: output.clone(),
                mineable_at: height,
                // Their second-stage transaction can take it after expiry
                // (timeout) or at once (success): hurry.
                deadline: Some(htlc.cltv_expiry),
                spend: Spend::RevokedHtlc {
                    secret,
                    htlc: htlc.clone(),
                    script,
                    revocation: keys.revocation_key.to_public_key(),
                },
            });
        }
    }
}

fn ldk_outpoint(o: OutPoint) -> lightning::chain::transaction::OutPoint {
    lightning::chain::transaction::OutPoint { txid: o.txid, index: o.vout as u16 }
}
