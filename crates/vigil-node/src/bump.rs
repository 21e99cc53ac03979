//! Fee bumping with the on-chain wallet: the claims of anchor channels that
//! the monitors cannot pay for themselves ([`FeeNeed`]s) are funded by the
//! wallet (BDK selects confirmed coins), signed by the monitor, and
//! broadcast.
//!
//! A need is funded again at every block while it is listed: if the
//! transaction already spending its output (ours from this run, or found
//! in the mempool after a restart) is still waiting and the target has not
//! risen by a quarter, it is left alone; otherwise a replacement is built:
//! the replaced transaction's coins are free again, its outputs are not,
//! and the replacement pays at least its fee plus the relay of its own size
//! (BIP125 rules 2 to 4). Every funded transaction is recorded in the
//! wallet at once, so the needs of one block never choose the same coins.
//! A need the wallet cannot fund is reported in [`Node::fee_bump_errors`]
//! and tried again at the next block, so adding funds is enough to unblock
//! it.

use std::collections::BTreeMap;

use bitcoin::{OutPoint, Transaction};
use lightning::ln::types::ChannelId;
use vigil_core::onchain::FeeNeed;
use vigil_wallet::ExternalInput;

use crate::node::{now_secs, Node};

/// What was funded for a need: the transaction and the feerate it targeted.
#[derive(Debug, Clone)]
pub(crate) struct Funded {
    tx: Transaction,
    target_feerate_per_kw: u32,
}

/// The node's fee-bumping memory (in memory only: after a restart the
/// mempool says what was funded).
#[derive(Debug, Default)]
pub(crate) struct Bumper {
    funded: BTreeMap<OutPoint, Funded>,
    errors: Vec<String>,
}

impl Node {
    /// Funds, signs and broadcasts the claims the wallet must pay for.
    pub(crate) fn fund_fee_needs(&self) {
        let needs: Vec<(ChannelId, FeeNeed)> = self.with_manager(|m| m.fee_needs().to_vec());
        let mut bumper = self.bumper.lock().unwrap_or_else(|e| e.into_inner());
        bumper.funded.retain(|outpoint, _| needs.iter().any(|(_, n)| n.outpoint == *outpoint));
        let mut errors = Vec::new();
        for (channel_id, need) in needs {
            let previous = match bumper.funded.get(&need.outpoint) {
                Some(f) => Some((f.tx.clone(), f.target_feerate_per_kw)),
                None => self.mempool_spender(&need.outpoint).map(|tx| (tx, 0)),
            };
            if let Some((tx, target)) = &previous {
                let txid = tx.compute_txid();
                let waiting = matches!(self.chain.transaction(&txid), Ok(Some(info)) if info.block.is_none());
                let risen = u64::from(need.target_feerate_per_kw) * 4 >= u64::from(*target) * 5;
                if waiting && !risen {
                    continue;
                }
            }
            match self.fund_one(&channel_id, &need, previous.as_ref().map(|(tx, _)| tx)) {
                Ok(tx) => {
                    self.wallet.record_unconfirmed(&tx, now_secs());
                    let target_feerate_per_kw = need.target_feerate_per_kw;
                    bumper.funded.insert(need.outpoint, Funded { tx, target_feerate_per_kw });
                }
                Err(e) => errors.push(format!(
                    "channel {channel_id}: {:?} of {} needs on-chain funds for its fee: {e}; retrying at every block",
                    need.claim, need.outpoint
                )),
            }
        }
        bumper.errors = errors;
    }

    /// The mempool transaction spending `outpoint`, if any.
    fn mempool_spender(&self, outpoint: &OutPoint) -> Option<Transaction> {
        let mempool = self.chain.mempool().ok()?;
        mempool.into_iter().find(|tx| tx.input.iter().any(|i| i.previous_output == *outpoint))
    }

    /// The fee `tx` pays, from its inputs' previous outputs as the chain
    /// knows them (0 if one is unknown).
    fn fee_of(&self, tx: &Transaction) -> u64 {
        let mut inputs = 0;
        for input in &tx.input {
            let prev = self.chain.transaction(&input.previous_output.txid).ok().flatten();
            match prev.and_then(|info| info.tx.output.get(input.previous_output.vout as usize).cloned()) {
                Some(output) => inputs += output.value.to_sat(),
                None => return 0,
            }
        }
        inputs.saturating_sub(tx.output.iter().map(|o| o.value.to_sat()).sum())
    }

    fn fund_one(
        &self,
        channel_id: &ChannelId,
        need: &FeeNeed,
        replaces: Option<&Transaction>,
    ) -> Result<Transaction, String> {
        let external = ExternalInput {
            outpoint: need.outpoint,
            txout: need.txout.clone(),
            sequence: need.sequence,
            satisfaction_weight: need.satisfaction_weight,
        };
        // A replacement pays at least what it replaces plus the relay of
        // its own size (1 sat/vB).
        let floor = replaces.map(|tx| self.fee_of(tx));
        let fee = |weight: u64| {
            let relay = floor.map_or(0, |f| f + weight.div_ceil(4) + 1);
            need.required_fee(weight).max(relay)
        };
        let now = now_secs();
        let mut tx = self
            .wallet
            .fund_external(&[external], &need.outputs, need.lock_time, replaces.map(|tx| (tx, now)), fee)
            .map_err(|e| e.to_string())?;
        let signed =
            self.with_manager(|m| m.sign_fee_input(channel_id, need, &mut tx, 0)).map_err(|e| e.to_string());
        let broadcast =
            signed.and_then(|()| self.chain.broadcast(&tx).map_err(|e| format!("the chain refused it: {e}")));
        if let Err(e) = broadcast {
            if let Some(previous) = replaces {
                // The previous one still stands: its coins stay spent.
                self.wallet.record_unconfirmed(previous, now + 1);
            }
            return Err(e);
        }
        Ok(tx)
    }

    /// Claims the wallet could not fund at the last block, in words (each
    /// is tried again at every block).
    pub fn fee_bump_errors(&self) -> Vec<String> {
        self.bumper.lock().unwrap_or_else(|e| e.into_inner()).errors.clone()
    }
}
