//! A network of nodes of one implementation in one thread: messages pass
//! straight from one node's `MessageSendEvent`s to the other node's
//! `ChannelMessageHandler` (no sockets, no encryption, as in LDK's own
//! `bench_two_sends`), blocks come from one embedded regtest chain, and
//! funding transactions spend real coinbase outputs.
//!
//! Both implementations are driven through LDK's handler traits: LDK's
//! `ChannelManager` directly, Vigil through `vigil_node::wire::WireHandler`
//! (the adapter its daemon runs) over its `Runtime`, which writes each
//! round's monitor updates and records as one store transaction.

use std::collections::VecDeque;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Block, ScriptBuf, Transaction};
use lightning::ln::msgs::{self, ChannelMessageHandler, MessageSendEvent};
use lightning::types::payment::PaymentHash;
use lightning_invoice::Bolt11Invoice;
use vigil_chain::testkit::{coinbase_coin, funding_spend, TestKey};
use vigil_chain::{ChainSource, ManualClock, RegtestChain};

use crate::store::{CountingStore, StoreCounts};

/// What the harness needs from a node, beyond its message handler.
pub trait BenchNode {
    /// The node's message handler.
    fn handler(&self) -> &dyn ChannelMessageHandler;
    /// Its node id.
    fn node_id(&self) -> PublicKey;
    /// Opens a channel of `sat` to `peer`, pushing `push_msat`.
    fn open_channel(&mut self, peer: PublicKey, sat: u64, push_msat: u64);
    /// The funding output a channel being opened waits for, once.
    fn funding_needed(&mut self) -> Option<(ScriptBuf, u64)>;
    /// Hands over the funding transaction of the channel being opened.
    fn fund(&mut self, tx: Transaction);
    /// A block at `height`.
    fn block_connected(&mut self, block: &Block, height: u32);
    /// An invoice for `amount_msat`.
    fn invoice(&mut self, amount_msat: u64) -> Bolt11Invoice;
    /// Starts paying `invoice`.
    ///
    /// # Errors
    ///
    /// The node refused to start the payment.
    fn pay(&mut self, invoice: &Bolt11Invoice) -> Result<(), String>;
    /// Background work: handles events (claims what is claimable,
    /// acknowledges the rest, or leaves outcome events unacknowledged when
    /// `ack_outcomes` is false) and forwards pending HTLCs. Returns whether
    /// anything happened.
    fn process(&mut self, ack_outcomes: bool) -> bool;
    /// Payments that finished since the last call: hash, and whether sent.
    fn take_outcomes(&mut self) -> Vec<(PaymentHash, bool)>;
    /// Channels usable for payments.
    fn usable_channels(&self) -> usize;
    /// The node's store.
    fn store(&self) -> &Arc<CountingStore>;
    /// A new node from `seed`, with an empty `store`.
    fn create(seed: u8, chain: Arc<RegtestChain>, store: Arc<CountingStore>) -> Self
    where
        Self: Sized;
    /// The same node started again from its store alone (the running one
    /// is left alone), and how long the start took until it could forward.
    ///
    /// # Panics
    ///
    /// If the store does not load: the harness wrote it itself.
    fn restart(&self) -> (Self, std::time::Duration)
    where
        Self: Sized;
}

/// Nodes in a line (0 – 1 – 2 …), one implementation.
pub struct Net<N: BenchNode> {
    /// The nodes.
    pub nodes: Vec<N>,
    /// The chain they share.
    pub chain: Arc<RegtestChain>,
    miner: TestKey,
    queue: VecDeque<(usize, MessageSendEvent)>,
    coinbases: VecDeque<u32>,
}

impl<N: BenchNode> Net<N> {
    /// A chain with `coins` mature coinbases to fund channels from.
    pub fn chain(coins: u32) -> Arc<RegtestChain> {
        let chain = Arc::new(RegtestChain::in_memory(Arc::new(ManualClock::new(1_700_000_000))));
        chain.mine(coins, &TestKey::new(1).address()).expect("mine on the in-memory chain");
        chain.mine(100, &TestKey::new(2).address()).expect("mine on the in-memory chain");
        chain
    }

    /// Nodes made by `make` on `chain`, connected in a line.
    pub fn new(chain: Arc<RegtestChain>, nodes: Vec<N>) -> Self {
        let coinbases = (1..=chain.height().saturating_sub(100)).collect();
        let net = Net { nodes, chain, miner: TestKey::new(2), queue: VecDeque::new(), coinbases };
        for i in 0..net.nodes.len().saturating_sub(1) {
            net.connect(i, i + 1);
        }
        net
    }

    /// Tells `a` and `b` they are connected.
    pub fn connect(&self, a: usize, b: usize) {
        let (ha, hb) = (self.nodes[a].handler(), self.nodes[b].handler());
        let (ida, idb) = (self.nodes[a].node_id(), self.nodes[b].node_id());
        let init = |h: &dyn ChannelMessageHandler, id| msgs::Init {
            features: h.provided_init_features(id),
            networks: None,
            remote_network_address: None,
        };
        ha.peer_connected(idb, &init(hb, ida), true).expect("a peer of the same implementation is accepted");
        hb.peer_connected(ida, &init(ha, idb), false).expect("a peer of the same implementation is accepted");
    }

    /// Tells `i`'s peers it went away, and it that they did.
    pub fn disconnect(&mut self, i: usize) {
        self.queue.retain(|(from, e)| *from != i && target(e) != Some(self.nodes[i].node_id()));
        let id = self.nodes[i].node_id();
        for j in [i.wrapping_sub(1), i + 1] {
            if let Some(peer) = self.nodes.get(j) {
                peer.handler().peer_disconnected(id);
                self.nodes[i].handler().peer_disconnected(peer.node_id());
            }
        }
    }

    fn index_of(&self, id: PublicKey) -> Option<usize> {
        self.nodes.iter().position(|n| n.node_id() == id)
    }

    /// Collects every node's outgoing messages. Returns whether there
    /// were any.
    fn collect(&mut self) -> bool {
        let mut moved = false;
        for (i, node) in self.nodes.iter().enumerate() {
            for event in node.handler().get_and_clear_pending_msg_events() {
                moved = true;
                self.queue.push_back((i, event));
            }
        }
        moved
    }

    /// One pass: every message queued now is delivered once (what the
    /// receivers answer waits for the next pass), then each node handles
    /// its events. Returns whether anything moved.
    pub fn step(&mut self, ack_outcomes: bool) -> bool {
        let mut moved = self.collect();
        let queued: Vec<(usize, MessageSendEvent)> = self.queue.drain(..).collect();
        for (from, event) in queued {
            moved = true;
            let Some(to) = target(&event).and_then(|id| self.index_of(id)) else { continue };
            deliver(self.nodes[to].handler(), self.nodes[from].node_id(), event);
            let answers = self.nodes[to].handler().get_and_clear_pending_msg_events();
            self.queue.extend(answers.into_iter().map(|e| (to, e)));
        }
        for node in &mut self.nodes {
            moved |= node.process(ack_outcomes);
        }
        moved
    }

    /// Steps until nothing moves. Returns whether anything did.
    pub fn run(&mut self, ack_outcomes: bool) -> bool {
        let mut moved = false;
        while self.step(ack_outcomes) {
            moved = true;
        }
        moved
    }

    /// Mines `n` blocks (with what is in the mempool) and feeds them to
    /// every node.
    pub fn mine(&mut self, n: u32) {
        for _ in 0..n {
            self.chain.mine(1, &self.miner.address()).expect("mine on the in-memory chain");
            let height = self.chain.height();
            let hash = self.chain.block_hash(height).expect("in-memory chain").expect("just mined");
            let block = self.chain.block(&hash).expect("in-memory chain").expect("just mined");
            for node in &mut self.nodes {
                node.block_connected(&block, height);
            }
            self.run(true);
        }
    }

    /// Opens `count` channels of `sat` from `a` to `a + 1`, half pushed,
    /// and waits until they are usable.
    pub fn open_channels(&mut self, a: usize, count: usize, sat: u64) {
        let peer = self.nodes[a + 1].node_id();
        let key = TestKey::new(1);
        let before = self.nodes[a].usable_channels();
        for k in 0..count {
            // LDK accepts at most 4 channels from one peer before earlier
            // ones are confirmed: open them in groups.
            if k > 0 && k % 4 == 0 {
                self.mine(6);
            }
            self.nodes[a].open_channel(peer, sat, sat * 1000 / 2);
            self.run(true);
            let (script, value) = self.nodes[a]
                .funding_needed()
                .expect("the channel asks for its funding after accept_channel");
            let height = self.coinbases.pop_front().expect("enough coinbases were mined for the channels");
            let tx = funding_spend(&key, &coinbase_coin(&*self.chain, height), script, value);
            self.nodes[a].fund(tx.clone());
            self.run(true);
            // The node broadcasts it too; one of the two submissions wins.
            let _ = self.chain.submit_transaction(&tx);
        }
        self.mine(6);
        self.run(true);
        assert_eq!(self.nodes[a].usable_channels(), before + count, "every channel opened is usable");
    }

    /// The store counts of every node.
    pub fn counts(&self) -> Vec<StoreCounts> {
        self.nodes.iter().map(|n| n.store().counts()).collect()
    }
}

/// The node a message goes to.
fn target(event: &MessageSendEvent) -> Option<PublicKey> {
    use MessageSendEvent as E;
    Some(*match event {
        E::SendAcceptChannel { node_id, .. }
        | E::SendOpenChannel { node_id, .. }
        | E::SendFundingCreated { node_id, .. }
        | E::SendFundingSigned { node_id, .. }
        | E::SendChannelReady { node_id, .. }
        | E::UpdateHTLCs { node_id, .. }
        | E::SendRevokeAndACK { node_id, .. }
        | E::SendShutdown { node_id, .. }
        | E::SendClosingSigned { node_id, .. }
        | E::SendChannelReestablish { node_id, .. }
        | E::SendChannelUpdate { node_id, .. }
        | E::HandleError { node_id, .. } => node_id,
        _ => return None,
    })
}

/// Hands one message to `to`'s handler.
fn deliver(to: &dyn ChannelMessageHandler, from: PublicKey, event: MessageSendEvent) {
    use MessageSendEvent as E;
    match event {
        E::SendAcceptChannel { msg, .. } => to.handle_accept_channel(from, &msg),
        E::SendOpenChannel { msg, .. } => to.handle_open_channel(from, &msg),
        E::SendFundingCreated { msg, .. } => to.handle_funding_created(from, &msg),
        E::SendFundingSigned { msg, .. } => to.handle_funding_signed(from, &msg),
        E::SendChannelReady { msg, .. } => to.handle_channel_ready(from, &msg),
        E::UpdateHTLCs { updates, channel_id, .. } => {
            for m in &updates.update_add_htlcs {
                to.handle_update_add_htlc(from, m);
            }
            for m in updates.update_fulfill_htlcs {
                to.handle_update_fulfill_htlc(from, m);
            }
            for m in &updates.update_fail_htlcs {
                to.handle_update_fail_htlc(from, m);
            }
            for m in &updates.update_fail_malformed_htlcs {
                to.handle_update_fail_malformed_htlc(from, m);
            }
            if let Some(m) = &updates.update_fee {
                to.handle_update_fee(from, m);
            }
            match updates.commitment_signed.len() {
                0 => {}
                1 => to.handle_commitment_signed(from, &updates.commitment_signed[0]),
                _ => to.handle_commitment_signed_batch(from, channel_id, updates.commitment_signed),
            }
        }
        E::SendRevokeAndACK { msg, .. } => to.handle_revoke_and_ack(from, &msg),
        E::SendShutdown { msg, .. } => to.handle_shutdown(from, &msg),
        E::SendClosingSigned { msg, .. } => to.handle_closing_signed(from, &msg),
        E::SendChannelReestablish { msg, .. } => to.handle_channel_reestablish(from, &msg),
        E::SendChannelUpdate { msg, .. } => to.handle_channel_update(from, &msg),
        E::HandleError { action, .. } => {
            if let msgs::ErrorAction::SendErrorMessage { msg }
            | msgs::ErrorAction::DisconnectPeer { msg: Some(msg) } = action
            {
                to.handle_error(from, &msg);
            }
        }
        _ => {}
    }
}
