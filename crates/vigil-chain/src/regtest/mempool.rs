//! The mempool: validated transactions waiting for a block, in arrival
//! order, with an index of the outputs they spend.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bitcoin::{Amount, OutPoint, Transaction, Txid};

use super::state::{ChainState, Coin};
use super::validate::{CoinLookup, CoinView};

/// A transaction in the mempool.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub tx: Arc<Transaction>,
    pub txid: Txid,
    pub fee: Amount,
    /// When it entered, in UNIX seconds.
    pub time: u64,
    /// Arrival order; parents always arrive before children.
    pub seq: u64,
    /// The chain height when it entered (after a restart: when it was
    /// loaded).
    pub height: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Mempool {
    entries: HashMap<Txid, Entry>,
    order: BTreeMap<u64, Txid>,
    spent: HashMap<OutPoint, Txid>,
    next_seq: u64,
}

impl Mempool {
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    pub fn get(&self, txid: &Txid) -> Option<&Entry> {
        self.entries.get(txid)
    }

    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spent.get(outpoint).copied()
    }

    /// Entries in arrival order (parents before children).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.order.values().map(|txid| &self.entries[txid])
    }

    /// Adds a validated transaction that entered at chain height `height`.
    /// Returns its sequence number.
    pub fn insert(&mut self, tx: Arc<Transaction>, fee: Amount, time: u64, height: u32) -> u64 {
        let seq = self.next_seq;
        self.insert_with_seq(tx, fee, time, height, seq);
        seq
    }

    /// Adds a validated transaction with a sequence number from the store.
    pub fn insert_with_seq(&mut self, tx: Arc<Transaction>, fee: Amount, time: u64, height: u32, seq: u64) {
        let txid = tx.compute_txid();
        for input in &tx.input {
            self.spent.insert(input.previous_output, txid);
        }
        self.order.insert(seq, txid);
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
        self.entries.insert(txid, Entry { tx, txid, fee, time, seq, height });
    }

    /// Removes one transaction (not its descendants).
    pub fn remove(&mut self, txid: &Txid) -> Option<Entry> {
        let entry = self.entries.remove(txid)?;
        for input in &entry.tx.input {
            if self.spent.get(&input.previous_output) == Some(txid) {
                self.spent.remove(&input.previous_output);
            }
        }
        self.order.remove(&entry.seq);
        Some(entry)
    }

    /// The sequence number the next insertion gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A mempool transaction and every mempool transaction it spends from,
    /// directly or not.
    pub fn with_ancestors(&self, txid: &Txid) -> Vec<Txid> {
        self.closure(txid, |entry| {
            entry.tx.input.iter().map(|i| i.previous_output.txid).filter(|t| self.contains(t)).collect()
        })
    }

    /// A mempool transaction and everything that spends its outputs, directly
    /// or not.
    pub fn with_descendants(&self, txid: &Txid) -> Vec<Txid> {
        self.closure(txid, |entry| {
            (0..entry.tx.output.len())
                .filter_map(|vout| self.spender(&OutPoint { txid: entry.txid, vout: vout as u32 }))
                .collect()
        })
    }

    /// `txid` and every mempool transaction reachable from it through
    /// `neighbours`.
    fn closure(&self, txid: &Txid, neighbours: impl Fn(&Entry) -> Vec<Txid>) -> Vec<Txid> {
        let mut found = Vec::new();
        let mut queue = vec![*txid];
        let mut seen = HashSet::new();
        while let Some(next) = queue.pop() {
            if !seen.insert(next) {
                continue;
            }
            let Some(entry) = self.entries.get(&next) else { continue };
            queue.extend(neighbours(entry));
            found.push(next);
        }
        found
    }

    /// Takes every entry out, in arrival order.
    pub fn drain(&mut self) -> Vec<Entry> {
        let order = std::mem::take(&mut self.order);
        self.spent.clear();
        let mut entries = std::mem::take(&mut self.entries);
        order.into_values().filter_map(|txid| entries.remove(&txid)).collect()
    }
}

/// The outputs a new mempool transaction may spend: the chain's UTXO set plus
/// mempool outputs, minus what the mempool already spends.
pub(crate) struct MempoolView<'a> {
    pub state: &'a ChainState,
    pub pool: &'a Mempool,
}

impl CoinView for MempoolView<'_> {
    fn lookup(&self, outpoint: &OutPoint) -> CoinLookup {
        if self.pool.spender(outpoint).is_some() {
            return CoinLookup::Missing;
        }
        if let Some(coin) = self.state.coin(outpoint) {
            return CoinLookup::Unspent(coin.clone());
        }
        match self.pool.get(&outpoint.txid).and_then(|e| e.tx.output.get(outpoint.vout as usize)) {
            Some(txout) => CoinLookup::Unspent(Coin {
                txout: txout.clone(),
                height: self.state.height() + 1,
                coinbase: false,
            }),
            None => CoinLookup::Missing,
        }
    }
}

/// The outputs a transaction in a block being built may spend: the chain's
/// UTXO set plus outputs of earlier transactions in the block, minus what
/// those spend.
pub(crate) struct BlockView<'a> {
    pub state: &'a ChainState,
    pub created: HashMap<OutPoint, Coin>,
    pub spent: HashSet<OutPoint>,
}

impl<'a> BlockView<'a> {
    pub fn new(state: &'a ChainState) -> Self {
        Self { state, created: HashMap::new(), spent: HashSet::new() }
    }

    /// Records a transaction added to the block.
    pub fn apply(&mut self, tx: &Transaction) {
        let txid = tx.compute_txid();
        let height = self.state.height() + 1;
        for input in &tx.input {
            self.spent.insert(input.previous_output);
        }
        for (vout, txout) in tx.output.iter().enumerate() {
            let outpoint = OutPoint { txid, vout: vout as u32 };
            self.created.insert(outpoint, Coin { txout: txout.clone(), height, coinbase: false });
        }
    }
}

impl CoinView for BlockView<'_> {
    fn lookup(&self, outpoint: &OutPoint) -> CoinLookup {
        if self.spent.contains(outpoint) {
            return CoinLookup::Missing;
        }
        match self.state.coin(outpoint).or_else(|| self.created.get(outpoint)) {
            Some(coin) => CoinLookup::Unspent(coin.clone()),
            None => CoinLookup::Missing,
        }
    }
}
