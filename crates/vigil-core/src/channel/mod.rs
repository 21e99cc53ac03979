//! The BOLT 2 channel state machine, sans-IO.
//!
//! A [`Channel`] takes inputs as calls (`handle_*` for peer messages, plain
//! methods for commands and chain events, [`Channel::update_persisted`] for
//! persistence completions) and hands its outputs back when polled:
//! [`Channel::poll_output`] for messages and events, and
//! [`Channel::poll_monitor_update`] for the [`MonitorUpdate`]s that carry
//! every durable change. A message or event that depends on an update (our
//! `revoke_and_ack`, our `commitment_signed`, `funding_signed`, the funding
//! broadcast) is only released once the runtime reports that update durable.
//!
//! The channel holds no queue of forwards or failures: what to do with an
//! HTLC is the manager's decision, driven by the monitor's events.
//!
//! - [`commitment`]: building commitment transactions;
//! - [`ledger`]: HTLCs and fee updates, and which commitments include them;
//! - [`state`]: the durable [`ChannelSnapshot`];
//! - [`update`]: monitor updates and their steps;
//! - `establish`, `operate`, `close`, `reestablish`: the handlers, by phase.

mod close;
mod codec;
pub mod commitment;
pub mod config;
mod error;
mod establish;
pub mod ledger;
mod limits;
mod operate;
mod reestablish;
pub mod state;
pub mod update;
mod wire;

use std::collections::VecDeque;

use bitcoin::secp256k1::{self, PublicKey, Secp256k1};
use bitcoin::{ScriptBuf, Transaction, Txid};
use lightning::ln::chan_utils::make_funding_redeemscript;
use lightning::ln::msgs;
use lightning::ln::types::ChannelId;
use lightning::sign::ecdsa::EcdsaChannelSigner;

pub use config::{ChannelConfig, PartyParams};
pub use error::ChannelError;
pub use establish::{InboundParams, OutboundParams};
pub use state::{ChannelSnapshot, Phase};
pub use update::{
    ClaimPart, CloseReason, CommittedHtlc, HtlcFailure, HtlcSource, InboundClaim, MonitorUpdate, UpdateStep,
};

use commitment::{build_commitment, BuiltCommitment, CommitmentHtlc, CommitmentSpec};
use error::close;
use ledger::Side;

/// A message for the peer. (`update_add_htlc` carries a 1366-byte onion, so
/// variants differ much in size; messages are moved once each, so they are
/// not boxed.)
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum ChannelMessage {
    OpenChannel(msgs::OpenChannel),
    AcceptChannel(msgs::AcceptChannel),
    FundingCreated(msgs::FundingCreated),
    FundingSigned(msgs::FundingSigned),
    ChannelReady(msgs::ChannelReady),
    UpdateAddHtlc(msgs::UpdateAddHTLC),
    UpdateFulfillHtlc(msgs::UpdateFulfillHTLC),
    UpdateFailHtlc(msgs::UpdateFailHTLC),
    UpdateFailMalformedHtlc(msgs::UpdateFailMalformedHTLC),
    CommitmentSigned(msgs::CommitmentSigned),
    RevokeAndAck(msgs::RevokeAndACK),
    UpdateFee(msgs::UpdateFee),
    Shutdown(msgs::Shutdown),
    ClosingSigned(msgs::ClosingSigned),
    ChannelReestablish(msgs::ChannelReestablish),
    Error(msgs::ErrorMessage),
    Warning(msgs::WarningMessage),
    /// A private `channel_update` between the channel's two ends (handled
    /// by the manager, never by the channel).
    ChannelUpdate(msgs::ChannelUpdate),
}

/// Something the runtime must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// Funder: build a funding transaction paying `value_sat` to
    /// `script_pubkey`, then call [`Channel::funding_outpoint_ready`].
    FundingNeeded {
        /// The P2WSH of the 2-of-2 funding script.
        script_pubkey: ScriptBuf,
        /// The channel value.
        value_sat: u64,
    },
    /// Funder: both first commitments are signed and durable; broadcast the
    /// funding transaction now.
    BroadcastFunding {
        /// Its txid.
        txid: Txid,
    },
    /// Both sides sent `channel_ready`: the channel can carry payments.
    ChannelReady,
    /// A cooperative close was agreed and is durable; broadcast it.
    BroadcastClosing {
        /// The fully signed closing transaction.
        transaction: Transaction,
    },
    /// The channel closed.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// What [`Channel::poll_output`] returns.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum ChannelOutput {
    /// Send this to the peer.
    Message(ChannelMessage),
    /// Act on this.
    Event(ChannelEvent),
}

#[derive(Debug)]
struct Queued {
    output: ChannelOutput,
    /// The update that must be durable first.
    after_update: Option<u64>,
}

/// The handle of an HTLC inside commitments: its id and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtlcTag {
    /// The id.
    pub id: u64,
    /// Whether we offered it.
    pub outbound: bool,
}

/// One channel with one peer. `S` signs for it (LDK's `InMemorySigner`,
/// derived from the node's `KeysManager`, in production).
pub struct Channel<S: EcdsaChannelSigner> {
    state: ChannelSnapshot,
    signer: S,
    config: ChannelConfig,
    secp: Secp256k1<secp256k1::All>,
    /// Whether the peer is connected.
    connected: bool,
    /// Connected but `channel_reestablish` not yet received.
    awaiting_reestablish: bool,
    best_height: u32,
    /// The current fee estimate, for sanity checks of the peer's `update_fee`.
    fee_estimate: Option<u32>,
    /// The script our cooperative close pays to.
    close_script: ScriptBuf,
    outbox: VecDeque<Queued>,
    updates: VecDeque<MonitorUpdate>,
    /// Every update up to this id is durable.
    durable_up_to: u64,
    /// The update our last `revoke_and_ack` depends on.
    last_raa_update: u64,
    /// The update our last `commitment_signed` depends on.
    last_cs_update: u64,
    /// Whether `ChannelReady` was emitted.
    ready_reported: bool,
}

impl<S: EcdsaChannelSigner> std::fmt::Debug for Channel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("channel_id", &self.state.channel_id)
            .field("phase", &self.state.phase)
            .field("local_number", &self.state.local_number)
            .field("remote_number", &self.state.remote_number)
            .finish_non_exhaustive()
    }
}

impl<S: EcdsaChannelSigner> Channel<S> {
    fn with_state(
        state: ChannelSnapshot,
        signer: S,
        config: ChannelConfig,
        close_script: ScriptBuf,
        best_height: u32,
    ) -> Self {
        Self {
            state,
            signer,
            config,
            secp: Secp256k1::new(),
            connected: true,
            awaiting_reestablish: false,
            best_height,
            fee_estimate: None,
            close_script,
            outbox: VecDeque::new(),
            updates: VecDeque::new(),
            durable_up_to: 0,
            last_raa_update: 0,
            last_cs_update: 0,
            ready_reported: false,
        }
    }

    /// Rebuilds a channel from the snapshot of its latest durable monitor
    /// update, as after a restart: the peer counts as disconnected, and
    /// [`Channel::peer_connected`] starts `channel_reestablish`.
    pub fn from_snapshot(
        snapshot: ChannelSnapshot,
        signer: S,
        config: ChannelConfig,
        close_script: ScriptBuf,
        best_height: u32,
    ) -> Self {
        let durable = snapshot.next_update_id.saturating_sub(1);
        let mut channel = Self::with_state(snapshot, signer, config, close_script, best_height);
        channel.durable_up_to = durable;
        channel.ready_reported = channel.state.channel_ready_sent && channel.state.channel_ready_received;
        channel.drop_uncommitted_remote_changes();
        channel.connected = false;
        channel
    }

    /// The channel id (the temporary id before funding).
    pub fn channel_id(&self) -> ChannelId {
        self.state.channel_id
    }

    /// The peer's node id.
    pub fn counterparty_node_id(&self) -> PublicKey {
        self.state.counterparty_node_id
    }

    /// The durable state, as the next monitor update would carry it.
    pub fn snapshot(&self) -> &ChannelSnapshot {
        &self.state
    }

    /// Where the channel is.
    pub fn phase(&self) -> &Phase {
        &self.state.phase
    }

    /// Whether the channel can carry new HTLCs now.
    pub fn is_usable(&self) -> bool {
        self.state.phase == Phase::Funded
            && self.state.channel_ready_sent
            && self.state.channel_ready_received
            && self.connected
            && !self.awaiting_reestablish
            && !self.state.shutdown.started()
    }

    /// Whether the peer is connected and the channel reestablished (the
    /// channel may still be unusable: not ready, or closing).
    pub fn is_live(&self) -> bool {
        self.connected && !self.awaiting_reestablish
    }

    /// Our balance in the current local commitment, HTLCs excluded.
    pub fn balance_msat(&self) -> u64 {
        self.state.ledger.view(Side::Local, self.state.local_number).ours_msat
    }

    /// HTLCs the channel tracks, in either direction, until both sides
    /// have revoked the commitments that hold them.
    pub fn pending_htlc_count(&self) -> usize {
        self.state.ledger.htlcs.len()
    }

    /// The funding script: the 2-of-2 multisig both first commitments spend.
    ///
    /// # Panics
    ///
    /// Before `accept_channel`/`open_channel` gave the counterparty's keys.
    pub fn funding_script(&self) -> ScriptBuf {
        let cp = self.state.params.counterparty_parameters.as_ref().expect("counterparty keys are known");
        make_funding_redeemscript(
            &self.state.params.holder_pubkeys.funding_pubkey,
            &cp.pubkeys.funding_pubkey,
        )
    }

    /// The next output for the runtime: a message to send or an event. Items
    /// that depend on a monitor update wait until it is durable, and
    /// everything queued after them waits too.
    pub fn poll_output(&mut self) -> Option<ChannelOutput> {
        let head = self.outbox.front()?;
        if head.after_update.is_some_and(|id| id > self.durable_up_to) {
            return None;
        }
        self.outbox.pop_front().map(|q| q.output)
    }

    /// Whether `poll_monitor_update` or `poll_output` has something now
    /// (a cheap check, so that a node with many channels visits only those
    /// that moved).
    pub fn has_pending(&self) -> bool {
        !self.updates.is_empty()
            || self
                .outbox
                .front()
                .is_some_and(|head| head.after_update.is_none_or(|id| id <= self.durable_up_to))
    }

    /// The next monitor update to persist, in `update_id` order.
    pub fn poll_monitor_update(&mut self) -> Option<MonitorUpdate> {
        self.updates.pop_front()
    }

    /// Reports that every update up to `update_id` is durable (completions
    /// arrive in order within a channel).
    pub fn update_persisted(&mut self, update_id: u64) {
        self.durable_up_to = self.durable_up_to.max(update_id);
    }

    /// Records the chain's new best height (HTLC expiry checks, funding
    /// depth).
    pub fn best_block_updated(&mut self, height: u32) {
        self.best_height = height;
        self.check_funding_depth();
    }

    /// Records the current fee estimate, against which the peer's
    /// `update_fee` is judged.
    pub fn update_fee_estimate(&mut self, feerate_per_kw: u32) {
        self.fee_estimate = Some(feerate_per_kw);
    }

    fn queue_message(&mut self, message: ChannelMessage, after_update: Option<u64>) {
        self.outbox.push_back(Queued { output: ChannelOutput::Message(message), after_update });
    }

    fn queue_event(&mut self, event: ChannelEvent, after_update: Option<u64>) {
        self.outbox.push_back(Queued { output: ChannelOutput::Event(event), after_update });
    }

    /// Appends a monitor update with `steps` and the current state. Returns
    /// its id.
    fn push_update(&mut self, steps: Vec<UpdateStep>) -> u64 {
        let update_id = self.state.next_update_id;
        self.state.next_update_id += 1;
        self.updates.push_back(MonitorUpdate {
            channel_id: self.state.channel_id,
            update_id,
            steps,
            snapshot: self.state.clone(),
        });
        update_id
    }

    /// Our per-commitment point for commitment `number`.
    fn holder_point(&self, number: u64) -> Result<PublicKey, ChannelError> {
        self.signer
            .get_per_commitment_point(commitment::commitment_index(number), &self.secp)
            .or_else(|_| close("the signer could not give a per-commitment point"))
    }

    /// Builds commitment `number` of `side` from the ledger.
    fn build(
        &self,
        ledger: &ledger::Ledger,
        side: Side,
        number: u64,
    ) -> Result<BuiltCommitment<HtlcTag>, ChannelError> {
        let view = ledger.view(side, number);
        let (point, dust, to_broadcaster, to_countersignatory) = match side {
            Side::Local => (
                self.holder_point(number)?,
                self.state.holder.dust_limit_sat,
                view.ours_msat,
                view.theirs_msat,
            ),
            Side::Remote => {
                let Some(point) = self.state.counterparty_point(number) else {
                    return close(format!("no per-commitment point of the peer for commitment {number}"));
                };
                (point, self.state.counterparty.dust_limit_sat, view.theirs_msat, view.ours_msat)
            }
        };
        let htlcs = view
            .htlcs
            .iter()
            .map(|h| CommitmentHtlc {
                tag: HtlcTag { id: h.id, outbound: h.outbound },
                // `offered` is from the broadcaster's point of view.
                offered: h.outbound == (side == Side::Local),
                amount_msat: h.amount_msat(),
                cltv_expiry: h.cltv_expiry(),
                payment_hash: h.payment_hash(),
            })
            .collect();
        let spec = CommitmentSpec {
            number,
            per_commitment_point: point,
            to_broadcaster_msat: to_broadcaster,
            to_countersignatory_msat: to_countersignatory,
            feerate_per_kw: view.feerate_per_kw,
            dust_limit_sat: dust,
            htlcs,
        };
        Ok(build_commitment(&self.state.params, side == Side::Local, spec, &self.secp))
    }

    /// The HTLCs of a built commitment, for a monitor step.
    fn committed_htlcs(&self, built: &BuiltCommitment<HtlcTag>) -> Vec<CommittedHtlc> {
        let source = |tag: &HtlcTag| {
            if tag.outbound {
                self.state.ledger.htlc(true, tag.id).and_then(|h| h.source.clone())
            } else {
                None
            }
        };
        built
            .htlcs
            .iter()
            .map(|(tag, out)| CommittedHtlc {
                id: tag.id,
                outbound: tag.outbound,
                output_index: out.transaction_output_index,
                source: source(tag),
            })
            .chain(built.trimmed.iter().map(|tag| CommittedHtlc {
                id: tag.id,
                outbound: tag.outbound,
                output_index: None,
                source: source(tag),
            }))
            .collect()
    }

    /// Fails the channel: an `error` to the peer, a monitor update closing the
    /// channel, and a `Closed` event.
    fn fail_channel(&mut self, reason: CloseReason, broadcast_holder_commitment: bool) {
        if matches!(self.state.phase, Phase::Closed(_)) {
            return;
        }
        let message = match &reason {
            CloseReason::LocalError(m) => m.clone(),
            CloseReason::StaleLocalState => "our channel state is stale; please close the channel".into(),
            CloseReason::ForceClosed => "the channel is being force-closed".into(),
            CloseReason::CounterpartyError(_) | CloseReason::Cooperative => String::new(),
        };
        let funded = self.state.phase == Phase::Funded;
        self.state.phase = Phase::Closed(reason.clone());
        if !message.is_empty() && self.connected {
            self.queue_message(
                ChannelMessage::Error(msgs::ErrorMessage {
                    channel_id: self.state.channel_id,
                    data: message,
                }),
                None,
            );
        }
        let after = funded.then(|| {
            self.push_update(vec![UpdateStep::ChannelClosed {
                reason: reason.clone(),
                broadcast_holder_commitment,
            }])
        });
        self.queue_event(ChannelEvent::Closed { reason }, after);
    }

    /// Applies the outcome of a handler: a `Close` error fails the channel, a
    /// `Warn` sends a warning.
    fn outcome<T>(&mut self, result: Result<T, ChannelError>) -> Result<T, ChannelError> {
        match &result {
            Err(ChannelError::Close(m)) => self.fail_channel(CloseReason::LocalError(m.clone()), true),
            Err(ChannelError::Warn(m)) if self.connected => {
                let warning = msgs::WarningMessage { channel_id: self.state.channel_id, data: m.clone() };
                self.queue_message(ChannelMessage::Warning(warning), None);
            }
            _ => {}
        }
        result
    }

    /// Refuses input once the channel is closed, or before the peer's
    /// `channel_reestablish`.
    fn check_live(&self) -> Result<(), ChannelError> {
        if let Phase::Closed(_) = self.state.phase {
            return error::ignore("the channel is closed");
        }
        if self.awaiting_reestablish {
            return error::ignore("waiting for the peer's channel_reestablish");
        }
        Ok(())
    }

    /// The peer sent an `error` for this channel.
    pub fn handle_error(&mut self, msg: &msgs::ErrorMessage) {
        self.fail_channel(CloseReason::CounterpartyError(msg.data.clone()), true);
    }

    /// The user or manager force-closes the channel: its latest commitment goes
    /// on chain.
    pub fn force_close(&mut self) {
        self.fail_channel(CloseReason::ForceClosed, true);
    }

    /// Fails the channel for `why` (sent to the peer in an `error`): its
    /// latest commitment goes on chain.
    pub fn fail_because(&mut self, why: String) {
        self.fail_channel(CloseReason::LocalError(why), true);
    }

    /// Dispatches a peer message to its handler.
    ///
    /// # Errors
    ///
    /// The handler's [`ChannelError`]; a `Close` has already failed the
    /// channel, a `Warn` has already queued a warning.
    pub fn handle_message(&mut self, message: ChannelMessage) -> Result<(), ChannelError> {
        match message {
            ChannelMessage::AcceptChannel(m) => self.handle_accept_channel(&m),
            ChannelMessage::FundingCreated(m) => self.handle_funding_created(&m),
            ChannelMessage::FundingSigned(m) => self.handle_funding_signed(&m),
            ChannelMessage::ChannelReady(m) => self.handle_channel_ready(&m),
            ChannelMessage::UpdateAddHtlc(m) => self.handle_update_add_htlc(&m),
            ChannelMessage::UpdateFulfillHtlc(m) => self.handle_update_fulfill_htlc(&m),
            ChannelMessage::UpdateFailHtlc(m) => self.handle_update_fail_htlc(&m),
            ChannelMessage::UpdateFailMalformedHtlc(m) => self.handle_update_fail_malformed_htlc(&m),
            ChannelMessage::CommitmentSigned(m) => self.handle_commitment_signed(&m),
            ChannelMessage::RevokeAndAck(m) => self.handle_revoke_and_ack(&m),
            ChannelMessage::UpdateFee(m) => self.handle_update_fee(&m),
            ChannelMessage::Shutdown(m) => self.handle_shutdown(&m),
            ChannelMessage::ClosingSigned(m) => self.handle_closing_signed(&m),
            ChannelMessage::ChannelReestablish(m) => self.handle_channel_reestablish(&m),
            ChannelMessage::Error(m) => {
                self.handle_error(&m);
                Ok(())
            }
            ChannelMessage::Warning(_) | ChannelMessage::ChannelUpdate(_) => Ok(()),
            ChannelMessage::OpenChannel(_) => {
                error::ignore("open_channel is handled by creating an inbound channel")
            }
        }
    }
}
