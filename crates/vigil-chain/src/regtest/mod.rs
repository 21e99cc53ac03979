//! The embedded regtest chain.
//!
//! [`RegtestChain`] is a complete, single-node regtest chain: the standard
//! regtest genesis block, mining on demand with real proof of work, a mempool
//! that validates every transaction fully ([`validate`]), reorgs by
//! invalidating blocks, and persistence in a [`KvStore`] ([`persist`]).
//!
//! Every mutation is computed first, written to the store as one atomic batch,
//! and only then applied in memory. A refused transaction or a failed write
//! changes nothing.

mod load;
mod mempool;
pub(crate) use mempool::{Entry, Mempool};
mod miner;
mod persist;
pub mod rbf;
mod source_impl;
mod state;
pub mod validate;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::{Address, Amount, BlockHash, FeeRate, Script, Transaction, Txid};
use vigil_store::{Batch, KvStore, MemoryStore, StoreError};

use crate::{BlockRef, Clock};
use mempool::{BlockView, MempoolView};
use persist::{encode_entry, KEY_FEE_RATE, KEY_TIP, NS_BLOCKS, NS_MEMPOOL, NS_META};
pub(crate) use state::ChainState;
use validate::{check_transaction, SpendContext, TxError, MAX_BLOCK_WEIGHT, MAX_STANDARD_TX_WEIGHT};

pub use miner::{subsidy, HALVING_INTERVAL};
pub use validate::{RelativeLockShortfall, COINBASE_MATURITY};

/// The fee rate reported until one is set: 2 sat/vB.
pub const DEFAULT_FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(500);

/// Why the chain could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored chain is inconsistent; it was left untouched.
    #[error("the stored chain is corrupt: {0}")]
    Corrupt(String),
}

/// Why a transaction was not accepted into the mempool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The transaction breaks a rule; nothing changed.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why blocks could not be mined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MineError {
    /// A transaction given for the block breaks a rule; nothing changed.
    #[error("transaction {index} of the block is invalid: {error}")]
    InvalidTransaction {
        /// Its index among the transactions given (0 is the first after the
        /// coinbase).
        index: usize,
        /// The rule it breaks.
        error: TxError,
    },
    /// The transactions given do not fit in a block.
    #[error("the block would weigh {weight}, above the limit of {MAX_BLOCK_WEIGHT}")]
    BlockTooHeavy {
        /// The weight it would have.
        weight: u64,
    },
    /// The store failed; blocks mined before the failure stay mined.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a block could not be invalidated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidateError {
    /// No such block.
    #[error("unknown block {0}")]
    UnknownBlock(BlockHash),
    /// The genesis block cannot be invalidated.
    #[error("the genesis block cannot be invalidated")]
    Genesis,
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A transaction admitted to the mempool: its fee, and what it replaces.
pub(crate) struct Admission {
    pub fee: Amount,
    pub evicted: Vec<Txid>,
}

/// A transaction in the mempool, as the RPC layer shows it.
#[derive(Debug, Clone)]
pub struct MempoolTx {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Its id.
    pub txid: Txid,
    /// Its fee.
    pub fee: Amount,
    /// When it entered the mempool, in UNIX seconds.
    pub time: u64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub state: ChainState,
    pub pool: Mempool,
    pub fee_rate: FeeRate,
    /// The lowest feerate (sat per 1000 vbytes) a transaction needs to be
    /// mined (0: every valid one is); not stored.
    pub min_block_feerate: u64,
}

/// The embedded regtest chain. Cheap to share behind an [`Arc`]; every method
/// takes `&self`.
#[derive(Debug)]
pub struct RegtestChain {
    inner: Mutex<Inner>,
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
}

impl RegtestChain {
    /// Opens the chain stored in `store`, or starts a new one at genesis if
    /// the store holds none. Stored mempool transactions are validated again;
    /// those no longer valid are dropped.
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] if the stored blocks do not form a valid chain
    /// from the regtest genesis, or [`OpenError::Store`].
    pub fn open(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        let (inner, dropped) = load::load(store.as_ref())?;
        if !dropped.is_empty() {
            let mut batch = Batch::new();
            for txid in &dropped {
                batch.remove(NS_MEMPOOL, &txid.to_string());
            }
            store.write_batch(&batch)?;
            tracing::info!(
                count = dropped.len(),
                "dropped stored mempool transactions that are no longer valid"
            );
        }
        Ok(Self { inner: Mutex::new(inner), store, clock })
    }

    /// A new chain at genesis, kept in memory only.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Self {
        Self::open(Arc::new(MemoryStore::new()), clock)
            .expect("a new memory store holds no chain, so opening it cannot fail")
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("chain lock poisoned: an earlier chain operation panicked")
    }

    /// The tip of the active chain.
    pub fn tip(&self) -> BlockRef {
        self.lock().state.tip()
    }

    /// The height of the tip.
    pub fn height(&self) -> u32 {
        self.lock().state.height()
    }

    /// The median time past of the tip (BIP113), which time-based locktimes
    /// are compared with.
    pub fn median_time_past(&self) -> u32 {
        let inner = self.lock();
        inner.state.median_time_past(inner.state.height())
    }

    /// The fee rate [`crate::ChainSource::fee_rate`] and `estimatesmartfee`
    /// report, for every target.
    pub fn fee_rate(&self) -> FeeRate {
        self.lock().fee_rate
    }

    /// Sets the reported fee rate, durably.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if it could not be stored; then nothing changed.
    pub fn set_fee_rate(&self, rate: FeeRate) -> Result<(), StoreError> {
        let mut inner = self.lock();
        self.store.write(NS_META, KEY_FEE_RATE, rate.to_sat_per_kwu().to_string().as_bytes())?;
        inner.fee_rate = rate;
        Ok(())
    }

    /// The transactions in the mempool, parents before children.
    pub fn mempool_entries(&self) -> Vec<MempoolTx> {
        self.lock()
            .pool
            .iter()
            .map(|e| MempoolTx { tx: e.tx.clone(), txid: e.txid, fee: e.fee, time: e.time })
            .collect()
    }

    fn spend_context(state: &ChainState) -> SpendContext {
        SpendContext { height: state.height() + 1, median_time_past: state.median_time_past(state.height()) }
    }

    fn block_time(&self, state: &ChainState) -> u32 {
        let mtp = state.median_time_past(state.height());
        let now = u32::try_from(self.clock.now_secs()).unwrap_or(u32::MAX);
        now.max(mtp.saturating_add(1))
    }

    /// Validates `tx` against `pool` as it would enter the next block,
    /// replacing what it conflicts with if it pays for that (full RBF, see
    /// [`rbf`]). Returns its fee and the mempool transactions it evicts.
    fn check_for_mempool(state: &ChainState, pool: &Mempool, tx: &Transaction) -> Result<Admission, TxError> {
        let txid = tx.compute_txid();
        if pool.contains(&txid) {
            return Err(TxError::AlreadyInMempool { txid });
        }
        if Self::confirmed_with_unspent_outputs(state, tx, txid) {
            return Err(TxError::AlreadyInChain { txid });
        }
        let ctx = Self::spend_context(state);
        let conflicts = rbf::direct_conflicts(pool, tx);
        let Some((input, outpoint, conflict)) =
            tx.input.iter().enumerate().find_map(|(i, txin)| {
                pool.spender(&txin.previous_output).map(|c| (i, txin.previous_output, c))
            })
        else {
            let fee =
                check_transaction(tx, &MempoolView { state, pool }, ctx, state, MAX_STANDARD_TX_WEIGHT)?;
            validate::check_min_relay_fee(tx, fee)?;
            return Ok(Admission { fee, evicted: Vec::new() });
        };
        let refuse = |refusal| TxError::DoubleSpend { input, outpoint, conflict, refusal: Box::new(refusal) };
        let evicted = rbf::evictions(pool, &conflicts).map_err(refuse)?;
        let mut trial = pool.clone();
        for t in &evicted {
            trial.remove(t);
        }
        let fee =
            check_transaction(tx, &MempoolView { state, pool: &trial }, ctx, state, MAX_STANDARD_TX_WEIGHT)?;
        validate::check_min_relay_fee(tx, fee)?;
        rbf::check_replacement(pool, tx, fee, &conflicts, &evicted).map_err(refuse)?;
        Ok(Admission { fee, evicted })
    }

    fn confirmed_with_unspent_outputs(state: &ChainState, tx: &Transaction, txid: Txid) -> bool {
        state.tx_location(&txid).is_some()
            && (0..tx.output.len())
                .any(|vout| state.coin(&bitcoin::OutPoint { txid, vout: vout as u32 }).is_some())
    }

    /// Validates `tx` and adds it to the mempool, durably.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Invalid`] naming the rule it breaks, or
    /// [`SubmitError::Store`]; either way nothing changed.
    pub fn submit_transaction(&self, tx: &Transaction) -> Result<Txid, SubmitError> {
        let mut inner = self.lock();
        let Admission { fee, evicted } = Self::check_for_mempool(&inner.state, &inner.pool, tx)?;
        let txid = tx.compute_txid();
        let seq = inner.pool.next_seq();
        let time = self.clock.now_secs();
        let mut batch = Batch::new();
        for replaced in &evicted {
            batch.remove(NS_MEMPOOL, &replaced.to_string());
        }
        batch.write(NS_MEMPOOL, &txid.to_string(), encode_entry(seq, time, tx));
        self.store.write_batch(&batch)?;
        for replaced in &evicted {
            inner.pool.remove(replaced);
            tracing::debug!(%replaced, by = %txid, "transaction replaced in the mempool");
        }
        let height = inner.state.height();
        inner.pool.insert_with_seq(Arc::new(tx.clone()), fee, time, height, seq);
        tracing::debug!(%txid, %fee, "transaction accepted to the mempool");
        Ok(txid)
    }

    /// Checks a package of transactions as `testmempoolaccept` does: each in
    /// turn, as if the earlier ones had been accepted. Nothing changes.
    /// Returns each transaction's fee or the rule it breaks.
    pub fn test_accept(&self, txs: &[Transaction]) -> Vec<Result<Amount, TxError>> {
        let inner = self.lock();
        let mut pool = inner.pool.clone();
        let mut results = Vec::with_capacity(txs.len());
        for tx in txs {
            let result = Self::check_for_mempool(&inner.state, &pool, tx);
            if let Ok(admission) = &result {
                for replaced in &admission.evicted {
                    pool.remove(replaced);
                }
                pool.insert(Arc::new(tx.clone()), admission.fee, 0, inner.state.height());
            }
            results.push(result.map(|a| a.fee));
        }
        results
    }

    /// From now on, blocks mined by [`RegtestChain::mine`] leave out
    /// mempool transactions paying less than `sat_per_kvb` (and their
    /// descendants), as a busy network would: fee-bump tests use it. Not
    /// stored; 0 (the default) mines every valid transaction.
    pub fn set_min_block_feerate(&self, sat_per_kvb: u64) {
        self.lock().min_block_feerate = sat_per_kvb;
    }

    /// Mines `n` blocks paying to `to`, each taking what fits from the
    /// mempool (see [`RegtestChain::set_min_block_feerate`]). Returns their
    /// hashes.
    ///
    /// # Errors
    ///
    /// [`MineError::Store`]; the blocks mined before the failure stay.
    pub fn mine(&self, n: u32, to: &Address) -> Result<Vec<BlockHash>, MineError> {
        self.mine_to_script(n, &to.script_pubkey())
    }

    /// As [`RegtestChain::mine`], paying to any script.
    ///
    /// # Errors
    ///
    /// [`MineError::Store`]; the blocks mined before the failure stay.
    pub fn mine_to_script(&self, n: u32, to: &Script) -> Result<Vec<BlockHash>, MineError> {
        let mut hashes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut inner = self.lock();
            let mut txs = Vec::new();
            let mut fees = Amount::ZERO;
            let mut weight = 4_000u64; // room for the coinbase
            let mut skipped = HashSet::new();
            let min_feerate = inner.min_block_feerate;
            for entry in inner.pool.iter() {
                let tx_weight = entry.tx.weight().to_wu();
                let orphaned = entry.tx.input.iter().any(|i| skipped.contains(&i.previous_output.txid));
                let cheap = entry.fee.to_sat() * 1000 < min_feerate * entry.tx.vsize() as u64;
                if orphaned || cheap || weight + tx_weight > MAX_BLOCK_WEIGHT {
                    skipped.insert(entry.txid);
                    continue;
                }
                weight += tx_weight;
                fees += entry.fee;
                txs.push(entry.tx.clone());
            }
            let included: Vec<Txid> = txs.iter().map(|tx| tx.compute_txid()).collect();
            let hash = self.connect_new_block(&mut inner, to, &txs, fees, &included, &[])?;
            hashes.push(hash);
        }
        Ok(hashes)
    }

    /// Mines one block paying to `to` that holds exactly `txs` (after the
    /// coinbase), whether or not they are in the mempool, like Bitcoin Core's
    /// `generateblock`. Mempool transactions that conflict with the block are
    /// evicted with their descendants.
    ///
    /// # Errors
    ///
    /// [`MineError::InvalidTransaction`] or [`MineError::BlockTooHeavy`] if
    /// the block would be invalid, or [`MineError::Store`]; then nothing
    /// changed.
    pub fn mine_block_with(&self, to: &Script, txs: &[Transaction]) -> Result<BlockHash, MineError> {
        let mut inner = self.lock();
        let ctx = Self::spend_context(&inner.state);
        let mut view = BlockView::new(&inner.state);
        let mut fees = Amount::ZERO;
        let mut weight = 4_000u64;
        for (index, tx) in txs.iter().enumerate() {
            let txid = tx.compute_txid();
            if Self::confirmed_with_unspent_outputs(&inner.state, tx, txid) {
                return Err(MineError::InvalidTransaction { index, error: TxError::AlreadyInChain { txid } });
            }
            let fee = check_transaction(tx, &view, ctx, &inner.state, MAX_BLOCK_WEIGHT)
                .map_err(|error| MineError::InvalidTransaction { index, error })?;
            fees += fee;
            weight += tx.weight().to_wu();
            view.apply(tx);
        }
        if weight > MAX_BLOCK_WEIGHT {
            return Err(MineError::BlockTooHeavy { weight });
        }
        let included: Vec<Txid> = txs.iter().map(|tx| tx.compute_txid()).collect();
        let included_set: HashSet<Txid> = included.iter().copied().collect();
        let mut evicted = Vec::new();
        for tx in txs {
            for input in &tx.input {
                match inner.pool.spender(&input.previous_output) {
                    Some(spender) if !included_set.contains(&spender) => {
                        evicted.extend(inner.pool.with_descendants(&spender));
                    }
                    _ => {}
                }
            }
        }
        let txs: Vec<Arc<Transaction>> = txs.iter().cloned().map(Arc::new).collect();
        self.connect_new_block(&mut inner, to, &txs, fees, &included, &evicted)
    }

    /// Assembles a block on the tip, stores it with the new tip and the
    /// mempool removals in one batch, then applies it in memory.
    fn connect_new_block(
        &self,
        inner: &mut Inner,
        to: &Script,
        txs: &[Arc<Transaction>],
        fees: Amount,
        included: &[Txid],
        evicted: &[Txid],
    ) -> Result<BlockHash, MineError> {
        let time = self.block_time(&inner.state);
        let mut extra_nonce = 0;
        let block = loop {
            let block = miner::assemble(inner.state.tip(), time, to, txs, fees, extra_nonce);
            // After a reorg the same parent, time and transactions would give
            // back the very block that was invalidated.
            if inner.state.block(&block.block_hash()).is_none() {
                break block;
            }
            extra_nonce += 1;
        };
        let hash = block.block_hash();
        let mut batch = Batch::new();
        batch.write(NS_BLOCKS, &hash.to_string(), bitcoin::consensus::serialize(&block));
        batch.write(NS_META, KEY_TIP, hash.to_string());
        for txid in included.iter().chain(evicted) {
            if inner.pool.contains(txid) {
                batch.remove(NS_MEMPOOL, &txid.to_string());
            }
        }
        self.store.write_batch(&batch)?;
        inner.state.connect(Arc::new(block));
        for txid in included.iter().chain(evicted) {
            inner.pool.remove(txid);
        }
        tracing::debug!(height = inner.state.height(), %hash, txs = txs.len(), "mined a block");
        Ok(hash)
    }

    /// Invalidates `hash` like Bitcoin Core's `invalidateblock`: if it is on
    /// the active chain, it and every block above it are disconnected, and
    /// their transactions go back to the mempool if they are still valid.
    /// Mining then continues from its parent, so a competing branch replaces
    /// it. Returns the hashes disconnected, tip first; a block that is not on
    /// the active chain disconnects nothing.
    ///
    /// # Errors
    ///
    /// [`InvalidateError::UnknownBlock`], [`InvalidateError::Genesis`], or
    /// [`InvalidateError::Store`]; then nothing changed.
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<Vec<BlockHash>, InvalidateError> {
        let mut inner = self.lock();
        let Some((_, height)) = inner.state.block(hash) else {
            return Err(InvalidateError::UnknownBlock(*hash));
        };
        if height == 0 {
            return Err(InvalidateError::Genesis);
        }
        if !inner.state.is_active(hash) {
            return Ok(Vec::new());
        }
        let inner = &mut *inner;
        let old_entries = inner.pool.drain();
        let mut disconnected = Vec::new();
        while inner.state.height() >= height {
            disconnected.push(inner.state.disconnect_tip().expect("above genesis, checked above"));
        }
        // Transactions of the disconnected blocks, oldest block first, then
        // the old mempool: parents always come before children.
        let now = self.clock.now_secs();
        let candidates = disconnected
            .iter()
            .rev()
            .flat_map(|block| block.txdata.iter().skip(1).map(|tx| (Arc::new(tx.clone()), now)))
            .chain(old_entries.iter().map(|e| (e.tx.clone(), e.time)));
        let mut rebuilt = Mempool::default();
        let height = inner.state.height();
        for (tx, time) in candidates {
            // Nothing replaces anything while the mempool is rebuilt.
            if let Ok(Admission { fee, evicted }) = Self::check_for_mempool(&inner.state, &rebuilt, &tx) {
                if evicted.is_empty() {
                    rebuilt.insert(tx, fee, time, height);
                }
            }
        }
        let mut batch = Batch::new();
        batch.write(NS_META, KEY_TIP, inner.state.tip().hash.to_string());
        for entry in &old_entries {
            batch.remove(NS_MEMPOOL, &entry.txid.to_string());
        }
        for entry in rebuilt.iter() {
            batch.write(NS_MEMPOOL, &entry.txid.to_string(), encode_entry(entry.seq, entry.time, &entry.tx));
        }
        if let Err(e) = self.store.write_batch(&batch) {
            for block in disconnected.into_iter().rev() {
                inner.state.connect(block);
            }
            for entry in old_entries {
                inner.pool.insert_with_seq(entry.tx, entry.fee, entry.time, entry.height, entry.seq);
            }
            return Err(e.into());
        }
        inner.pool = rebuilt;
        let hashes: Vec<BlockHash> = disconnected.iter().map(|b| b.block_hash()).collect();
        tracing::info!(blocks = hashes.len(), tip = %inner.state.tip().hash, "invalidated blocks");
        Ok(hashes)
    }
}
