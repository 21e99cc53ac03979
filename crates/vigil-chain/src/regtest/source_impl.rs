//! [`ChainSource`] for the embedded chain: answers come straight from memory,
//! so they never fail except a broadcast the mempool refuses.

use bitcoin::{Block, BlockHash, FeeRate, OutPoint, Transaction, Txid};

use super::validate::TxError;
use super::{RegtestChain, SubmitError};
use crate::{
    BlockRef, BroadcastError, ChainSource, ChainSourceError, HeaderInfo, Rejection, TxInfo, UtxoInfo,
};

impl From<&TxError> for Rejection {
    fn from(error: &TxError) -> Self {
        Rejection {
            code: error.rpc_code(),
            reason: error.reject_reason().to_owned(),
            detail: Some(error.to_string()),
        }
    }
}

impl ChainSource for RegtestChain {
    fn tip(&self) -> Result<BlockRef, ChainSourceError> {
        Ok(RegtestChain::tip(self))
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainSourceError> {
        Ok(self.lock().state.hash_at(height))
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, ChainSourceError> {
        Ok(self.lock().state.block(hash).map(|(b, height)| HeaderInfo { header: b.header, height }))
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainSourceError> {
        Ok(self.lock().state.block(hash).map(|(b, _)| (**b).clone()))
    }

    fn mempool(&self) -> Result<Vec<Transaction>, ChainSourceError> {
        Ok(self.lock().pool.iter().map(|e| (*e.tx).clone()).collect())
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError> {
        match self.submit_transaction(tx) {
            Ok(txid) => Ok(txid),
            // As Bitcoin Core's `sendrawtransaction`: a transaction already in
            // the mempool is not an error.
            Err(SubmitError::Invalid(TxError::AlreadyInMempool { txid })) => Ok(txid),
            Err(SubmitError::Invalid(error)) => Err(BroadcastError::Rejected((&error).into())),
            Err(SubmitError::Store(error)) => {
                Err(BroadcastError::Source(ChainSourceError::Unavailable(error.to_string())))
            }
        }
    }

    fn fee_rate(&self, _target_blocks: u16) -> Result<FeeRate, ChainSourceError> {
        Ok(RegtestChain::fee_rate(self))
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<TxInfo>, ChainSourceError> {
        let inner = self.lock();
        if let Some(loc) = inner.state.tx_location(txid) {
            let (block, _) = inner.state.block(&loc.block).expect("indexed blocks are known");
            return Ok(Some(TxInfo {
                tx: block.txdata[loc.index].clone(),
                block: Some(BlockRef { height: loc.height, hash: loc.block }),
            }));
        }
        Ok(inner.pool.get(txid).map(|e| TxInfo { tx: (*e.tx).clone(), block: None }))
    }

    fn utxo(&self, outpoint: &OutPoint, include_mempool: bool) -> Result<Option<UtxoInfo>, ChainSourceError> {
        let inner = self.lock();
        if include_mempool && inner.pool.spender(outpoint).is_some() {
            return Ok(None);
        }
        if let Some(coin) = inner.state.coin(outpoint) {
            return Ok(Some(UtxoInfo {
                txout: coin.txout.clone(),
                height: Some(coin.height),
                coinbase: coin.coinbase,
            }));
        }
        if !include_mempool {
            return Ok(None);
        }
        Ok(inner
            .pool
            .get(&outpoint.txid)
            .and_then(|e| e.tx.output.get(outpoint.vout as usize))
            .filter(|txout| !txout.script_pubkey.is_op_return())
            .map(|txout| UtxoInfo { txout: txout.clone(), height: None, coinbase: false }))
    }
}
