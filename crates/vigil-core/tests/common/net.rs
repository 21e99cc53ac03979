//! A network of `ChannelManager`s for functional tests: one embedded chain,
//! in-memory links, and per node a disk with a durable image (what a crash
//! leaves).
//!
//! Vocabulary: [`Net::new`], [`Net::connect`], [`Net::open_channel`],
//! [`Net::pump`] (deliver, persist, broadcast until quiet), [`Net::mine`],
//! [`Net::invoice`], [`Net::pay`], [`Net::take_events`] (deliver and
//! handle), [`Net::crash`] (lose everything not durable, rebuild from the
//! durable image alone), [`Net::hold_persistence`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, Transaction, TxOut};
use lightning::bolt11_invoice::Bolt11Invoice;
use lightning::ln::types::ChannelId;
use lightning::sign::KeysManager;
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::ManualClock;
use vigil_chain::{ChainSource, RegtestChain};
use vigil_core::chain_monitor::{ChainMonitor, PersistRequest, StoreOp, MONITORS_NAMESPACE};
use vigil_core::channel::ChannelMessage;
use vigil_core::manager::records::PAYMENTS_NAMESPACE;
use vigil_core::manager::{ChannelManager, Event, ManagerConfig, PaymentId, PaymentRecord, RecordWrite};

/// One node: its manager and its disk.
pub struct TestNode {
    pub manager: ChannelManager,
    pub seed: u8,
    pub config: ManagerConfig,
    /// What survives a crash: `(namespace, key) -> value`.
    pub durable: BTreeMap<(String, String), Vec<u8>>,
    /// Monitor writes handed out and not complete.
    pub in_flight: VecDeque<PersistRequest>,
    /// Record writes handed out and not complete.
    pub record_writes: VecDeque<RecordWrite>,
    /// Whether writes complete as soon as they are handed out.
    pub auto_persist: bool,
    /// Every user event delivered (handled or not), in order, across
    /// restarts.
    pub delivered: Vec<Event>,
    /// Every user event acknowledged: handled, and the writes that
    /// acknowledgement queued durable (a crash before that makes it
    /// reappear, which is allowed).
    pub handled: Vec<Event>,
    /// Events handled whose acknowledgement is not durable yet, with the
    /// number of completed writes that makes it so.
    pub acking: Vec<(Event, usize)>,
    /// Writes completed so far.
    pub completed: usize,
    /// Message errors the node reported.
    pub errors: Vec<String>,
    /// Bytes written to the durable image.
    pub bytes_written: usize,
    pub restarts: u32,
    coin_height: u32,
}

impl TestNode {
    pub fn id(&self) -> PublicKey {
        self.manager.node_id()
    }

    fn keys(seed: u8, restarts: u32) -> KeysManager {
        // A new starting time per run, as a real node has.
        KeysManager::new(&[seed; 32], 1_700_000_000 + u64::from(restarts), restarts, true)
    }

    fn apply(&mut self, ops: &[StoreOp]) {
        for op in ops {
            match op {
                StoreOp::Write { namespace, key, value } => {
                    self.bytes_written += value.len();
                    self.durable.insert((namespace.to_string(), key.clone()), value.clone());
                }
                StoreOp::Remove { namespace, key } => {
                    self.durable.remove(&(namespace.to_string(), key.clone()));
                }
            }
        }
    }

    /// Completes the oldest monitor write. Returns whether there was one.
    pub fn complete_one(&mut self) -> bool {
        let Some(request) = self.in_flight.pop_front() else { return false };
        self.apply(&request.ops);
        self.manager.persist_completed(request.channel_id, request.seq).expect("completed in order");
        self.completed += 1;
        self.settle_acks();
        true
    }

    fn settle_acks(&mut self) {
        let done = self.completed;
        let (acked, pending): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.acking).into_iter().partition(|(_, t)| *t <= done);
        self.acking = pending;
        self.handled.extend(acked.into_iter().map(|(e, _)| e));
    }

    /// Completes the oldest record write.
    pub fn complete_record(&mut self) -> bool {
        let Some(write) = self.record_writes.pop_front() else { return false };
        self.bytes_written += write.value.len();
        self.durable.insert((write.namespace.to_string(), write.key.clone()), write.value.clone());
        self.manager.record_persisted(write.payment_id);
        self.completed += 1;
        self.settle_acks();
        true
    }

    /// The monitors' channel ids in the durable image.
    pub fn durable_keys(&self, namespace: &str) -> Vec<String> {
        self.durable.keys().filter(|(n, _)| n == namespace).map(|(_, k)| k.clone()).collect()
    }
}

/// The network.
pub struct Net {
    pub nodes: Vec<TestNode>,
    pub chain: RegtestChain,
    pub clock: Arc<ManualClock>,
    pub now_secs: u64,
    links: BTreeSet<(usize, usize)>,
    miner: TestKey,
    /// When set to node `i`, the next `update_add_htlc` delivered to `i`
    /// has one bit of its onion flipped (a corrupted onion).
    pub corrupt_next_onion_to: Option<usize>,
}

fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Net {
    /// `n` nodes with default configs.
    pub fn new(n: usize) -> Net {
        Self::with_configs(vec![ManagerConfig::default(); n])
    }

    /// One node per config.
    pub fn with_configs(configs: Vec<ManagerConfig>) -> Net {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let chain = RegtestChain::in_memory(clock.clone());
        let miner = TestKey::new(99);
        // One coinbase per node per future channel, then maturity.
        let mut coin_heights = Vec::new();
        for i in 0..configs.len() {
            let key = TestKey::new(60 + i as u8);
            chain.mine(4, &key.address()).expect("mine");
            coin_heights.push(chain.height() - 3);
        }
        chain.mine(101, &miner.address()).expect("mine");
        let height = chain.height();
        let now_secs = 1_700_000_000;
        let nodes = configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| {
                let seed = 10 + i as u8;
                TestNode {
                    manager: ChannelManager::new(config.clone(), TestNode::keys(seed, 0), height, now_secs),
                    seed,
                    config,
                    durable: BTreeMap::new(),
                    in_flight: VecDeque::new(),
                    record_writes: VecDeque::new(),
                    auto_persist: true,
                    delivered: Vec::new(),
                    handled: Vec::new(),
                    acking: Vec::new(),
                    completed: 0,
                    errors: Vec::new(),
                    bytes_written: 0,
                    restarts: 0,
                    coin_height: coin_heights[i],
                }
            })
            .collect();
        Net { nodes, chain, clock, now_secs, links: BTreeSet::new(), miner, corrupt_next_onion_to: None }
    }

    pub fn id(&self, i: usize) -> PublicKey {
        self.nodes[i].id()
    }

    /// Connects `a` and `b`.
    pub fn connect(&mut self, a: usize, b: usize) {
        self.links.insert(link(a, b));
        let (ida, idb) = (self.id(a), self.id(b));
        self.nodes[a].manager.peer_connected(idb);
        self.nodes[b].manager.peer_connected(ida);
        self.pump();
    }

    /// Drops the connection between `a` and `b`; messages in flight are
    /// lost.
    pub fn disconnect(&mut self, a: usize, b: usize) {
        self.links.remove(&link(a, b));
        let (ida, idb) = (self.id(a), self.id(b));
        self.nodes[a].manager.peer_disconnected(idb);
        self.nodes[b].manager.peer_disconnected(ida);
    }

    /// Holds (or releases) `i`'s writes: held writes stay in flight until
    /// completed by hand, and a crash loses them.
    pub fn hold_persistence(&mut self, i: usize, hold: bool) {
        self.nodes[i].auto_persist = !hold;
    }

    /// Moves everything until nothing moves: writes (when auto), records,
    /// broadcasts, then messages, one at a time in order.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                moved |= self.pump_node(i);
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not settle");
    }

    fn pump_node(&mut self, i: usize) -> bool {
        let mut moved = false;
        let node = &mut self.nodes[i];
        while let Some(r) = node.manager.poll_persist() {
            node.in_flight.push_back(r);
            moved = true;
        }
        while let Some(w) = node.manager.poll_record_write() {
            node.record_writes.push_back(w);
            moved = true;
        }
        if node.auto_persist {
            while node.complete_one() {}
            while node.complete_record() {}
        }
        while let Some(tx) = self.nodes[i].manager.poll_broadcast() {
            moved = true;
            // A transaction already in the mempool or chain is fine.
            let _ = self.chain.submit_transaction(&tx);
        }
        let from = self.id(i);
        while let Some((to, msg)) = self.nodes[i].manager.poll_message() {
            moved = true;
            let Some(j) = self.nodes.iter().position(|n| n.id() == to) else { continue };
            if !self.links.contains(&link(i, j)) {
                continue;
            }
            let mut msg = msg;
            if let ChannelMessage::UpdateAddHtlc(add) = &mut msg {
                if self.corrupt_next_onion_to == Some(j) {
                    self.corrupt_next_onion_to = None;
                    add.onion_routing_packet.hop_data[0] ^= 1;
                }
            }
            if let Err(e) = self.nodes[j].manager.handle_message(from, msg.clone()) {
                self.nodes[j].errors.push(format!("{e} ({})", msg_name(&msg)));
            }
        }
        moved
    }

    /// Mines `n` blocks (with the mempool) and feeds them to every node.
    pub fn mine(&mut self, n: u32) {
        for _ in 0..n {
            self.chain.mine(1, &self.miner.address()).expect("mine");
            let height = self.chain.height();
            let hash = self.chain.block_hash(height).expect("chain").expect("the block just mined");
            let block = self.chain.block(&hash).expect("chain").expect("the block just mined");
            for node in &mut self.nodes {
                node.manager.block_connected(height, &block.txdata);
            }
            self.pump();
        }
    }

    /// Opens a channel from `a` to `b` and brings it to `channel_ready`.
    pub fn open_channel(&mut self, a: usize, b: usize, funding_sat: u64, push_msat: u64) -> ChannelId {
        let idb = self.id(b);
        let temp =
            self.nodes[a].manager.open_channel(idb, funding_sat, push_msat, false).expect("open_channel");
        self.pump();
        let (script, value) = self
            .take_events(a)
            .into_iter()
            .find_map(|e| match e {
                Event::FundingGenerationReady { temporary_channel_id, script_pubkey, value_sat, .. }
                    if temporary_channel_id == temp =>
                {
                    Some((script_pubkey, value_sat))
                }
                _ => None,
            })
            .unwrap_or_else(|| {
                panic!("funding requested; errors {:?} / {:?}", self.nodes[a].errors, self.nodes[b].errors)
            });
        let key = TestKey::new(60 + a as u8);
        let height = self.nodes[a].coin_height;
        self.nodes[a].coin_height += 1;
        let coin = coinbase_coin(&self.chain, height);
        let change = coin.txout.value - Amount::from_sat(value) - Amount::from_sat(1_000);
        let funding = spend_p2wpkh(
            &key,
            std::slice::from_ref(&coin),
            vec![
                TxOut { value: Amount::from_sat(value), script_pubkey: script },
                TxOut { value: change, script_pubkey: key.p2wpkh() },
            ],
        );
        let id = self.nodes[a].manager.funding_transaction_generated(temp, funding).expect("funding");
        self.pump();
        self.mine(6);
        let events_a = self.take_events(a);
        let events_b = self.take_events(b);
        for events in [&events_a, &events_b] {
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::ChannelReady { channel_id, .. } if *channel_id == id)),
                "channel ready: {events:?}; errors {:?} / {:?}",
                self.nodes[a].errors,
                self.nodes[b].errors
            );
        }
        id
    }

    /// Delivers and handles every pending event of `i`. Returns them.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some((id, event)) = self.nodes[i].manager.next_event() {
            // I5: an outcome whose acknowledgement is durable never comes
            // back. (`PaymentClaimable` does until claimed, by design.)
            let outcome = matches!(
                event,
                Event::PaymentClaimed { .. }
                    | Event::PaymentSent { .. }
                    | Event::PaymentFailed { .. }
                    | Event::PaymentForwarded { .. }
            );
            assert!(
                !outcome || !self.nodes[i].handled.contains(&event),
                "node {i}: an acknowledged event was delivered again: {event:?}"
            );
            self.nodes[i].delivered.push(event.clone());
            self.nodes[i].manager.event_handled(id);
            // Acknowledged once every write queued so far is durable.
            let node = &mut self.nodes[i];
            while let Some(r) = node.manager.poll_persist() {
                node.in_flight.push_back(r);
            }
            while let Some(w) = node.manager.poll_record_write() {
                node.record_writes.push_back(w);
            }
            let target = node.completed + node.in_flight.len() + node.record_writes.len();
            node.acking.push((event.clone(), target));
            node.settle_acks();
            out.push(event);
            self.pump();
        }
        out
    }

    /// The events of `i` delivered but not handled (as a user who crashes
    /// before handling them).
    pub fn peek_events(&mut self, i: usize) -> Vec<Event> {
        let events: Vec<Event> =
            self.nodes[i].manager.unhandled_events().into_iter().map(|(_, e)| e).collect();
        self.nodes[i].delivered.extend(events.iter().cloned());
        events
    }

    /// An invoice of `i`.
    pub fn invoice(&mut self, i: usize, amount_msat: Option<u64>) -> Bolt11Invoice {
        self.nodes[i].manager.create_invoice(amount_msat, "test", 3600).expect("invoice")
    }

    /// `from` pays `invoice` with a fresh payment id, and the net settles.
    pub fn pay(&mut self, from: usize, invoice: &Bolt11Invoice) -> PaymentId {
        let id = self.payment_id();
        self.nodes[from].manager.pay_invoice(invoice, None, id).expect("pay_invoice");
        self.pump();
        id
    }

    /// A payment id never used before.
    pub fn payment_id(&mut self) -> PaymentId {
        self.now_secs += 1;
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&self.now_secs.to_be_bytes());
        PaymentId(id)
    }

    /// `i` claims every `PaymentClaimable` among `events`.
    pub fn claim_all(&mut self, i: usize, events: &[Event]) {
        for e in events {
            if let Event::PaymentClaimable { purpose, .. } = e {
                self.nodes[i].manager.claim_funds(purpose.preimage()).expect("claim");
            }
        }
        self.pump();
    }

    /// `i` crashes: writes in flight and unhandled events are lost, and the
    /// node is rebuilt from its durable image alone. Its peers see it
    /// disconnect; call [`Net::reconnect`] to bring the links back.
    pub fn crash(&mut self, i: usize) {
        let peers: Vec<usize> = self
            .links
            .iter()
            .filter_map(|&(a, b)| {
                if a == i {
                    Some(b)
                } else if b == i {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        for p in &peers {
            self.disconnect(i, *p);
        }
        let height = self.chain.height();
        let node = &mut self.nodes[i];
        node.in_flight.clear();
        node.record_writes.clear();
        // Acknowledgements not yet durable are lost: those events come back.
        node.acking.clear();
        node.restarts += 1;
        let monitors: Vec<(String, Vec<u8>)> = node
            .durable
            .iter()
            .filter(|((n, _), _)| n == MONITORS_NAMESPACE)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        let records: Vec<PaymentRecord> = node
            .durable
            .iter()
            .filter(|((n, _), _)| n == PAYMENTS_NAMESPACE)
            .map(|(_, v)| PaymentRecord::from_bytes(v).expect("a stored record decodes"))
            .collect();
        let (cm, torn) =
            ChainMonitor::load(node.config.chain_monitor.clone(), monitors).expect("the durable image loads");
        assert!(torn.is_empty(), "writes are atomic here: {torn:?}");
        node.manager = ChannelManager::from_monitors(
            node.config.clone(),
            TestNode::keys(node.seed, node.restarts),
            cm,
            records,
            height,
            self.now_secs,
        );
        self.pump();
    }

    /// Connects `i` to every peer it has a channel with.
    pub fn reconnect(&mut self, i: usize) {
        let peers: BTreeSet<PublicKey> =
            self.nodes[i].manager.list_channels().iter().map(|c| c.counterparty_node_id).collect();
        for p in peers {
            if let Some(j) = self.nodes.iter().position(|n| n.id() == p) {
                self.connect(i, j);
            }
        }
    }

    /// Our balance on the channel `a` has with `b` (first one found).
    pub fn balance(&self, a: usize, channel: ChannelId) -> u64 {
        self.nodes[a]
            .manager
            .list_channels()
            .iter()
            .find(|c| c.channel_id == channel)
            .map_or(0, |c| c.balance_msat)
    }

    /// A timer tick on every node.
    pub fn tick(&mut self) {
        self.now_secs += 60;
        for node in &mut self.nodes {
            node.manager.timer_tick(self.now_secs);
        }
        self.pump();
    }

    /// The closing transaction a cooperative close put on chain, mined.
    pub fn broadcast_and_mine(&mut self, tx: &Transaction) {
        let _ = self.chain.submit_transaction(tx);
        self.mine(1);
    }
}

fn msg_name(msg: &ChannelMessage) -> &'static str {
    match msg {
        ChannelMessage::UpdateAddHtlc(_) => "update_add_htlc",
        ChannelMessage::CommitmentSigned(_) => "commitment_signed",
        ChannelMessage::RevokeAndAck(_) => "revoke_and_ack",
        ChannelMessage::ChannelReestablish(_) => "channel_reestablish",
        _ => "message",
    }
}
