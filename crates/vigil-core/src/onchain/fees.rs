//! Claims that need fees from the wallet: anchor channels.
//!
//! With zero-fee-HTLC anchors our second-stage HTLC transactions carry no
//! fee (the counterparty signed them `SINGLE|ANYONECANPAY` so that we can
//! add some), and our commitment pays only the feerate agreed when it was
//! signed. The monitor cannot pay these fees from the claimed value, so it
//! describes what the transaction needs ([`FeeNeed`]) and the runtime's
//! wallet completes it: the need's input first, its outputs first, then
//! wallet inputs and change, at the target feerate. The monitor then signs
//! its own input last ([`ChannelMonitor::sign_fee_input`]), since its
//! signature commits to the whole transaction.
//!
//! - [`FeeNeedKind::HtlcFee`]: an HTLC-timeout or HTLC-success transaction
//!   of ours;
//! - [`FeeNeedKind::AnchorCpfp`]: a child spending our anchor output that
//!   pays for our unconfirmed commitment (child pays for parent).

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use lightning::ln::chan_utils::{
    build_keyed_anchor_input_witness, get_keyed_anchor_redeemscript, ANCHOR_INPUT_WITNESS_WEIGHT,
    HTLC_SUCCESS_INPUT_KEYED_ANCHOR_WITNESS_WEIGHT, HTLC_TIMEOUT_INPUT_KEYED_ANCHOR_WITNESS_WEIGHT,
};
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::InMemorySigner;

use super::owed::{Owed, Spend};
use super::ClaimKind;
use crate::monitor::ChannelMonitor;

/// The value of an anchor output (BOLT 3).
pub const ANCHOR_OUTPUT_SAT: u64 = 330;

/// What the wallet must add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeNeedKind {
    /// Fee inputs (and change) for our zero-fee HTLC transaction.
    HtlcFee,
    /// A child of our commitment spending our anchor output, paying for
    /// both.
    AnchorCpfp,
}

/// A transaction the wallet must fund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeNeed {
    /// What kind of funding.
    pub kind: FeeNeedKind,
    /// The claim it completes.
    pub claim: ClaimKind,
    /// The input that must come first: the HTLC output, or our anchor.
    pub outpoint: OutPoint,
    /// The output it spends.
    pub txout: TxOut,
    /// That input's sequence.
    pub sequence: Sequence,
    /// The weight of that input's witness, at most.
    pub satisfaction_weight: u64,
    /// Outputs that must come first, in order (the second-stage output of
    /// an HTLC transaction, which its `SINGLE` signature pairs with input 0).
    pub outputs: Vec<TxOut>,
    /// The transaction's lock time.
    pub lock_time: LockTime,
    /// For a child: the parent's weight and fee, which the child's fee must
    /// make up to the target feerate.
    pub parent: Option<(u64, u64)>,
    /// The feerate the transaction (with its parent, for a child) must
    /// reach, in satoshis per 1000 weight units.
    pub target_feerate_per_kw: u32,
}

impl FeeNeed {
    /// This need's transaction funded by one coin (`coin`, worth
    /// `coin_value`, whose witness weighs at most `coin_witness_weight`):
    /// the need's input and outputs first, the coin second, and its change
    /// to `change` last, at the fee [`FeeNeed::required_fee`] asks for the
    /// transaction with both witnesses at their largest. Unsigned; `None` if
    /// the coin cannot pay that fee.
    pub fn funded_by_one_coin(
        &self,
        coin: OutPoint,
        coin_value: Amount,
        change: ScriptBuf,
        coin_witness_weight: u64,
    ) -> Option<Transaction> {
        let mut tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: self.lock_time,
            input: vec![
                TxIn { previous_output: self.outpoint, sequence: self.sequence, ..TxIn::default() },
                TxIn { previous_output: coin, sequence: Sequence::ENABLE_RBF_NO_LOCKTIME, ..TxIn::default() },
            ],
            output: self.outputs.clone(),
        };
        tx.output.push(TxOut { value: coin_value, script_pubkey: change });
        // Two bytes of segwit marker and flag, then both witnesses.
        let weight = tx.weight().to_wu() + 2 + self.satisfaction_weight + coin_witness_weight;
        let paid_out: Amount = self.outputs.iter().map(|o| o.value).sum();
        let left = (coin_value + self.txout.value)
            .checked_sub(paid_out + Amount::from_sat(self.required_fee(weight)))?;
        tx.output.last_mut().expect("the change output was just pushed").value = left;
        Some(tx)
    }

    /// The fee the funded transaction must pay, given its final `weight`:
    /// the target for it (and its parent), and never less than the minimum
    /// relay fee for its own size.
    pub fn required_fee(&self, weight: u64) -> u64 {
        let rate = u64::from(self.target_feerate_per_kw);
        let target = match self.parent {
            Some((parent_weight, parent_fee)) => {
                (rate * (parent_weight + weight)).div_ceil(1000).saturating_sub(parent_fee)
            }
            None => (rate * weight).div_ceil(1000),
        };
        target.max((super::MIN_FEERATE_PER_KW * weight).div_ceil(1000))
    }
}

/// Why the monitor will not sign a funded transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeeSignError {
    /// The input at this index does not spend the need's output.
    WrongInput(usize),
    /// The transaction is not laid out as the need says (its lock time,
    /// the input's sequence, or the output paired with the input).
    WrongShape(&'static str),
    /// The need is no longer one this monitor has (the output was spent, or
    /// a reorg changed the commitment).
    Stale,
    /// The signer refused.
    SignerRefused,
}

impl std::fmt::Display for FeeSignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongInput(i) => write!(f, "input {i} does not spend the output the claim takes"),
            Self::WrongShape(what) => write!(f, "the funded transaction's {what} is not the claim's"),
            Self::Stale => write!(f, "the claim is no longer needed"),
            Self::SignerRefused => write!(f, "the signer refused to sign the claim"),
        }
    }
}

impl std::error::Error for FeeSignError {}

impl ChannelMonitor {
    /// The fee need of our zero-fee HTLC transaction for `owed`.
    pub(super) fn htlc_fee_need(&self, owed: &Owed, target_feerate_per_kw: u32) -> Option<FeeNeed> {
        let Spend::HolderHtlc(desc) = &owed.spend else { return None };
        let secp = Secp256k1::new();
        let input = desc.unsigned_tx_input();
        let satisfaction_weight = if desc.htlc.offered {
            HTLC_TIMEOUT_INPUT_KEYED_ANCHOR_WITNESS_WEIGHT
        } else {
            HTLC_SUCCESS_INPUT_KEYED_ANCHOR_WITNESS_WEIGHT
        };
        let lock_time = if desc.htlc.offered { desc.htlc.cltv_expiry } else { 0 };
        Some(FeeNeed {
            kind: FeeNeedKind::HtlcFee,
            claim: owed.kind,
            outpoint: owed.outpoint,
            txout: owed.output.clone(),
            sequence: input.sequence,
            satisfaction_weight,
            outputs: vec![desc.tx_output(&secp)],
            lock_time: LockTime::from_consensus(lock_time),
            parent: None,
            target_feerate_per_kw,
        })
    }

    /// The child-pays-for-parent need of our unconfirmed anchors
    /// `commitment`, if its own feerate is below `target_feerate_per_kw`.
    pub(super) fn anchor_cpfp_need(
        &self,
        commitment: &Transaction,
        target_feerate_per_kw: u32,
    ) -> Option<FeeNeed> {
        let script = get_keyed_anchor_redeemscript(&self.params.holder_pubkeys.funding_pubkey).to_p2wsh();
        let vout = commitment.output.iter().position(|o| o.script_pubkey == script)?;
        let outputs: u64 = commitment.output.iter().map(|o| o.value.to_sat()).sum();
        let fee = self.params.channel_value_satoshis.saturating_sub(outputs);
        let weight = commitment.weight().to_wu();
        if fee * 1000 >= u64::from(target_feerate_per_kw) * weight {
            return None;
        }
        Some(FeeNeed {
            kind: FeeNeedKind::AnchorCpfp,
            claim: ClaimKind::HolderCommitment,
            outpoint: OutPoint { txid: commitment.compute_txid(), vout: vout as u32 },
            txout: commitment.output[vout].clone(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            satisfaction_weight: ANCHOR_INPUT_WITNESS_WEIGHT,
            outputs: Vec::new(),
            lock_time: LockTime::ZERO,
            parent: Some((weight, fee)),
            target_feerate_per_kw,
        })
    }

    /// Signs input `input` of `tx`, the wallet-funded transaction of
    /// `need`, and sets its witness. Wallet inputs are the wallet's to sign.
    ///
    /// # Errors
    ///
    /// [`FeeSignError`]: the input does not spend the need's output, the
    /// transaction is not laid out as the need says, the need is stale, or
    /// the signer refused.
    pub fn sign_fee_input(
        &self,
        signer: &InMemorySigner,
        need: &FeeNeed,
        tx: &mut Transaction,
        input: usize,
    ) -> Result<(), FeeSignError> {
        if tx.input.get(input).map(|i| i.previous_output) != Some(need.outpoint) {
            return Err(FeeSignError::WrongInput(input));
        }
        if tx.lock_time != need.lock_time {
            return Err(FeeSignError::WrongShape("lock time"));
        }
        if tx.input[input].sequence != need.sequence {
            return Err(FeeSignError::WrongShape("input sequence"));
        }
        // The counterparty's `SINGLE` signature pairs the input with the
        // output at the same index.
        if let Some(first) = need.outputs.first() {
            if tx.output.get(input) != Some(first) {
                return Err(FeeSignError::WrongShape("output paired with the input"));
            }
        }
        let secp: Secp256k1<All> = Secp256k1::new();
        let witness = match need.kind {
            FeeNeedKind::AnchorCpfp => {
                let sig = signer
                    .sign_holder_keyed_anchor_input(&self.params, tx, input, &secp)
                    .map_err(|_| FeeSignError::SignerRefused)?;
                build_keyed_anchor_input_witness(&self.params.holder_pubkeys.funding_pubkey, &sig)
            }
            FeeNeedKind::HtlcFee => self.holder_htlc_witness(signer, need, tx, input, &secp)?,
        };
        tx.input[input].witness = witness;
        Ok(())
    }

    fn holder_htlc_witness(
        &self,
        signer: &InMemorySigner,
        need: &FeeNeed,
        tx: &Transaction,
        input: usize,
        secp: &Secp256k1<All>,
    ) -> Result<Witness, FeeSignError> {
        let owed =
            self.owed().into_iter().find(|o| o.outpoint == need.outpoint).ok_or(FeeSignError::Stale)?;
        let Spend::HolderHtlc(desc) = &owed.spend else { return Err(FeeSignError::Stale) };
        let sig = signer
            .sign_holder_htlc_transaction(tx, input, desc, secp)
            .map_err(|_| FeeSignError::SignerRefused)?;
        Ok(desc.tx_input_witness(&sig, &desc.witness_script(secp)))
    }
}
