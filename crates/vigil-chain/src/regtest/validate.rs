//! Transaction validation: the consensus rules and the few policy rules the
//! embedded chain enforces, each refused with a typed [`TxError`] that names
//! the rule and the input.
//!
//! Checks run in Bitcoin Core's order: context-free checks, finality, inputs
//! (missing or double-spent), BIP68 relative locktimes, coinbase maturity and
//! values, then scripts through libbitcoinconsensus (P2SH, strict DER,
//! NULLDUMMY, CLTV, CSV and segwit v0). Validation only reads; nothing about
//! the chain or mempool changes until a transaction has passed every check.

use std::collections::HashSet;

use bitcoin::{Amount, OutPoint, Script, ScriptBuf, Transaction, Txid, WitnessVersion};

use super::state::{ChainState, Coin};

/// Confirmations a coinbase output needs before it can be spent.
pub const COINBASE_MATURITY: u32 = 100;
/// The heaviest transaction the mempool accepts (Bitcoin Core's standardness
/// limit).
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;
/// The minimum relay feerate, in satoshis per 1000 virtual bytes (Bitcoin
/// Core's default `minrelaytxfee` before version 29).
pub const MIN_RELAY_FEE_SAT_PER_KVB: u64 = 1000;
/// The heaviest block (BIP141).
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;

/// A relative locktime (BIP68) that the spending block cannot satisfy yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeLockShortfall {
    /// A lock in blocks.
    Blocks {
        /// Blocks the input requires since its output confirmed.
        required: u32,
        /// Blocks there would be, counting the spending block.
        available: u32,
    },
    /// A lock in time (units of 512 seconds, expressed in seconds).
    Seconds {
        /// Seconds of median time past the input requires since its output
        /// confirmed.
        required: u32,
        /// Seconds there would be.
        available: u32,
    },
}

impl std::fmt::Display for RelativeLockShortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blocks { required, available } => {
                write!(f, "{required} blocks required, {available} available")
            }
            Self::Seconds { required, available } => {
                write!(f, "{required}s required, {available}s available")
            }
        }
    }
}

/// Why a transaction was refused. Each variant names one rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The transaction has no input.
    #[error("transaction has no input")]
    NoInputs,
    /// The transaction has no output.
    #[error("transaction has no output")]
    NoOutputs,
    /// A coinbase transaction can only appear first in a block.
    #[error("a coinbase transaction cannot be relayed")]
    Coinbase,
    /// The transaction is heavier than the limit.
    #[error("transaction weight {weight} exceeds the limit of {max}")]
    TooHeavy {
        /// Its weight.
        weight: u64,
        /// The limit.
        max: u64,
    },
    /// Two inputs spend the same output.
    #[error("input {input} spends {outpoint} a second time")]
    DuplicateInput {
        /// The index of the repeated input.
        input: usize,
        /// The output spent twice.
        outpoint: OutPoint,
    },
    /// An output's value exceeds 21 million bitcoin.
    #[error("output {output} has value {value} above the 21 million BTC limit")]
    ValueOutOfRange {
        /// The index of the output.
        output: usize,
        /// Its value.
        value: Amount,
    },
    /// The outputs together exceed 21 million bitcoin.
    #[error("the outputs sum to more than 21 million BTC")]
    OutputSumOutOfRange,
    /// A non-coinbase input spends the null outpoint.
    #[error("input {input} spends the null outpoint, which only a coinbase may")]
    NullPrevout {
        /// The index of the input.
        input: usize,
    },
    /// The inputs together exceed 21 million bitcoin.
    #[error("the inputs sum to more than 21 million BTC")]
    InputSumOutOfRange,
    /// The transaction is already in the mempool.
    #[error("transaction {txid} is already in the mempool")]
    AlreadyInMempool {
        /// Its id.
        txid: Txid,
    },
    /// The transaction is already confirmed and some of its outputs are
    /// unspent.
    #[error("transaction {txid} is already in the chain")]
    AlreadyInChain {
        /// Its id.
        txid: Txid,
    },
    /// `nLockTime` is not satisfied by the block the transaction would enter.
    #[error(
        "nLockTime {lock_time} is not final at height {height} with median time past {median_time_past}"
    )]
    NonFinal {
        /// The transaction's `nLockTime`.
        lock_time: u32,
        /// The height of the block it would enter.
        height: u32,
        /// The median time past of that block's parent.
        median_time_past: u32,
    },
    /// An input spends an output that does not exist or is already spent in
    /// the chain.
    #[error("input {input} spends {outpoint}, which does not exist or is spent")]
    MissingInput {
        /// The index of the input.
        input: usize,
        /// The output it spends.
        outpoint: OutPoint,
    },
    /// An input spends an output that a mempool transaction already spends,
    /// and the transaction may not replace it (see [`super::rbf`]).
    #[error("input {input} spends {outpoint}, already spent by mempool transaction {conflict}: {refusal}")]
    DoubleSpend {
        /// The index of the input.
        input: usize,
        /// The output it spends.
        outpoint: OutPoint,
        /// The mempool transaction that spends it.
        conflict: Txid,
        /// Why the replacement is refused.
        refusal: Box<super::rbf::ReplacementRefusal>,
    },
    /// An input spends a coinbase output with fewer than 100 confirmations.
    #[error("input {input} spends coinbase output {outpoint} with {confirmations} confirmations; {COINBASE_MATURITY} are required")]
    ImmatureCoinbase {
        /// The index of the input.
        input: usize,
        /// The coinbase output.
        outpoint: OutPoint,
        /// Its confirmations, counting the spending block.
        confirmations: u32,
    },
    /// The outputs are worth more than the inputs.
    #[error("outputs ({outputs}) are worth more than inputs ({inputs})")]
    NegativeFee {
        /// The value of the inputs.
        inputs: Amount,
        /// The value of the outputs.
        outputs: Amount,
    },
    /// An input's BIP68 relative locktime is not satisfied yet.
    #[error("input {input} has an unsatisfied relative locktime: {shortfall}")]
    RelativeLocktime {
        /// The index of the input.
        input: usize,
        /// What is required and what is available.
        shortfall: RelativeLockShortfall,
    },
    /// An input spends a witness program this chain cannot verify (taproot
    /// needs a libbitcoinconsensus newer than the one `bitcoin` 0.32 binds).
    #[error("input {input} spends a witness v{version} program, which the embedded chain does not verify")]
    UnsupportedWitnessVersion {
        /// The index of the input.
        input: usize,
        /// The witness version of the spent output.
        version: u8,
    },
    /// The fee is below the minimum relay feerate for the transaction's size
    /// (a mempool policy, as Bitcoin Core's `minrelaytxfee`).
    #[error("fee {fee} is below the {required} minimum relay fee for its size")]
    MinRelayFeeNotMet {
        /// What it pays.
        fee: Amount,
        /// What its size requires.
        required: Amount,
    },
    /// An input's script does not satisfy the output it spends.
    #[error("input {input} fails script verification: {reason}")]
    ScriptFailed {
        /// The index of the input.
        input: usize,
        /// What failed.
        reason: String,
    },
}

impl TxError {
    /// Bitcoin Core's reject reason for this rule.
    pub fn reject_reason(&self) -> &'static str {
        match self {
            Self::NoInputs => "bad-txns-vin-empty",
            Self::NoOutputs => "bad-txns-vout-empty",
            Self::Coinbase => "coinbase",
            Self::TooHeavy { .. } => "tx-size",
            Self::DuplicateInput { .. } => "bad-txns-inputs-duplicate",
            Self::ValueOutOfRange { .. } => "bad-txns-vout-toolarge",
            Self::OutputSumOutOfRange => "bad-txns-txouttotal-toolarge",
            Self::NullPrevout { .. } => "bad-txns-prevout-null",
            Self::InputSumOutOfRange => "bad-txns-inputvalues-outofrange",
            Self::AlreadyInMempool { .. } => "txn-already-in-mempool",
            Self::AlreadyInChain { .. } => "txn-already-known",
            Self::NonFinal { .. } => "non-final",
            Self::MissingInput { .. } => "bad-txns-inputs-missingorspent",
            Self::DoubleSpend { refusal, .. } => match **refusal {
                super::rbf::ReplacementRefusal::TooManyReplacements(_) => "too many potential replacements",
                super::rbf::ReplacementRefusal::AddsUnconfirmedInput(_) => "replacement-adds-unconfirmed",
                _ => "insufficient fee",
            },
            Self::ImmatureCoinbase { .. } => "bad-txns-premature-spend-of-coinbase",
            Self::NegativeFee { .. } => "bad-txns-in-belowout",
            Self::RelativeLocktime { .. } => "non-BIP68-final",
            Self::UnsupportedWitnessVersion { .. } => "unsupported-witness-version",
            Self::ScriptFailed { .. } => "mandatory-script-verify-flag-failed",
            Self::MinRelayFeeNotMet { .. } => "min relay fee not met",
        }
    }

    /// Bitcoin Core's JSON-RPC error code for this refusal by
    /// `sendrawtransaction`: -25 for missing inputs, -27 for a transaction
    /// already in the chain, -26 for every other rule.
    pub fn rpc_code(&self) -> i32 {
        match self {
            Self::MissingInput { .. } => -25,
            Self::AlreadyInChain { .. } => -27,
            _ => -26,
        }
    }
}

/// What a view knows of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoinLookup {
    Unspent(Coin),
    /// Unknown or spent (conflicts with the mempool are settled by
    /// replacement before validation, see [`super::rbf`]).
    Missing,
}

/// The set of outputs a transaction may spend.
pub(crate) trait CoinView {
    fn lookup(&self, outpoint: &OutPoint) -> CoinLookup;
}

/// Where a transaction would be mined.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpendContext {
    /// The height of the block the transaction would enter.
    pub height: u32,
    /// The median time past of that block's parent (BIP113).
    pub median_time_past: u32,
}

/// The context-free checks, Bitcoin Core's `CheckTransaction` and the weight
/// limit.
pub(crate) fn check_context_free(tx: &Transaction, max_weight: u64) -> Result<(), TxError> {
    if tx.input.is_empty() {
        return Err(TxError::NoInputs);
    }
    if tx.output.is_empty() {
        return Err(TxError::NoOutputs);
    }
    let weight = tx.weight().to_wu();
    if weight > max_weight {
        return Err(TxError::TooHeavy { weight, max: max_weight });
    }
    let mut total = Amount::ZERO;
    for (output, txout) in tx.output.iter().enumerate() {
        if txout.value > Amount::MAX_MONEY {
            return Err(TxError::ValueOutOfRange { output, value: txout.value });
        }
        total = total
            .checked_add(txout.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(TxError::OutputSumOutOfRange)?;
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    for (input, txin) in tx.input.iter().enumerate() {
        if !seen.insert(txin.previous_output) {
            return Err(TxError::DuplicateInput { input, outpoint: txin.previous_output });
        }
    }
    if tx.is_coinbase() {
        return Err(TxError::Coinbase);
    }
    if let Some(input) = tx.input.iter().position(|i| i.previous_output.is_null()) {
        return Err(TxError::NullPrevout { input });
    }
    Ok(())
}

/// The structural checks of a stored block at load: one coinbase, first,
/// with outputs in range, and context-free valid transactions after it.
pub(crate) fn check_block_structure(block: &bitcoin::Block) -> Result<(), String> {
    let Some((coinbase, rest)) = block.txdata.split_first() else {
        return Err("it has no transaction".into());
    };
    if !coinbase.is_coinbase() {
        return Err("it does not start with a coinbase".into());
    }
    let mut total = Amount::ZERO;
    for out in &coinbase.output {
        total = total
            .checked_add(out.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or("its coinbase outputs exceed 21 million BTC")?;
    }
    for (index, tx) in rest.iter().enumerate() {
        check_context_free(tx, MAX_BLOCK_WEIGHT).map_err(|e| format!("transaction {}: {e}", index + 1))?;
    }
    Ok(())
}

/// Bitcoin Core's `IsFinalTx`, with BIP113 median time past.
pub(crate) fn check_final(tx: &Transaction, ctx: SpendContext) -> Result<(), TxError> {
    let lock_time = tx.lock_time.to_consensus_u32();
    if lock_time == 0 {
        return Ok(());
    }
    let bound =
        if lock_time < bitcoin::absolute::LOCK_TIME_THRESHOLD { ctx.height } else { ctx.median_time_past };
    if lock_time < bound || tx.input.iter().all(|i| i.sequence == bitcoin::Sequence::MAX) {
        return Ok(());
    }
    Err(TxError::NonFinal { lock_time, height: ctx.height, median_time_past: ctx.median_time_past })
}

/// Every check of a transaction against `view` for a block at `ctx`, with
/// `max_weight` as the weight limit. Returns the fee.
pub(crate) fn check_transaction(
    tx: &Transaction,
    view: &dyn CoinView,
    ctx: SpendContext,
    state: &ChainState,
    max_weight: u64,
) -> Result<Amount, TxError> {
    check_context_free(tx, max_weight)?;
    check_final(tx, ctx)?;
    let coins = resolve_inputs(tx, view)?;
    check_sequence_locks(tx, &coins, ctx, state)?;
    let fee = check_values(tx, &coins, ctx)?;
    check_scripts(tx, &coins)?;
    Ok(fee)
}

/// Mempool policy: `fee` pays at least [`MIN_RELAY_FEE_SAT_PER_KVB`] for
/// `tx`'s virtual size.
pub(crate) fn check_min_relay_fee(tx: &Transaction, fee: Amount) -> Result<(), TxError> {
    let required = Amount::from_sat((MIN_RELAY_FEE_SAT_PER_KVB * tx.vsize() as u64).div_ceil(1000));
    if fee < required {
        return Err(TxError::MinRelayFeeNotMet { fee, required });
    }
    Ok(())
}

fn resolve_inputs(tx: &Transaction, view: &dyn CoinView) -> Result<Vec<Coin>, TxError> {
    tx.input
        .iter()
        .enumerate()
        .map(|(input, txin)| {
            let outpoint = txin.previous_output;
            match view.lookup(&outpoint) {
                CoinLookup::Unspent(coin) => Ok(coin),
                CoinLookup::Missing => Err(TxError::MissingInput { input, outpoint }),
            }
        })
        .collect()
}

/// BIP68, as Bitcoin Core's `CalculateSequenceLocks` and `EvaluateSequenceLocks`.
fn check_sequence_locks(
    tx: &Transaction,
    coins: &[Coin],
    ctx: SpendContext,
    state: &ChainState,
) -> Result<(), TxError> {
    // Core compares the version as unsigned.
    if (tx.version.0 as u32) < 2 {
        return Ok(());
    }
    for (input, (txin, coin)) in tx.input.iter().zip(coins).enumerate() {
        let Some(lock) = txin.sequence.to_relative_lock_time() else {
            continue;
        };
        let shortfall = match lock {
            bitcoin::relative::LockTime::Blocks(blocks) => {
                let required = u32::from(blocks.value());
                let available = ctx.height.saturating_sub(coin.height);
                (available < required).then_some(RelativeLockShortfall::Blocks { required, available })
            }
            bitcoin::relative::LockTime::Time(time) => {
                let required = u32::from(time.value()) * 512;
                let coin_mtp = state.median_time_past(coin.height.saturating_sub(1));
                let available = ctx.median_time_past.saturating_sub(coin_mtp);
                (available < required).then_some(RelativeLockShortfall::Seconds { required, available })
            }
        };
        if let Some(shortfall) = shortfall {
            return Err(TxError::RelativeLocktime { input, shortfall });
        }
    }
    Ok(())
}

/// Coinbase maturity and value conservation, as Core's `CheckTxInputs`.
fn check_values(tx: &Transaction, coins: &[Coin], ctx: SpendContext) -> Result<Amount, TxError> {
    let mut inputs = Amount::ZERO;
    for (input, (txin, coin)) in tx.input.iter().zip(coins).enumerate() {
        let confirmations = ctx.height.saturating_sub(coin.height);
        if coin.coinbase && confirmations < COINBASE_MATURITY {
            return Err(TxError::ImmatureCoinbase { input, outpoint: txin.previous_output, confirmations });
        }
        inputs = inputs
            .checked_add(coin.txout.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(TxError::InputSumOutOfRange)?;
    }
    let outputs: Amount = tx.output.iter().map(|o| o.value).sum();
    inputs.checked_sub(outputs).ok_or(TxError::NegativeFee { inputs, outputs })
}

/// Checks only the scripts of `tx` against the outputs it spends, given in
/// input order, with the same libbitcoinconsensus rules as the mempool. For
/// transactions that are not final yet (such as an HTLC-timeout before its
/// expiry), whose scripts can be checked before they can be mined.
///
/// # Errors
///
/// [`TxError::MissingInput`] if fewer outputs than inputs are given, or the
/// script rule that fails.
pub fn verify_scripts(tx: &Transaction, spent: &[bitcoin::TxOut]) -> Result<(), TxError> {
    if let Some(input) = tx.input.get(spent.len()) {
        return Err(TxError::MissingInput { input: spent.len(), outpoint: input.previous_output });
    }
    let coins: Vec<Coin> =
        spent.iter().map(|txout| Coin { txout: txout.clone(), height: 0, coinbase: false }).collect();
    check_scripts(tx, &coins)
}

fn check_scripts(tx: &Transaction, coins: &[Coin]) -> Result<(), TxError> {
    let bytes = bitcoin::consensus::serialize(tx);
    for (input, (txin, coin)) in tx.input.iter().zip(coins).enumerate() {
        let spk = &coin.txout.script_pubkey;
        check_witness_version(input, spk, &txin.script_sig)?;
        bitcoin::consensus::verify_script(spk, input, coin.txout.value, &bytes).map_err(|e| {
            let reason = if spk.witness_version() == Some(WitnessVersion::V0) && txin.witness.is_empty() {
                "a segwit v0 output is spent without a witness".to_owned()
            } else if format!("{e:?}").contains("ERR_SCRIPT") {
                "the input's scripts do not satisfy the spent output's script".to_owned()
            } else {
                format!("libbitcoinconsensus refused the input: {e:?}")
            };
            TxError::ScriptFailed { input, reason }
        })?;
    }
    Ok(())
}

/// libbitcoinconsensus 25 treats witness v1+ programs as anyone-can-spend, so
/// a taproot spend would pass unverified. The embedded chain refuses them
/// instead, except pay-to-anchor, which is anyone-can-spend by design.
fn check_witness_version(input: usize, spk: &Script, script_sig: &Script) -> Result<(), TxError> {
    let program = if spk.is_p2sh() { script_sig.redeem_script() } else { Some(spk) };
    let Some(program) = program else { return Ok(()) };
    match program.witness_version() {
        None | Some(WitnessVersion::V0) => Ok(()),
        Some(_) if program == ScriptBuf::new_p2a().as_script() => Ok(()),
        Some(version) => Err(TxError::UnsupportedWitnessVersion { input, version: version.to_num() }),
    }
}
