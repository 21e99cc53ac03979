//! The harness of the LDK interoperability tests: one embedded regtest
//! chain, Vigil [`Node`]s each listening on loopback TCP, and in-process
//! LDK nodes ([`ldk::LdkNode`]) that connect to them (directly, or through
//! a [`relay::Relay`] a test can cut).
//!
//! Nodes are named by [`Who`]: `Who::Vigil(i)` is `vigils[i]`,
//! `Who::Ldk(i)` is `ldks[i]`. [`Harness::new`] is the common case: one of
//! each, connected; [`Harness::with_nodes`] builds any number, unconnected,
//! and [`Harness::connect`] joins an LDK node to a Vigil node
//! ([`Harness::connect_ldks`]: two LDK nodes). LDK nodes accept every
//! `OpenChannelRequest` as it arrives (for configurations that accept
//! inbound channels manually, as anchor channels need).
//!
//! Vocabulary: [`Harness::step`] (one polling round of every node),
//! [`Harness::settle`] (step until quiet), [`Harness::wait_vigil_at`] /
//! [`Harness::wait_ldk_at`] (step until an event arrives at a node, and
//! take it; `wait_vigil` / `wait_ldk` for node 0), [`Harness::mine`] (mine
//! and feed every node), [`Harness::open`] (a channel to `channel_ready`
//! on both sides), [`Harness::closures`] (every `ChannelClosed` not taken)
//! and [`Harness::report`] (what every node looks like, for failures).

pub mod ldk;
pub mod pay;
pub mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, Txid};
use lightning::events::Event as LdkEvent;
use lightning::ln::types::ChannelId;
use lightning::util::config::UserConfig;
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{ChainSource, RegtestChain, SystemClock};
use vigil_core::manager::{Event as VigilEvent, ManagerConfig};
use vigil_node::Node;
use vigil_store::MemoryStore;

use ldk::LdkNode;
use relay::Relay;

/// How long a wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A node of the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// `vigils[i]`.
    Vigil(usize),
    /// `ldks[i]`.
    Ldk(usize),
}

/// Every node on one chain.
pub struct Harness {
    /// The chain.
    pub chain: Arc<RegtestChain>,
    /// The Vigil nodes.
    pub vigils: Vec<Node>,
    /// The LDK nodes.
    pub ldks: Vec<LdkNode>,
    /// Per Vigil node: events delivered (and handled), not taken by a wait.
    pub vigil_events: Vec<Vec<VigilEvent>>,
    /// Per LDK node: events delivered, not taken by a wait.
    pub ldk_events: Vec<Vec<LdkEvent>>,
    /// Where each Vigil node listens.
    pub vigil_addrs: Vec<SocketAddr>,
    miner: TestKey,
    /// Mature coinbase heights each node can fund from.
    coins: Vec<(Who, u32)>,
}

fn key_of(who: Who) -> TestKey {
    let n = |i: usize| u8::try_from(i).expect("a handful of nodes");
    match who {
        Who::Ldk(i) => TestKey::new(60 + 2 * n(i)),
        Who::Vigil(i) => TestKey::new(61 + 2 * n(i)),
    }
}

fn seed_of(who: Who) -> [u8; 32] {
    let n = |i: usize| u8::try_from(i).expect("a handful of nodes");
    match who {
        Who::Vigil(i) => [7 + 16 * n(i); 32],
        Who::Ldk(i) => [8 + 16 * n(i); 32],
    }
}

/// An LDK node configured with `manually_accept_inbound_channels` (needed
/// for inbound anchor channels) accepts every channel it is offered.
fn accept_channel_request(node: &LdkNode, event: &LdkEvent) {
    if let LdkEvent::OpenChannelRequest { temporary_channel_id, counterparty_node_id, .. } = event {
        node.manager
            .accept_inbound_channel(temporary_channel_id, counterparty_node_id, 43, None)
            .unwrap_or_else(|e| panic!("LDK accept_inbound_channel: {e:?}"));
    }
}

impl Harness {
    /// One Vigil node and one LDK node (default configurations), connected.
    pub async fn new() -> Harness {
        let mut h = Harness::with_nodes(vec![ManagerConfig::default()], vec![LdkNode::config()]).await;
        h.connect(0, 0).await;
        h
    }

    /// A chain with four mature coins per node, a Vigil node per config
    /// (each listening on loopback) and an LDK node per config, not
    /// connected.
    pub async fn with_nodes(vigil_configs: Vec<ManagerConfig>, ldk_configs: Vec<UserConfig>) -> Harness {
        let chain = Arc::new(RegtestChain::in_memory(Arc::new(SystemClock)));
        let miner = TestKey::new(99);
        let who: Vec<Who> =
            (0..vigil_configs.len()).map(Who::Vigil).chain((0..ldk_configs.len()).map(Who::Ldk)).collect();
        let mut coins = Vec::new();
        for w in who {
            chain.mine(4, &key_of(w).address()).expect("mine");
            let tip = chain.height();
            coins.extend((tip - 3..=tip).map(|h| (w, h)));
        }
        chain.mine(101, &miner.address()).expect("mine");
        let mut vigils = Vec::new();
        let mut vigil_addrs = Vec::new();
        for (i, config) in vigil_configs.into_iter().enumerate() {
            let node =
                Node::open(seed_of(Who::Vigil(i)), config, Arc::new(MemoryStore::new()), chain.clone())
                    .expect("the Vigil node starts");
            let addr = node.listen("127.0.0.1:0".parse().expect("an address")).await.expect("Vigil listens");
            vigils.push(node);
            vigil_addrs.push(addr);
        }
        let ldks: Vec<LdkNode> = ldk_configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| LdkNode::new(seed_of(Who::Ldk(i)), chain.clone(), config))
            .collect();
        Harness {
            chain,
            vigil_events: vigils.iter().map(|_| Vec::new()).collect(),
            ldk_events: ldks.iter().map(|_| Vec::new()).collect(),
            vigils,
            ldks,
            vigil_addrs,
            miner,
            coins,
        }
    }

    /// Vigil node 0.
    pub fn vigil(&self) -> &Node {
        &self.vigils[0]
    }

    /// LDK node 0.
    pub fn ldk(&self) -> &LdkNode {
        &self.ldks[0]
    }

    /// A node's id.
    pub fn node_id(&self, who: Who) -> PublicKey {
        match who {
            Who::Vigil(i) => self.vigils[i].node_id(),
            Who::Ldk(i) => self.ldks[i].node_id(),
        }
    }

    /// LDK node `ldk` connects to Vigil node `vigil`; returns once both
    /// have exchanged `init`.
    pub async fn connect(&mut self, ldk: usize, vigil: usize) {
        let addr = self.vigil_addrs[vigil];
        self.connect_at(ldk, vigil, addr).await;
    }

    /// As [`Harness::connect`], through a new relay (returned) the test can
    /// cut.
    pub async fn connect_via_relay(&mut self, ldk: usize, vigil: usize) -> Relay {
        let relay = Relay::start(self.vigil_addrs[vigil]).await;
        self.connect_at(ldk, vigil, relay.addr()).await;
        relay
    }

    /// LDK node `ldk` connects to Vigil node `vigil` at `addr` (its own
    /// address, or a relay's).
    pub async fn connect_at(&mut self, ldk: usize, vigil: usize, addr: SocketAddr) {
        let vigil_id = self.vigils[vigil].node_id();
        let ldk_id = self.ldks[ldk].node_id();
        self.ldks[ldk].connect(vigil_id, addr).await;
        self.wait_for("both sides connected", |h| {
            (h.vigils[vigil].is_connected(&ldk_id) && h.ldks[ldk].is_connected(&vigil_id)).then_some(())
        })
        .await;
    }

    /// LDK node `a` connects to LDK node `b` (which starts listening);
    /// returns once both have exchanged `init`.
    pub async fn connect_ldks(&mut self, a: usize, b: usize) {
        let addr = self.ldks[b].listen().await;
        let (a_id, b_id) = (self.ldks[a].node_id(), self.ldks[b].node_id());
        self.ldks[a].connect(b_id, addr).await;
        self.wait_for("both LDK nodes connected", |h| {
            (h.ldks[a].is_connected(&b_id) && h.ldks[b].is_connected(&a_id)).then_some(())
        })
        .await;
    }

    /// Waits until neither side sees the other connected.
    pub async fn wait_disconnected(&mut self, ldk: usize, vigil: usize) {
        let vigil_id = self.vigils[vigil].node_id();
        let ldk_id = self.ldks[ldk].node_id();
        self.wait_for("both sides disconnected", |h| {
            (!h.vigils[vigil].is_connected(&ldk_id) && !h.ldks[ldk].is_connected(&vigil_id)).then_some(())
        })
        .await;
    }

    /// One polling round: each Vigil node sends what is queued and its
    /// events are taken (and handled); each LDK node forwards, hands out its
    /// events and sends. Returns whether any event arrived.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        for (node, events) in self.vigils.iter().zip(&mut self.vigil_events) {
            node.process_events();
            while let Some((id, event)) = node.next_event() {
                node.event_handled(id);
                events.push(event);
                moved = true;
            }
        }
        for (node, events) in self.ldks.iter().zip(&mut self.ldk_events) {
            let new = node.poll();
            moved |= !new.is_empty();
            for event in &new {
                accept_channel_request(node, event);
            }
            events.extend(new);
        }
        for node in &self.vigils {
            node.process_events();
        }
        moved
    }

    fn fingerprint(&self) -> String {
        let vigil: Vec<_> = self.vigils.iter().map(|v| v.with_manager(|m| m.list_channels())).collect();
        let ldk: Vec<Vec<_>> = self
            .ldks
            .iter()
            .map(|l| {
                l.manager
                    .list_channels()
                    .into_iter()
                    .map(|c| {
                        (
                            c.channel_id,
                            c.is_channel_ready,
                            c.is_usable,
                            c.outbound_capacity_msat,
                            c.pending_inbound_htlcs.len(),
                            c.pending_outbound_htlcs.len(),
                            c.channel_shutdown_state,
                        )
                    })
                    .collect()
            })
            .collect();
        let mempool = self.chain.mempool().map(|m| m.len()).unwrap_or(0);
        format!("{vigil:?} {ldk:?} {mempool}")
    }

    /// Steps until nothing has changed for a while (10 rounds of 20 ms),
    /// or 5 s have passed.
    pub async fn settle(&mut self) {
        let start = Instant::now();
        let mut last = String::new();
        let mut quiet = 0;
        while quiet < 10 && start.elapsed() < Duration::from_secs(5) {
            let moved = self.step();
            let now = self.fingerprint();
            if moved || now != last {
                quiet = 0;
                last = now;
            } else {
                quiet += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Steps until `f` gives something, and returns it.
    ///
    /// # Panics
    ///
    /// After [`WAIT`], with a [`Harness::report`].
    pub async fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&mut Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            self.step();
            if let Some(t) = f(self) {
                return t;
            }
            if start.elapsed() > WAIT {
                panic!("timed out waiting for {what}\n{}", self.report());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for an event of Vigil node `i` matching `pred`, and takes it.
    pub async fn wait_vigil_at(
        &mut self,
        i: usize,
        what: &str,
        pred: impl Fn(&VigilEvent) -> bool,
    ) -> VigilEvent {
        self.wait_for(&format!("Vigil {i}: {what}"), |h| {
            let at = h.vigil_events[i].iter().position(&pred)?;
            Some(h.vigil_events[i].remove(at))
        })
        .await
    }

    /// Waits for an event of LDK node `i` matching `pred`, and takes it.
    pub async fn wait_ldk_at(&mut self, i: usize, what: &str, pred: impl Fn(&LdkEvent) -> bool) -> LdkEvent {
        self.wait_for(&format!("LDK {i}: {what}"), |h| {
            let at = h.ldk_events[i].iter().position(&pred)?;
            Some(h.ldk_events[i].remove(at))
        })
        .await
    }

    /// [`Harness::wait_vigil_at`] Vigil node 0.
    pub async fn wait_vigil(&mut self, what: &str, pred: impl Fn(&VigilEvent) -> bool) -> VigilEvent {
        self.wait_vigil_at(0, what, pred).await
    }

    /// [`Harness::wait_ldk_at`] LDK node 0.
    pub async fn wait_ldk(&mut self, what: &str, pred: impl Fn(&LdkEvent) -> bool) -> LdkEvent {
        self.wait_ldk_at(0, what, pred).await
    }

    /// Every `ChannelClosed` (of any node) delivered and not taken, in
    /// words: empty when no channel closed.
    pub fn closures(&self) -> Vec<String> {
        let vigil = self.vigil_events.iter().enumerate().flat_map(|(i, events)| {
            events
                .iter()
                .filter(|e| matches!(e, VigilEvent::ChannelClosed { .. }))
                .map(move |e| format!("Vigil {i}: {e:?}"))
        });
        let ldk = self.ldk_events.iter().enumerate().flat_map(|(i, events)| {
            events
                .iter()
                .filter(|e| matches!(e, LdkEvent::ChannelClosed { .. }))
                .map(move |e| format!("LDK {i}: {e:?}"))
        });
        vigil.chain(ldk).collect()
    }

    /// Mines `n` blocks (taking the mempool) and feeds each to every node.
    pub async fn mine(&mut self, n: u32) {
        for _ in 0..n {
            self.chain.mine(1, &self.miner.address()).expect("mine");
            for ldk in &self.ldks {
                ldk.sync();
            }
            for vigil in &self.vigils {
                vigil.sync_chain().expect("Vigil follows the chain");
            }
            self.step();
        }
        self.settle().await;
    }

    /// Whether `txid` is in the mempool.
    pub fn in_mempool(&self, txid: &Txid) -> bool {
        self.chain.mempool().expect("mempool").iter().any(|tx| tx.compute_txid() == *txid)
    }

    /// A signed transaction paying `value_sat` to `script` from a mature
    /// coinbase coin of `who`, with change back to `who`'s key.
    pub fn funding_tx(&mut self, who: Who, script: ScriptBuf, value_sat: u64) -> Transaction {
        let at = self.coins.iter().position(|(w, _)| *w == who).expect("a coin left for this node");
        let (_, height) = self.coins.remove(at);
        let key = key_of(who);
        let coin = coinbase_coin(&*self.chain, height);
        let change = coin.txout.value - Amount::from_sat(value_sat) - Amount::from_sat(1_000);
        spend_p2wpkh(
            &key,
            std::slice::from_ref(&coin),
            vec![
                TxOut { value: Amount::from_sat(value_sat), script_pubkey: script },
                TxOut { value: change, script_pubkey: key.p2wpkh() },
            ],
        )
    }

    /// Waits until `who` reports `channel_ready` for `channel_id` (by
    /// event).
    async fn ready_event(&mut self, who: Who, channel_id: ChannelId) {
        match who {
            Who::Ldk(i) => {
                self.wait_ldk_at(
                    i,
                    "ChannelReady",
                    |e| matches!(e, LdkEvent::ChannelReady { channel_id: c, .. } if *c == channel_id),
                )
                .await;
            }
            Who::Vigil(i) => {
                self.wait_vigil_at(
                    i,
                    "ChannelReady",
                    |e| matches!(e, VigilEvent::ChannelReady { channel_id: c, .. } if *c == channel_id),
                )
                .await;
            }
        }
    }

    /// Whether `who` can use `channel_id` now.
    pub fn usable(&self, who: Who, channel_id: ChannelId) -> bool {
        match who {
            Who::Vigil(i) => self.vigils[i]
                .with_manager(|m| m.list_channels())
                .iter()
                .any(|c| c.channel_id == channel_id && c.usable),
            Who::Ldk(i) => {
                self.ldks[i].manager.list_usable_channels().iter().any(|c| c.channel_id == channel_id)
            }
        }
    }

    /// `funder` opens a channel of `funding_sat` to `fundee` (connected,
    /// not both Vigil nodes), funds it, and both sides see it ready after
    /// six blocks. Returns its id.
    pub async fn open(&mut self, funder: Who, fundee: Who, funding_sat: u64, push_msat: u64) -> ChannelId {
        self.open_typed(funder, fundee, funding_sat, push_msat, false).await
    }

    /// As [`Harness::open`]. A Vigil funder asks for `option_anchors_zero_fee_htlc_tx` when
    /// `anchors` is set; an LDK funder proposes what its configuration
    /// says (`anchors` is then ignored).
    pub async fn open_typed(
        &mut self,
        funder: Who,
        fundee: Who,
        funding_sat: u64,
        push_msat: u64,
        anchors: bool,
    ) -> ChannelId {
        let peer = self.node_id(fundee);
        let channel_id = match (funder, fundee) {
            (Who::Ldk(l), _) => self.ldk_funds(l, peer, funding_sat, push_msat).await,
            (Who::Vigil(v), Who::Ldk(l)) => self.vigil_funds(v, l, funding_sat, push_msat, anchors).await,
            _ => panic!("the harness does not open channels between two Vigil nodes"),
        };
        self.mine(6).await;
        self.ready_event(funder, channel_id).await;
        self.ready_event(fundee, channel_id).await;
        self.wait_for("the channel usable on both sides", |h| {
            (h.usable(funder, channel_id) && h.usable(fundee, channel_id)).then_some(())
        })
        .await;
        channel_id
    }

    /// LDK node 0 opens a channel to Vigil node 0 ([`Harness::open`]).
    pub async fn ldk_opens(&mut self, funding_sat: u64, push_msat: u64) -> ChannelId {
        self.open(Who::Ldk(0), Who::Vigil(0), funding_sat, push_msat).await
    }

    /// Vigil node 0 opens a channel to LDK node 0 ([`Harness::open`]).
    pub async fn vigil_opens(&mut self, funding_sat: u64, push_msat: u64) -> ChannelId {
        self.open(Who::Vigil(0), Who::Ldk(0), funding_sat, push_msat).await
    }

    /// LDK node `l` opens and funds a channel to `peer`; returns
    /// once the funding transaction is in the mempool.
    async fn ldk_funds(&mut self, l: usize, peer: PublicKey, funding_sat: u64, push_msat: u64) -> ChannelId {
        self.ldks[l]
            .manager
            .create_channel(peer, funding_sat, push_msat, 42, None, None)
            .unwrap_or_else(|e| panic!("LDK create_channel: {e:?}"));
        let LdkEvent::FundingGenerationReady {
            temporary_channel_id,
            counterparty_node_id,
            channel_value_satoshis,
            output_script,
            ..
        } = self
            .wait_ldk_at(l, "FundingGenerationReady", |e| {
                matches!(e, LdkEvent::FundingGenerationReady { counterparty_node_id, .. } if *counterparty_node_id == peer)
            })
            .await
        else {
            unreachable!("matched above")
        };
        let tx = self.funding_tx(Who::Ldk(l), output_script, channel_value_satoshis);
        let txid = tx.compute_txid();
        self.ldks[l]
            .manager
            .funding_transaction_generated(temporary_channel_id, counterparty_node_id, tx)
            .unwrap_or_else(|e| panic!("LDK funding_transaction_generated: {e:?}"));
        let pending = self
            .wait_ldk_at(l, "ChannelPending", |e| {
                matches!(e, LdkEvent::ChannelPending { former_temporary_channel_id: Some(t), .. } if *t == temporary_channel_id)
            })
            .await;
        let LdkEvent::ChannelPending { channel_id, .. } = pending else { unreachable!("matched above") };
        self.wait_for("LDK's funding transaction in the mempool", |h| h.in_mempool(&txid).then_some(()))
            .await;
        channel_id
    }

    /// Vigil node `v` opens and funds a channel to LDK node `l`; returns
    /// once the funding transaction is in the mempool.
    async fn vigil_funds(
        &mut self,
        v: usize,
        l: usize,
        funding_sat: u64,
        push_msat: u64,
        anchors: bool,
    ) -> ChannelId {
        let ldk_id = self.ldks[l].node_id();
        let temp = self.vigils[v]
            .with_manager(|m| m.open_channel(ldk_id, funding_sat, push_msat, anchors))
            .unwrap_or_else(|e| panic!("Vigil open_channel: {e}"));
        let VigilEvent::FundingGenerationReady { script_pubkey, value_sat, .. } = self
            .wait_vigil_at(v, "FundingGenerationReady", |e| {
                matches!(e, VigilEvent::FundingGenerationReady { temporary_channel_id, .. } if *temporary_channel_id == temp)
            })
            .await
        else {
            unreachable!("matched above")
        };
        let tx = self.funding_tx(Who::Vigil(v), script_pubkey, value_sat);
        let txid = tx.compute_txid();
        let channel_id = self.vigils[v]
            .with_manager(|m| m.funding_transaction_generated(temp, tx))
            .unwrap_or_else(|e| panic!("Vigil funding_transaction_generated: {e}"));
        self.wait_for("Vigil's funding transaction in the mempool", |h| h.in_mempool(&txid).then_some(()))
            .await;
        channel_id
    }

    /// What every node looks like: for failure messages.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (i, vigil) in self.vigils.iter().enumerate() {
            out += &format!("== Vigil {i} ({})\n", vigil.node_id());
            out += &format!("last_error: {:?}\n", vigil.last_error());
            out += &format!("channels: {:#?}\n", vigil.with_manager(|m| m.list_channels()));
            out += &format!("events not taken: {:#?}\n", self.vigil_events[i]);
        }
        for (i, ldk) in self.ldks.iter().enumerate() {
            out += &format!("== LDK {i} ({})\n", ldk.node_id());
            let channels: Vec<_> = ldk
                .manager
                .list_channels()
                .into_iter()
                .map(|c| {
                    format!(
                        "{} peer={} ready={} usable={} out={} in={} htlcs in/out={}/{} shutdown={:?}",
                        c.channel_id,
                        c.counterparty.node_id,
                        c.is_channel_ready,
                        c.is_usable,
                        c.outbound_capacity_msat,
                        c.inbound_capacity_msat,
                        c.pending_inbound_htlcs.len(),
                        c.pending_outbound_htlcs.len(),
                        c.channel_shutdown_state
                    )
                })
                .collect();
            out += &format!("channels: {channels:#?}\n");
            out += &format!("events not taken: {:#?}\n", self.ldk_events[i]);
            out += &format!(
                "broadcasts: {:?}\n",
                ldk.broadcaster.results.lock().unwrap_or_else(|e| e.into_inner())
            );
            let monitors = ldk.persister.monitors.lock().unwrap_or_else(|e| e.into_inner()).len();
            out += &format!("monitors stored: {monitors}\n");
            out += &format!("warnings and errors: {:#?}\n", ldk.logger.warnings());
            out += "log tail:\n";
            for line in ldk.logger.tail(40) {
                out += &format!("  {line}\n");
            }
        }
        let mempool: Vec<Txid> =
            self.chain.mempool().unwrap_or_default().iter().map(Transaction::compute_txid).collect();
        out += &format!("mempool: {mempool:?}\n");
        out
    }
}
