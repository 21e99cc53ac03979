//! An in-process LDK 0.2.7 node for interoperability tests: LDK's
//! `ChannelManager` and `ChainMonitor` (monitors "persisted" in memory,
//! every write reported `Completed` at once), a `DefaultRouter` over an
//! `NetworkGraph` fed by gossip (`P2PGossipSync`, no UTXO checks, as the
//! route handler of the `PeerManager`, so the node gossips its public
//! channels and relays what it learns), `KeysManager`, a fixed fee
//! estimator, a broadcaster that submits to the shared [`RegtestChain`],
//! and a `PeerManager` over TCP with `lightning-net-tokio` (outbound
//! connections, and inbound ones after [`LdkNode::listen`]).
//!
//! Blocks are fed by [`LdkNode::sync`] through `chain::Listen`
//! (`block_connected` on the chain monitor first, then on the manager,
//! which also runs `best_block_updated`).
//!
//! [`LdkNode::invoice_with_hints`] builds an invoice of the node by hand,
//! for route hints `create_bolt11_invoice` would not make.
//!
//! Set `VIGIL_LDK_LOG` (to `trace`, `debug` or anything else for `info`) to
//! print LDK's log to stderr (each line names the node). The last lines
//! are always kept ([`LdkLogger::tail`]) for failure reports.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1};
use bitcoin::{Network, Transaction, Txid};
use lightning::bolt11_invoice::{Bolt11Invoice, Currency, InvoiceBuilder, RouteHint};
use lightning::chain::chaininterface::{BroadcasterInterface, ConfirmationTarget, FeeEstimator};
use lightning::chain::chainmonitor::{ChainMonitor, Persist};
use lightning::chain::channelmonitor::{ChannelMonitor, ChannelMonitorUpdate};
use lightning::chain::{BestBlock, ChannelMonitorUpdateStatus, Filter, Listen};
use lightning::events::{Event, EventsProvider};
use lightning::ln::channelmanager::{ChainParameters, ChannelManager, MIN_FINAL_CLTV_EXPIRY_DELTA};
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler, PeerManager};
use lightning::onion_message::messenger::DefaultMessageRouter;
use lightning::routing::gossip::{NetworkGraph, P2PGossipSync};
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::FixedPenaltyScorer;
use lightning::routing::utxo::UtxoLookup;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::{EntropySource, InMemorySigner, KeysManager, NodeSigner, Recipient};
use lightning::util::config::UserConfig;
use lightning::util::logger::{Level, Logger, Record};
use lightning::util::persist::MonitorName;
use lightning::util::ser::Writeable;
use lightning_net_tokio::SocketDescriptor;
use vigil_chain::{ChainSource, RegtestChain};

/// LDK's log: kept (the last lines) and printed when `VIGIL_LDK_LOG` is set.
pub struct LdkLogger {
    label: String,
    print: Option<Level>,
    lines: Mutex<VecDeque<String>>,
}

const KEPT_LINES: usize = 400;

impl LdkLogger {
    fn new(label: String) -> Self {
        let print = std::env::var("VIGIL_LDK_LOG").ok().map(|v| match v.to_ascii_lowercase().as_str() {
            "gossip" => Level::Gossip,
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            _ => Level::Info,
        });
        Self { label, print, lines: Mutex::new(VecDeque::new()) }
    }

    fn lines(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last `n` kept lines (debug and above).
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = self.lines();
        lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect()
    }

    /// Every kept line at warn or error level.
    pub fn warnings(&self) -> Vec<String> {
        self.lines().iter().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).cloned().collect()
    }
}

impl Logger for LdkLogger {
    fn log(&self, record: Record) {
        let level = match record.level {
            Level::Gossip => "GOSSIP",
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        let line = format!("{} {level} {}:{} {}", self.label, record.module_path, record.line, record.args);
        if self.print.is_some_and(|min| record.level >= min) {
            eprintln!("{line}");
        }
        if record.level >= Level::Debug {
            let mut lines = self.lines();
            if lines.len() == KEPT_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }
}

/// A fee estimator with one rate for everything (the remote-fee floors at
/// LDK's minimum of 253 sat/kw, to accept any sane peer rate).
pub struct FixedFees(pub u32);

impl FeeEstimator for FixedFees {
    fn get_est_sat_per_1000_weight(&self, target: ConfirmationTarget) -> u32 {
        match target {
            ConfirmationTarget::MinAllowedAnchorChannelRemoteFee
            | ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => 253,
            _ => self.0.max(253),
        }
    }
}

/// Submits LDK's transactions to the embedded regtest chain and keeps what
/// happened to each.
pub struct ChainBroadcaster {
    chain: Arc<RegtestChain>,
    /// Every broadcast: the txid and the chain's refusal, if any.
    pub results: Mutex<Vec<(Txid, Option<String>)>>,
}

impl BroadcasterInterface for ChainBroadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        for tx in txs {
            let outcome = self.chain.submit_transaction(tx).err().map(|e| e.to_string());
            results.push((tx.compute_txid(), outcome));
        }
    }
}

/// Monitors "persisted" in memory: every write is complete at once.
#[derive(Default)]
pub struct MemPersister {
    /// The serialized monitors, by monitor name.
    pub monitors: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemPersister {
    fn store<S: EcdsaChannelSigner>(&self, name: &MonitorName, monitor: &ChannelMonitor<S>) {
        self.monitors.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), monitor.encode());
    }
}

impl<S: EcdsaChannelSigner> Persist<S> for MemPersister {
    fn persist_new_channel(
        &self,
        name: MonitorName,
        monitor: &ChannelMonitor<S>,
    ) -> ChannelMonitorUpdateStatus {
        self.store(&name, monitor);
        ChannelMonitorUpdateStatus::Completed
    }

    fn update_persisted_channel(
        &self,
        name: MonitorName,
        _update: Option<&ChannelMonitorUpdate>,
        monitor: &ChannelMonitor<S>,
    ) -> ChannelMonitorUpdateStatus {
        self.store(&name, monitor);
        ChannelMonitorUpdateStatus::Completed
    }

    fn archive_persisted_channel(&self, name: MonitorName) {
        self.monitors.lock().unwrap_or_else(|e| e.into_inner()).remove(&name.to_string());
    }
}

type Log = Arc<LdkLogger>;
type Graph = NetworkGraph<Log>;
/// LDK's chain monitor as used here.
pub type LdkChainMonitor = ChainMonitor<
    InMemorySigner,
    Arc<dyn Filter + Send + Sync>,
    Arc<ChainBroadcaster>,
    Arc<FixedFees>,
    Log,
    Arc<MemPersister>,
    Arc<KeysManager>,
>;
type Router =
    DefaultRouter<Arc<Graph>, Log, Arc<KeysManager>, Arc<Mutex<FixedPenaltyScorer>>, (), FixedPenaltyScorer>;
/// LDK's gossip handler as used here (announcements taken unchecked).
pub type LdkGossipSync = P2PGossipSync<Arc<Graph>, Arc<dyn UtxoLookup + Send + Sync>, Log>;
type MessageRouter = DefaultMessageRouter<Arc<Graph>, Log, Arc<KeysManager>>;
/// LDK's channel manager as used here.
pub type LdkManager = ChannelManager<
    Arc<LdkChainMonitor>,
    Arc<ChainBroadcaster>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<FixedFees>,
    Arc<Router>,
    Arc<MessageRouter>,
    Log,
>;
/// LDK's peer manager as used here (gossip, no onion messages).
pub type LdkPeerManager = PeerManager<
    SocketDescriptor,
    Arc<LdkManager>,
    Arc<LdkGossipSync>,
    Arc<IgnoringMessageHandler>,
    Log,
    Arc<IgnoringMessageHandler>,
    Arc<KeysManager>,
    Arc<IgnoringMessageHandler>,
>;

/// The LDK node.
pub struct LdkNode {
    /// LDK's channel manager.
    pub manager: Arc<LdkManager>,
    /// LDK's chain monitor.
    pub chain_monitor: Arc<LdkChainMonitor>,
    /// LDK's peer manager.
    pub peer_manager: Arc<LdkPeerManager>,
    /// The log.
    pub logger: Arc<LdkLogger>,
    /// What LDK broadcast.
    pub broadcaster: Arc<ChainBroadcaster>,
    /// Its monitors.
    pub persister: Arc<MemPersister>,
    /// Its keys (the node key signs invoices built by hand).
    pub keys: Arc<KeysManager>,
    /// Its network graph (what gossip taught it).
    pub graph: Arc<Graph>,
    chain: Arc<RegtestChain>,
    best: Mutex<BestBlock>,
}

impl LdkNode {
    /// The configuration of these tests: private channels, no anchors,
    /// inbound channels accepted automatically.
    pub fn config() -> UserConfig {
        let mut config = UserConfig::default();
        config.channel_handshake_config.announce_for_forwarding = false;
        config.channel_handshake_config.negotiate_anchors_zero_fee_htlc_tx = false;
        config.channel_handshake_config.negotiate_anchor_zero_fee_commitments = false;
        config.channel_handshake_limits.force_announced_channel_preference = false;
        config.manually_accept_inbound_channels = false;
        config.accept_inbound_channels = true;
        config
    }

    /// A node with `seed`, at the tip of `chain`.
    pub fn new(seed: [u8; 32], chain: Arc<RegtestChain>, config: UserConfig) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
        let keys = Arc::new(KeysManager::new(&seed, now.as_secs(), now.subsec_nanos(), true));
        let node_id = keys.get_node_id(Recipient::Node).expect("KeysManager has a node key");
        let logger = Arc::new(LdkLogger::new(format!("ldk-{}", &node_id.to_string()[..8])));
        let fees = Arc::new(FixedFees(1000));
        let broadcaster =
            Arc::new(ChainBroadcaster { chain: chain.clone(), results: Mutex::new(Vec::new()) });
        let persister = Arc::new(MemPersister::default());
        let chain_monitor = Arc::new(ChainMonitor::new(
            None,
            broadcaster.clone(),
            logger.clone(),
            fees.clone(),
            persister.clone(),
            keys.clone(),
            keys.get_peer_storage_key(),
        ));
        let graph = Arc::new(NetworkGraph::new(Network::Regtest, logger.clone()));
        let scorer = Arc::new(Mutex::new(FixedPenaltyScorer::with_penalty(0)));
        let router = Arc::new(DefaultRouter::new(graph.clone(), logger.clone(), keys.clone(), scorer, ()));
        let message_router = Arc::new(DefaultMessageRouter::new(graph.clone(), keys.clone()));
        let tip = RegtestChain::tip(&chain);
        let best = BestBlock::new(tip.hash, tip.height);
        let manager = Arc::new(ChannelManager::new(
            fees,
            chain_monitor.clone(),
            broadcaster.clone(),
            router,
            message_router,
            logger.clone(),
            keys.clone(),
            keys.clone(),
            keys.clone(),
            config,
            ChainParameters { network: Network::Regtest, best_block: best },
            now.as_secs() as u32,
        ));
        let ignore = Arc::new(IgnoringMessageHandler {});
        let gossip: Arc<LdkGossipSync> = Arc::new(P2PGossipSync::new(graph.clone(), None, logger.clone()));
        let peer_manager = Arc::new(PeerManager::new(
            MessageHandler {
                chan_handler: manager.clone(),
                route_handler: gossip,
                onion_message_handler: Arc::clone(&ignore),
                custom_message_handler: Arc::clone(&ignore),
                send_only_message_handler: ignore,
            },
            now.as_secs() as u32,
            &keys.get_secure_random_bytes(),
            logger.clone(),
            keys.clone(),
        ));
        Self {
            manager,
            chain_monitor,
            peer_manager,
            logger,
            broadcaster,
            persister,
            keys,
            graph,
            chain,
            best: Mutex::new(best),
        }
    }

    /// Our node id.
    pub fn node_id(&self) -> PublicKey {
        self.manager.get_our_node_id()
    }

    /// Connects to a peer over TCP (the connection runs on the tokio
    /// runtime).
    pub async fn connect(&self, node_id: PublicKey, addr: SocketAddr) {
        let fut = lightning_net_tokio::connect_outbound(self.peer_manager.clone(), node_id, addr)
            .await
            .unwrap_or_else(|| panic!("LDK could not connect to {node_id}@{addr}"));
        tokio::spawn(fut);
    }

    /// Accepts connections on a loopback port (returned), on the tokio
    /// runtime.
    pub async fn listen(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let pm = self.peer_manager.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let stream = stream.into_std().expect("a tokio stream converts to std");
                tokio::spawn(lightning_net_tokio::setup_inbound(pm.clone(), stream));
            }
        });
        addr
    }

    /// An invoice of this node for `amount_msat` built by hand, with
    /// `hints` as its route hints. The hash and secret come from
    /// `create_inbound_payment`, so LDK recognises the payment and knows
    /// its preimage; only the hints differ from `create_bolt11_invoice`.
    pub fn invoice_with_hints(&self, amount_msat: u64, hints: Vec<RouteHint>) -> Bolt11Invoice {
        let (hash, secret) = self
            .manager
            .create_inbound_payment(Some(amount_msat), 3600, None)
            .expect("LDK registers an inbound payment");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
        let mut builder = InvoiceBuilder::new(Currency::Regtest)
            .description("built by hand".into())
            .payment_hash(sha256::Hash::from_byte_array(hash.0))
            .payment_secret(secret)
            .basic_mpp()
            .duration_since_epoch(now)
            .min_final_cltv_expiry_delta(u64::from(MIN_FINAL_CLTV_EXPIRY_DELTA))
            .amount_milli_satoshis(amount_msat)
            .expiry_time(Duration::from_secs(3600));
        for hint in hints {
            builder = builder.private_route(hint);
        }
        let key = self.keys.get_node_secret_key();
        builder
            .build_signed(|m| Secp256k1::new().sign_ecdsa_recoverable(m, &key))
            .expect("the builder takes these fields")
    }

    /// Whether `node_id` is connected (its `init` exchanged).
    pub fn is_connected(&self, node_id: &PublicKey) -> bool {
        self.peer_manager.peer_by_node_id(node_id).is_some()
    }

    /// Feeds every block after the last one fed, up to the chain's tip.
    /// The chain here never reorgs; a block that does not build on the
    /// last one is a harness bug.
    pub fn sync(&self) {
        let mut best = self.best.lock().unwrap_or_else(|e| e.into_inner());
        while best.height < self.chain.height() {
            let height = best.height + 1;
            let hash = self.chain.block_hash(height).expect("chain source").expect("a block below the tip");
            let block = self.chain.block(&hash).expect("chain source").expect("a known block");
            assert_eq!(
                block.header.prev_blockhash, best.block_hash,
                "the regtest chain reorganised under LDK"
            );
            self.chain_monitor.block_connected(&block, height);
            self.manager.block_connected(&block, height);
            *best = BestBlock::new(hash, height);
        }
    }

    /// One round: pending forwards and receives, then the events of the
    /// manager and the chain monitor, then the peer manager's sends.
    pub fn poll(&self) -> Vec<Event> {
        self.manager.process_pending_htlc_forwards();
        let events = std::cell::RefCell::new(Vec::new());
        let handler = |e: Event| {
            events.borrow_mut().push(e);
            Ok(())
        };
        self.manager.process_pending_events(&handler);
        self.chain_monitor.process_pending_events(&handler);
        self.peer_manager.process_events();
        events.into_inner()
    }
}
