//! `Node`: a `ChannelManager` on a store and a chain, behind LDK's
//! `PeerManager` over TCP (`lightning-net-tokio`).
//!
//! Start-up is replay: the monitors and payment records are read from the
//! store, the manager is rebuilt with `ChannelManager::from_monitors`, and
//! the chain is followed again from the last block the node saw (kept in
//! the store under `node/best_block`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::BlockHash;
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler, PeerManager};
use lightning::routing::gossip::{NetworkGraph, P2PGossipSync};
use lightning::routing::utxo::UtxoLookup;
use lightning::sign::{EntropySource, KeysManager};
use lightning_net_tokio::SocketDescriptor;
use vigil_chain::{BlockRef, ChainEvent, ChainFollower, ChainSource};
use vigil_core::chain_monitor::{ChainMonitor, LoadError, MONITORS_NAMESPACE};
use vigil_core::manager::records::PAYMENTS_NAMESPACE;
use vigil_core::manager::{ChannelManager, Event, EventId, ManagerConfig, NoLog, PaymentRecord};
use vigil_store::KvStore;
use vigil_wallet::OnchainWallet;

use crate::runtime::Runtime;
use crate::wire::WireHandler;

static NO_LOG: NoLog = NoLog;

/// The store namespace of the node's own small records.
pub const NODE_NAMESPACE: &str = "node";

type Graph = NetworkGraph<&'static NoLog>;
type GossipSync = P2PGossipSync<Arc<Graph>, Arc<dyn UtxoLookup + Send + Sync>, &'static NoLog>;

/// The peer manager of a Vigil node.
pub type VigilPeerManager = PeerManager<
    SocketDescriptor,
    Arc<WireHandler>,
    Arc<GossipSync>,
    Arc<IgnoringMessageHandler>,
    &'static NoLog,
    Arc<IgnoringMessageHandler>,
    Arc<KeysManager>,
    Arc<IgnoringMessageHandler>,
>;

/// Why a node could not start or act.
#[derive(Debug)]
pub enum NodeError {
    /// The store failed.
    Store(vigil_store::StoreError),
    /// The stored monitors could not be loaded.
    Load(LoadError),
    /// A stored payment record is unreadable.
    Record(String),
    /// The chain source failed.
    Chain(String),
    /// A network operation failed.
    Network(String),
    /// The on-chain wallet failed.
    Wallet(String),
    /// The node was stopped; build a new one to run again.
    Stopped,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(e) => write!(f, "store: {e}"),
            Self::Load(e) => write!(f, "loading the monitors: {e}"),
            Self::Record(e) => write!(f, "a payment record is unreadable: {e}"),
            Self::Chain(e) => write!(f, "chain source: {e}"),
            Self::Network(e) => write!(f, "network: {e}"),
            Self::Wallet(e) => write!(f, "on-chain wallet: {e}"),
            Self::Stopped => write!(f, "the node was stopped (build a new one from its data directory)"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<vigil_store::StoreError> for NodeError {
    fn from(e: vigil_store::StoreError) -> Self {
        Self::Store(e)
    }
}

/// A node: its manager, peers, chain and wallet.
///
/// Made by [`crate::Builder`] (or [`Node::open`] for a node driven by hand);
/// [`Node::start`] runs its background work and [`Node::stop`] ends it.
pub struct Node {
    runtime: Arc<Mutex<Runtime>>,
    peer_manager: Arc<VigilPeerManager>,
    pub(crate) chain: Arc<dyn ChainSource + Send + Sync>,
    pub(crate) wallet: Arc<OnchainWallet>,
    pub(crate) bumper: Mutex<crate::bump::Bumper>,
    pub(crate) store: Arc<dyn KvStore + Send + Sync>,
    follower: Mutex<ChainFollower>,
    /// The position `node/best_block` holds.
    recorded_position: Mutex<Option<BlockRef>>,
    node_id: PublicKey,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) network: bitcoin::Network,
    /// Whether the node funds its channel opens and claims payments to us
    /// itself (see [`crate::Builder`]); a node made with [`Node::open`]
    /// leaves both to its user.
    pub(crate) autopilot: bool,
    /// Events taken from the manager and not yet given to the user.
    pub(crate) user_events: Mutex<std::collections::VecDeque<(EventId, Event)>>,
    pub(crate) event_notify: tokio::sync::Notify,
    pub(crate) service: Mutex<crate::service::Service>,
    /// Held for the whole of a background round, so that `stop` can wait
    /// for the one in flight before it releases the data directory.
    pub(crate) round: Mutex<()>,
    pub(crate) extras: crate::builder::Extras,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    now().as_secs()
}

fn encode_block(b: &BlockRef) -> Vec<u8> {
    let mut v = b.height.to_be_bytes().to_vec();
    v.extend_from_slice(&b.hash.to_byte_array());
    v
}

fn decode_block(v: &[u8]) -> Option<BlockRef> {
    let height = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
    let hash = BlockHash::from_byte_array(v.get(4..36)?.try_into().ok()?);
    Some(BlockRef { height, hash })
}

impl Node {
    /// Starts a node with `seed` on `store` and `chain`: a new one if the
    /// store holds no monitors, else the one the store describes. Its
    /// on-chain wallet (BDK, from the same seed) lives in the same store;
    /// claims sweep to it unless `config.sweep_script` says otherwise.
    ///
    /// # Errors
    ///
    /// [`NodeError`] when the store or chain fails or holds something
    /// unreadable.
    pub fn open(
        seed: [u8; 32],
        config: ManagerConfig,
        store: Arc<dyn KvStore + Send + Sync>,
        chain: Arc<dyn ChainSource + Send + Sync>,
    ) -> Result<Self, NodeError> {
        Self::open_with(seed, config, store, chain, crate::builder::Extras::default(), false)
    }

    pub(crate) fn open_with(
        seed: [u8; 32],
        mut config: ManagerConfig,
        store: Arc<dyn KvStore + Send + Sync>,
        chain: Arc<dyn ChainSource + Send + Sync>,
        extras: crate::builder::Extras,
        autopilot: bool,
    ) -> Result<Self, NodeError> {
        let t = now();
        let wallet_store: Arc<dyn KvStore> = store.clone();
        let wallet = Arc::new(
            OnchainWallet::open(&seed, config.network, wallet_store)
                .map_err(|e| NodeError::Wallet(e.to_string()))?,
        );
        if config.sweep_script.is_none() {
            let address = wallet.receive_address().map_err(|e| NodeError::Wallet(e.to_string()))?;
            config.sweep_script = Some(address.script_pubkey());
        }
        let keys = || KeysManager::new(&seed, t.as_secs(), t.subsec_nanos(), true);
        let tip = chain.tip().map_err(|e| NodeError::Chain(e.to_string()))?;
        let recorded = match store.read(NODE_NAMESPACE, "best_block")? {
            Some(bytes) => {
                Some(decode_block(&bytes).ok_or_else(|| NodeError::Record("node/best_block".into()))?)
            }
            None => None,
        };
        let position = recorded.unwrap_or(tip);
        // Start-up is replay, for a new node too (it just has nothing to
        // replay): the monitors and the payment records, always both.
        let monitors = store.read_namespace(MONITORS_NAMESPACE)?;
        let (cm, _torn) =
            ChainMonitor::load(config.chain_monitor.clone(), monitors).map_err(NodeError::Load)?;
        let records = store
            .read_namespace(PAYMENTS_NAMESPACE)?
            .into_iter()
            .map(|(k, v)| PaymentRecord::from_bytes(&v).map_err(|e| NodeError::Record(format!("{k}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let manager =
            ChannelManager::from_monitors(config.clone(), keys(), cm, records, position.height, t.as_secs());
        let node_id = manager.node_id();
        let graph = manager.network_graph();
        let chain_hash = bitcoin::constants::ChainHash::using_genesis_block(config.network);
        let runtime = Arc::new(Mutex::new(Runtime::new(manager, store.clone(), chain.clone())));
        let handler = Arc::new(WireHandler::new(runtime.clone(), chain_hash));
        let gossip: Arc<GossipSync> = Arc::new(P2PGossipSync::new(graph, None, &NO_LOG));
        let signer = Arc::new(keys());
        let peer_manager = Arc::new(PeerManager::new(
            MessageHandler {
                chan_handler: handler,
                route_handler: gossip,
                onion_message_handler: Arc::new(IgnoringMessageHandler {}),
                custom_message_handler: Arc::new(IgnoringMessageHandler {}),
                send_only_message_handler: Arc::new(IgnoringMessageHandler {}),
            },
            t.as_secs() as u32,
            &signer.get_secure_random_bytes(),
            &NO_LOG,
            signer,
        ));
        let node = Node {
            runtime,
            peer_manager,
            chain,
            wallet,
            bumper: Mutex::new(crate::bump::Bumper::default()),
            store,
            follower: Mutex::new(ChainFollower::new(position)),
            recorded_position: Mutex::new(recorded),
            node_id,
            listener: Mutex::new(None),
            network: config.network,
            autopilot,
            user_events: Mutex::new(std::collections::VecDeque::new()),
            event_notify: tokio::sync::Notify::new(),
            service: Mutex::new(crate::service::Service::default()),
            round: Mutex::new(()),
            extras,
        };
        node.runtime().drive();
        Ok(node)
    }

    /// Our node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    pub(crate) fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the manager, carries out what it asked for, and sends
    /// the messages it produced.
    pub fn with_manager<R>(&self, f: impl FnOnce(&mut ChannelManager) -> R) -> R {
        let result = {
            let mut rt = self.runtime();
            let r = f(&mut rt.manager);
            rt.drive();
            r
        };
        self.peer_manager.process_events();
        result
    }

    /// The last store, broadcast or peer error the runtime saw.
    pub fn last_error(&self) -> Option<String> {
        self.runtime().last_error.clone()
    }

    /// The peer manager (for listening and connecting).
    pub fn peer_manager(&self) -> Arc<VigilPeerManager> {
        self.peer_manager.clone()
    }

    /// Listens for peers on `addr` (use port 0 for any). Returns the
    /// address bound.
    ///
    /// # Errors
    ///
    /// [`NodeError::Network`] if the address cannot be bound.
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, NodeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| NodeError::Network(format!("cannot listen for peers on {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| NodeError::Network(e.to_string()))?;
        let pm = self.peer_manager.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let pm = pm.clone();
                if let Ok(stream) = stream.into_std() {
                    tokio::spawn(lightning_net_tokio::setup_inbound(pm, stream));
                }
            }
        });
        if let Some(old) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).replace(task) {
            old.abort();
        }
        Ok(bound)
    }

    /// Connects to a peer.
    ///
    /// # Errors
    ///
    /// [`NodeError::Network`] if the connection fails.
    pub async fn connect(&self, node_id: PublicKey, addr: SocketAddr) -> Result<(), NodeError> {
        let fut = lightning_net_tokio::connect_outbound(self.peer_manager.clone(), node_id, addr)
            .await
            .ok_or_else(|| NodeError::Network(format!("could not connect to {node_id}@{addr}")))?;
        tokio::spawn(fut);
        Ok(())
    }

    /// Stops the node: its background work ends, no more connections are
    /// accepted, every peer is disconnected, and the node writes nothing
    /// more (work still in flight is dropped, as in a crash); then the data
    /// directory is released for another node. Nothing needs flushing:
    /// every write was made before the call that asked for it returned. A
    /// stopped node cannot be started again.
    pub fn stop(&self) {
        crate::service::stop(self);
        if let Some(task) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        self.peer_manager.disconnect_all_peers();
        // Taking the runtime waits for any call in progress; once stopped
        // it carries out nothing more.
        self.runtime().stopped = true;
        // A background round already running (wallet, best block) ends
        // before the directory is free for another node.
        drop(self.round.lock().unwrap_or_else(|e| e.into_inner()));
        self.extras.dir.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Whether `node_id` is connected (its `init` was exchanged).
    pub fn is_connected(&self, node_id: &PublicKey) -> bool {
        self.peer_manager.peer_by_node_id(node_id).is_some()
    }

    /// Follows the chain to its tip, feeding every block (and reorg) to the
    /// manager, then records the position.
    ///
    /// # Errors
    ///
    /// [`NodeError::Chain`] or [`NodeError::Store`].
    pub fn sync_chain(&self) -> Result<(), NodeError> {
        let mut follower = self.follower.lock().unwrap_or_else(|e| e.into_inner());
        let mut followed = false;
        loop {
            let event = follower.poll(&*self.chain).map_err(|e| NodeError::Chain(e.to_string()))?;
            let Some(event) = event else { break };
            if !followed {
                // The chain moved: claims start at its estimate for
                // confirmation within six blocks (none yet on a fresh chain:
                // the configured one stays). Asked once per move, not at
                // every poll.
                if let Ok(rate) = self.chain.fee_rate(6) {
                    let per_kw = u32::try_from(rate.to_sat_per_kwu()).unwrap_or(u32::MAX);
                    self.with_manager(|m| m.set_claim_feerate(per_kw));
                }
            }
            followed = true;
            self.with_manager(|m| match &event {
                ChainEvent::Connected { height, block } => m.block_connected(*height, &block.txdata),
                ChainEvent::Disconnected(b) => m.block_disconnected(b.height),
            });
        }
        // The position is recorded only once everything the blocks taught
        // the monitors is durable; otherwise a restart must see them again.
        // Written when it differs from what the store holds, and only once
        // everything the blocks taught the monitors is durable.
        let mut recorded = self.recorded_position.lock().unwrap_or_else(|e| e.into_inner());
        let settled = {
            let rt = self.runtime();
            !rt.has_failed_writes() && !rt.stopped
        };
        if *recorded != Some(follower.position()) && settled {
            self.store.write(NODE_NAMESPACE, "best_block", &encode_block(&follower.position()))?;
            *recorded = Some(follower.position());
        }
        drop(recorded);
        drop(follower);
        // The wallet follows the same blocks; the fee needs they made are
        // funded with it.
        if followed {
            self.wallet.sync(&*self.chain, now().as_secs()).map_err(|e| NodeError::Wallet(e.to_string()))?;
            self.fund_fee_needs();
        }
        Ok(())
    }

    /// The node's on-chain wallet: where claims are swept, and what pays
    /// for anchor channels' fee bumps.
    pub fn wallet(&self) -> &OnchainWallet {
        &self.wallet
    }

    /// A timer tick: times out waiting payments, retries stalled ones, and
    /// lets the peer manager ping.
    pub fn tick(&self) {
        let t = now().as_secs();
        self.with_manager(|m| m.timer_tick(t));
        self.peer_manager.timer_tick_occurred();
    }

    /// Sends what is queued and handles what arrived.
    pub fn process_events(&self) {
        self.with_manager(|_| ());
    }

    /// The next user event not given out yet in this run. It stays
    /// unhandled (and comes back after a restart) until
    /// [`Node::event_handled`].
    pub fn next_event(&self) -> Option<(EventId, Event)> {
        self.pump_events();
        self.user_events.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }

    /// Handles an event: its acknowledgement is written before this
    /// returns (I5), unless the store fails, in which case the write is
    /// retried and the event may be delivered again after a restart (see
    /// [`Node::last_error`]).
    pub fn event_handled(&self, id: EventId) -> bool {
        self.user_events.lock().unwrap_or_else(|e| e.into_inner()).retain(|(e, _)| *e != id);
        self.with_manager(|m| m.event_handled(id))
    }
}
