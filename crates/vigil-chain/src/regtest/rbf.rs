//! Replace-by-fee, as Bitcoin Core 28 does it by default (full RBF): a
//! transaction that spends an output a mempool transaction already spends
//! replaces it, and every mempool descendant of it, if it pays for them.
//!
//! The rules (Bitcoin Core's `policy/rbf.cpp`, BIP125 without the signal):
//! the new transaction spends no unconfirmed output its direct conflicts
//! did not; its feerate is higher than each of them; its fee is at least
//! the sum of the fees of everything it evicts, plus the incremental relay
//! fee (1 sat/vB) for its own size; and it evicts at most
//! [`MAX_REPLACEMENT_CANDIDATES`] transactions.

use std::collections::BTreeSet;

use bitcoin::{Amount, Transaction, Txid};

use super::mempool::Mempool;

/// The most transactions one replacement may evict.
pub const MAX_REPLACEMENT_CANDIDATES: usize = 100;

/// The incremental relay feerate, in satoshis per virtual byte.
pub const INCREMENTAL_RELAY_SAT_PER_VB: u64 = 1;

/// Why a conflicting transaction may not replace what it conflicts with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplacementRefusal {
    /// Its feerate is not above the one of a transaction it replaces.
    #[error(
        "its feerate ({new_sat_per_kvb} sat/kvB) is not above the replaced one's ({old_sat_per_kvb} sat/kvB)"
    )]
    FeerateNotHigher {
        /// Its feerate.
        new_sat_per_kvb: u64,
        /// The replaced transaction's.
        old_sat_per_kvb: u64,
    },
    /// Its fee does not pay for what it evicts plus its own relay.
    #[error("its fee ({paid}) is below the {required} needed to replace {evicted} transaction(s)")]
    FeeTooLow {
        /// What it pays.
        paid: Amount,
        /// What it would have to pay.
        required: Amount,
        /// How many transactions it would evict.
        evicted: usize,
    },
    /// It spends an output of an unconfirmed transaction none of the
    /// transactions it replaces spent from (BIP125 rule 2).
    #[error("it spends unconfirmed output {0}, which the transactions it replaces did not")]
    AddsUnconfirmedInput(bitcoin::OutPoint),
    /// It would evict too many transactions.
    #[error("it would evict {0} transactions, more than {MAX_REPLACEMENT_CANDIDATES}")]
    TooManyReplacements(usize),
}

/// The mempool transactions `tx` directly conflicts with.
pub(crate) fn direct_conflicts(pool: &Mempool, tx: &Transaction) -> BTreeSet<Txid> {
    tx.input.iter().filter_map(|i| pool.spender(&i.previous_output)).collect()
}

/// Everything replacing `conflicts` evicts: them and their descendants.
///
/// # Errors
///
/// [`ReplacementRefusal::TooManyReplacements`].
pub(crate) fn evictions(pool: &Mempool, conflicts: &BTreeSet<Txid>) -> Result<Vec<Txid>, ReplacementRefusal> {
    let all: BTreeSet<Txid> = conflicts.iter().flat_map(|t| pool.with_descendants(t)).collect();
    if all.len() > MAX_REPLACEMENT_CANDIDATES {
        return Err(ReplacementRefusal::TooManyReplacements(all.len()));
    }
    Ok(all.into_iter().collect())
}

/// Checks that `tx`, paying `fee`, may evict `evicted`, of which
/// `conflicts` are its direct conflicts.
///
/// # Errors
///
/// [`ReplacementRefusal`] naming the rule it breaks.
pub(crate) fn check_replacement(
    pool: &Mempool,
    tx: &Transaction,
    fee: Amount,
    conflicts: &BTreeSet<Txid>,
    evicted: &[Txid],
) -> Result<(), ReplacementRefusal> {
    // Rule 2: no unconfirmed parent the replaced transactions did not have
    // (Bitcoin Core compares the parents' txids).
    for input in &tx.input {
        let unconfirmed = pool.contains(&input.previous_output.txid);
        let replaced_had_it = conflicts
            .iter()
            .filter_map(|t| pool.get(t))
            .any(|e| e.tx.input.iter().any(|i| i.previous_output.txid == input.previous_output.txid));
        if unconfirmed && !replaced_had_it {
            return Err(ReplacementRefusal::AddsUnconfirmedInput(input.previous_output));
        }
    }
    let feerate = |fee: Amount, tx: &Transaction| fee.to_sat() * 1000 / tx.vsize().max(1) as u64;
    let new_rate = feerate(fee, tx);
    for txid in conflicts {
        let entry = pool.get(txid).expect("conflicts are mempool transactions");
        let old_rate = feerate(entry.fee, &entry.tx);
        if new_rate <= old_rate {
            return Err(ReplacementRefusal::FeerateNotHigher {
                new_sat_per_kvb: new_rate,
                old_sat_per_kvb: old_rate,
            });
        }
    }
    let replaced: u64 = evicted.iter().filter_map(|t| pool.get(t)).map(|e| e.fee.to_sat()).sum();
    let required = Amount::from_sat(replaced + INCREMENTAL_RELAY_SAT_PER_VB * tx.vsize() as u64);
    if fee < required {
        return Err(ReplacementRefusal::FeeTooLow { paid: fee, required, evicted: evicted.len() });
    }
    Ok(())
}
