//! Fee bumping with the on-chain wallet: the claims of anchor channels that
//! the monitors cannot pay for themselves ([`FeeNeed`]s) are funded by the
//! wallet (BDK selects the coins), signed by the monitor, and broadcast.
//!
//! A need is funded again at every block while it is listed: if the
//! previous funded transaction is still waiting and its target has not
//! risen by a quarter, it is left alone; otherwise a new one (paying more,
//! from other coins than the ones it replaces) replaces it. Every funded
//! transaction is recorded in the wallet at once, so the needs of one
//! block never choose the same coins. A need the wallet cannot fund (not enough confirmed coins)
//! is reported in [`Node::fee_bump_errors`] and tried again at the next
//! block, so adding funds is enough to unblock it.

use std::collections::BTreeMap;

use bitcoin::{OutPoint, Transaction};
use lightning::ln::types::ChannelId;
use vigil_core::onchain::FeeNeed;
use vigil_wallet::ExternalInput;

use crate::node::Node;

/// What was funded for a need: the transaction and the feerate it targeted.
#[derive(Debug, Clone)]
pub(crate) struct Funded {
    tx: Transaction,
    target_feerate_per_kw: u32,
}

/// The node's fee-bumping memory (in memory only: after a restart every
/// need is funded again, which replaces or duplicates nothing harmful).
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
            let mut avoid = Vec::new();
            if let Some(previous) = bumper.funded.get(&need.outpoint) {
                let txid = previous.tx.compute_txid();
                let waiting = matches!(self.chain.transaction(&txid), Ok(Some(info)) if info.block.is_none());
                let risen = u64::from(need.target_feerate_per_kw) * 4
                    >= u64::from(previous.target_feerate_per_kw) * 5;
                if waiting && !risen {
                    continue;
                }
                // A replacement may not spend what it replaces.
                avoid = (0..previous.tx.output.len() as u32).map(|vout| OutPoint { txid, vout }).collect();
            }
            match self.fund_one(&channel_id, &need, &avoid) {
                Ok(tx) => {
                    self.wallet.record_unconfirmed(&tx, crate::node::now_secs());
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

    fn fund_one(
        &self,
        channel_id: &ChannelId,
        need: &FeeNeed,
        avoid: &[OutPoint],
    ) -> Result<Transaction, String> {
        let external = ExternalInput {
            outpoint: need.outpoint,
            txout: need.txout.clone(),
            sequence: need.sequence,
            satisfaction_weight: need.satisfaction_weight,
        };
        let mut tx = self
            .wallet
            .fund_external(&[external], &need.outputs, need.lock_time, avoid, |weight| {
                need.required_fee(weight)
            })
            .map_err(|e| e.to_string())?;
        self.with_manager(|m| m.sign_fee_input(channel_id, need, &mut tx, 0)).map_err(|e| e.to_string())?;
        self.chain.broadcast(&tx).map_err(|e| format!("the chain refused it: {e}"))?;
        Ok(tx)
    }

    /// Claims the wallet could not fund at the last block, in words (each
    /// is tried again at every block).
    pub fn fee_bump_errors(&self) -> Vec<String> {
        self.bumper.lock().unwrap_or_else(|e| e.into_inner()).errors.clone()
    }
}
