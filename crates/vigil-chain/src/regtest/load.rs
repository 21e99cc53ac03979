//! Rebuilding the chain from its store at open.
//!
//! The stored blocks are decoded and checked (hash, merkle root, links back
//! to the regtest genesis, every input present), the active chain is
//! reconnected from genesis to the stored tip to rebuild the UTXO set, and
//! the stored mempool is validated again. Anything inconsistent is reported as
//! [`OpenError::Corrupt`]; nothing is rewritten.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use bitcoin::{Block, BlockHash, FeeRate, Txid};
use vigil_store::KvStore;

use super::mempool::{BlockView, Mempool};
use super::persist::{decode_entry, KEY_FEE_RATE, KEY_TIP, NS_BLOCKS, NS_MEMPOOL, NS_META};
use super::state::ChainState;
use super::validate::{check_block_structure, CoinLookup, CoinView};
use super::Admission;
use super::{Inner, OpenError, RegtestChain, DEFAULT_FEE_RATE};

fn corrupt(detail: impl Into<String>) -> OpenError {
    OpenError::Corrupt(detail.into())
}

/// Loads the chain; also returns the stored mempool transactions that are no
/// longer valid, for the caller to remove.
pub(super) fn load(store: &dyn KvStore) -> Result<(Inner, Vec<Txid>), OpenError> {
    let fee_rate = match store.read(NS_META, KEY_FEE_RATE)? {
        None => DEFAULT_FEE_RATE,
        Some(raw) => std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(FeeRate::from_sat_per_kwu)
            .ok_or_else(|| corrupt("the stored fee rate is not a number"))?,
    };
    let mut blocks = HashMap::new();
    for (key, bytes) in store.read_namespace(NS_BLOCKS)? {
        let block: Block = bitcoin::consensus::deserialize(&bytes)
            .map_err(|e| corrupt(format!("block {key} does not decode: {e}")))?;
        let hash = block.block_hash();
        if key != hash.to_string() {
            return Err(corrupt(format!("block stored under {key} hashes to {hash}")));
        }
        if !block.check_merkle_root() || !block.check_witness_commitment() {
            return Err(corrupt(format!(
                "block {hash} does not match its merkle root or witness commitment"
            )));
        }
        blocks.insert(hash, Arc::new(block));
    }
    let mut state = ChainState::new();
    if let Some(raw) = store.read(NS_META, KEY_TIP)? {
        let tip = std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| BlockHash::from_str(s).ok())
            .ok_or_else(|| corrupt("the stored tip is not a block hash"))?;
        connect_active_chain(&mut state, &blocks, tip)?;
    } else if !blocks.is_empty() {
        return Err(corrupt("blocks are stored but the tip is missing"));
    }
    remember_stale_blocks(&mut state, &blocks);
    let (pool, dropped) = load_mempool(store, &state)?;
    Ok((Inner { state, pool, fee_rate, min_block_feerate: 0 }, dropped))
}

fn connect_active_chain(
    state: &mut ChainState,
    blocks: &HashMap<BlockHash, Arc<Block>>,
    tip: BlockHash,
) -> Result<(), OpenError> {
    let genesis = state.genesis_hash();
    let mut path = Vec::new();
    let mut cursor = tip;
    while cursor != genesis {
        let block = blocks
            .get(&cursor)
            .ok_or_else(|| corrupt(format!("block {cursor} of the active chain is missing")))?;
        path.push(block.clone());
        cursor = block.header.prev_blockhash;
        if path.len() > blocks.len() {
            return Err(corrupt("the stored blocks do not lead back to the regtest genesis"));
        }
    }
    for block in path.into_iter().rev() {
        check_inputs_present(state, &block)?;
        state.connect(block);
    }
    Ok(())
}

/// A stored block must be well formed and every input of every transaction
/// must spend an output that exists when the block is connected, or
/// connecting it would be impossible.
fn check_inputs_present(state: &ChainState, block: &Block) -> Result<(), OpenError> {
    let hash = block.block_hash();
    check_block_structure(block).map_err(|e| corrupt(format!("block {hash}: {e}")))?;
    let mut view = BlockView::new(state);
    for tx in block.txdata.iter().skip(1) {
        for input in &tx.input {
            if !matches!(view.lookup(&input.previous_output), CoinLookup::Unspent(_)) {
                return Err(corrupt(format!(
                    "block {hash} spends {} which is not available",
                    input.previous_output
                )));
            }
        }
        view.apply(tx);
    }
    Ok(())
}

/// Stale blocks (left behind by reorgs) stay queryable by hash.
fn remember_stale_blocks(state: &mut ChainState, blocks: &HashMap<BlockHash, Arc<Block>>) {
    let mut pending: Vec<&Arc<Block>> =
        blocks.values().filter(|b| state.block(&b.block_hash()).is_none()).collect();
    loop {
        let before = pending.len();
        pending.retain(|block| match state.block(&block.header.prev_blockhash) {
            Some((_, parent_height)) => {
                state.add_known((*block).clone(), parent_height + 1);
                false
            }
            None => true,
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    if !pending.is_empty() {
        tracing::warn!(count = pending.len(), "stored blocks that connect to no known block were ignored");
    }
}

fn load_mempool(store: &dyn KvStore, state: &ChainState) -> Result<(Mempool, Vec<Txid>), OpenError> {
    let mut entries = Vec::new();
    for (key, bytes) in store.read_namespace(NS_MEMPOOL)? {
        let entry = decode_entry(&bytes).map_err(|e| corrupt(format!("mempool entry {key}: {e}")))?;
        entries.push(entry);
    }
    entries.sort_by_key(|e| e.seq);
    let mut pool = Mempool::default();
    let mut dropped = Vec::new();
    for entry in entries {
        // Stored entries never replace one another: the first seen stays.
        match RegtestChain::check_for_mempool(state, &pool, &entry.tx) {
            Ok(Admission { fee, evicted }) if evicted.is_empty() => {
                pool.insert_with_seq(Arc::new(entry.tx), fee, entry.time, state.height(), entry.seq)
            }
            Ok(_) => {
                let txid = entry.tx.compute_txid();
                tracing::info!(%txid, "stored mempool transaction conflicts with an earlier one");
                dropped.push(txid);
            }
            Err(error) => {
                let txid = entry.tx.compute_txid();
                tracing::info!(%txid, %error, "stored mempool transaction is no longer valid");
                dropped.push(txid);
            }
        }
    }
    Ok((pool, dropped))
}
