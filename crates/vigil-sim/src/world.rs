//! The simulated world: nodes (a `ChannelManager` each, with a store that
//! has a live and a durable image), directed in-memory links, one embedded
//! regtest chain, and a clock the simulation advances itself.
//!
//! Everything is deterministic: the only randomness is the program's seed
//! (and LDK's `KeysManager` entropy, seeded from the node seed and the
//! restart count).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, Txid};
use lightning::ln::types::ChannelId;
use lightning::sign::KeysManager;
use vigil_chain::testkit::{coinbase_coin, funding_spend, Coin, TestKey};
use vigil_chain::{ChainSource, ManualClock, RegtestChain};
use vigil_core::chain_monitor::{ChainMonitor, PersistRequest, StoreOp, MONITORS_NAMESPACE};
use vigil_core::channel::ChannelMessage;
use vigil_core::manager::records::PAYMENTS_NAMESPACE;
use vigil_core::manager::{ChannelManager, Event, ManagerConfig, PaymentRecord, RecordWrite};

use crate::accounts::Funding;
use crate::onchain::{coin_key, sweep_script};

/// What a simulated user saw and did.
#[derive(Debug, Default, Clone)]
pub struct UserLog {
    /// Every event delivered, in order, across restarts.
    pub delivered: Vec<Event>,
    /// Events whose acknowledgement became durable.
    pub acknowledged: Vec<Event>,
    /// Events handled whose acknowledgement is not durable yet, with the
    /// writes (in flight when it was handled) that must complete first.
    pub acking: Vec<(Event, BTreeSet<u64>)>,
}

/// A write that may complete now.
#[derive(Debug, Clone, Copy)]
enum Ready {
    /// The monitor write at this index of `in_flight`.
    Monitor(usize),
    /// The oldest record write.
    Record,
}

/// One node and its disk.
pub struct SimNode {
    /// The manager.
    pub manager: ChannelManager,
    /// The node's seed.
    pub seed: u8,
    /// Its configuration.
    pub config: ManagerConfig,
    /// What survives a crash.
    pub durable: BTreeMap<(String, String), Vec<u8>>,
    /// Monitor writes handed out, not complete.
    pub in_flight: Vec<PersistRequest>,
    /// Record writes handed out, not complete, with their tokens.
    pub record_writes: VecDeque<(u64, RecordWrite)>,
    /// The next record write's token (monitor writes use their sequence
    /// numbers; record tokens count down from the top to stay distinct).
    next_record_token: u64,
    /// Writes completed so far.
    pub completed: u64,
    /// A channel whose writes are held back (a slow disk region), so that
    /// other channels' writes overtake it.
    pub stalled: Option<ChannelId>,
    /// How many times it crashed.
    pub restarts: u32,
    /// The last block it processed.
    pub seen_height: u32,
    /// The last block whose effects are all durable: a restart follows
    /// the chain again from there (as `vigil-node` does from
    /// `node/best_block`).
    pub durable_height: u32,
    /// Its user.
    pub user: UserLog,
}

impl SimNode {
    /// The node id.
    pub fn id(&self) -> PublicKey {
        self.manager.node_id()
    }

    fn keys(seed: u8, restarts: u32) -> KeysManager {
        KeysManager::new(&[seed; 32], 1_700_000_000 + u64::from(restarts), restarts, true)
    }

    fn take_requests(&mut self) -> bool {
        let mut moved = false;
        while let Some(r) = self.manager.poll_persist() {
            self.in_flight.push(r);
            moved = true;
        }
        while let Some(w) = self.manager.poll_record_write() {
            self.next_record_token -= 1;
            self.record_writes.push_back((self.next_record_token, w));
            moved = true;
        }
        moved
    }

    /// The tokens of every write in flight.
    fn pending_tokens(&self) -> BTreeSet<u64> {
        self.in_flight.iter().map(|r| r.seq).chain(self.record_writes.iter().map(|(t, _)| *t)).collect()
    }

    /// The `pick`-th write among those that may complete now (the oldest
    /// of each channel not held back, and the oldest record write).
    fn ready(&self, pick: usize) -> Option<Ready> {
        let mut ready: Vec<usize> = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, r) in self.in_flight.iter().enumerate() {
            if seen.insert(r.channel_id) && Some(r.channel_id) != self.stalled {
                ready.push(i);
            }
        }
        let choices = ready.len() + usize::from(!self.record_writes.is_empty());
        if choices == 0 {
            return None;
        }
        let choice = pick % choices;
        Some(if choice == ready.len() { Ready::Record } else { Ready::Monitor(ready[choice]) })
    }

    /// Puts a write on the durable image (the node is not told).
    fn land(&mut self, write: Ready) {
        match write {
            Ready::Record => {
                let (_, w) = self.record_writes.front().expect("ready() saw it");
                self.durable.insert((w.namespace.to_string(), w.key.clone()), w.value.clone());
            }
            Ready::Monitor(i) => {
                for op in &self.in_flight[i].ops {
                    match op {
                        StoreOp::Write { namespace, key, value } => {
                            self.durable.insert((namespace.to_string(), key.clone()), value.clone());
                        }
                        StoreOp::Remove { namespace, key } => {
                            self.durable.remove(&(namespace.to_string(), key.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Completes the `pick`-th write among those that may complete now (the
    /// oldest of each channel, and the oldest record write). Returns
    /// whether one completed.
    pub fn complete(&mut self, pick: usize) -> bool {
        self.take_requests();
        let Some(write) = self.ready(pick) else { return false };
        self.finish(write);
        true
    }

    /// Completes every write in flight but the newest `percent` of each
    /// channel's (and of the record writes), oldest first; a channel held
    /// back keeps all its writes in flight. Where the share is not a whole
    /// number of writes, it is rounded up or down (in proportion, by a hash
    /// of the oldest write's token), so that a single write in flight is
    /// lost `percent`% of the time.
    pub fn complete_all_but_newest(&mut self, percent: u8) {
        self.take_requests();
        let percent = u64::from(percent.min(100));
        let lost = |count: usize, token: u64| {
            let round = (token ^ u64::from(self.restarts)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            ((count as u64 * percent + round % 100) / 100) as usize
        };
        let mut channels: BTreeMap<ChannelId, (usize, u64)> = BTreeMap::new();
        for r in &self.in_flight {
            channels.entry(r.channel_id).or_insert((0, r.seq)).0 += 1;
        }
        let stalled = self.stalled;
        let keep: Vec<(ChannelId, usize)> = channels
            .into_iter()
            .filter(|(c, _)| Some(*c) != stalled)
            .map(|(c, (count, oldest))| (c, count - lost(count, oldest)))
            .collect();
        let records = self.record_writes.front().map_or(0, |(token, _)| {
            let count = self.record_writes.len();
            count - lost(count, *token)
        });
        for (channel_id, complete) in keep {
            for _ in 0..complete {
                let oldest = self.in_flight.iter().position(|r| r.channel_id == channel_id);
                self.finish(Ready::Monitor(oldest.expect("counted above")));
            }
        }
        for _ in 0..records {
            self.finish(Ready::Record);
        }
    }

    /// Makes `write` durable and tells the node.
    fn finish(&mut self, write: Ready) {
        self.land(write);
        let token = match write {
            Ready::Record => {
                let (token, write) = self.record_writes.pop_front().expect("ready() saw it");
                if std::env::var_os("VIGIL_SIM_TRACE").is_some() {
                    let status =
                        PaymentRecord::from_bytes(&write.value).map(|r| (r.payment_hash, r.status, r.seen));
                    eprintln!("  node {} record durable {status:?}", self.seed - 10);
                }
                self.manager.record_persisted(write.payment_id);
                token
            }
            Ready::Monitor(i) => {
                let request = self.in_flight.remove(i);
                self.manager
                    .persist_completed(request.channel_id, request.seq)
                    .expect("a channel's writes complete in order here");
                request.seq
            }
        };
        self.completed += 1;
        if self.in_flight.is_empty() {
            self.durable_height = self.seen_height;
        }
        for (_, tokens) in &mut self.user.acking {
            tokens.remove(&token);
        }
        let (acked, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.user.acking).into_iter().partition(|(_, t)| t.is_empty());
        self.user.acking = waiting;
        self.user.acknowledged.extend(acked.into_iter().map(|(e, _)| e));
    }

    /// The `fsync` of the `pick`-th write that may complete fails: the node
    /// is not told it completed, and writes it again later (as `vigil-node`
    /// retries a batch the store refused). When `landed`, the data reached
    /// the disk all the same (a failed `fsync` says nothing of what is on
    /// disk), so a crash now finds it durable. Returns whether there was a
    /// write to fail.
    pub fn fail_fsync(&mut self, pick: usize, landed: bool) -> bool {
        self.take_requests();
        let Some(write) = self.ready(pick) else { return false };
        if landed {
            self.land(write);
        }
        true
    }

    /// Holds back the writes of the `pick`-th channel with writes in flight.
    pub fn stall(&mut self, pick: usize) {
        let mut channels: Vec<ChannelId> = self.in_flight.iter().map(|r| r.channel_id).collect();
        channels.dedup();
        self.stalled = if channels.is_empty() { None } else { Some(channels[pick % channels.len()]) };
    }

    /// Completes every write except those of the `pick`-th channel with
    /// writes in flight.
    pub fn complete_all_but(&mut self, pick: usize) {
        self.take_requests();
        self.stall(pick);
        while self.complete(0) {}
        self.stalled = None;
    }

    /// Completes every write.
    pub fn complete_all(&mut self) -> bool {
        self.stalled = None;
        let mut moved = false;
        while self.complete(0) {
            moved = true;
        }
        moved
    }
}

/// A directed link's queue.
#[derive(Debug, Default)]
struct Link {
    up: bool,
    queue: VecDeque<ChannelMessage>,
}

/// Whether an outcome event: delivered until acknowledged, never after.
pub fn is_outcome(event: &Event) -> bool {
    matches!(
        event,
        Event::PaymentClaimed { .. }
            | Event::PaymentSent { .. }
            | Event::PaymentFailed { .. }
            | Event::PaymentForwarded { .. }
    )
}

/// The world.
pub struct World {
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The chain.
    pub chain: RegtestChain,
    /// Seconds since the epoch.
    pub now_secs: u64,
    links: BTreeMap<(usize, usize), Link>,
    miner: TestKey,
    /// Each node's total channel balance after setup.
    pub initial_balance: Vec<u64>,
    /// Invariant violations seen while running (I5 on delivery).
    pub violations: Vec<String>,
    /// Print every delivery, handling and crash (`VIGIL_SIM_TRACE=1`).
    pub trace: bool,
    /// Channels the program force-closed.
    pub requested_closes: BTreeSet<ChannelId>,
    /// The height when the setup was done (reorgs stay above it).
    pub setup_height: u32,
    /// Each node's fee wallet, for anchor claims: every coin of its key it
    /// ever had (the coinbases, then change). Which are spendable is asked
    /// of the chain, so a reorg that drops a fee transaction frees its coin.
    pub fee_coins: Vec<Vec<Coin>>,
    /// Every channel's funding output, value and ends.
    pub fundings: Vec<Funding>,
    /// Each node's fee wallet after setup, in satoshis.
    pub initial_fee_sat: Vec<u64>,
    /// Who broadcast each transaction (the first node to).
    pub broadcasters: BTreeMap<Txid, usize>,
    /// Of the writes in flight at a crash, the share (in percent, the
    /// newest of each channel) that is lost; the rest completes first
    /// ([`SimNode::complete_all_but_newest`]).
    pub pending_percent: u8,
}

impl World {
    /// `n` nodes in a line, with two channels on every link (one
    /// static_remotekey, one anchors), each funded by the left node with
    /// half its value pushed to the right one.
    pub fn new(n: usize) -> World {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let chain = RegtestChain::in_memory(clock);
        let miner = TestKey::new(99);
        let mut coins = Vec::new();
        let mut fee_heights = Vec::new();
        for i in 0..n {
            // Two coinbases fund the node's channels, two its fee wallet.
            chain.mine(4, &coin_key(i).address()).expect("mine");
            coins.push(chain.height() - 3);
            fee_heights.push(vec![chain.height() - 1, chain.height()]);
        }
        chain.mine(101, &miner.address()).expect("mine");
        let height = chain.height();
        let nodes = (0..n)
            .map(|i| {
                let seed = 10 + i as u8;
                let config =
                    ManagerConfig { sweep_script: Some(sweep_script(i)), ..ManagerConfig::default() };
                SimNode {
                    manager: ChannelManager::new(
                        config.clone(),
                        SimNode::keys(seed, 0),
                        height,
                        1_700_000_000,
                    ),
                    seed,
                    config,
                    durable: BTreeMap::new(),
                    in_flight: Vec::new(),
                    record_writes: VecDeque::new(),
                    next_record_token: u64::MAX,
                    completed: 0,
                    stalled: None,
                    restarts: 0,
                    seen_height: height,
                    durable_height: height,
                    user: UserLog::default(),
                }
            })
            .collect();
        let mut world = World {
            nodes,
            chain,
            now_secs: 1_700_000_000,
            links: BTreeMap::new(),
            miner,
            initial_balance: Vec::new(),
            violations: Vec::new(),
            trace: false,
            requested_closes: BTreeSet::new(),
            setup_height: 0,
            fee_coins: Vec::new(),
            fundings: Vec::new(),
            initial_fee_sat: Vec::new(),
            broadcasters: BTreeMap::new(),
            pending_percent: 100,
        };
        world.fee_coins = fee_heights.iter().map(|h| World::initial_fee_coins(&world.chain, h)).collect();
        world.initial_fee_sat =
            world.fee_coins.iter().map(|c| c.iter().map(|c| c.txout.value.to_sat()).sum()).collect();
        for (i, coin) in coins.iter().enumerate().take(n.saturating_sub(1)) {
            world.connect(i, i + 1);
            for (k, anchors) in [false, true].into_iter().enumerate() {
                world.open(i, i + 1, coin + k as u32, anchors);
            }
        }
        world.settle();
        world.initial_balance = (0..n).map(|i| world.balance(i)).collect();
        world.setup_height = world.chain.height();
        world
    }

    /// Connects `a` and `b`.
    pub fn connect(&mut self, a: usize, b: usize) {
        if a == b || self.links.get(&(a, b)).is_some_and(|l| l.up) {
            return;
        }
        for key in [(a, b), (b, a)] {
            let link = self.links.entry(key).or_default();
            link.up = true;
            link.queue.clear();
        }
        let (ida, idb) = (self.nodes[a].id(), self.nodes[b].id());
        self.nodes[a].manager.peer_connected(idb);
        self.nodes[b].manager.peer_connected(ida);
    }

    /// Drops the connection between `a` and `b` (messages in flight lost).
    pub fn disconnect(&mut self, a: usize, b: usize) {
        if !self.links.get(&(a, b)).is_some_and(|l| l.up) {
            return;
        }
        for key in [(a, b), (b, a)] {
            let link = self.links.entry(key).or_default();
            link.up = false;
            link.queue.clear();
        }
        let (ida, idb) = (self.nodes[a].id(), self.nodes[b].id());
        self.nodes[a].manager.peer_disconnected(idb);
        self.nodes[b].manager.peer_disconnected(ida);
    }

    /// The links between channel peers (`a < b`).
    pub fn peer_pairs(&self) -> Vec<(usize, usize)> {
        self.links.keys().filter(|(a, b)| a < b).copied().collect()
    }

    /// Moves what every node produced (messages into link queues,
    /// broadcasts to the chain, writes into its in-flight lists).
    pub fn collect(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.nodes.len() {
            moved |= self.nodes[i].take_requests();
            while let Some(tx) = self.nodes[i].manager.poll_broadcast() {
                moved = true;
                self.broadcasters.entry(tx.compute_txid()).or_insert(i);
                let result = self.chain.submit_transaction(&tx);
                if self.trace {
                    let spends: Vec<_> = tx.input.iter().map(|i| i.previous_output).collect();
                    eprintln!("  node {i} broadcast {} spending {spends:?}: {result:?}", tx.compute_txid());
                }
            }
            while let Some((to, msg)) = self.nodes[i].manager.poll_message() {
                moved = true;
                let Some(j) = self.nodes.iter().position(|n| n.id() == to) else { continue };
                if let Some(link) = self.links.get_mut(&(i, j)).filter(|l| l.up) {
                    link.queue.push_back(msg);
                }
            }
        }
        moved
    }

    /// Delivers the next message from `from` to `to`. Returns whether there
    /// was one.
    pub fn deliver_one(&mut self, from: usize, to: usize) -> bool {
        self.collect();
        let Some(msg) = self.links.get_mut(&(from, to)).and_then(|l| l.queue.pop_front()) else {
            return false;
        };
        let id = self.nodes[from].id();
        // A refused message has already been answered by the channel.
        let _ = self.nodes[to].manager.handle_message(id, msg);
        self.collect();
        true
    }

    /// Delivers every queued message until none is left.
    pub fn deliver_all(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..100_000 {
            self.collect();
            let keys: Vec<(usize, usize)> =
                self.links.iter().filter(|(_, l)| !l.queue.is_empty()).map(|(k, _)| *k).collect();
            if keys.is_empty() {
                return moved;
            }
            for (a, b) in keys {
                moved |= self.deliver_one(a, b);
            }
        }
        moved
    }

    /// The user of `i` handles every event (claiming what is claimable, or
    /// refusing it when `refuse`), or only looks at them (`handle ==
    /// false`: it will see them again after a crash).
    pub fn user(&mut self, i: usize, handle: bool, refuse: bool) -> bool {
        let mut moved = false;
        // What is new is delivered (and checked: I5)...
        while let Some((_, event)) = self.nodes[i].manager.next_event() {
            moved = true;
            if is_outcome(&event) && self.nodes[i].user.acknowledged.contains(&event) {
                self.violations.push(format!("node {i}: an acknowledged event came back: {event:?}"));
            }
            if self.trace {
                eprintln!("  node {i} delivered {event:?}");
            }
            self.nodes[i].user.delivered.push(event);
        }
        if !handle {
            return moved;
        }
        // ...and everything delivered and not handled yet is handled.
        for (id, event) in self.nodes[i].manager.unhandled_events() {
            moved = true;
            if let Event::PaymentClaimable { purpose, payment_hash, .. } = &event {
                if refuse {
                    self.nodes[i].manager.fail_htlc_backwards(payment_hash);
                } else {
                    // An error means it is no longer claimable (it timed
                    // out or was refused), which is allowed.
                    let _ = self.nodes[i].manager.claim_funds(purpose.preimage());
                }
            }
            // The acknowledgement is durable once the writes handling the
            // event queued are (with the older writes of their channels,
            // which complete first). Handling that queued none waits for
            // every write in flight, to be safe.
            self.nodes[i].take_requests();
            let before = self.nodes[i].pending_tokens();
            self.nodes[i].manager.event_handled(id);
            if self.trace {
                eprintln!("  node {i} handled {event:?}");
            }
            let node = &mut self.nodes[i];
            node.take_requests();
            let all = node.pending_tokens();
            let queued: BTreeSet<u64> = all.difference(&before).copied().collect();
            let tokens = if queued.is_empty() { all } else { queued };
            if tokens.is_empty() {
                node.user.acknowledged.push(event);
            } else {
                node.user.acking.push((event, tokens));
            }
        }
        moved
    }

    /// Mines `n` blocks and feeds them to every node.
    pub fn mine(&mut self, n: u32) {
        self.collect();
        for _ in 0..n {
            self.chain.mine(1, &self.miner.address()).expect("mine");
            let height = self.chain.height();
            let hash = self.chain.block_hash(height).expect("chain").expect("just mined");
            let block = self.chain.block(&hash).expect("chain").expect("just mined");
            if self.trace {
                let txids: Vec<_> = block.txdata.iter().skip(1).map(|t| t.compute_txid()).collect();
                eprintln!("  block {height}: {txids:?}");
            }
            for node in &mut self.nodes {
                node.manager.block_connected(height, &block.txdata);
                node.seen_height = height;
                node.take_requests();
                if node.in_flight.is_empty() {
                    node.durable_height = height;
                }
            }
            self.collect();
            self.fund_fee_needs();
        }
    }

    /// A minute passes.
    pub fn tick(&mut self) {
        self.now_secs += 60;
        for node in &mut self.nodes {
            node.manager.timer_tick(self.now_secs);
        }
    }

    /// `i` crashes: writes in flight (all of them, or the newest
    /// [`World::pending_percent`] of each channel's, the rest completing
    /// first) and acknowledgements not yet durable are lost, and it is
    /// rebuilt from its durable image alone.
    pub fn crash(&mut self, i: usize) {
        let peers: Vec<usize> = self
            .peer_pairs()
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
        let was_up: Vec<usize> =
            peers.iter().copied().filter(|p| self.links.get(&(i, *p)).is_some_and(|l| l.up)).collect();
        for p in &peers {
            self.disconnect(i, *p);
        }
        let height = self.chain.height();
        let now = self.now_secs;
        let node = &mut self.nodes[i];
        if self.pending_percent < 100 {
            node.complete_all_but_newest(self.pending_percent);
        }
        node.in_flight.clear();
        node.record_writes.clear();
        node.user.acking.clear();
        node.stalled = None;
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
            .filter_map(|(_, v)| PaymentRecord::from_bytes(v).ok())
            .collect();
        let (cm, _torn) = ChainMonitor::load(node.config.chain_monitor.clone(), monitors)
            .expect("the durable image always loads (writes are atomic)");
        let from = node.durable_height.min(height);
        node.manager = ChannelManager::from_monitors(
            node.config.clone(),
            SimNode::keys(node.seed, node.restarts),
            cm,
            records,
            from,
            now,
        );
        // The blocks whose effects were not all durable are followed again.
        for h in from + 1..=height {
            let hash = self.chain.block_hash(h).expect("chain").expect("active");
            let block = self.chain.block(&hash).expect("chain").expect("known");
            self.nodes[i].manager.block_connected(h, &block.txdata);
        }
        let node = &mut self.nodes[i];
        node.seen_height = height;
        node.take_requests();
        if node.in_flight.is_empty() {
            node.durable_height = height;
        }
        // The restarted node reconnects to the peers it was connected to.
        for p in was_up {
            self.connect(i, p);
        }
    }

    /// `node`'s disk lags on one open channel (the `pick`-th of those with
    /// HTLCs, or of all if none has any): for `rounds` rounds everything
    /// else moves (the other writes complete, but those of a channel an
    /// earlier `stall` held back; messages are delivered, users handle
    /// their events, time passes), then `node` crashes with that channel's
    /// writes still in flight. The window a slow disk region opens: what
    /// depends on the lagging writes must not have been released by the
    /// others.
    pub fn lag(&mut self, node: usize, pick: usize, rounds: usize) {
        // A lag matters where something is under way: the channels with
        // HTLCs, if any.
        let open = self.nodes[node].manager.list_channels();
        let busy: Vec<ChannelId> =
            open.iter().filter(|c| c.pending_htlcs > 0).map(|c| c.channel_id).collect();
        let mut channels =
            if busy.is_empty() { open.iter().map(|c| c.channel_id).collect::<Vec<_>>() } else { busy };
        channels.sort();
        let lagging = (!channels.is_empty()).then(|| channels[pick % channels.len()]);
        self.nodes[node].stalled = lagging;
        for round in 0..rounds {
            if round % 2 == 1 {
                self.tick();
            }
            self.collect();
            for n in &mut self.nodes {
                while n.complete(0) {}
            }
            self.deliver_all();
            for i in 0..self.nodes.len() {
                self.user(i, true, false);
            }
            self.collect();
        }
        self.crash(node);
    }

    /// Node `i`'s balance over its open channels.
    pub fn balance(&self, i: usize) -> u64 {
        self.nodes[i].manager.list_channels().iter().map(|c| c.balance_msat).sum()
    }

    /// Everything moves until quiet: links up, writes complete, messages
    /// delivered, users handle events, time passes.
    pub fn settle(&mut self) {
        for (a, b) in self.all_pairs() {
            self.connect(a, b);
        }
        // Quiet means nothing moved for long enough that every timer
        // (forward waits, stalled retries, MPP timeouts) has fired.
        let mut quiet = 0;
        for round in 0..600 {
            if round % 2 == 1 {
                self.tick();
            }
            let moved = self.settle_round();
            quiet = if moved { 0 } else { quiet + 1 };
            // HTLCs waiting for a closed channel's outcome wait for blocks.
            if quiet >= 12 && (!self.htlcs_pending() || self.enforcing()) {
                return;
            }
        }
    }

    /// `n` rounds of everything but blocks, with a tick every other one.
    pub fn settle_rounds(&mut self, n: usize) {
        for round in 0..n {
            if round % 2 == 1 {
                self.tick();
            }
            self.settle_round();
        }
    }

    /// Writes complete, messages are delivered, users handle their events.
    fn settle_round(&mut self) -> bool {
        let mut moved = self.collect();
        for i in 0..self.nodes.len() {
            moved |= self.nodes[i].complete_all();
        }
        moved |= self.deliver_all();
        for i in 0..self.nodes.len() {
            moved |= self.user(i, true, false);
        }
        moved | self.collect()
    }

    fn all_pairs(&self) -> Vec<(usize, usize)> {
        (0..self.nodes.len().saturating_sub(1)).map(|i| (i, i + 1)).collect()
    }

    /// Whether any open channel still holds an HTLC.
    pub fn htlcs_pending(&self) -> bool {
        self.nodes.iter().any(|n| {
            n.manager
                .chain_monitor()
                .monitors()
                .any(|m| !m.is_closed() && !m.channel_snapshot().ledger.htlcs.is_empty())
        })
    }

    /// Opens a channel from `a` to `b` funded by the coinbase at `coin`.
    fn open(&mut self, a: usize, b: usize, coin: u32, anchors: bool) -> ChannelId {
        let idb = self.nodes[b].id();
        let temp =
            self.nodes[a].manager.open_channel(idb, 1_000_000, 500_000_000, anchors).expect("open_channel");
        self.settle_setup();
        let (script, value) =
            self.nodes[a]
                .manager
                .unhandled_events()
                .into_iter()
                .find_map(|(_, e)| match e {
                    Event::FundingGenerationReady {
                        temporary_channel_id, script_pubkey, value_sat, ..
                    } if temporary_channel_id == temp => Some((script_pubkey, value_sat)),
                    _ => None,
                })
                .expect("funding requested");
        let key = coin_key(a);
        let tx = funding_spend(&key, &coinbase_coin(&self.chain, coin), script, value);
        let outpoint = OutPoint { txid: tx.compute_txid(), vout: 0 };
        self.fundings.push(Funding { outpoint, value_sat: value, funder: a, fundee: b });
        let id = self.nodes[a].manager.funding_transaction_generated(temp, tx).expect("funding");
        self.settle_setup();
        self.mine(6);
        self.settle_setup();
        id
    }

    fn settle_setup(&mut self) {
        for _ in 0..50 {
            let mut moved = self.collect();
            for i in 0..self.nodes.len() {
                moved |= self.nodes[i].complete_all();
            }
            moved |= self.deliver_all();
            if !moved {
                break;
            }
        }
    }
}
