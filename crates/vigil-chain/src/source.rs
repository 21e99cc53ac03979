//! The [`ChainSource`] trait: the node's whole view of the chain.

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, FeeRate, OutPoint, Transaction, TxOut, Txid};

/// A block in a chain: its height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Height of the block (genesis is 0).
    pub height: u32,
    /// Hash of the block.
    pub hash: BlockHash,
}

/// A block header and the height it sits at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The header.
    pub header: Header,
    /// Its height.
    pub height: u32,
}

/// A transaction the source knows, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    /// The transaction.
    pub tx: Transaction,
    /// The active-chain block that confirms it, or `None` while it is in the
    /// mempool.
    pub block: Option<BlockRef>,
}

/// An unspent output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoInfo {
    /// The output.
    pub txout: TxOut,
    /// The height of the block that created it, or `None` for an output of a
    /// mempool transaction.
    pub height: Option<u32>,
    /// Whether a coinbase created it (spendable after 100 confirmations).
    pub coinbase: bool,
}

/// Why the source could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainSourceError {
    /// The source cannot be reached (connection refused, timeout, I/O).
    #[error("chain source unavailable: {0}")]
    Unavailable(String),
    /// The source refused our credentials (HTTP 401).
    #[error("chain source refused the credentials (check the RPC cookie or rpcuser/rpcpassword)")]
    Unauthorized,
    /// The source answered with something that is not a valid answer.
    #[error("chain source sent an invalid response: {0}")]
    Protocol(String),
    /// The source answered a JSON-RPC call with an error.
    #[error("chain source RPC error {code}: {message}")]
    Rpc {
        /// Bitcoin Core's error code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// The source has no fee estimate for this target yet.
    #[error("chain source has no fee estimate yet")]
    NoFeeEstimate,
    /// A block the caller refers to is unknown to the source.
    #[error("chain source does not know block {0}")]
    UnknownBlock(BlockHash),
}

/// A transaction the source's mempool refused, in Bitcoin Core's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Bitcoin Core's RPC error code (-25, -26, -27, ...).
    pub code: i32,
    /// Bitcoin Core's reject reason, such as `bad-txns-inputs-missingorspent`.
    pub reason: String,
    /// A longer explanation naming the rule and the input, when the source
    /// gives one.
    pub detail: Option<String>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transaction rejected ({}): {}", self.code, self.reason)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// Why a broadcast failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The mempool refused the transaction.
    #[error(transparent)]
    Rejected(Rejection),
    /// The source could not be asked.
    #[error(transparent)]
    Source(ChainSourceError),
}

/// The node's whole view of the chain.
///
/// Calls are blocking; an async runtime calls them from a blocking task. The
/// active chain is the one ending at [`ChainSource::tip`]; a pull sync walks
/// it with [`crate::ChainFollower`], which also sees reorgs.
pub trait ChainSource: Send + Sync {
    /// The tip of the active chain.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn tip(&self) -> Result<BlockRef, ChainSourceError>;

    /// The hash of the active-chain block at `height`, or `None` above the
    /// tip.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainSourceError>;

    /// The header of any block the source knows, active or stale.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, ChainSourceError>;

    /// A whole block the source knows, active or stale.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainSourceError>;

    /// The transactions in the mempool, parents before children.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn mempool(&self) -> Result<Vec<Transaction>, ChainSourceError>;

    /// Submits `tx` to the mempool and relays it.
    ///
    /// # Errors
    ///
    /// [`BroadcastError::Rejected`] with Bitcoin Core's code and reason when
    /// the mempool refuses it, or [`BroadcastError::Source`].
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError>;

    /// The fee rate estimated to confirm within `target_blocks` blocks.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError::NoFeeEstimate`] when there is none yet, or another
    /// [`ChainSourceError`].
    fn fee_rate(&self, target_blocks: u16) -> Result<FeeRate, ChainSourceError>;

    /// A transaction in the active chain or the mempool. A bitcoind without
    /// `-txindex` only finds mempool transactions.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn transaction(&self, txid: &Txid) -> Result<Option<TxInfo>, ChainSourceError>;

    /// An unspent output of the active chain; with `include_mempool`, outputs
    /// of mempool transactions count and outputs spent in the mempool do not.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError`] when the source cannot answer.
    fn utxo(&self, outpoint: &OutPoint, include_mempool: bool) -> Result<Option<UtxoInfo>, ChainSourceError>;
}

impl<T: ChainSource + ?Sized> ChainSource for std::sync::Arc<T> {
    fn tip(&self) -> Result<BlockRef, ChainSourceError> {
        (**self).tip()
    }
    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainSourceError> {
        (**self).block_hash(height)
    }
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, ChainSourceError> {
        (**self).header(hash)
    }
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainSourceError> {
        (**self).block(hash)
    }
    fn mempool(&self) -> Result<Vec<Transaction>, ChainSourceError> {
        (**self).mempool()
    }
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError> {
        (**self).broadcast(tx)
    }
    fn fee_rate(&self, target_blocks: u16) -> Result<FeeRate, ChainSourceError> {
        (**self).fee_rate(target_blocks)
    }
    fn transaction(&self, txid: &Txid) -> Result<Option<TxInfo>, ChainSourceError> {
        (**self).transaction(txid)
    }
    fn utxo(&self, outpoint: &OutPoint, include_mempool: bool) -> Result<Option<UtxoInfo>, ChainSourceError> {
        (**self).utxo(outpoint, include_mempool)
    }
}
