//! The manager's part of on-chain enforcement: broadcasting what the
//! monitors claim, and failing channels whose HTLCs reach their BOLT 2
//! deadlines.
//!
//! Claims are computed by the monitors from their durable state alone
//! ([`ChannelMonitor::claims`]); the manager signs nothing itself and keeps
//! no claim state. At every block, after a force-close and at start-up it
//! asks every closed monitor for its claims and queues them for broadcast,
//! so a claim refused, evicted or undone by a reorg is simply sent again,
//! fee-bumped as its deadline nears.
//!
//! On-chain outcomes come back as the monitors' ordinary events
//! (`ForwardedHtlcClaimed`, `PaymentPathFailed` and so on), handled by the
//! same code as off-chain ones.

use lightning::ln::types::ChannelId;
use lightning::sign::SignerProvider;

use super::ChannelManager;
use crate::channel::ledger::Outcome;
use crate::monitor::ChannelMonitor;
use crate::onchain::{ClaimContext, ClaimKind, FeeNeed, FeeSignError, Waiting};

/// Blocks after an offered HTLC's expiry before the channel is failed to
/// time it out on chain (BOLT 2's `G`).
pub const OFFERED_HTLC_GRACE_BLOCKS: u32 = 2;

/// Blocks before a fulfilled HTLC's expiry by which the channel is failed
/// to claim it on chain, if the peer has not taken the fulfill (BOLT 2's
/// `2R+G+S`).
pub const FULFILLED_HTLC_DEADLINE_BLOCKS: u32 = 18;

/// An output a closed channel owes us that is not claimed yet, for the
/// user's view of balances on their way to the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSweep {
    /// The channel.
    pub channel_id: ChannelId,
    /// The output and why it waits.
    pub waiting: Waiting,
}

impl ChannelManager {
    /// Queues the claims of every closed channel for broadcast.
    pub(super) fn broadcast_claims(&mut self) {
        let mut pending = Vec::new();
        let mut claims = Vec::new();
        let mut needs = Vec::new();
        for monitor in self.chain_monitor.monitors().filter(|m| needs_enforcement(m)) {
            let keys_id = monitor.channel_snapshot().channel_keys_id;
            let signer = self.keys.derive_channel_signer(keys_id);
            let sweep_script = match &self.config.sweep_script {
                Some(script) => script.clone(),
                None => self
                    .keys
                    .get_destination_script(keys_id)
                    .expect("KeysManager always gives a destination script"),
            };
            let ctx = ClaimContext {
                height: self.best_height,
                feerate_per_kw: self.config.claim_feerate_per_kw,
                sweep_script: &sweep_script,
            };
            let mut plan = monitor.claims(&signer, &ctx);
            // Our commitment goes out only once the monitor holds durably
            // everything it knows: a commitment from an update a crash can
            // still lose would be one the restarted monitor cannot claim
            // from (and the channel could even revoke it).
            let durable = self.chain_monitor.durable_update_id(&monitor.channel_id())
                >= Some(monitor.latest_update_id());
            if !durable {
                plan.claims
                    .retain(|c| !matches!(c.kind, ClaimKind::HolderCommitment | ClaimKind::CooperativeClose));
                plan.fee_needs.retain(|n| n.claim != ClaimKind::HolderCommitment);
            }
            claims.extend(plan.claims.into_iter().map(|c| c.tx));
            needs.extend(plan.fee_needs.into_iter().map(|n| (monitor.channel_id(), n)));
            pending.extend(
                plan.waiting
                    .into_iter()
                    .map(|waiting| PendingSweep { channel_id: monitor.channel_id(), waiting }),
            );
        }
        self.broadcasts.extend(claims);
        self.pending_sweeps = pending;
        self.fee_needs = needs;
        self.release_settled_htlcs();
    }

    /// Once a closed channel's on-chain enforcement is over, every HTLC
    /// offered to us on it is decided (claimed by us or timed out by the
    /// peer): its `HtlcAccepted` is acknowledged and any part of a payment
    /// still waiting for the user's claim is forgotten, so the monitor can
    /// be archived.
    fn release_settled_htlcs(&mut self) {
        let settled: Vec<(lightning::ln::types::ChannelId, Vec<crate::monitor::MonitorEventId>)> = self
            .chain_monitor
            .monitors()
            .filter(|m| m.is_closed() && m.onchain_settled())
            .map(|m| {
                let ids = m
                    .events()
                    .iter()
                    .filter(|e| matches!(e.event, crate::monitor::MonitorEvent::HtlcAccepted { .. }))
                    .map(|e| e.id)
                    .collect();
                (m.channel_id(), ids)
            })
            .filter(|(_, ids): &(_, Vec<_>)| !ids.is_empty())
            .collect();
        let any = !settled.is_empty();
        for (channel_id, ids) in settled {
            self.receive.forget_channel(&channel_id);
            self.chain_monitor.ack(&channel_id, &ids);
            self.dirty = true;
        }
        if any {
            self.process();
        }
    }

    /// Sets the feerate on-chain claims start at, from the chain's estimate
    /// (satoshis per 1000 weight units); they are bumped from there.
    pub fn set_claim_feerate(&mut self, feerate_per_kw: u32) {
        self.config.claim_feerate_per_kw = feerate_per_kw;
    }

    /// Claims of anchor channels the wallet must fund, as of the last block
    /// (see [`FeeNeed`]): fund each, sign it with
    /// [`ChannelManager::sign_fee_input`], broadcast it; again at every
    /// block while it is listed.
    pub fn fee_needs(&self) -> &[(ChannelId, FeeNeed)] {
        &self.fee_needs
    }

    /// Signs the claim's own input (`input`) of `tx`, a funded transaction
    /// of `need`.
    ///
    /// # Errors
    ///
    /// [`FeeSignError`]; [`FeeSignError::Stale`] for a channel whose
    /// monitor is gone.
    pub fn sign_fee_input(
        &self,
        channel_id: &ChannelId,
        need: &FeeNeed,
        tx: &mut bitcoin::Transaction,
        input: usize,
    ) -> Result<(), FeeSignError> {
        let monitor = self.chain_monitor.monitor(channel_id).ok_or(FeeSignError::Stale)?;
        let signer = self.keys.derive_channel_signer(monitor.channel_snapshot().channel_keys_id);
        monitor.sign_fee_input(&signer, need, tx, input)
    }

    /// Outputs owed to us by closed channels and not claimed yet, as of the
    /// last block.
    pub fn pending_sweeps(&self) -> &[PendingSweep] {
        &self.pending_sweeps
    }

    /// Whether every closed channel's on-chain enforcement is over (see
    /// [`ChannelMonitor::onchain_settled`]).
    pub fn closed_channels_settled(&self) -> bool {
        self.chain_monitor.monitors().filter(|m| m.is_closed()).all(ChannelMonitor::onchain_settled)
    }

    /// Fails every channel holding an HTLC past its BOLT 2 deadline: one we
    /// offered [`OFFERED_HTLC_GRACE_BLOCKS`] after its expiry, or one we
    /// fulfilled whose fulfill the peer has not committed
    /// [`FULFILLED_HTLC_DEADLINE_BLOCKS`] before its expiry. Our commitment
    /// then goes on chain and the monitor claims the HTLC there.
    pub(super) fn force_close_at_deadlines(&mut self) {
        let height = self.best_height;
        let expired: Vec<(ChannelId, u64, u32)> = self
            .channels
            .iter()
            .filter_map(|(id, channel)| {
                channel.snapshot().ledger.htlcs.iter().find_map(|h| {
                    let committed = h.heights.local.is_some() || h.heights.remote.is_some();
                    let fulfilled =
                        matches!(h.removal.as_ref().map(|r| &r.outcome), Some(Outcome::Fulfill(_)));
                    let due = if h.outbound {
                        committed && !fulfilled && height >= h.cltv_expiry() + OFFERED_HTLC_GRACE_BLOCKS
                    } else {
                        fulfilled && height + FULFILLED_HTLC_DEADLINE_BLOCKS >= h.cltv_expiry()
                    };
                    due.then_some((*id, h.id, h.cltv_expiry()))
                })
            })
            .collect();
        for (channel_id, htlc_id, expiry) in expired {
            if let Some(channel) = self.channels.get_mut(&channel_id) {
                channel.fail_because(format!(
                    "HTLC {htlc_id} (expiry {expiry}) reached its deadline at height {height}: enforcing it on chain"
                ));
            }
        }
    }
}

/// Whether a monitor has anything to do on chain: a closed channel whose
/// enforcement is not settled.
fn needs_enforcement(monitor: &ChannelMonitor) -> bool {
    (monitor.is_closed() || monitor.should_broadcast_holder_commitment()) && !monitor.onchain_settled()
}
