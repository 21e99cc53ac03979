//! The `ChannelMonitor`: the single durable authority over a channel and its
//! HTLCs (DESIGN.md §1 and §4).
//!
//! A monitor is built from its channel's first update and then fed every
//! later one ([`ChannelMonitor::apply`]) and every block
//! ([`ChannelMonitor::block_connected`]). It holds everything needed to resume
//! the channel (its latest snapshot) and to enforce it on chain: parameters,
//! the holder and unrevoked counterparty commitments, revocation secrets,
//! preimages, HTLC sources, shutdown scripts.
//!
//! Its outputs are [`MonitorEvent`]s, kept in an event log until the manager
//! acknowledges them ([`ChannelMonitor::ack`]). Each event records the
//! persistence that first holds it; the chain monitor releases it only once
//! that persistence completed. Deferred events (`InboundClaimPersisted`) are
//! kept apart and surfaced only by the start-up replay. Resolution records
//! keep an outcome the user has seen from ever being surfaced again.
//!
//! - [`events`]: the events, their ids, and resolution records;
//! - `chain`: what the monitor learns from blocks;
//! - `codec`: the monitor's versioned TLV encoding.

mod chain;
mod codec;
pub mod events;

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::{ScriptBuf, Transaction, Txid};
use lightning::ln::chan_utils::{
    ChannelTransactionParameters, CommitmentTransaction, HTLCOutputInCommitment, HolderCommitmentTransaction,
};
use lightning::ln::types::ChannelId;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use crate::channel::commitment::commitment_index;
use crate::channel::state::RevealedSecrets;
use crate::channel::{ChannelSnapshot, CommittedHtlc, HtlcFailure, HtlcSource, MonitorUpdate, UpdateStep};
pub use chain::{ConfirmedSpend, FundingSpend, OnchainResolution, ANTI_REORG_DELAY};
pub use codec::MONITOR_VERSION;
pub use events::{ClosedBy, MonitorEvent, MonitorEventId, ResolutionRecord, StoredEvent};

/// Why an update was refused. The monitor is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateError {
    /// The update is for another channel.
    WrongChannel {
        /// This monitor's channel.
        ours: ChannelId,
        /// The update's.
        update: ChannelId,
    },
    /// The update skips ids: some update was lost.
    Gap {
        /// The id expected next.
        expected: u64,
        /// The id received.
        got: u64,
    },
    /// A revealed secret does not derive the earlier ones.
    InvalidSecret {
        /// The commitment it revokes.
        number: u64,
    },
    /// The first update of a monitor must fund the channel.
    NotFunded,
}

impl std::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongChannel { ours, update } => {
                write!(f, "update for channel {update} given to the monitor of {ours}")
            }
            Self::Gap { expected, got } => {
                write!(f, "update {got} received, {expected} expected: an update is missing")
            }
            Self::InvalidSecret { number } => {
                write!(f, "the secret revoking commitment {number} does not derive the earlier ones")
            }
            Self::NotFunded => write!(f, "the first update of a monitor must carry the channel's funding"),
        }
    }
}

impl std::error::Error for UpdateError {}

/// The counterparty commitment data the monitor keeps while unrevoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterpartyState {
    /// Its commitment number.
    pub number: u64,
    /// Its txid.
    pub txid: Txid,
    /// The commitment.
    pub commitment: CommitmentTransaction,
    /// Its HTLCs.
    pub htlcs: Vec<CommittedHtlc>,
}

/// What the monitor keeps of a revoked counterparty commitment: enough to
/// take every output of it, and of its second-stage HTLC transactions, if
/// the counterparty ever broadcasts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCommitment {
    /// Its txid.
    pub txid: Txid,
    /// Its commitment number.
    pub number: u64,
    /// Its HTLC outputs (untrimmed HTLCs, from the broadcaster's view).
    pub htlcs: Vec<HTLCOutputInCommitment>,
}

/// What the monitor knows of an HTLC we offered, until it is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundHtlc {
    /// Its id.
    pub id: u64,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
    /// Its value.
    pub amount_msat: u64,
    /// Its expiry.
    pub cltv_expiry: u32,
    /// Where it came from.
    pub source: Option<HtlcSource>,
}

/// The monitor of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMonitor {
    pub(crate) channel_id: ChannelId,
    pub(crate) latest_update_id: u64,
    pub(crate) params: ChannelTransactionParameters,
    pub(crate) snapshot: ChannelSnapshot,
    pub(crate) holder: Option<(HolderCommitmentTransaction, Vec<CommittedHtlc>)>,
    pub(crate) counterparty: Vec<CounterpartyState>,
    /// Revoked counterparty commitments.
    pub(crate) revoked: Vec<RevokedCommitment>,
    pub(crate) secrets: RevealedSecrets,
    pub(crate) preimages: BTreeMap<PaymentHash, PaymentPreimage>,
    /// HTLCs we offered that are not resolved yet.
    pub(crate) outbound: BTreeMap<u64, OutboundHtlc>,
    /// HTLCs we offered whose resolution was emitted, while the channel's
    /// ledger still lists them (so they are not tracked again).
    pub(crate) resolved: BTreeSet<u64>,
    /// HTLCs offered to us whose `HtlcAccepted` was emitted, while the
    /// channel's ledger still lists them (so it is emitted once).
    pub(crate) accepted: BTreeSet<u64>,
    /// HTLCs offered to us whose `InboundClaimPersisted` was made, while the
    /// channel's ledger still lists them.
    pub(crate) claimed: BTreeSet<u64>,
    pub(crate) events: Vec<StoredEvent>,
    pub(crate) deferred: Vec<StoredEvent>,
    pub(crate) next_event_id: u64,
    pub(crate) records: BTreeSet<ResolutionRecord>,
    pub(crate) shutdown_scripts: Option<(ScriptBuf, ScriptBuf)>,
    pub(crate) closing_tx: Option<Transaction>,
    pub(crate) closed: bool,
    pub(crate) broadcast_holder: bool,
    /// The channel closed because our state is stale: our commitment must
    /// never be broadcast (the peer could punish it).
    pub(crate) stale: bool,
    pub(crate) funding_spend: Option<FundingSpend>,
    pub(crate) onchain: Vec<OnchainResolution>,
    /// Confirmed spends of the funding spend's outputs, and of theirs.
    pub(crate) spends: Vec<ConfirmedSpend>,
    pub(crate) best_height: u32,
}

impl ChannelMonitor {
    /// Creates the monitor of a channel from its first update, which must
    /// fund it.
    ///
    /// # Errors
    ///
    /// [`UpdateError::NotFunded`] if the update does not carry the funding,
    /// or [`UpdateError::Gap`] if it is not update 1.
    pub fn from_first_update(update: &MonitorUpdate) -> Result<Self, UpdateError> {
        let params = update
            .steps
            .iter()
            .find_map(|s| match s {
                UpdateStep::ChannelFunded { params } => Some(params.clone()),
                _ => None,
            })
            .ok_or(UpdateError::NotFunded)?;
        if update.update_id != 1 {
            return Err(UpdateError::Gap { expected: 1, got: update.update_id });
        }
        let mut monitor = Self {
            channel_id: update.channel_id,
            latest_update_id: 0,
            params,
            snapshot: update.snapshot.clone(),
            holder: None,
            counterparty: Vec::new(),
            revoked: Vec::new(),
            secrets: update.snapshot.counterparty_secrets.clone(),
            preimages: BTreeMap::new(),
            outbound: BTreeMap::new(),
            resolved: BTreeSet::new(),
            accepted: BTreeSet::new(),
            claimed: BTreeSet::new(),
            events: Vec::new(),
            deferred: Vec::new(),
            next_event_id: 1,
            records: BTreeSet::new(),
            shutdown_scripts: None,
            closing_tx: None,
            closed: false,
            broadcast_holder: false,
            stale: false,
            funding_spend: None,
            onchain: Vec::new(),
            spends: Vec::new(),
            best_height: 0,
        };
        monitor.apply(update)?;
        Ok(monitor)
    }

    /// The channel.
    pub fn channel_id(&self) -> ChannelId {
        self.channel_id
    }

    /// The id of the last update applied.
    pub fn latest_update_id(&self) -> u64 {
        self.latest_update_id
    }

    /// The channel's state as of the last update: what the channel resumes
    /// from after a restart.
    pub fn channel_snapshot(&self) -> &ChannelSnapshot {
        &self.snapshot
    }

    /// The channel's transaction parameters.
    pub fn params(&self) -> &ChannelTransactionParameters {
        &self.params
    }

    /// The latest holder commitment, signed by the counterparty.
    pub fn holder_commitment(&self) -> Option<&HolderCommitmentTransaction> {
        self.holder.as_ref().map(|(c, _)| c)
    }

    /// The unrevoked counterparty commitments.
    pub fn counterparty_commitments(&self) -> &[CounterpartyState] {
        &self.counterparty
    }

    /// The preimage of `hash`, if known.
    pub fn preimage(&self, hash: &PaymentHash) -> Option<PaymentPreimage> {
        self.preimages.get(hash).copied()
    }

    /// The HTLCs we offered that are not resolved.
    pub fn pending_outbound(&self) -> impl Iterator<Item = &OutboundHtlc> {
        self.outbound.values()
    }

    /// Whether the channel is closed (by a step or on chain).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the latest holder commitment should be broadcast (a
    /// force-close or a failed channel, and our state is not stale).
    pub fn should_broadcast_holder_commitment(&self) -> bool {
        self.broadcast_holder && !self.stale
    }

    /// Whether the funding output is spent (as far as the chain says).
    pub fn funding_spent(&self) -> bool {
        self.funding_spend.is_some()
    }

    /// The agreed cooperative closing transaction, if any.
    pub fn closing_transaction(&self) -> Option<&Transaction> {
        self.closing_tx.as_ref()
    }

    /// The events not acknowledged yet, released or not.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The deferred restart events not acknowledged yet.
    pub fn deferred_events(&self) -> &[StoredEvent] {
        &self.deferred
    }

    /// Whether the user has seen this outcome.
    pub fn has_record(&self, record: &ResolutionRecord) -> bool {
        self.records.contains(record)
    }

    fn push_event(&mut self, event: MonitorEvent) {
        let id = MonitorEventId(self.next_event_id);
        self.next_event_id += 1;
        self.events.push(StoredEvent { id, event, gate: None });
    }

    fn push_deferred(&mut self, event: MonitorEvent) {
        let id = MonitorEventId(self.next_event_id);
        self.next_event_id += 1;
        self.deferred.push(StoredEvent { id, event, gate: None });
    }

    /// Applies `update`. Applying an update already applied changes nothing
    /// and returns `Ok(false)`.
    ///
    /// # Errors
    ///
    /// [`UpdateError`] for another channel, a gap in ids, or a revealed
    /// secret that does not derive the earlier ones; the monitor is then
    /// unchanged.
    pub fn apply(&mut self, update: &MonitorUpdate) -> Result<bool, UpdateError> {
        if update.channel_id != self.channel_id {
            return Err(UpdateError::WrongChannel { ours: self.channel_id, update: update.channel_id });
        }
        if update.update_id <= self.latest_update_id {
            return Ok(false);
        }
        if update.update_id != self.latest_update_id + 1 {
            return Err(UpdateError::Gap { expected: self.latest_update_id + 1, got: update.update_id });
        }
        // Check first, so that a refused update changes nothing.
        let mut secrets = self.secrets.clone();
        for step in &update.steps {
            if let UpdateStep::CounterpartySecret { number, secret } = step {
                if secrets.provide_secret(commitment_index(*number), *secret).is_err() {
                    return Err(UpdateError::InvalidSecret { number: *number });
                }
            }
        }
        self.secrets = secrets;
        self.track_outbound(&update.snapshot);
        let inbound: BTreeSet<u64> =
            update.snapshot.ledger.htlcs.iter().filter(|h| !h.outbound).map(|h| h.id).collect();
        for step in &update.steps {
            self.apply_step(step, &inbound);
        }
        self.accepted.retain(|id| inbound.contains(id));
        self.claimed.retain(|id| inbound.contains(id));
        self.snapshot = update.snapshot.clone();
        self.latest_update_id = update.update_id;
        // An update after the funding spend (one the channel made before
        // it learnt of the close) may bring HTLCs the chain already decided.
        self.reconcile_onchain();
        Ok(true)
    }

    /// Gives the monitor the preimage of HTLC `htlc_id` offered to us, for a
    /// channel that can no longer take updates (closed): the monitor claims
    /// it on chain. As the payee, `claim` is kept as a deferred restart
    /// event, exactly as a claim made through an update. Returns whether
    /// anything changed.
    pub fn provide_preimage(
        &mut self,
        htlc_id: u64,
        preimage: PaymentPreimage,
        claim: Option<crate::channel::InboundClaim>,
    ) -> bool {
        let hash = PaymentHash(bitcoin::hashes::sha256::Hash::hash(&preimage.0).to_byte_array());
        let known = self.preimages.contains_key(&hash);
        let deferred_before = self.deferred.len();
        let inbound: BTreeSet<u64> =
            self.snapshot.ledger.htlcs.iter().filter(|h| !h.outbound).map(|h| h.id).collect();
        let step = UpdateStep::PaymentPreimage { htlc_id, outbound: false, preimage, source: None, claim };
        self.apply_step(&step, &inbound);
        !known || self.deferred.len() != deferred_before
    }

    /// Learns the HTLCs we offered from the channel's ledger, and forgets
    /// resolved ones the ledger no longer lists.
    fn track_outbound(&mut self, snapshot: &ChannelSnapshot) {
        let listed: BTreeSet<u64> =
            snapshot.ledger.htlcs.iter().filter(|h| h.outbound).map(|h| h.id).collect();
        self.resolved.retain(|id| listed.contains(id));
        for h in snapshot.ledger.htlcs.iter().filter(|h| h.outbound && !self.resolved.contains(&h.id)) {
            self.outbound.entry(h.id).or_insert_with(|| OutboundHtlc {
                id: h.id,
                payment_hash: h.payment_hash(),
                amount_msat: h.amount_msat(),
                cltv_expiry: h.cltv_expiry(),
                source: h.source.clone(),
            });
        }
    }

    /// Applies one step; `inbound` lists the HTLCs offered to us that the
    /// update's ledger holds.
    fn apply_step(&mut self, step: &UpdateStep, inbound: &BTreeSet<u64>) {
        match step {
            UpdateStep::ChannelFunded { params } => self.params = params.clone(),
            UpdateStep::HolderCommitment { commitment, htlcs } => {
                self.holder = Some((commitment.clone(), htlcs.clone()));
            }
            UpdateStep::CounterpartyCommitment { number, txid, commitment, htlcs } => {
                self.counterparty.retain(|c| c.number != *number);
                self.counterparty.push(CounterpartyState {
                    number: *number,
                    txid: *txid,
                    commitment: commitment.clone(),
                    htlcs: htlcs.clone(),
                });
            }
            UpdateStep::CounterpartySecret { number, .. } => {
                if let Some(pos) = self.counterparty.iter().position(|c| c.number == *number) {
                    let revoked = self.counterparty.remove(pos);
                    self.revoked.push(RevokedCommitment {
                        txid: revoked.txid,
                        number: revoked.number,
                        htlcs: revoked.commitment.nondust_htlcs().clone(),
                    });
                }
            }
            UpdateStep::HtlcIrrevocablyCommitted { update_add, policy_violation } => {
                // Once per HTLC, while the channel holds it.
                if !inbound.contains(&update_add.htlc_id) || !self.accepted.insert(update_add.htlc_id) {
                    return;
                }
                self.push_event(MonitorEvent::HtlcAccepted {
                    update_add: Box::new(update_add.clone()),
                    policy_violation: policy_violation.clone(),
                });
            }
            UpdateStep::PaymentPreimage { htlc_id, outbound, preimage, source, claim } => {
                let hash = PaymentHash(bitcoin::hashes::sha256::Hash::hash(&preimage.0).to_byte_array());
                self.preimages.insert(hash, *preimage);
                if *outbound {
                    let amount = self.outbound.get(htlc_id).map_or(0, |h| h.amount_msat);
                    if let Some(source) = source.clone() {
                        self.resolve_claimed(*htlc_id, amount, *preimage, source, false);
                    }
                } else if let Some(claim) = claim {
                    // Once per HTLC, while the channel holds it.
                    if !inbound.contains(htlc_id) || !self.claimed.insert(*htlc_id) {
                        return;
                    }
                    self.push_deferred(MonitorEvent::InboundClaimPersisted {
                        htlc_id: *htlc_id,
                        preimage: *preimage,
                        claim: claim.clone(),
                    });
                }
            }
            UpdateStep::OutboundHtlcFailed { htlc_id, amount_msat, failure, source } => {
                if let Some(source) = source.clone() {
                    self.resolve_failed(*htlc_id, *amount_msat, failure.clone(), source);
                }
            }
            UpdateStep::ShutdownScripts { holder, counterparty } => {
                self.shutdown_scripts = Some((holder.clone(), counterparty.clone()));
            }
            UpdateStep::CooperativeClose { transaction } => {
                self.closing_tx = Some(transaction.clone());
                self.mark_closed(ClosedBy::Channel(crate::channel::CloseReason::Cooperative));
            }
            UpdateStep::ChannelClosed { reason, broadcast_holder_commitment } => {
                self.broadcast_holder |= *broadcast_holder_commitment;
                self.stale |= *reason == crate::channel::CloseReason::StaleLocalState;
                self.mark_closed(ClosedBy::Channel(reason.clone()));
            }
        }
    }

    fn mark_closed(&mut self, closed_by: ClosedBy) {
        if !self.closed {
            self.closed = true;
            self.push_event(MonitorEvent::ChannelClosed { closed_by });
        }
    }

    /// Takes an unresolved HTLC we offered out of tracking; `false` if it is
    /// not pending (resolved already: its resolution must not be emitted
    /// twice).
    fn take_unresolved(&mut self, htlc_id: u64) -> bool {
        if self.outbound.remove(&htlc_id).is_none() {
            return false;
        }
        self.resolved.insert(htlc_id);
        true
    }

    /// Emits the claim of an HTLC we offered, once.
    fn resolve_claimed(
        &mut self,
        htlc_id: u64,
        amount_msat: u64,
        preimage: PaymentPreimage,
        source: HtlcSource,
        on_chain: bool,
    ) {
        if !self.take_unresolved(htlc_id) {
            return;
        }
        let event = match source {
            HtlcSource::Forwarded { .. } => {
                MonitorEvent::ForwardedHtlcClaimed { htlc_id, amount_msat, preimage, source, on_chain }
            }
            HtlcSource::Sent { .. } => {
                MonitorEvent::PaymentPathClaimed { htlc_id, amount_msat, preimage, source, on_chain }
            }
        };
        self.push_event(event);
    }

    /// Emits the failure of an HTLC we offered, once.
    fn resolve_failed(&mut self, htlc_id: u64, amount_msat: u64, failure: HtlcFailure, source: HtlcSource) {
        if !self.take_unresolved(htlc_id) {
            return;
        }
        let event = match source {
            HtlcSource::Forwarded { .. } => {
                MonitorEvent::ForwardedHtlcFailed { htlc_id, amount_msat, failure, source }
            }
            HtlcSource::Sent { .. } => {
                MonitorEvent::PaymentPathFailed { htlc_id, amount_msat, failure, source }
            }
        };
        self.push_event(event);
    }

    /// Stamps every event not yet held by a persistence with `seq`: the
    /// persistence about to be started holds them.
    pub fn stamp_events(&mut self, seq: u64) {
        for e in self.events.iter_mut().chain(self.deferred.iter_mut()).filter(|e| e.gate.is_none()) {
            e.gate = Some(seq);
        }
    }

    /// Whether some event is not held by any persistence yet.
    pub fn has_unstamped_events(&self) -> bool {
        self.events.iter().chain(&self.deferred).any(|e| e.gate.is_none())
    }

    /// Removes acknowledged events. Unknown ids are ignored. Returns how many
    /// were removed.
    pub fn ack(&mut self, ids: &[MonitorEventId]) -> usize {
        let before = self.events.len() + self.deferred.len();
        self.events.retain(|e| !ids.contains(&e.id));
        self.deferred.retain(|e| !ids.contains(&e.id));
        before - self.events.len() - self.deferred.len()
    }

    /// Removes every event with an id up to `up_to`.
    pub fn ack_up_to(&mut self, up_to: MonitorEventId) -> usize {
        let ids: Vec<MonitorEventId> =
            self.events.iter().chain(&self.deferred).map(|e| e.id).filter(|id| *id <= up_to).collect();
        self.ack(&ids)
    }

    /// Records that the user has seen an outcome. Returns whether it is new.
    pub fn record(&mut self, record: ResolutionRecord) -> bool {
        self.records.insert(record)
    }
}

use bitcoin::hashes::Hash as _;
