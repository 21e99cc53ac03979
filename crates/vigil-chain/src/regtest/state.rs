//! The chain state: known blocks, the active chain, the UTXO set with undo
//! data, and a transaction index. Pure data; validation happens before a block
//! reaches [`ChainState::connect`].

use std::collections::HashMap;
use std::sync::Arc;

use bitcoin::{Block, BlockHash, Network, OutPoint, TxOut, Txid};

use crate::BlockRef;

/// An unspent output and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coin {
    pub txout: TxOut,
    /// The height of the block that created it; for a mempool output, the
    /// height of the next block.
    pub height: u32,
    pub coinbase: bool,
}

/// Where an active-chain transaction sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxLocation {
    pub block: BlockHash,
    pub height: u32,
    pub index: usize,
}

#[derive(Debug)]
pub(crate) struct ChainState {
    /// Every block known, active or stale, with its height.
    blocks: HashMap<BlockHash, (Arc<Block>, u32)>,
    /// The active chain; index is height.
    active: Vec<BlockHash>,
    utxos: HashMap<OutPoint, Coin>,
    /// Coins each active block spent, in spending order, to undo it.
    undo: HashMap<BlockHash, Vec<(OutPoint, Coin)>>,
    tx_index: HashMap<Txid, TxLocation>,
}

impl ChainState {
    /// A chain holding only the regtest genesis block.
    pub fn new() -> Self {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let hash = genesis.block_hash();
        let mut blocks = HashMap::new();
        blocks.insert(hash, (Arc::new(genesis), 0));
        // As in Bitcoin Core, the genesis coinbase is neither spendable nor
        // indexed.
        Self {
            blocks,
            active: vec![hash],
            utxos: HashMap::new(),
            undo: HashMap::new(),
            tx_index: HashMap::new(),
        }
    }

    pub fn genesis_hash(&self) -> BlockHash {
        self.active[0]
    }

    pub fn tip(&self) -> BlockRef {
        BlockRef {
            height: self.height(),
            hash: *self.active.last().expect("the active chain always holds genesis"),
        }
    }

    pub fn height(&self) -> u32 {
        u32::try_from(self.active.len() - 1).expect("a regtest chain stays below 2^32 blocks")
    }

    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    pub fn block(&self, hash: &BlockHash) -> Option<(&Arc<Block>, u32)> {
        self.blocks.get(hash).map(|(b, h)| (b, *h))
    }

    pub fn block_at(&self, height: u32) -> Option<&Arc<Block>> {
        self.hash_at(height).and_then(|h| self.blocks.get(&h)).map(|(b, _)| b)
    }

    pub fn is_active(&self, hash: &BlockHash) -> bool {
        match self.blocks.get(hash) {
            Some((_, height)) => self.hash_at(*height) == Some(*hash),
            None => false,
        }
    }

    /// Remembers a block that is not (yet) on the active chain.
    pub fn add_known(&mut self, block: Arc<Block>, height: u32) {
        self.blocks.insert(block.block_hash(), (block, height));
    }

    pub fn coin(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.utxos.get(outpoint)
    }

    pub fn tx_location(&self, txid: &Txid) -> Option<TxLocation> {
        self.tx_index.get(txid).copied()
    }

    /// The median time of the 11 blocks ending at `height` (BIP113).
    pub fn median_time_past(&self, height: u32) -> u32 {
        let end = (height as usize).min(self.active.len() - 1);
        let start = end.saturating_sub(10);
        let mut times: Vec<u32> =
            self.active[start..=end].iter().map(|h| self.blocks[h].0.header.time).collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Chain work up to and including `height`, as Bitcoin Core prints it
    /// (64 hex digits). Every regtest block has the same target, so each adds
    /// the same work.
    pub fn chain_work_hex(&self, height: u32) -> String {
        let per_block = self.blocks[&self.active[0]].0.header.work().to_be_bytes();
        let mut low = [0u8; 16];
        low.copy_from_slice(&per_block[16..]);
        let total = u128::from_be_bytes(low) * (u128::from(height) + 1);
        format!("{total:064x}")
    }

    /// Makes `block` the new tip. It must extend the tip and be valid.
    pub fn connect(&mut self, block: Arc<Block>) {
        debug_assert_eq!(block.header.prev_blockhash, self.tip().hash);
        let hash = block.block_hash();
        let height = self.height() + 1;
        let mut spent = Vec::new();
        for (index, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            let coinbase = tx.is_coinbase();
            if !coinbase {
                for input in &tx.input {
                    let coin = self
                        .utxos
                        .remove(&input.previous_output)
                        .expect("a connected block only spends unspent outputs (validated before)");
                    spent.push((input.previous_output, coin));
                }
            }
            for (vout, txout) in tx.output.iter().enumerate() {
                if txout.script_pubkey.is_op_return() {
                    continue;
                }
                let outpoint = OutPoint { txid, vout: vout as u32 };
                self.utxos.insert(outpoint, Coin { txout: txout.clone(), height, coinbase });
            }
            self.tx_index.insert(txid, TxLocation { block: hash, height, index });
        }
        self.undo.insert(hash, spent);
        self.blocks.insert(hash, (block, height));
        self.active.push(hash);
    }

    /// Removes the tip from the active chain (it stays known), restoring the
    /// coins it spent. Returns `None` at genesis.
    ///
    /// Transactions are undone last to first, each removing its outputs and
    /// then restoring what it spent, so an output created and spent inside
    /// the block does not come back (Core's `DisconnectBlock`).
    pub fn disconnect_tip(&mut self) -> Option<Arc<Block>> {
        if self.active.len() == 1 {
            return None;
        }
        let hash = self.active.pop().expect("checked above: more than genesis");
        let block = self.blocks[&hash].0.clone();
        let mut spent = self.undo.remove(&hash).expect("every active block has undo data");
        for tx in block.txdata.iter().rev() {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() {
                self.utxos.remove(&OutPoint { txid, vout: vout as u32 });
            }
            self.tx_index.remove(&txid);
            if !tx.is_coinbase() {
                let restored = spent.split_off(spent.len() - tx.input.len());
                for (outpoint, coin) in restored {
                    self.utxos.insert(outpoint, coin);
                }
            }
        }
        debug_assert!(spent.is_empty(), "undo data matches the block's inputs");
        Some(block)
    }
}
