//! What a monitor learns from blocks: the spend of the funding output, and
//! the on-chain outcomes of the HTLCs we offered.
//!
//! A preimage revealed by any transaction spending an output of the
//! confirmed commitment is final knowledge: the HTLC is claimed at once. An
//! HTLC output spent without its preimage (our timeout), or an HTLC absent
//! from the confirmed commitment, fails only after [`ANTI_REORG_DELAY`]
//! confirmations, and a reorg before that undoes it. Claiming and sweeping
//! the outputs is on-chain enforcement's job; here the monitor only reports
//! outcomes, through the same events as off-chain resolution.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{OutPoint, Transaction, Txid};
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use super::{ChannelMonitor, ClosedBy};
use crate::channel::{CommittedHtlc, HtlcFailure};
use crate::ser::{Decode, DecodeError, Encode, Reader, Records, TlvWriter};

/// Confirmations after which an on-chain outcome is final.
pub const ANTI_REORG_DELAY: u32 = 6;

/// The transaction that spent the funding output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingSpend {
    /// Its txid.
    pub txid: Txid,
    /// The height of its block.
    pub height: u32,
    /// The transaction itself (absent in monitors written before on-chain
    /// enforcement, which only kept the txid).
    pub tx: Option<Transaction>,
}

/// A confirmed transaction that spends an output of the funding spend
/// (level 1: a claim, ours or theirs) or an output of such a transaction
/// (level 2: the sweep of a second-stage HTLC transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedSpend {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid (not stored: computed when read).
    pub txid: Txid,
    /// The height of its block.
    pub height: u32,
}

/// An HTLC we offered that the chain resolved without its preimage, waiting
/// for [`ANTI_REORG_DELAY`] confirmations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnchainResolution {
    /// The HTLC.
    pub htlc_id: u64,
    /// The height of the block that resolved it.
    pub height: u32,
}

impl ChannelMonitor {
    /// The HTLCs, with their output indexes, of the commitment `txid` if it
    /// is one we know (holder or unrevoked counterparty).
    fn commitment_htlcs(&self, txid: Txid) -> Option<Vec<CommittedHtlc>> {
        if let Some((holder, htlcs)) = &self.holder {
            if holder.trust().txid() == txid {
                return Some(htlcs.clone());
            }
        }
        self.counterparty.iter().find(|c| c.txid == txid).map(|c| c.htlcs.clone())
    }

    /// A preimage of a pending outbound HTLC revealed by `tx`'s witnesses.
    fn revealed_preimages(&self, tx: &Transaction) -> Vec<(u64, PaymentPreimage)> {
        let mut found = Vec::new();
        for input in &tx.input {
            for item in input.witness.iter().filter(|i| i.len() == 32) {
                let hash = PaymentHash(sha256::Hash::hash(item).to_byte_array());
                for h in self.outbound.values().filter(|h| h.payment_hash == hash) {
                    let preimage = PaymentPreimage(item.try_into().expect("32-byte witness item"));
                    if !found.iter().any(|(id, _)| *id == h.id) {
                        found.push((h.id, preimage));
                    }
                }
            }
        }
        found
    }

    /// Processes the transactions of the block at `height`. Returns whether
    /// the monitor changed (its new state must be persisted before the events
    /// it made are released).
    ///
    /// A block at or below the best height seen replaces what the monitor
    /// learnt from that height on, as if those blocks had been disconnected
    /// first. A node follows the chain again from its last durable position,
    /// which a monitor written later may be ahead of: the blocks it sees again
    /// are the same ones (and teach it the same things again), or, after a
    /// reorg the node did not see (it was down), others, whose transactions
    /// may be the same at other heights, or not there at all.
    pub fn block_connected(&mut self, height: u32, txdata: &[Transaction]) -> bool {
        let before = (
            self.events.len(),
            self.onchain.len(),
            self.funding_spend.clone(),
            self.outbound.len(),
            self.spends.len(),
            self.broadcast_holder,
        );
        if height <= self.best_height {
            self.block_disconnected(height);
        }
        self.best_height = height;
        let funding = self.params.funding_outpoint.map(|o| o.into_bitcoin_outpoint());
        for tx in txdata {
            let txid = tx.compute_txid();
            if self.funding_spend.is_none() && tx.input.iter().any(|i| Some(i.previous_output) == funding) {
                self.on_funding_spend(tx, height);
            }
            let Some(spend) = self.funding_spend.clone() else { continue };
            self.follow_spend(tx, txid, spend.txid, height);
            let spent_outputs: Vec<u32> = tx
                .input
                .iter()
                .filter(|i| i.previous_output.txid == spend.txid)
                .map(|i| i.previous_output.vout)
                .collect();
            if spent_outputs.is_empty() {
                continue;
            }
            let revealed = self.revealed_preimages(tx);
            for (htlc_id, preimage) in &revealed {
                self.preimages
                    .insert(PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array()), *preimage);
                let h = self.outbound.get(htlc_id).cloned().expect("revealed for a pending HTLC");
                if let Some(source) = h.source {
                    self.resolve_claimed(h.id, h.amount_msat, *preimage, source, true);
                }
            }
            // Outputs of our HTLCs spent without a preimage: timed out.
            if let Some(htlcs) = self.commitment_htlcs(spend.txid) {
                for h in htlcs
                    .iter()
                    .filter(|h| h.outbound && h.output_index.is_some_and(|v| spent_outputs.contains(&v)))
                {
                    if !revealed.iter().any(|(id, _)| *id == h.id) && self.outbound.contains_key(&h.id) {
                        self.push_onchain(h.id, height);
                    }
                }
            }
        }
        self.finalize_onchain();
        before
            != (
                self.events.len(),
                self.onchain.len(),
                self.funding_spend.clone(),
                self.outbound.len(),
                self.spends.len(),
                self.broadcast_holder,
            )
    }

    /// Keeps `tx` if it spends an output of the funding spend or of a
    /// transaction kept already (once: a block replayed adds nothing).
    fn follow_spend(&mut self, tx: &Transaction, txid: Txid, commitment: Txid, height: u32) {
        if self.spends.iter().any(|s| s.txid == txid) {
            return;
        }
        let level_one = tx.input.iter().any(|i| i.previous_output.txid == commitment);
        // Level 2: only a spend of an output owed to us (the delayed output
        // of our HTLC transaction, or the revokeable output of theirs), not
        // of any output a level-1 transaction happens to have (wallet
        // change, outputs a peer added).
        let level_two = !level_one && {
            let spends_level_one = |i: &bitcoin::TxIn| {
                self.spends.iter().any(|s| {
                    s.txid == i.previous_output.txid
                        && s.tx.input.iter().any(|p| p.previous_output.txid == commitment)
                })
            };
            tx.input.iter().any(spends_level_one) && {
                let owed = self.owed_outpoints();
                tx.input.iter().any(|i| owed.contains(&i.previous_output))
            }
        };
        if level_one || level_two {
            self.spends.push(ConfirmedSpend { tx: tx.clone(), txid, height });
        }
    }

    fn on_funding_spend(&mut self, tx: &Transaction, height: u32) {
        let txid = tx.compute_txid();
        self.funding_spend = Some(FundingSpend { txid, height, tx: Some(tx.clone()) });
        self.mark_closed(ClosedBy::FundingSpent { txid });
        // A spend by a commitment we do not know (we lost state, or it is a
        // future one) means ours may be revoked: never broadcast it.
        if self.commitment_htlcs(txid).is_none()
            && !self.revoked.iter().any(|r| r.txid == txid)
            && self.closing_tx.as_ref().is_none_or(|c| c.compute_txid() != txid)
        {
            self.stale = true;
        }
        self.reconcile_onchain();
        self.finalize_onchain();
    }

    /// Decides, for every HTLC we offered that is pending while a funding
    /// spend is known, what the chain says of it: no output in the
    /// confirmed transaction (trimmed, not yet committed, or a commitment
    /// we do not know) fails it after [`ANTI_REORG_DELAY`] confirmations of
    /// that transaction; an output already spent claims it (preimage
    /// revealed) or fails it after the spend's confirmations. Called when
    /// the spend is seen and after every update, since an update can still
    /// bring an HTLC the monitor did not track when the spend confirmed.
    /// Failures are only started here; they are emitted by blocks
    /// (`finalize_onchain`), whose height is part of what a replay sees,
    /// so that a replayed update makes exactly the events it made first.
    pub(super) fn reconcile_onchain(&mut self) {
        let Some(spend) = self.funding_spend.clone() else { return };
        let htlcs = self.commitment_htlcs(spend.txid).unwrap_or_default();
        let undecided: Vec<u64> = self
            .outbound
            .keys()
            .copied()
            .filter(|id| !self.onchain.iter().any(|r| r.htlc_id == *id))
            .collect();
        for id in undecided {
            let vout = htlcs.iter().find(|h| h.outbound && h.id == id).and_then(|h| h.output_index);
            let Some(vout) = vout else {
                self.push_onchain(id, spend.height);
                continue;
            };
            let output = OutPoint { txid: spend.txid, vout };
            let spender =
                self.spends.iter().find(|s| s.tx.input.iter().any(|i| i.previous_output == output)).cloned();
            let Some(spender) = spender else { continue };
            match self.revealed_preimages(&spender.tx).into_iter().find(|(h, _)| *h == id) {
                Some((_, preimage)) => {
                    self.preimages
                        .insert(PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array()), preimage);
                    let h = self.outbound.get(&id).cloned().expect("listed above");
                    if let Some(source) = h.source {
                        self.resolve_claimed(id, h.amount_msat, preimage, source, true);
                    }
                }
                None => self.push_onchain(id, spender.height),
            }
        }
    }

    /// Starts the anti-reorg wait of an HTLC's on-chain failure, once.
    fn push_onchain(&mut self, htlc_id: u64, height: u32) {
        if !self.onchain.iter().any(|r| r.htlc_id == htlc_id) {
            self.onchain.push(OnchainResolution { htlc_id, height });
        }
    }

    /// Fails the HTLCs whose on-chain resolution is final.
    fn finalize_onchain(&mut self) {
        let best = self.best_height;
        let (done, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.onchain)
            .into_iter()
            .partition(|r| best + 1 >= r.height + ANTI_REORG_DELAY);
        self.onchain = pending;
        for r in done {
            if let Some(h) = self.outbound.get(&r.htlc_id).cloned() {
                if let Some(source) = h.source {
                    self.resolve_failed(h.id, h.amount_msat, HtlcFailure::OnChainTimeout, source);
                }
            }
        }
    }

    /// The block at `height` left the chain: outcomes it brought that are
    /// not final yet are undone.
    pub fn block_disconnected(&mut self, height: u32) -> bool {
        let before =
            (self.onchain.len(), self.funding_spend.clone(), self.spends.len(), self.broadcast_holder);
        self.best_height = height.saturating_sub(1);
        self.onchain.retain(|r| r.height < height);
        self.spends.retain(|s| s.height < height);
        if self.funding_spend.as_ref().is_some_and(|s| s.height >= height) {
            self.funding_spend = None;
            // The close left the chain, and the channel will not resume: our
            // own commitment is the way out now (a cooperative close is
            // broadcast again instead; a stale state never goes out).
            if self.closed && self.closing_tx.is_none() && !self.stale {
                self.broadcast_holder = true;
            }
        }
        before != (self.onchain.len(), self.funding_spend.clone(), self.spends.len(), self.broadcast_holder)
    }

    /// Whether the monitor can be archived: closed, its funding spend and
    /// every spend of an output owed to us [`ANTI_REORG_DELAY`] confirmations
    /// deep (see [`ChannelMonitor::onchain_settled`]), every HTLC we offered
    /// resolved, and every event acknowledged.
    pub fn is_archivable(&self) -> bool {
        self.closed
            && self.onchain_settled()
            && self.outbound.is_empty()
            && self.onchain.is_empty()
            && self.events.is_empty()
            && self.deferred.is_empty()
    }

    /// The funding outpoint.
    pub fn funding_outpoint(&self) -> Option<OutPoint> {
        self.params.funding_outpoint.map(|o| o.into_bitcoin_outpoint())
    }
}

// FundingSpend: 0 txid, 2 height, 3 transaction.
impl Encode for FundingSpend {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.txid).field(2, &self.height).opt(3, &self.tx);
        w.finish(out);
    }
}

impl Decode for FundingSpend {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = FundingSpend { txid: rec.req(0)?, height: rec.req(2)?, tx: rec.opt(3)? };
        rec.finish()?;
        if value.tx.as_ref().is_some_and(|tx| tx.compute_txid() != value.txid) {
            return Err(DecodeError::InvalidValue("funding spend transaction does not match its txid"));
        }
        Ok(value)
    }
}

// ConfirmedSpend: 0 transaction, 2 height.
impl Encode for ConfirmedSpend {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.tx).field(2, &self.height);
        w.finish(out);
    }
}

impl Decode for ConfirmedSpend {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let tx: Transaction = rec.req(0)?;
        let value = ConfirmedSpend { txid: tx.compute_txid(), tx, height: rec.req(2)? };
        rec.finish()?;
        Ok(value)
    }
}

// OnchainResolution: 0 htlc id, 2 height.
impl Encode for OnchainResolution {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.htlc_id).field(2, &self.height);
        w.finish(out);
    }
}

impl Decode for OnchainResolution {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = OnchainResolution { htlc_id: rec.req(0)?, height: rec.req(2)? };
        rec.finish()?;
        Ok(value)
    }
}
