//! The `ChannelManager`: a routing and forwarding engine driven by monitor
//! events, and never persisted (DESIGN.md §3, I3).
//!
//! It owns the node's channels and their [`ChainMonitor`], and is sans-IO:
//! peer messages, blocks, persistence completions, timer ticks and user
//! commands come in as calls; messages, writes, broadcasts and user events
//! go out through `poll_*`.
//!
//! - Every inbound HTLC reaches the manager only as a durable
//!   `HtlcAccepted` monitor event ([`htlcs`]): it is peeled, then forwarded,
//!   received or failed back. Forwards and fails acknowledge the event once
//!   their effect is durable in a monitor.
//! - Receiving ([`receive`]): parts gather per payment hash; `claim_funds`
//!   sends one preimage update per part, each carrying the whole claim as a
//!   deferred restart event; `PaymentClaimed` follows once every part is
//!   durable.
//! - Sending ([`send`]): the payment's intent is a small record written
//!   before the first HTLC leaves; each HTLC's source lives in its monitor.
//! - User events ([`events`]) acknowledge the monitor events behind them
//!   when handled.
//! - Restart ([`ChannelManager::from_monitors`]) rebuilds the channels from
//!   their monitors and replays every unacknowledged and deferred event
//!   through the same code as a normal run. There is no other load logic.

pub mod events;
pub mod gossip;
mod htlcs;
pub mod invoice;
pub mod onchain;
pub mod receive;
pub mod records;
pub mod send;

use std::collections::{BTreeMap, VecDeque};

use bitcoin::constants::ChainHash;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Network, ScriptBuf, Transaction, Txid};
use lightning::ln::msgs;
use lightning::ln::types::ChannelId;
use lightning::routing::gossip::NetworkGraph;
use lightning::sign::{EntropySource, InMemorySigner, KeysManager, SignerProvider};
use lightning::types::features::ChannelTypeFeatures;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use crate::chain_monitor::{
    ChainMonitor, ChainMonitorConfig, CompletionError, PersistRequest, ReleasedEvent,
};
use crate::channel::{
    Channel, ChannelConfig, ChannelError, ChannelEvent, ChannelMessage, ChannelOutput, InboundParams,
    OutboundParams, Phase,
};
use crate::monitor::{MonitorEvent, MonitorEventId};

use events::{AckAction, EventQueue};
pub use events::{Event, EventId, PaymentId, PaymentPurpose};
pub use htlcs::NoLog;
pub use invoice::{InvoiceError, MAX_ROUTE_HINTS};
pub use records::{PaymentRecord, PaymentStatus, RecordWrite};
pub use send::PayError;

/// How we forward other people's payments (BOLT 7 `channel_update` terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingPolicy {
    /// The base fee.
    pub fee_base_msat: u32,
    /// The proportional fee, in millionths.
    pub fee_proportional_millionths: u32,
    /// The CLTV delta we require between the inbound and outbound HTLC.
    pub cltv_expiry_delta: u16,
    /// The smallest HTLC we forward.
    pub htlc_minimum_msat: u64,
    /// The largest HTLC we forward.
    pub htlc_maximum_msat: u64,
}

impl Default for ForwardingPolicy {
    fn default() -> Self {
        Self {
            fee_base_msat: 1000,
            fee_proportional_millionths: 100,
            cltv_expiry_delta: 72,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: u64::MAX,
        }
    }
}

impl ForwardingPolicy {
    /// The fee we charge to forward `amount_msat`.
    pub fn fee_msat(&self, amount_msat: u64) -> u64 {
        let proportional = u128::from(amount_msat) * u128::from(self.fee_proportional_millionths) / 1_000_000;
        u64::from(self.fee_base_msat).saturating_add(u64::try_from(proportional).unwrap_or(u64::MAX))
    }
}

/// How many channels a peer may have in opening (not yet funded) with us.
pub const MAX_UNFUNDED_CHANNELS_PER_PEER: usize = 4;

/// The manager's settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The network (regtest for the embedded chain).
    pub network: Network,
    /// Channel limits and policies.
    pub channel: ChannelConfig,
    /// Monitor persistence.
    pub chain_monitor: ChainMonitorConfig,
    /// Forwarding terms.
    pub forwarding: ForwardingPolicy,
    /// The final CLTV delta our invoices ask for.
    pub min_final_cltv_expiry_delta: u16,
    /// Ticks an incomplete multi-part payment waits before its parts are
    /// failed back with `mpp_timeout`.
    pub mpp_timeout_ticks: u32,
    /// Blocks before a received part's expiry by which an unclaimed payment
    /// is failed back (so the peer never has to go on chain for it).
    pub claim_deadline_blocks: u32,
    /// Ticks an HTLC waits for its outbound peer to reconnect before it is
    /// failed back with `temporary_channel_failure`.
    pub forward_wait_ticks: u32,
    /// Paths tried per payment before it fails.
    pub max_payment_attempts: u32,
    /// Whether peers may open channels to us.
    pub accept_inbound_channels: bool,
    /// The fee rate for commitments of channels we open.
    pub commitment_feerate_per_kw: u32,
    /// The fee rate on-chain claims start at; they are bumped from there
    /// as blocks pass (see [`crate::onchain`]).
    pub claim_feerate_per_kw: u32,
    /// Where on-chain claims sweep to: a script of the node's wallet. If
    /// `None`, the key manager's destination script.
    pub sweep_script: Option<ScriptBuf>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            network: Network::Regtest,
            channel: ChannelConfig::default(),
            chain_monitor: ChainMonitorConfig::default(),
            forwarding: ForwardingPolicy::default(),
            // LDK's peel refuses a final HTLC within 40 blocks of expiry.
            min_final_cltv_expiry_delta: 48,
            mpp_timeout_ticks: 3,
            forward_wait_ticks: 2,
            claim_deadline_blocks: 39,
            max_payment_attempts: 5,
            accept_inbound_channels: true,
            commitment_feerate_per_kw: 1000,
            claim_feerate_per_kw: 1000,
            sweep_script: None,
        }
    }
}

/// Why a channel command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// No channel with this id.
    UnknownChannel(ChannelId),
    /// The peer is not connected.
    PeerNotConnected(PublicKey),
    /// The channel refused.
    Channel(ChannelError),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownChannel(id) => write!(f, "no channel {id}"),
            Self::PeerNotConnected(p) => write!(f, "peer {p} is not connected; connect first"),
            Self::Channel(e) => write!(f, "the channel refused: {}", e.message()),
        }
    }
}

impl std::error::Error for CommandError {}

/// Why a peer message was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// It names a channel we do not have with this peer.
    UnknownChannel(ChannelId),
    /// We do not accept channels from peers.
    InboundChannelsRefused,
    /// The channel refused it (a `Close` already failed the channel).
    Channel(ChannelError),
    /// A `channel_update` we do not take.
    ChannelUpdate(gossip::UpdateRefused),
    /// It would create a channel whose id is taken.
    DuplicateChannel(ChannelId),
    /// The peer has too many channels being opened with us.
    TooManyPendingChannels,
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownChannel(id) => write!(f, "no channel {id} with this peer"),
            Self::InboundChannelsRefused => write!(f, "we do not accept inbound channels"),
            Self::Channel(e) => write!(f, "{}", e.message()),
            Self::ChannelUpdate(e) => write!(f, "{e}"),
            Self::DuplicateChannel(id) => write!(f, "a channel with id {id} exists"),
            Self::TooManyPendingChannels => write!(f, "too many channels being opened by this peer"),
        }
    }
}

impl std::error::Error for MessageError {}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// No complete payment to us has this hash.
    NotClaimable(PaymentHash),
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotClaimable(h) => write!(f, "no complete payment with hash {h} is waiting to be claimed"),
        }
    }
}

impl std::error::Error for ClaimError {}

/// What the manager needs of the node's channels, as the user sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDetails {
    /// The channel id.
    pub channel_id: ChannelId,
    /// The peer.
    pub counterparty_node_id: PublicKey,
    /// Its phase.
    pub phase: Phase,
    /// Whether it can carry new HTLCs now.
    pub usable: bool,
    /// Its value.
    pub value_sat: u64,
    /// Our balance, HTLCs excluded.
    pub balance_msat: u64,
    /// The alias the peer routes to us with (for invoice route hints).
    pub inbound_scid_alias: Option<u64>,
    /// Our alias for it.
    pub scid_alias: u64,
    /// Its real short channel id, once confirmed.
    pub short_channel_id: Option<u64>,
    /// HTLCs in flight on it, in either direction.
    pub pending_htlcs: usize,
}

/// What to do once a channel's monitor holds an update durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Then {
    /// Acknowledge a monitor event; for a part of a payment we receive,
    /// also mark that part's preimage durable.
    Ack((ChannelId, MonitorEventId), Option<u64>),
    /// Mark the preimage of a part `(channel, htlc id)` durable.
    PartDurable(ChannelId, u64),
    /// Give the user an event.
    Emit(Event, Vec<AckAction>),
}

/// What a [`Then`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The channel's monitor durably holds this update id.
    Update(ChannelId, u64),
    /// The channel's monitor write with this sequence number is durable
    /// (for changes made to a closed channel's monitor directly).
    Write(ChannelId, u64),
}

/// A [`Then`] waiting for its [`After`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    after: After,
    then: Then,
}

/// The node's channel manager.
pub struct ChannelManager {
    config: ManagerConfig,
    keys: KeysManager,
    node_secret: SecretKey,
    node_id: PublicKey,
    chain_hash: ChainHash,
    secp: Secp256k1<bitcoin::secp256k1::All>,
    chain_monitor: ChainMonitor,
    channels: BTreeMap<ChannelId, Channel<InMemorySigner>>,
    connected: BTreeMap<PublicKey, bool>,
    best_height: u32,
    /// Seconds since the epoch, as of the last tick.
    now_secs: u64,
    ticks: u64,
    outbox: VecDeque<(PublicKey, ChannelMessage)>,
    broadcasts: VecDeque<Transaction>,
    /// Owed outputs of closed channels not claimed yet, as of the last block.
    pending_sweeps: Vec<onchain::PendingSweep>,
    /// Claims the wallet must fund, as of the last block.
    fee_needs: Vec<(ChannelId, crate::onchain::FeeNeed)>,
    /// Funding transactions of channels we open, until broadcast.
    funding_txs: BTreeMap<Txid, Transaction>,
    events: EventQueue,
    waiting: Vec<Waiting>,
    /// Monitor events waiting for a peer to reconnect, with the tick they
    /// were first handled at.
    parked: Vec<(ReleasedEvent, u64)>,
    receive: receive::Receiver,
    send: send::Sender,
    /// The public network, fed by gossip (our own channels are first hops).
    graph: std::sync::Arc<NetworkGraph<&'static NoLog>>,
    /// Channels whose peer has our `channel_update` since the channel
    /// became usable.
    updates_sent: std::collections::BTreeSet<ChannelId>,
    /// The last `channel_update` timestamp we used (they must increase).
    update_timestamp: u32,
    /// The peers' forwarding terms, from their `channel_update`s.
    peer_terms: BTreeMap<ChannelId, gossip::PeerTerms>,
    /// Set while `from_monitors` replays what was durable before the
    /// restart (an invoice that expired since is still honoured then).
    replaying: bool,
    /// Acknowledgements and records to flush after this round.
    dirty: bool,
}

static GRAPH_LOG: NoLog = NoLog;

impl std::fmt::Debug for ChannelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelManager")
            .field("node_id", &self.node_id)
            .field("channels", &self.channels.len())
            .field("best_height", &self.best_height)
            .finish_non_exhaustive()
    }
}

impl ChannelManager {
    /// A manager with no channels (a new node).
    pub fn new(config: ManagerConfig, keys: KeysManager, best_height: u32, now_secs: u64) -> Self {
        let chain_monitor = ChainMonitor::new(config.chain_monitor.clone());
        Self::with_monitor(config, keys, chain_monitor, Vec::new(), best_height, now_secs)
    }

    fn with_monitor(
        config: ManagerConfig,
        keys: KeysManager,
        chain_monitor: ChainMonitor,
        records: Vec<PaymentRecord>,
        best_height: u32,
        now_secs: u64,
    ) -> Self {
        let node_secret = keys.get_node_secret_key();
        let secp = Secp256k1::new();
        let node_id = PublicKey::from_secret_key(&secp, &node_secret);
        let network = config.network;
        Self {
            chain_hash: ChainHash::using_genesis_block(config.network),
            receive: receive::Receiver::default(),
            send: send::Sender::new(records),
            config,
            keys,
            node_secret,
            node_id,
            secp,
            chain_monitor,
            channels: BTreeMap::new(),
            connected: BTreeMap::new(),
            best_height,
            now_secs,
            ticks: 0,
            outbox: VecDeque::new(),
            broadcasts: VecDeque::new(),
            pending_sweeps: Vec::new(),
            fee_needs: Vec::new(),
            funding_txs: BTreeMap::new(),
            events: EventQueue::default(),
            waiting: Vec::new(),
            parked: Vec::new(),
            graph: std::sync::Arc::new(NetworkGraph::new(network, &GRAPH_LOG)),
            updates_sent: std::collections::BTreeSet::new(),
            update_timestamp: 0,
            peer_terms: BTreeMap::new(),
            replaying: false,
            dirty: false,
        }
    }

    /// Rebuilds the node after a restart from its monitors (loaded with
    /// [`ChainMonitor::load`]) and its payment records: every channel resumes
    /// from its monitor's snapshot, then every unacknowledged event and
    /// every deferred restart event is replayed through the normal code.
    /// Peers count as disconnected until [`ChannelManager::peer_connected`].
    pub fn from_monitors(
        config: ManagerConfig,
        keys: KeysManager,
        mut chain_monitor: ChainMonitor,
        records: Vec<PaymentRecord>,
        best_height: u32,
        now_secs: u64,
    ) -> Self {
        let deferred = chain_monitor.take_startup_replay();
        let mut manager = Self::with_monitor(config, keys, chain_monitor, records, best_height, now_secs);
        let snapshots: Vec<_> = manager
            .chain_monitor
            .monitors()
            .filter(|m| !m.is_closed())
            .map(|m| m.channel_snapshot().clone())
            .collect();
        for snapshot in snapshots {
            let signer = manager.keys.derive_channel_signer(snapshot.channel_keys_id);
            let close_script = manager.close_script();
            let channel = Channel::from_snapshot(
                snapshot,
                signer,
                manager.config.channel.clone(),
                close_script,
                best_height,
            );
            manager.connected.insert(channel.counterparty_node_id(), false);
            manager.channels.insert(channel.channel_id(), channel);
        }
        manager.replaying = true;
        for event in deferred {
            manager.handle_deferred_event(event);
        }
        manager.process();
        manager.replaying = false;
        manager.reconcile_payments();
        manager.process();
        manager.broadcast_claims();
        manager
    }

    /// Our node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// The chain monitor (read access: monitors, durable update ids).
    pub fn chain_monitor(&self) -> &ChainMonitor {
        &self.chain_monitor
    }

    /// The current block height.
    pub fn best_height(&self) -> u32 {
        self.best_height
    }

    fn close_script(&self) -> ScriptBuf {
        self.keys
            .get_shutdown_scriptpubkey()
            .map(|s| s.into_inner())
            .expect("KeysManager always gives a shutdown script")
    }

    /// Every channel.
    pub fn list_channels(&self) -> Vec<ChannelDetails> {
        self.channels
            .values()
            .map(|c| {
                let s = c.snapshot();
                ChannelDetails {
                    channel_id: c.channel_id(),
                    counterparty_node_id: c.counterparty_node_id(),
                    phase: s.phase.clone(),
                    usable: c.is_usable(),
                    value_sat: s.value_sat(),
                    balance_msat: c.balance_msat(),
                    inbound_scid_alias: s.their_scid_alias,
                    scid_alias: s.our_scid_alias,
                    short_channel_id: s.short_channel_id,
                    pending_htlcs: c.pending_htlc_count(),
                }
            })
            .collect()
    }

    // ---- peers ----

    /// A peer connected: its channels start `channel_reestablish`.
    pub fn peer_connected(&mut self, node_id: PublicKey) {
        self.connected.insert(node_id, true);
        for channel in self.channels.values_mut().filter(|c| c.counterparty_node_id() == node_id) {
            channel.peer_connected();
        }
        self.process();
    }

    /// A peer disconnected: messages for it are dropped.
    pub fn peer_disconnected(&mut self, node_id: PublicKey) {
        self.connected.insert(node_id, false);
        let gone: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(_, c)| c.counterparty_node_id() == node_id)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.updates_sent.remove(&id);
        }
        for channel in self.channels.values_mut().filter(|c| c.counterparty_node_id() == node_id) {
            channel.peer_disconnected();
        }
        self.outbox.retain(|(peer, _)| *peer != node_id);
        self.process();
    }

    fn is_connected(&self, node_id: &PublicKey) -> bool {
        self.connected.get(node_id).copied().unwrap_or(false)
    }

    /// A message from a peer.
    ///
    /// # Errors
    ///
    /// [`MessageError`] when it names an unknown channel, opens a channel we
    /// refuse, or breaks the channel's rules (the channel has already
    /// answered with a warning or failed).
    pub fn handle_message(&mut self, from: PublicKey, message: ChannelMessage) -> Result<(), MessageError> {
        let result = self.route_message(from, message);
        self.process();
        result
    }

    fn route_message(&mut self, from: PublicKey, message: ChannelMessage) -> Result<(), MessageError> {
        if let ChannelMessage::OpenChannel(open) = &message {
            return self.accept_inbound(from, open);
        }
        if let ChannelMessage::ChannelUpdate(update) = &message {
            return self.handle_channel_update(from, update).map_err(MessageError::ChannelUpdate);
        }
        if let ChannelMessage::FundingCreated(m) = &message {
            let id = ChannelId::v1_from_funding_txid(m.funding_txid.as_byte_array(), m.funding_output_index);
            if self.channel_id_taken(&id) {
                if self
                    .channels
                    .get(&m.temporary_channel_id)
                    .is_some_and(|c| c.counterparty_node_id() == from)
                {
                    self.channels.remove(&m.temporary_channel_id);
                }
                self.refuse(
                    from,
                    m.temporary_channel_id,
                    "the funding outpoint gives the id of an existing channel",
                );
                return Err(MessageError::DuplicateChannel(id));
            }
        }
        let channel_id = message_channel_id(&message);
        if let ChannelMessage::Error(e) = &message {
            if channel_id == ChannelId([0; 32]) {
                // BOLT 1: an error for all channels with the peer.
                for channel in self.channels.values_mut().filter(|c| c.counterparty_node_id() == from) {
                    channel.handle_error(e);
                }
                return Ok(());
            }
        }
        let channel = self
            .channels
            .get_mut(&channel_id)
            .filter(|c| c.counterparty_node_id() == from)
            .ok_or(MessageError::UnknownChannel(channel_id))?;
        let result = channel.handle_message(message).map_err(MessageError::Channel);
        self.rekey(channel_id);
        result
    }

    fn accept_inbound(&mut self, from: PublicKey, open: &msgs::OpenChannel) -> Result<(), MessageError> {
        if !self.config.accept_inbound_channels {
            self.outbox.push_back((
                from,
                ChannelMessage::Error(msgs::ErrorMessage {
                    channel_id: open.common_fields.temporary_channel_id,
                    data: "this node does not accept inbound channels".into(),
                }),
            ));
            return Err(MessageError::InboundChannelsRefused);
        }
        let temporary = open.common_fields.temporary_channel_id;
        let unfunded = self
            .channels
            .values()
            .filter(|c| c.counterparty_node_id() == from && c.phase() != &Phase::Funded)
            .count();
        if unfunded >= MAX_UNFUNDED_CHANNELS_PER_PEER {
            self.refuse(from, temporary, "too many channels being opened at once; try again later");
            return Err(MessageError::TooManyPendingChannels);
        }
        if self.channel_id_taken(&temporary) {
            self.refuse(from, temporary, "temporary_channel_id is already in use");
            return Err(MessageError::DuplicateChannel(temporary));
        }
        let user_channel_id = self.fresh_u128();
        let keys_id = self.keys.generate_channel_keys_id(true, user_channel_id);
        let signer = self.keys.derive_channel_signer(keys_id);
        let params = InboundParams {
            counterparty_node_id: from,
            chain_hash: self.chain_hash,
            channel_keys_id: keys_id,
            scid_alias: self.fresh_scid_alias(),
            best_height: self.best_height,
            close_script: self.close_script(),
            fee_estimate: Some(self.config.commitment_feerate_per_kw),
        };
        match Channel::new_inbound(self.config.channel.clone(), signer, params, open) {
            Ok(channel) => {
                self.channels.insert(channel.channel_id(), channel);
                Ok(())
            }
            Err(e) => {
                self.outbox.push_back((
                    from,
                    ChannelMessage::Error(msgs::ErrorMessage {
                        channel_id: open.common_fields.temporary_channel_id,
                        data: e.message().to_string(),
                    }),
                ));
                Err(MessageError::Channel(e))
            }
        }
    }

    /// Whether a channel or monitor already has this id.
    fn channel_id_taken(&self, id: &ChannelId) -> bool {
        self.channels.contains_key(id) || self.chain_monitor.monitor(id).is_some()
    }

    /// Answers a peer's channel message with an `error`.
    fn refuse(&mut self, peer: PublicKey, channel_id: ChannelId, why: &str) {
        self.outbox
            .push_back((peer, ChannelMessage::Error(msgs::ErrorMessage { channel_id, data: why.into() })));
    }

    /// Moves a channel whose id changed (temporary to final) to its new key.
    fn rekey(&mut self, old: ChannelId) {
        let Some(new) = self.channels.get(&old).map(Channel::channel_id) else { return };
        if new != old {
            let channel = self.channels.remove(&old).expect("looked up above");
            self.channels.insert(new, channel);
        }
    }

    fn fresh_u128(&self) -> u128 {
        u128::from_be_bytes(self.keys.get_secure_random_bytes()[..16].try_into().expect("16 bytes"))
    }

    fn fresh_scid_alias(&self) -> u64 {
        // BOLT 2 leaves the alias's form to us; keep it out of the range of
        // real short channel ids of the first 2^23 blocks.
        let bytes = self.keys.get_secure_random_bytes();
        u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) | (1 << 63)
    }

    // ---- channel commands ----

    /// Opens a channel of `funding_sat` to a connected peer. The funding
    /// transaction is asked for with [`Event::FundingGenerationReady`].
    ///
    /// # Errors
    ///
    /// [`CommandError`] if the peer is not connected or the channel refuses
    /// the parameters.
    pub fn open_channel(
        &mut self,
        peer: PublicKey,
        funding_sat: u64,
        push_msat: u64,
        anchors: bool,
    ) -> Result<ChannelId, CommandError> {
        if !self.is_connected(&peer) {
            return Err(CommandError::PeerNotConnected(peer));
        }
        let user_channel_id = self.fresh_u128();
        let keys_id = self.keys.generate_channel_keys_id(false, user_channel_id);
        let signer = self.keys.derive_channel_signer(keys_id);
        let channel_type = if anchors {
            ChannelTypeFeatures::anchors_zero_htlc_fee_and_dependencies()
        } else {
            ChannelTypeFeatures::only_static_remote_key()
        };
        let params = OutboundParams {
            counterparty_node_id: peer,
            chain_hash: self.chain_hash,
            temporary_channel_id: self.keys.get_secure_random_bytes(),
            channel_keys_id: keys_id,
            funding_sat,
            push_msat,
            feerate_per_kw: self.config.commitment_feerate_per_kw,
            channel_type,
            scid_alias: self.fresh_scid_alias(),
            announce: false,
            best_height: self.best_height,
            close_script: self.close_script(),
        };
        let channel = Channel::new_outbound(self.config.channel.clone(), signer, params)
            .map_err(CommandError::Channel)?;
        let id = channel.channel_id();
        self.channels.insert(id, channel);
        self.process();
        Ok(id)
    }

    /// The funding transaction for a channel we open, built after
    /// [`Event::FundingGenerationReady`]. It is broadcast (through
    /// [`ChannelManager::poll_broadcast`]) once both first commitments are
    /// durable.
    ///
    /// # Errors
    ///
    /// [`CommandError`] for an unknown channel, or a transaction without
    /// the funding output the channel asked for.
    pub fn funding_transaction_generated(
        &mut self,
        temporary_channel_id: ChannelId,
        transaction: Transaction,
    ) -> Result<ChannelId, CommandError> {
        let channel = self
            .channels
            .get_mut(&temporary_channel_id)
            .ok_or(CommandError::UnknownChannel(temporary_channel_id))?;
        if channel.phase() != &Phase::Accepted {
            return Err(CommandError::Channel(ChannelError::Ignore(
                "the channel is not waiting for its funding transaction (wait for FundingGenerationReady)"
                    .into(),
            )));
        }
        let script = channel.funding_script().to_p2wsh();
        let value = channel.snapshot().value_sat();
        let Some(vout) =
            transaction.output.iter().position(|o| o.script_pubkey == script && o.value.to_sat() == value)
        else {
            return Err(CommandError::Channel(ChannelError::Ignore(
                "the transaction has no output paying the channel's funding script and value".into(),
            )));
        };
        channel
            .funding_outpoint_ready(transaction.compute_txid(), vout as u32)
            .map_err(CommandError::Channel)?;
        let txid = transaction.compute_txid();
        self.funding_txs.insert(txid, transaction);
        self.rekey(temporary_channel_id);
        let id = self
            .channels
            .iter()
            .find(|(_, c)| c.funding_outpoint().is_some_and(|o| o.txid == txid && o.vout == vout as u32))
            .map_or(temporary_channel_id, |(id, _)| *id);
        self.process();
        Ok(id)
    }

    /// Starts a cooperative close.
    ///
    /// # Errors
    ///
    /// [`CommandError`] for an unknown channel or one that cannot close
    /// now.
    pub fn close_channel(&mut self, channel_id: ChannelId) -> Result<(), CommandError> {
        let channel = self.channels.get_mut(&channel_id).ok_or(CommandError::UnknownChannel(channel_id))?;
        channel.shutdown(None).map_err(CommandError::Channel)?;
        self.process();
        Ok(())
    }

    /// Force-closes a channel: its latest commitment goes on chain.
    ///
    /// # Errors
    ///
    /// [`CommandError::UnknownChannel`].
    pub fn force_close_channel(&mut self, channel_id: ChannelId) -> Result<(), CommandError> {
        let channel = self.channels.get_mut(&channel_id).ok_or(CommandError::UnknownChannel(channel_id))?;
        channel.force_close();
        self.process();
        self.broadcast_claims();
        Ok(())
    }

    // ---- chain and time ----

    /// A block connected. Its transactions go to the monitors; channels
    /// learn the height (funding depth, HTLC expiries).
    pub fn block_connected(&mut self, height: u32, txdata: &[Transaction]) {
        self.best_height = height;
        self.chain_monitor.block_connected(height, txdata);
        for channel in self.channels.values_mut() {
            if let Some(outpoint) = channel.funding_outpoint() {
                if let Some(index) = txdata.iter().position(|tx| tx.compute_txid() == outpoint.txid) {
                    if channel.snapshot().funding_confirmed_height.is_none() {
                        channel.funding_confirmed(height, index as u32);
                    }
                }
            }
            channel.best_block_updated(height);
        }
        self.fail_expiring_payments();
        self.force_close_at_deadlines();
        self.process();
        self.broadcast_claims();
    }

    /// The block at `height` left the chain.
    pub fn block_disconnected(&mut self, height: u32) {
        self.best_height = height.saturating_sub(1);
        self.chain_monitor.block_disconnected(height);
        self.process();
        self.broadcast_claims();
    }

    /// A timer tick (about once a minute) with the current time: times out
    /// incomplete multi-part payments.
    pub fn timer_tick(&mut self, now_secs: u64) {
        self.now_secs = now_secs;
        self.ticks += 1;
        self.expire_incomplete_payments();
        self.retry_stalled();
        self.process();
    }

    // ---- outputs ----

    /// The next message to send, with its peer.
    pub fn poll_message(&mut self) -> Option<(PublicKey, ChannelMessage)> {
        self.outbox.pop_front()
    }

    /// The next transaction to broadcast.
    pub fn poll_broadcast(&mut self) -> Option<Transaction> {
        self.broadcasts.pop_front()
    }

    /// The next monitor write to make durable, then report with
    /// [`ChannelManager::persist_completed`].
    pub fn poll_persist(&mut self) -> Option<PersistRequest> {
        self.chain_monitor.poll_persist()
    }

    /// The next payment record to write, then report with
    /// [`ChannelManager::record_persisted`].
    pub fn poll_record_write(&mut self) -> Option<RecordWrite> {
        self.send.poll_record_write()
    }

    /// Reports a monitor write durable. Messages and events that waited
    /// for it go out.
    ///
    /// # Errors
    ///
    /// [`CompletionError`] for a write that is not in flight or completes
    /// out of order; nothing changes.
    pub fn persist_completed(&mut self, channel_id: ChannelId, seq: u64) -> Result<(), CompletionError> {
        if let Some(update_id) = self.chain_monitor.persist_completed(channel_id, seq)? {
            if let Some(channel) = self.channels.get_mut(&channel_id) {
                channel.update_persisted(update_id);
            }
        }
        self.process();
        // A force-close's commitment goes out as soon as the close is
        // durable.
        let closing = self.chain_monitor.monitor(&channel_id).is_some_and(|m| {
            m.should_broadcast_holder_commitment()
                && !m.funding_spent()
                && self.chain_monitor.durable_update_id(&channel_id) >= Some(m.latest_update_id())
        });
        if closing {
            self.broadcast_claims();
        }
        Ok(())
    }

    /// The next user event not delivered yet in this run. Until it is
    /// handled it stays in [`ChannelManager::unhandled_events`], and a
    /// restart delivers it again.
    pub fn next_event(&mut self) -> Option<(EventId, Event)> {
        self.events.next()
    }

    /// Every unhandled user event, oldest first.
    pub fn unhandled_events(&self) -> Vec<(EventId, Event)> {
        self.events.unhandled().map(|(id, e)| (id, e.clone())).collect()
    }

    /// The user has handled event `id`: what it reported is acknowledged in
    /// the monitors (written with the next persistence), so it never
    /// reappears. Returns whether the id was known.
    pub fn event_handled(&mut self, id: EventId) -> bool {
        let Some((_, actions)) = self.events.handled(id) else { return false };
        #[cfg(feature = "bug-injection")]
        if crate::bugs::active(crate::bugs::Bug::ReemitAcknowledged) {
            return true;
        }
        self.run_actions(actions);
        self.process();
        true
    }

    // ---- the driving loop ----

    /// Moves everything the channels and monitors produced to where it goes,
    /// until nothing moves.
    fn process(&mut self) {
        for _ in 0..1_000 {
            let mut moved = false;
            // Only the channels with something to drain: with thousands of
            // channels, a message for one must not cost a visit to each.
            let ids: Vec<ChannelId> =
                self.channels.iter().filter(|(_, c)| c.has_pending()).map(|(id, _)| *id).collect();
            for id in ids {
                moved |= self.drain_channel(id);
            }
            while let Some(event) = self.chain_monitor.poll_event() {
                moved = true;
                self.handle_monitor_event(event, None);
            }
            let parked = std::mem::take(&mut self.parked);
            let before = parked.len();
            for (event, since) in parked {
                self.handle_monitor_event(event, Some(since));
            }
            moved |= self.parked.len() < before;
            moved |= self.release_waiting();
            let silent = self.events.take_silent();
            if !silent.is_empty() {
                moved = true;
                self.run_actions(silent);
            }
            moved |= self.start_ready_payments();
            moved |= self.send_channel_updates();
            for channel in self.channels.values_mut() {
                // Not only usable channels: a closing channel still commits
                // its pending claims and fails (the channel checks the rest).
                if channel.phase() == &Phase::Funded {
                    moved |= channel.send_commitment().unwrap_or(false);
                }
            }
            if !moved {
                break;
            }
        }
        if std::mem::take(&mut self.dirty) {
            self.chain_monitor.flush();
        }
    }

    /// Moves one channel's updates to its monitor and its outputs out.
    fn drain_channel(&mut self, id: ChannelId) -> bool {
        let mut moved = false;
        loop {
            let Some(channel) = self.channels.get_mut(&id) else { return moved };
            let Some(update) = channel.poll_monitor_update() else { break };
            moved = true;
            if let Err(e) = self.chain_monitor.update_channel(&update) {
                // The channel made an update its monitor refuses: a bug.
                // Nothing that depends on it will leave; stop the channel.
                debug_assert!(false, "monitor refused update {}: {e}", update.update_id);
                if let Some(channel) = self.channels.get_mut(&id) {
                    channel.force_close();
                }
            }
        }
        loop {
            let Some(channel) = self.channels.get_mut(&id) else { return moved };
            let peer = channel.counterparty_node_id();
            let Some(output) = channel.poll_output() else { break };
            moved = true;
            match output {
                ChannelOutput::Message(m) => {
                    if self.is_connected(&peer) {
                        self.outbox.push_back((peer, m));
                    }
                }
                ChannelOutput::Event(e) => self.handle_channel_event(id, peer, e),
            }
        }
        moved
    }

    fn handle_channel_event(&mut self, id: ChannelId, peer: PublicKey, event: ChannelEvent) {
        match event {
            ChannelEvent::FundingNeeded { script_pubkey, value_sat } => {
                self.events.push(
                    Event::FundingGenerationReady {
                        temporary_channel_id: id,
                        counterparty_node_id: peer,
                        script_pubkey,
                        value_sat,
                    },
                    Vec::new(),
                );
            }
            ChannelEvent::BroadcastFunding { txid } => {
                if let Some(tx) = self.funding_txs.remove(&txid) {
                    self.broadcasts.push_back(tx);
                }
            }
            ChannelEvent::ChannelReady => {
                self.events
                    .push(Event::ChannelReady { channel_id: id, counterparty_node_id: peer }, Vec::new());
            }
            ChannelEvent::BroadcastClosing { transaction } => self.broadcasts.push_back(transaction),
            ChannelEvent::Closed { reason } => {
                // A funded channel's close reaches the user through its
                // monitor's durable `ChannelClosed`; an unfunded one has no
                // monitor.
                let funded = self.chain_monitor.monitor(&id).is_some();
                if !funded {
                    self.channels.remove(&id);
                    self.events.push(
                        Event::ChannelClosed { channel_id: id, reason: format!("{reason:?}") },
                        Vec::new(),
                    );
                }
            }
        }
    }

    /// Runs what waited for updates that are now durable.
    fn release_waiting(&mut self) -> bool {
        let (ready, waiting): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|w| match w.after {
                After::Update(c, id) => self.chain_monitor.durable_update_id(&c).is_some_and(|d| d >= id),
                // A monitor that is gone (archived) was durable before.
                After::Write(c, seq) => self.chain_monitor.durable_seq(&c).is_none_or(|d| d >= seq),
            });
        self.waiting = waiting;
        if ready.is_empty() {
            return false;
        }
        for w in ready {
            match w.then {
                Then::Ack((channel_id, id), part) => {
                    self.chain_monitor.ack(&channel_id, &[id]);
                    if let Some(htlc_id) = part {
                        self.part_durable(channel_id, htlc_id);
                    }
                }
                Then::PartDurable(channel_id, htlc_id) => self.part_durable(channel_id, htlc_id),
                Then::Emit(event, actions) => {
                    self.events.push(event, actions);
                }
            }
        }
        self.dirty = true;
        true
    }

    /// Runs `then` once `channel`'s monitor durably holds its latest update
    /// (`latest`), or the next one the channel makes (for a change that
    /// rides on the next commitment).
    pub(crate) fn wait(&mut self, channel: ChannelId, then: Then, latest: bool) {
        let next = self.channels.get(&channel).map_or(0, |c| c.snapshot().next_update_id);
        let after = if latest { next.saturating_sub(1) } else { next };
        self.waiting.push(Waiting { after: After::Update(channel, after), then });
    }

    /// Gives the monitor of a channel that no longer takes updates (closed)
    /// the preimage of inbound HTLC `htlc_id`, so it can claim on chain; runs
    /// `then` once that is durable.
    pub(crate) fn claim_on_closed_channel(
        &mut self,
        channel_id: ChannelId,
        htlc_id: u64,
        preimage: PaymentPreimage,
        claim: Option<crate::channel::InboundClaim>,
        then: Then,
    ) {
        let seq = match self.chain_monitor.provide_preimage(channel_id, htlc_id, preimage, claim) {
            Ok(Some(seq)) => seq,
            // Already there: durable with the channel's latest write.
            Ok(None) => self.chain_monitor.latest_seq(&channel_id).unwrap_or(0),
            // No monitor left to claim with: nothing can be done.
            Err(_) => return,
        };
        self.waiting.push(Waiting { after: After::Write(channel_id, seq), then });
    }

    fn run_actions(&mut self, actions: Vec<AckAction>) {
        for action in actions {
            match action {
                AckAction::Ack(channel_id, event_id) => {
                    self.chain_monitor.ack(&channel_id, &[event_id]);
                }
                AckAction::Record(channel_id, record) => {
                    self.chain_monitor.record(&channel_id, record);
                }
                AckAction::AckDeferredClaims(channel_id, hash) => {
                    let ids: Vec<MonitorEventId> = self
                        .chain_monitor
                        .monitor(&channel_id)
                        .map(|m| {
                            m.deferred_events()
                                .iter()
                                .filter(|e| {
                                    matches!(&e.event, MonitorEvent::InboundClaimPersisted { claim, .. }
                                        if claim.payment_hash == hash)
                                })
                                .map(|e| e.id)
                                .collect()
                        })
                        .unwrap_or_default();
                    self.chain_monitor.ack(&channel_id, &ids);
                }
                AckAction::PaymentSeen(payment_id) => {
                    self.send.outcome_handled(payment_id);
                    let expanded = self.payment_seen_actions(payment_id);
                    self.run_actions(expanded);
                }
            }
        }
        self.dirty = true;
    }

    /// Reports a payment record durable: the payment's HTLCs may leave.
    pub fn record_persisted(&mut self, payment_id: PaymentId) {
        for (event, actions) in self.send.record_persisted(payment_id) {
            self.events.push(event, actions);
        }
        self.process();
    }

    /// The network graph, for the node to feed gossip into (LDK's
    /// `P2PGossipSync` over it).
    pub fn network_graph(&self) -> std::sync::Arc<NetworkGraph<&'static NoLog>> {
        self.graph.clone()
    }

    /// Claims a payment announced by [`Event::PaymentClaimable`]. Every part
    /// is claimed; [`Event::PaymentClaimed`] follows once all are durable.
    /// Claiming again does nothing.
    ///
    /// # Errors
    ///
    /// [`ClaimError::NotClaimable`] when no complete payment has this
    /// preimage's hash.
    pub fn claim_funds(&mut self, preimage: PaymentPreimage) -> Result<(), ClaimError> {
        let hash = PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array());
        if self.receive.claiming.contains_key(&hash) || self.receive.completed.contains(&hash) {
            return Ok(());
        }
        let Some((parts, claim)) = self.receive.start_claim(hash, preimage) else {
            return Err(ClaimError::NotClaimable(hash));
        };
        for part in parts {
            self.claim_part(
                part.channel_id,
                part.htlc_id,
                preimage,
                Some(claim.clone()),
                Some(part.event_id),
            );
        }
        self.process();
        Ok(())
    }

    /// Refuses a payment to us: every part is failed back with
    /// `incorrect_or_unknown_payment_details`. Returns whether there was
    /// such a payment.
    pub fn fail_htlc_backwards(&mut self, payment_hash: &PaymentHash) -> bool {
        let parts = self.receive.abandon(payment_hash);
        let any = !parts.is_empty();
        self.fail_parts(parts, crate::onion::codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        self.process();
        any
    }
}

/// The channel a message is for.
fn message_channel_id(message: &ChannelMessage) -> ChannelId {
    match message {
        ChannelMessage::OpenChannel(m) => m.common_fields.temporary_channel_id,
        ChannelMessage::AcceptChannel(m) => m.common_fields.temporary_channel_id,
        ChannelMessage::FundingCreated(m) => m.temporary_channel_id,
        ChannelMessage::FundingSigned(m) => m.channel_id,
        ChannelMessage::ChannelReady(m) => m.channel_id,
        ChannelMessage::UpdateAddHtlc(m) => m.channel_id,
        ChannelMessage::UpdateFulfillHtlc(m) => m.channel_id,
        ChannelMessage::UpdateFailHtlc(m) => m.channel_id,
        ChannelMessage::UpdateFailMalformedHtlc(m) => m.channel_id,
        ChannelMessage::CommitmentSigned(m) => m.channel_id,
        ChannelMessage::RevokeAndAck(m) => m.channel_id,
        ChannelMessage::UpdateFee(m) => m.channel_id,
        ChannelMessage::Shutdown(m) => m.channel_id,
        ChannelMessage::ClosingSigned(m) => m.channel_id,
        ChannelMessage::ChannelReestablish(m) => m.channel_id,
        ChannelMessage::Error(m) => m.channel_id,
        ChannelMessage::Warning(m) => m.channel_id,
        ChannelMessage::ChannelUpdate(_) => ChannelId([0; 32]),
    }
}
