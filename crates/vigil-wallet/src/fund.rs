//! Funding other people's transactions: the wallet adds its coins and a
//! change output to a transaction whose first inputs and outputs are given
//! (and signed by their owner), so that it pays a given fee.
//!
//! Lightning's anchor channels need this for fee bumping: a zero-fee HTLC
//! transaction gets fee inputs, and a child spending an anchor output pays
//! for its commitment. BDK selects the coins (its foreign-UTXO support keeps
//! the given inputs and outputs first, in order) and signs the wallet's
//! inputs; the external inputs are left for the caller to sign.

use bdk_wallet::bitcoin::psbt;
use bdk_wallet::error::CreateTxError;
use bdk_wallet::{SignOptions, TxOrdering};
use bitcoin::absolute::LockTime;
use bitcoin::{Amount, FeeRate, OutPoint, Sequence, Transaction, TxOut, Weight};

use crate::{Inner, OnchainWallet, WalletError};

/// An input the caller owns and signs, placed before the wallet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalInput {
    /// The output it spends.
    pub outpoint: OutPoint,
    /// That output.
    pub txout: TxOut,
    /// Its sequence.
    pub sequence: Sequence,
    /// The weight of its witness, at most.
    pub satisfaction_weight: u64,
}

impl OnchainWallet {
    /// Builds a transaction that spends `external` (first, in order) and
    /// pays `outputs` (first, in order), with confirmed wallet coins and
    /// change added so that its fee is `fee(weight)` for its final weight.
    /// `replaces` is the transaction it is to replace, if any: its coins are
    /// free to use again (it is marked evicted; if building fails it is put
    /// back), its outputs are not. The wallet's inputs are signed; the
    /// external ones are left unsigned, for the caller. Nothing is
    /// broadcast: once it is, [`OnchainWallet::record_unconfirmed`] keeps
    /// the next funding from choosing the same coins.
    ///
    /// Only confirmed coins are used, so a replacement never brings in an
    /// unconfirmed input (BIP125 rule 2).
    ///
    /// # Errors
    ///
    /// [`WalletError::InsufficientFunds`] when the wallet cannot pay the
    /// fee, or [`WalletError::Build`].
    pub fn fund_external(
        &self,
        external: &[ExternalInput],
        outputs: &[TxOut],
        lock_time: LockTime,
        replaces: Option<(&Transaction, u64)>,
        fee: impl Fn(u64) -> u64,
    ) -> Result<Transaction, WalletError> {
        let result = self.fund_external_inner(external, outputs, lock_time, replaces, fee);
        if let (Err(_), Some((previous, now))) = (&result, replaces) {
            // Still the one waiting in mempools: its coins stay spent.
            self.record_unconfirmed(previous, now + 1);
        }
        result
    }

    fn fund_external_inner(
        &self,
        external: &[ExternalInput],
        outputs: &[TxOut],
        lock_time: LockTime,
        replaces: Option<(&Transaction, u64)>,
        fee: impl Fn(u64) -> u64,
    ) -> Result<Transaction, WalletError> {
        let mut inner = self.lock();
        let mut avoid = Vec::new();
        if let Some((previous, now)) = replaces {
            let txid = previous.compute_txid();
            inner.wallet.apply_evicted_txs([(txid, now)]);
            avoid = (0..previous.output.len() as u32).map(|vout| OutPoint { txid, vout }).collect();
        }
        let avoid = &avoid[..];
        let external_weight: u64 = external.iter().map(|e| e.satisfaction_weight).sum();
        // First at a plain feerate to learn the shape, then at the exact fee
        // its weight requires (again if the coins chosen changed the
        // weight so that the fee falls short).
        let probe_rate = FeeRate::from_sat_per_kwu(fee(1000).max(253));
        let probe = Self::build_funded(&mut inner, external, outputs, lock_time, avoid, Err(probe_rate))?;
        let mut weight = probe.weight().to_wu() + external_weight;
        for _ in 0..3 {
            let paid = fee(weight);
            let exact = Ok(Amount::from_sat(paid));
            let tx = Self::build_funded(&mut inner, external, outputs, lock_time, avoid, exact)?;
            weight = tx.weight().to_wu() + external_weight;
            if fee(weight) <= paid {
                Self::persist(&mut inner)?;
                return Ok(tx);
            }
        }
        Err(WalletError::Build("the funded transaction's weight kept changing with the coins chosen".into()))
    }

    /// Records a transaction of ours that was broadcast (and is not
    /// confirmed yet): its inputs are spent and its change is ours, so the
    /// next transaction built does not choose the same coins. `now` stamps
    /// it. A failure to store it is logged: the next sync sees it anyway.
    pub fn record_unconfirmed(&self, tx: &Transaction, now: u64) {
        let mut inner = self.lock();
        inner.wallet.apply_unconfirmed_txs([(tx.clone(), now)]);
        if let Err(e) = Self::persist(&mut inner) {
            tracing::warn!(txid = %tx.compute_txid(), error = %e, "could not store a pending transaction yet");
        }
    }

    /// One attempt: `fee` is an absolute fee or a feerate.
    fn build_funded(
        inner: &mut Inner,
        external: &[ExternalInput],
        outputs: &[TxOut],
        lock_time: LockTime,
        avoid: &[OutPoint],
        fee: Result<Amount, FeeRate>,
    ) -> Result<Transaction, WalletError> {
        let change = inner.wallet.peek_address(bdk_wallet::KeychainKind::Internal, 0).script_pubkey();
        let mut builder = inner.wallet.build_tx();
        builder
            .ordering(TxOrdering::Untouched)
            .nlocktime(lock_time)
            .version(2)
            .only_witness_utxo()
            .exclude_unconfirmed();
        for outpoint in avoid {
            builder.add_unspendable(*outpoint);
        }
        for input in external {
            let psbt_input =
                psbt::Input { witness_utxo: Some(input.txout.clone()), ..psbt::Input::default() };
            builder
                .add_foreign_utxo_with_sequence(
                    input.outpoint,
                    psbt_input,
                    Weight::from_wu(input.satisfaction_weight),
                    input.sequence,
                )
                .map_err(|e| WalletError::Build(e.to_string()))?;
        }
        for output in outputs {
            builder.add_recipient(output.script_pubkey.clone(), output.value);
        }
        if outputs.is_empty() {
            // A child with no output of its own: everything but the fee
            // comes back as change.
            builder.drain_to(change);
        }
        match fee {
            Ok(amount) => builder.fee_absolute(amount),
            Err(rate) => builder.fee_rate(rate),
        };
        let mut psbt = builder.finish().map_err(|e| match e {
            CreateTxError::CoinSelection(e) => {
                WalletError::InsufficientFunds { needed: e.needed, available: e.available }
            }
            other => WalletError::Build(other.to_string()),
        })?;
        let secp = bitcoin::secp256k1::Secp256k1::new();
        // The external inputs cannot be signed here: errors on them are
        // expected, on any other input they are not.
        if let Err((_, errors)) = psbt.sign(&inner.xprv, &secp) {
            if errors.keys().any(|i| *i >= external.len()) {
                return Err(WalletError::Build(format!("signing failed: {errors:?}")));
            }
        }
        // `false`: the external inputs are left for the caller.
        let options = SignOptions { trust_witness_utxo: true, ..SignOptions::default() };
        inner.wallet.finalize_psbt(&mut psbt, options).map_err(|e| WalletError::Build(e.to_string()))?;
        let tx = psbt.extract_tx_unchecked_fee_rate();
        let wallet_inputs = &tx.input[external.len()..];
        if wallet_inputs.iter().any(|i| i.witness.is_empty()) {
            return Err(WalletError::Build("the wallet could not sign its inputs".into()));
        }
        Ok(tx)
    }
}
