//! The channel's durable state: everything a channel needs to resume after a
//! crash, and nothing else.
//!
//! [`ChannelSnapshot`] is carried whole in every monitor update. Transient
//! state (messages waiting to go out, the connection) is not part of it: a
//! channel rebuilt from a snapshot behaves as one just disconnected from its
//! peer, and `channel_reestablish` recovers the rest.

use bitcoin::secp256k1::PublicKey;
use bitcoin::ScriptBuf;
use lightning::ln::chan_utils::{ChannelTransactionParameters, CounterpartyCommitmentSecrets};
use lightning::ln::types::ChannelId;

use super::config::PartyParams;
use super::ledger::Ledger;
use super::update::CloseReason;

/// The counterparty's revealed per-commitment secrets, in BOLT 3's compact
/// storage (LDK's implementation).
#[derive(Clone, PartialEq, Eq)]
pub struct RevealedSecrets(pub CounterpartyCommitmentSecrets);

impl std::fmt::Debug for RevealedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevealedSecrets").field("min_seen_index", &self.0.get_min_seen_secret()).finish()
    }
}

impl std::ops::Deref for RevealedSecrets {
    type Target = CounterpartyCommitmentSecrets;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for RevealedSecrets {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Where the channel is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Funder: `open_channel` sent, waiting for `accept_channel`.
    OpenSent,
    /// Funder: `accept_channel` received, waiting for the funding outpoint.
    Accepted,
    /// Fundee: `accept_channel` sent, waiting for `funding_created`.
    AcceptSent,
    /// Funder: `funding_created` sent, waiting for `funding_signed`.
    FundingCreatedSent,
    /// Both first commitments are signed: the channel exists on its monitor.
    Funded,
    /// Closed; no further input is accepted.
    Closed(CloseReason),
}

/// Which of our `revoke_and_ack` and `commitment_signed` went out last, so a
/// retransmission keeps their order (BOLT 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastSent {
    /// Neither yet.
    #[default]
    Nothing,
    /// Our last was a `revoke_and_ack`.
    RevokeAndAck,
    /// Our last was a `commitment_signed`.
    CommitmentSigned,
}

/// Cooperative close progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownState {
    /// The script our closing output pays to, once we decided to shut down.
    pub ours: Option<ScriptBuf>,
    /// Whether our `shutdown` went out on the current connection (it waits
    /// until none of our updates is left unsigned).
    pub ours_sent: bool,
    /// Whether the monitor has been given both scripts.
    pub scripts_recorded: bool,
    /// The counterparty's, once received.
    pub theirs: Option<ScriptBuf>,
    /// The last fee we proposed in `closing_signed`.
    pub our_last_fee_sat: Option<u64>,
    /// The fee range we accept.
    pub our_fee_range: Option<(u64, u64)>,
}

impl ShutdownState {
    /// Whether either side started a shutdown.
    pub fn started(&self) -> bool {
        self.ours.is_some() || self.theirs.is_some()
    }
}

/// The durable state of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSnapshot {
    /// The temporary id used before funding.
    pub temporary_channel_id: ChannelId,
    /// The channel id (the temporary one until funding).
    pub channel_id: ChannelId,
    /// The peer.
    pub counterparty_node_id: PublicKey,
    /// Derives the channel's signer from the node's keys.
    pub channel_keys_id: [u8; 32],
    /// Where we are.
    pub phase: Phase,
    /// Transaction parameters; the counterparty's part and the funding
    /// outpoint are filled in during establishment.
    pub params: ChannelTransactionParameters,
    /// What we announced.
    pub holder: PartyParams,
    /// What they announced.
    pub counterparty: PartyParams,
    /// Confirmations required of the funding transaction.
    pub minimum_depth: u32,
    /// Whether the channel is announced (`announce_channel`).
    pub announced: bool,
    /// Upfront shutdown script we committed to, if any.
    pub our_upfront_shutdown: Option<ScriptBuf>,
    /// Upfront shutdown script they committed to, if any.
    pub their_upfront_shutdown: Option<ScriptBuf>,
    /// Height at which the funding transaction confirmed.
    pub funding_confirmed_height: Option<u32>,
    /// The real short channel id, once confirmed.
    pub short_channel_id: Option<u64>,
    /// Our alias for the channel (`option_scid_alias`).
    pub our_scid_alias: u64,
    /// The alias the counterparty gave us.
    pub their_scid_alias: Option<u64>,
    /// Whether we sent `channel_ready`.
    pub channel_ready_sent: bool,
    /// Whether we received `channel_ready`.
    pub channel_ready_received: bool,
    /// Our current commitment number (the latest we hold signatures for).
    pub local_number: u64,
    /// The latest counterparty commitment number we signed.
    pub remote_number: u64,
    /// The oldest counterparty commitment not yet revoked.
    pub remote_unrevoked: u64,
    /// The counterparty's per-commitment points we know, by number.
    pub counterparty_points: Vec<(u64, PublicKey)>,
    /// The counterparty's revealed per-commitment secrets.
    pub counterparty_secrets: RevealedSecrets,
    /// HTLCs, fee updates and balances.
    pub ledger: Ledger,
    /// Order of our last `revoke_and_ack` and `commitment_signed`.
    pub last_sent: LastSent,
    /// Cooperative close progress.
    pub shutdown: ShutdownState,
    /// The id of the next monitor update.
    pub next_update_id: u64,
}

impl ChannelSnapshot {
    /// Whether we funded the channel.
    pub fn is_funder(&self) -> bool {
        self.params.is_outbound_from_holder
    }

    /// The channel value in satoshis.
    pub fn value_sat(&self) -> u64 {
        self.params.channel_value_satoshis
    }

    /// The counterparty's per-commitment point for commitment `number`.
    pub fn counterparty_point(&self, number: u64) -> Option<PublicKey> {
        self.counterparty_points.iter().find(|(n, _)| *n == number).map(|(_, p)| *p)
    }

    /// Records the counterparty's point for `number`, keeping the latest few.
    pub fn remember_counterparty_point(&mut self, number: u64, point: PublicKey) {
        self.counterparty_points.retain(|(n, _)| *n != number && *n + 2 >= number);
        self.counterparty_points.push((number, point));
    }

    /// Whether a `commitment_signed` we sent awaits its `revoke_and_ack`.
    pub fn awaiting_revoke(&self) -> bool {
        self.remote_number > self.remote_unrevoked
    }
}
