//! A Vigil node for the harness: the core `ChannelManager` inside the
//! `Runtime` and `WireHandler` that `vigild` runs, so each round's monitor
//! updates and payment records go to the store as one transaction (group
//! commit), exactly as in the daemon.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Block, Network, ScriptBuf, Transaction};
use lightning::ln::msgs::ChannelMessageHandler;
use lightning::ln::types::ChannelId;
use lightning::sign::KeysManager;
use lightning::types::payment::PaymentHash;
use lightning_invoice::Bolt11Invoice;
use vigil_chain::{ChainSource, RegtestChain};
use vigil_core::chain_monitor::{ChainMonitor, MONITORS_NAMESPACE};
use vigil_core::manager::records::PAYMENTS_NAMESPACE;
use vigil_core::manager::{ChannelManager, Event, ManagerConfig, PaymentId, PaymentRecord};
use vigil_node::runtime::Runtime;
use vigil_node::wire::WireHandler;
use vigil_store::KvStore;

use crate::net::BenchNode;
use crate::store::CountingStore;

/// The clock every node is created at (payments never wait on time).
pub const START_SECS: u64 = 1_700_000_000;

/// A Vigil node.
pub struct VigilNode {
    runtime: Arc<Mutex<Runtime>>,
    handler: WireHandler,
    node_id: PublicKey,
    seed: u8,
    run: u32,
    store: Arc<CountingStore>,
    chain: Arc<RegtestChain>,
    funding: Option<(ChannelId, ScriptBuf, u64)>,
    funding_asked: bool,
    outcomes: Vec<(PaymentHash, bool)>,
}

/// The configuration both sides get: 483 HTLCs and the whole channel in
/// flight (LDK's defaults are 50 and 10 %).
pub fn config() -> ManagerConfig {
    let mut config = ManagerConfig::default();
    config.channel.max_accepted_htlcs = 483;
    config.channel.max_inbound_in_flight_percent = 100;
    config
}

/// The keys of node `seed` in its `run`-th start: the same node keys, new
/// randomness (a restarted process draws new random bytes too).
pub fn keys(seed: u8, run: u32) -> KeysManager {
    KeysManager::new(&[seed; 32], START_SECS + u64::from(run), u32::from(seed), true)
}

impl VigilNode {
    fn around(
        manager: ChannelManager,
        seed: u8,
        run: u32,
        chain: Arc<RegtestChain>,
        store: Arc<CountingStore>,
    ) -> Self {
        let node_id = manager.node_id();
        let kv: Arc<dyn KvStore + Send + Sync> = store.clone();
        let source: Arc<dyn ChainSource + Send + Sync> = chain.clone();
        let runtime = Arc::new(Mutex::new(Runtime::new(manager, kv, source)));
        let handler = WireHandler::new(runtime.clone(), ChainHash::using_genesis_block(Network::Regtest));
        Self {
            runtime,
            handler,
            node_id,
            seed,
            run,
            store,
            chain,
            funding: None,
            funding_asked: false,
            outcomes: Vec::new(),
        }
    }

    fn rt(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().expect("the bench runs on one thread")
    }

    /// Unacknowledged events after a restart (replayed from the monitors).
    pub fn unhandled_events(&self) -> usize {
        self.rt().manager.unhandled_events().len()
    }
}

impl BenchNode for VigilNode {
    fn handler(&self) -> &dyn ChannelMessageHandler {
        &self.handler
    }
    fn node_id(&self) -> PublicKey {
        self.node_id
    }
    fn open_channel(&mut self, peer: PublicKey, sat: u64, push_msat: u64) {
        let mut rt = self.rt();
        rt.manager.open_channel(peer, sat, push_msat, false).expect("the peer is connected");
        rt.drive();
        drop(rt);
        self.funding_asked = false;
    }
    fn funding_needed(&mut self) -> Option<(ScriptBuf, u64)> {
        if self.funding_asked {
            return None;
        }
        self.funding_asked = true;
        self.funding.as_ref().map(|(_, s, v)| (s.clone(), *v))
    }
    fn fund(&mut self, tx: Transaction) {
        let (temp, _, _) = self.funding.take().expect("funding_needed came first");
        let mut rt = self.rt();
        rt.manager.funding_transaction_generated(temp, tx).expect("the funding pays the channel's script");
        rt.drive();
    }
    fn block_connected(&mut self, block: &Block, height: u32) {
        let mut rt = self.rt();
        rt.manager.block_connected(height, &block.txdata);
        rt.drive();
    }
    fn invoice(&mut self, amount_msat: u64) -> Bolt11Invoice {
        self.rt()
            .manager
            .create_invoice(Some(amount_msat), "bench", 3600)
            .expect("an invoice for a valid amount")
    }
    fn pay(&mut self, invoice: &Bolt11Invoice) -> Result<(), String> {
        let mut rt = self.rt();
        let id = PaymentId(invoice.payment_hash().to_byte_array());
        rt.manager.pay_invoice(invoice, None, id).map_err(|e| e.to_string())?;
        rt.drive();
        Ok(())
    }
    fn process(&mut self, ack_outcomes: bool) -> bool {
        let runtime = self.runtime.clone();
        let mut rt = runtime.lock().expect("the bench runs on one thread");
        let mut moved = false;
        while let Some((id, event)) = rt.manager.next_event() {
            moved = true;
            // Outcome events stay unacknowledged when `ack_outcomes` is
            // false (the restart scenario's backlog).
            let (is_outcome, finished) = match event {
                Event::FundingGenerationReady { temporary_channel_id, script_pubkey, value_sat, .. } => {
                    self.funding = Some((temporary_channel_id, script_pubkey, value_sat));
                    (false, None)
                }
                Event::PaymentClaimable { purpose, .. } => {
                    rt.manager.claim_funds(purpose.preimage()).expect("a payment to an invoice of ours");
                    (false, None)
                }
                Event::PaymentSent { payment_hash, .. } => (true, Some((payment_hash, true))),
                Event::PaymentFailed { payment_hash, reason, .. } => {
                    eprintln!("vigil-bench: a Vigil payment failed: {reason}");
                    (true, Some((payment_hash, false)))
                }
                Event::PaymentClaimed { .. } | Event::PaymentForwarded { .. } => (true, None),
                _ => (false, None),
            };
            self.outcomes.extend(finished);
            if !is_outcome || ack_outcomes {
                rt.manager.event_handled(id);
            }
        }
        if moved {
            rt.drive();
        }
        moved
    }
    fn take_outcomes(&mut self) -> Vec<(PaymentHash, bool)> {
        std::mem::take(&mut self.outcomes)
    }
    fn usable_channels(&self) -> usize {
        self.rt().manager.list_channels().iter().filter(|c| c.usable).count()
    }
    fn store(&self) -> &Arc<CountingStore> {
        &self.store
    }
    fn create(seed: u8, chain: Arc<RegtestChain>, store: Arc<CountingStore>) -> Self {
        let manager = ChannelManager::new(config(), keys(seed, 0), chain.height(), START_SECS);
        Self::around(manager, seed, 0, chain, store)
    }
    fn restart(&self) -> (Self, std::time::Duration) {
        // Start-up as `vigild` does it: read the monitors and the payment
        // records, load them, rebuild the manager by replay.
        let started = Instant::now();
        let monitors = self.store.read_namespace(MONITORS_NAMESPACE).expect("the bench's store reads");
        let (cm, _torn) =
            ChainMonitor::load(config().chain_monitor, monitors).expect("monitors written here load");
        let records = self
            .store
            .read_namespace(PAYMENTS_NAMESPACE)
            .expect("the bench's store reads")
            .into_iter()
            .map(|(_, v)| PaymentRecord::from_bytes(&v).expect("records written here decode"))
            .collect();
        let run = self.run + 1;
        let manager = ChannelManager::from_monitors(
            config(),
            keys(self.seed, run),
            cm,
            records,
            self.chain.height(),
            START_SECS,
        );
        let node = Self::around(manager, self.seed, run, self.chain.clone(), self.store.clone());
        node.rt().drive();
        (node, started.elapsed())
    }
}
