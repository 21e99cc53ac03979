//! Who holds what on chain once closed channels are settled: the closing
//! transaction trees, and each node's account of them (what it holds and
//! the fees it bore), for the value checks.
//!
//! The fees of a transaction are borne by the node that broadcast it (or
//! else whoever its outputs end up with), and so is an output of it left
//! unclaimed as worth less than its claim; a commitment's fee is borne by
//! the channel's funder (BOLT 3), anchors included. An anchor spent to bump
//! a commitment is the spender's gain, so it counts against that spender's
//! fees. HTLCs trimmed from a commitment as dust go to the miners at the
//! cost of one end or the other: either end may be short of their value
//! (never ahead of it), and all nodes together are short of exactly that.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use vigil_chain::ChainSource;

use crate::onchain::{coin_key, sweep_script};
use crate::world::World;

/// The value of an anchor output (BOLT 3).
pub const ANCHOR_SAT: u64 = 330;

/// A channel's funding output, and who funded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funding {
    /// The funding output.
    pub outpoint: OutPoint,
    /// Its value, in satoshis.
    pub value_sat: u64,
    /// The node that funded it (and pays the commitment's fee).
    pub funder: usize,
    /// The other end.
    pub fundee: usize,
}

/// Every closed channel's transactions on the active chain.
#[derive(Debug, Default)]
pub struct ClosingTrees {
    /// The transactions spending a funding output, and everything that
    /// spends their outputs, in chain order.
    pub txs: Vec<Transaction>,
    /// Every output they spend or make (funding outputs and fee-wallet
    /// coins included).
    pub coins: BTreeMap<OutPoint, TxOut>,
    /// Their outputs nobody spent.
    pub unspent: BTreeMap<OutPoint, TxOut>,
}

/// A node's account on chain at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    /// What it holds: its fee wallet and its sweeps, unspent and confirmed.
    pub held_sat: u64,
    /// The fees it bore and the outputs it gave up as uneconomic (less the
    /// anchors it spent).
    pub fees_sat: i64,
    /// How far the exact sum may be off either way: BOLT 3 rounds each
    /// commitment output down to the satoshi.
    pub rounding_msat: u64,
    /// What its closed channels' commitments lost besides their fee: HTLCs
    /// trimmed as dust (and sub-satoshi remainders). The node may be short
    /// of up to that, never ahead.
    pub dust_msat: u64,
}

impl World {
    /// The closing trees of every channel whose funding output was spent.
    pub fn closing_trees(&self) -> ClosingTrees {
        let mut trees = ClosingTrees::default();
        for f in &self.fundings {
            let txout = TxOut { value: Amount::from_sat(f.value_sat), script_pubkey: ScriptBuf::new() };
            trees.coins.insert(f.outpoint, txout);
        }
        for h in self.setup_height..=self.chain.height() {
            let hash = self.chain.block_hash(h).expect("chain").expect("active");
            let block = self.chain.block(&hash).expect("chain").expect("known");
            for tx in block.txdata {
                if !tx.input.iter().any(|i| trees.coins.contains_key(&i.previous_output)) {
                    continue;
                }
                for input in &tx.input {
                    let prev = input.previous_output;
                    if let std::collections::btree_map::Entry::Vacant(slot) = trees.coins.entry(prev) {
                        // A fee-wallet coin.
                        if let Some(txout) = self.output(&prev) {
                            slot.insert(txout);
                        }
                    }
                    trees.unspent.remove(&prev);
                }
                let txid = tx.compute_txid();
                for (vout, o) in tx.output.iter().enumerate() {
                    trees.coins.insert(OutPoint { txid, vout: vout as u32 }, o.clone());
                    trees.unspent.insert(OutPoint { txid, vout: vout as u32 }, o.clone());
                }
                trees.txs.push(tx);
            }
        }
        trees
    }

    fn output(&self, outpoint: &OutPoint) -> Option<TxOut> {
        let info = self.chain.transaction(&outpoint.txid).ok().flatten()?;
        info.tx.output.get(outpoint.vout as usize).cloned()
    }

    /// The node whose sweep script or fee wallet `script` pays.
    fn script_owner(&self, script: &ScriptBuf) -> Option<usize> {
        (0..self.nodes.len()).find(|i| sweep_script(*i) == *script || coin_key(*i).p2wpkh() == *script)
    }

    /// Every node's account on chain, from the closing `trees`
    /// ([`World::closing_trees`]).
    pub fn accounts(&self, trees: &ClosingTrees) -> Vec<Account> {
        let mut accounts = vec![Account::default(); self.nodes.len()];
        let txids: Vec<Txid> = trees.txs.iter().map(Transaction::compute_txid).collect();
        let mut spender: BTreeMap<OutPoint, usize> = BTreeMap::new();
        for (k, tx) in trees.txs.iter().enumerate() {
            for input in &tx.input {
                spender.insert(input.previous_output, k);
            }
        }
        // Whose a transaction is: who broadcast it, or else where its
        // outputs end up (spenders come later in the chain: walk
        // backwards).
        let mut owner: Vec<Option<usize>> = vec![None; trees.txs.len()];
        for k in (0..trees.txs.len()).rev() {
            owner[k] = self.broadcasters.get(&txids[k]).copied().or_else(|| {
                trees.txs[k].output.iter().enumerate().find_map(|(vout, o)| {
                    let outpoint = OutPoint { txid: txids[k], vout: vout as u32 };
                    self.script_owner(&o.script_pubkey)
                        .or_else(|| spender.get(&outpoint).and_then(|&u| owner[u]))
                })
            });
        }
        let fundings: BTreeMap<OutPoint, &Funding> = self.fundings.iter().map(|f| (f.outpoint, f)).collect();
        let mut commitments: BTreeSet<Txid> = BTreeSet::new();
        for (k, tx) in trees.txs.iter().enumerate() {
            let out_sat: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
            if let Some(f) = tx.input.iter().find_map(|i| fundings.get(&i.previous_output)) {
                commitments.insert(txids[k]);
                let feerate = u64::from(self.nodes[f.funder].config.commitment_feerate_per_kw);
                let trimmed = trimmed_sat(tx, f.value_sat, feerate);
                // The funder pays the fee and the anchors; trimmed HTLCs go
                // to the miners, at the cost of one end or the other.
                accounts[f.funder].fees_sat += (f.value_sat - out_sat + anchors_of(tx) - trimmed) as i64;
                for end in [f.funder, f.fundee] {
                    accounts[end].rounding_msat += 1000 * tx.output.len() as u64;
                    accounts[end].dust_msat += 1000 * trimmed;
                }
                continue;
            }
            let Some(o) = owner[k] else { continue };
            // An output left unspent, not paying anyone's script, was given
            // up (worth less than its claim): the owner's loss too.
            let abandoned: u64 = (0..tx.output.len() as u32)
                .filter_map(|vout| trees.unspent.get(&OutPoint { txid: txids[k], vout }))
                .filter(|o| self.script_owner(&o.script_pubkey).is_none())
                .map(|o| o.value.to_sat())
                .sum();
            let out_sat = out_sat - abandoned;
            let mut in_sat = 0;
            for input in &tx.input {
                let value = trees.coins.get(&input.previous_output).map_or(0, |c| c.value.to_sat());
                let anchor = commitments.contains(&input.previous_output.txid) && value == ANCHOR_SAT;
                // An anchor is the funder's money, spent by this owner.
                if !anchor {
                    in_sat += value;
                }
            }
            accounts[o].fees_sat += in_sat as i64 - out_sat as i64;
        }
        for (i, account) in accounts.iter_mut().enumerate() {
            let mine: BTreeSet<OutPoint> = self.fee_coins[i]
                .iter()
                .map(|c| c.outpoint)
                .chain(
                    trees
                        .coins
                        .iter()
                        .filter(|(_, o)| self.script_owner(&o.script_pubkey) == Some(i))
                        .map(|(p, _)| *p),
                )
                .collect();
            account.held_sat = mine
                .iter()
                .filter_map(|p| self.chain.utxo(p, false).ok().flatten())
                .map(|u| u.txout.value.to_sat())
                .sum();
        }
        accounts
    }
}

/// The anchors of a commitment (outputs of exactly [`ANCHOR_SAT`]).
fn anchors_of(tx: &Transaction) -> u64 {
    tx.output.iter().map(|o| o.value.to_sat()).filter(|v| *v == ANCHOR_SAT).sum()
}

/// What a commitment's funding value lost besides its fee at
/// `feerate_per_kw` by BOLT 3 (its expected weight: 724, or 1124 with
/// anchors, plus 172 per HTLC output): HTLCs trimmed as dust, and the
/// outputs' sub-satoshi rounding. Both balances have an output (the channel
/// reserve keeps them above dust), so the outputs besides them and the
/// anchors are HTLCs. The feerate is the one the channels opened at: the
/// manager sends no `update_fee`. (Once it does, the feerate must come from
/// the commitment: a guess too low would pass the funder's real fee off as
/// dust, which the value check tolerates.)
fn trimmed_sat(tx: &Transaction, value_sat: u64, feerate_per_kw: u64) -> u64 {
    let anchors = tx.output.iter().filter(|o| o.value.to_sat() == ANCHOR_SAT).count() as u64;
    let htlcs = (tx.output.len() as u64).saturating_sub(2 + anchors);
    let base = if anchors > 0 { 1124 } else { 724 };
    let fee = feerate_per_kw * (base + 172 * htlcs) / 1000;
    let out_sat: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    value_sat.saturating_sub(out_sat).saturating_sub(fee)
}
