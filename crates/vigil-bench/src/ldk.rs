//! An LDK 0.2.7 node for the harness, built as LDK's docs and ldk-node
//! build one: `ChannelManager`, `ChainMonitor` with the
//! `MonitorUpdatingPersister` (monitor updates written as deltas, a full
//! monitor every [`MAX_PENDING_UPDATES`]), the `DefaultRouter`, and the
//! manager persisted whenever it says it needs it, as LDK's background
//! processor does. Its store is the same engine as Vigil's (see
//! [`crate::store`]).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Block, BlockHash, Network, ScriptBuf, Transaction};
use lightning::chain::chaininterface::{BroadcasterInterface, ConfirmationTarget, FeeEstimator};
use lightning::chain::chainmonitor::ChainMonitor;
use lightning::chain::{BestBlock, Filter, Listen};
use lightning::events::{Event, EventsProvider};
use lightning::ln::channelmanager::{
    Bolt11InvoiceParameters, ChainParameters, ChannelManager, ChannelManagerReadArgs, PaymentId, Retry,
};
use lightning::ln::msgs::ChannelMessageHandler;
use lightning::ln::types::ChannelId;
use lightning::onion_message::messenger::NullMessageRouter;
use lightning::routing::gossip::NetworkGraph;
use lightning::routing::router::{DefaultRouter, RouteParametersConfig};
use lightning::routing::scoring::FixedPenaltyScorer;
use lightning::sign::{InMemorySigner, KeysManager, NodeSigner};
use lightning::types::payment::PaymentHash;
use lightning::util::config::UserConfig;
use lightning::util::logger::{Level, Logger, Record};
use lightning::util::persist::{
    KVStoreSync, MonitorUpdatingPersister, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::{ReadableArgs, Writeable};
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use vigil_chain::{ChainSource, RegtestChain};

use crate::net::BenchNode;
use crate::store::{CountingStore, LdkKv};
use crate::vigil::START_SECS;

/// Monitor updates the persister keeps as deltas before it writes the
/// whole monitor again (ldk-node's choice is of the same order).
pub const MAX_PENDING_UPDATES: u64 = 100;

/// LDK's log, silenced below errors.
#[derive(Debug)]
pub struct QuietLogger;

impl Logger for QuietLogger {
    fn log(&self, record: Record) {
        if record.level >= Level::Error {
            eprintln!("ldk: {}", record.args);
        }
    }
}

/// One fee rate for everything: Vigil's default commitment fee rate.
#[derive(Debug)]
pub struct Fees;

impl FeeEstimator for Fees {
    fn get_est_sat_per_1000_weight(&self, _: ConfirmationTarget) -> u32 {
        1_000
    }
}

/// Broadcasts to the embedded chain.
pub struct Broadcast(Arc<RegtestChain>);

impl BroadcasterInterface for Broadcast {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        for tx in txs {
            // A transaction already in the mempool or the chain is refused,
            // which is fine.
            let _ = self.0.submit_transaction(tx);
        }
    }
}

type Persister = MonitorUpdatingPersister<
    Arc<LdkKv>,
    Arc<QuietLogger>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<Broadcast>,
    Arc<Fees>,
>;
type ChainMon = ChainMonitor<
    InMemorySigner,
    Arc<dyn Filter + Send + Sync>,
    Arc<Broadcast>,
    Arc<Fees>,
    Arc<QuietLogger>,
    Arc<Persister>,
    Arc<KeysManager>,
>;
type Graph = NetworkGraph<Arc<QuietLogger>>;
type Router = DefaultRouter<
    Arc<Graph>,
    Arc<QuietLogger>,
    Arc<KeysManager>,
    Arc<Mutex<FixedPenaltyScorer>>,
    (),
    FixedPenaltyScorer,
>;
type Manager = ChannelManager<
    Arc<ChainMon>,
    Arc<Broadcast>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<Fees>,
    Arc<Router>,
    Arc<NullMessageRouter>,
    Arc<QuietLogger>,
>;

/// The configuration: 483 HTLCs and the whole channel in flight (as
/// Vigil's), static_remotekey channels, forwards to private channels.
pub fn config() -> UserConfig {
    let mut config = UserConfig::default();
    config.channel_handshake_config.our_max_accepted_htlcs = 483;
    config.channel_handshake_config.max_inbound_htlc_value_in_flight_percent_of_channel = 100;
    config.channel_handshake_config.negotiate_anchors_zero_fee_htlc_tx = false;
    config.accept_forwards_to_priv_channels = true;
    config
}

/// An LDK node.
pub struct LdkNode {
    manager: Arc<Manager>,
    chain_monitor: Arc<ChainMon>,
    kv: Arc<LdkKv>,
    store: Arc<CountingStore>,
    seed: u8,
    run: u32,
    chain: Arc<RegtestChain>,
    node_id: PublicKey,
    funding: Option<(ChannelId, PublicKey, ScriptBuf, u64)>,
    funding_asked: bool,
    outcomes: Vec<(PaymentHash, bool)>,
}

/// The parts a manager is made of.
struct Parts {
    keys: Arc<KeysManager>,
    persister: Arc<Persister>,
    chain_monitor: Arc<ChainMon>,
    broadcast: Arc<Broadcast>,
    router: Arc<Router>,
    logger: Arc<QuietLogger>,
}

fn parts(seed: u8, run: u32, chain: &Arc<RegtestChain>, kv: &Arc<LdkKv>) -> Parts {
    let keys = Arc::new(crate::vigil::keys(seed, run));
    let logger = Arc::new(QuietLogger);
    let broadcast = Arc::new(Broadcast(chain.clone()));
    let persister = Arc::new(MonitorUpdatingPersister::new(
        kv.clone(),
        logger.clone(),
        MAX_PENDING_UPDATES,
        keys.clone(),
        keys.clone(),
        broadcast.clone(),
        Arc::new(Fees),
    ));
    let chain_monitor = Arc::new(ChainMonitor::new(
        None,
        broadcast.clone(),
        logger.clone(),
        Arc::new(Fees),
        persister.clone(),
        keys.clone(),
        keys.get_peer_storage_key(),
    ));
    let graph = Arc::new(NetworkGraph::new(Network::Regtest, logger.clone()));
    let scorer = Arc::new(Mutex::new(FixedPenaltyScorer::with_penalty(0)));
    let router = Arc::new(DefaultRouter::new(graph, logger.clone(), keys.clone(), scorer, ()));
    Parts { keys, persister, chain_monitor, broadcast, router, logger }
}

impl LdkNode {
    fn around(
        manager: Arc<Manager>,
        chain_monitor: Arc<ChainMon>,
        kv: Arc<LdkKv>,
        store: Arc<CountingStore>,
        (seed, run): (u8, u32),
        chain: Arc<RegtestChain>,
    ) -> Self {
        let node_id = manager.get_our_node_id();
        Self {
            manager,
            chain_monitor,
            kv,
            store,
            seed,
            run,
            chain,
            node_id,
            funding: None,
            funding_asked: false,
            outcomes: Vec::new(),
        }
    }

    /// Writes the manager if it changed (as the background processor does).
    fn persist_manager(&self) {
        if self.manager.get_and_clear_needs_persistence() {
            self.kv
                .write(
                    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
                    CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
                    CHANNEL_MANAGER_PERSISTENCE_KEY,
                    self.manager.encode(),
                )
                .expect("the bench's store writes");
        }
    }
}

impl BenchNode for LdkNode {
    fn handler(&self) -> &dyn ChannelMessageHandler {
        &*self.manager
    }
    fn node_id(&self) -> PublicKey {
        self.node_id
    }
    fn open_channel(&mut self, peer: PublicKey, sat: u64, push_msat: u64) {
        self.manager.create_channel(peer, sat, push_msat, 0, None, None).expect("the peer is connected");
        self.funding_asked = false;
    }
    fn funding_needed(&mut self) -> Option<(ScriptBuf, u64)> {
        if self.funding_asked {
            return None;
        }
        self.funding_asked = true;
        self.funding.as_ref().map(|(_, _, s, v)| (s.clone(), *v))
    }
    fn fund(&mut self, tx: Transaction) {
        let (temp, peer, _, _) = self.funding.take().expect("funding_needed came first");
        self.manager
            .funding_transaction_generated(temp, peer, tx)
            .expect("the funding pays the channel's script");
    }
    fn block_connected(&mut self, block: &Block, height: u32) {
        self.chain_monitor.block_connected(block, height);
        self.manager.block_connected(block, height);
    }
    fn invoice(&mut self, amount_msat: u64) -> Bolt11Invoice {
        let description = Description::new("bench".into()).expect("a short description");
        let params = Bolt11InvoiceParameters {
            amount_msats: Some(amount_msat),
            description: Bolt11InvoiceDescription::Direct(description),
            invoice_expiry_delta_secs: Some(3600),
            ..Default::default()
        };
        self.manager.create_bolt11_invoice(params).expect("an invoice for a valid amount")
    }
    fn pay(&mut self, invoice: &Bolt11Invoice) -> Result<(), String> {
        let id = PaymentId(invoice.payment_hash().to_byte_array());
        self.manager
            .pay_for_bolt11_invoice(invoice, id, None, RouteParametersConfig::default(), Retry::Attempts(0))
            .map_err(|e| format!("{e:?}"))
    }
    fn process(&mut self, _ack_outcomes: bool) -> bool {
        let mut moved = false;
        if self.manager.needs_pending_htlc_processing() {
            self.manager.process_pending_htlc_forwards();
            moved = true;
        }
        let events = RefCell::new(Vec::new());
        self.manager.process_pending_events(&|e| {
            events.borrow_mut().push(e);
            Ok(())
        });
        for event in events.into_inner() {
            moved = true;
            match event {
                Event::FundingGenerationReady {
                    temporary_channel_id,
                    counterparty_node_id,
                    channel_value_satoshis,
                    output_script,
                    ..
                } => {
                    self.funding = Some((
                        temporary_channel_id,
                        counterparty_node_id,
                        output_script,
                        channel_value_satoshis,
                    ));
                }
                Event::PaymentClaimable { purpose, .. } => {
                    self.manager.claim_funds(purpose.preimage().expect("a payment to an invoice of ours"));
                }
                Event::PaymentSent { payment_hash, .. } => self.outcomes.push((payment_hash, true)),
                Event::PaymentFailed { payment_hash, reason, .. } => {
                    eprintln!("vigil-bench: an LDK payment failed: {reason:?}");
                    self.outcomes.push((payment_hash.unwrap_or(PaymentHash([0; 32])), false));
                }
                _ => {}
            }
        }
        self.persist_manager();
        moved
    }
    fn take_outcomes(&mut self) -> Vec<(PaymentHash, bool)> {
        std::mem::take(&mut self.outcomes)
    }
    fn usable_channels(&self) -> usize {
        self.manager.list_usable_channels().len()
    }
    fn store(&self) -> &Arc<CountingStore> {
        &self.store
    }
    fn create(seed: u8, chain: Arc<RegtestChain>, store: Arc<CountingStore>) -> Self {
        let kv = Arc::new(LdkKv::new(store.clone()));
        let p = parts(seed, 0, &chain, &kv);
        let tip = chain.block_hash(chain.height()).expect("in-memory chain").expect("the tip exists");
        let params =
            ChainParameters { network: Network::Regtest, best_block: BestBlock::new(tip, chain.height()) };
        let manager = Arc::new(ChannelManager::new(
            Arc::new(Fees),
            p.chain_monitor.clone(),
            p.broadcast,
            p.router,
            Arc::new(NullMessageRouter {}),
            p.logger,
            p.keys.clone(),
            p.keys.clone(),
            p.keys.clone(),
            config(),
            params,
            START_SECS as u32,
        ));
        Self::around(manager, p.chain_monitor, kv, store, (seed, 0), chain)
    }
    fn restart(&self) -> (Self, std::time::Duration) {
        // Start-up as LDK documents it: read the monitors (with their
        // pending updates), read the manager with them, hand the monitors
        // to a new chain monitor. The manager is written first, outside the
        // clock, as a clean shutdown would.
        self.persist_manager();
        let started = Instant::now();
        let p = parts(self.seed, self.run + 1, &self.chain, &self.kv);
        let monitors: Vec<(BlockHash, _)> =
            p.persister.read_all_channel_monitors_with_updates().expect("monitors written here load");
        let bytes = self
            .kv
            .read(
                CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_KEY,
            )
            .expect("the manager was written");
        let args = ChannelManagerReadArgs::new(
            p.keys.clone(),
            p.keys.clone(),
            p.keys.clone(),
            Arc::new(Fees),
            p.chain_monitor.clone(),
            p.broadcast,
            p.router,
            Arc::new(NullMessageRouter {}),
            p.logger,
            config(),
            monitors.iter().map(|(_, m)| m).collect(),
        );
        let (_, manager) =
            <(BlockHash, Manager)>::read(&mut &bytes[..], args).expect("the manager written here reads");
        for (_, monitor) in monitors {
            p.chain_monitor
                .load_existing_monitor(monitor.channel_id(), monitor)
                .expect("a monitor of this node");
        }
        let took = started.elapsed();
        let node = Self::around(
            Arc::new(manager),
            p.chain_monitor,
            self.kv.clone(),
            self.store.clone(),
            (self.seed, self.run + 1),
            self.chain.clone(),
        );
        (node, took)
    }
}
