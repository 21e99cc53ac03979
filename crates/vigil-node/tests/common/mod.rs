//! The harness of the LDK interoperability tests: one embedded regtest
//! chain, a Vigil [`Node`] listening on loopback TCP, and an in-process LDK
//! node ([`ldk::LdkNode`]) connected to it.
//!
//! Vocabulary: [`Harness::new`] (chain with mature coins for both sides,
//! both nodes, connected), [`Harness::step`] (one polling round of both
//! sides), [`Harness::settle`] (step until quiet), [`Harness::wait_vigil`] /
//! [`Harness::wait_ldk`] (step until an event arrives, and take it),
//! [`Harness::mine`] (mine and feed both sides), [`Harness::ldk_opens`] /
//! [`Harness::vigil_opens`] (a channel to `channel_ready` on both sides),
//! and [`Harness::report`] (what both sides look like, for failures).

pub mod ldk;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, Txid};
use lightning::events::Event as LdkEvent;
use lightning::ln::types::ChannelId;
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{ChainSource, RegtestChain, SystemClock};
use vigil_core::manager::{Event as VigilEvent, ManagerConfig};
use vigil_node::Node;
use vigil_store::MemoryStore;

use ldk::LdkNode;

/// How long a wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which side funds a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Vigil node.
    Vigil,
    /// The LDK node.
    Ldk,
}

/// Both nodes on one chain.
pub struct Harness {
    /// The chain.
    pub chain: Arc<RegtestChain>,
    /// The Vigil node.
    pub vigil: Node,
    /// The LDK node.
    pub ldk: LdkNode,
    /// Vigil events delivered (and handled) and not taken by a wait yet.
    pub vigil_events: Vec<VigilEvent>,
    /// LDK events delivered and not taken by a wait yet.
    pub ldk_events: Vec<LdkEvent>,
    miner: TestKey,
    /// Mature coinbase heights each side can fund from.
    coins: Vec<(Side, u32)>,
}

fn key_of(side: Side) -> TestKey {
    match side {
        Side::Ldk => TestKey::new(60),
        Side::Vigil => TestKey::new(61),
    }
}

impl Harness {
    /// A chain with four mature coins per side, a Vigil node listening on
    /// loopback and an LDK node connected to it.
    pub async fn new() -> Harness {
        let chain = Arc::new(RegtestChain::in_memory(Arc::new(SystemClock)));
        let miner = TestKey::new(99);
        let mut coins = Vec::new();
        for side in [Side::Ldk, Side::Vigil] {
            chain.mine(4, &key_of(side).address()).expect("mine");
            let tip = chain.height();
            coins.extend((tip - 3..=tip).map(|h| (side, h)));
        }
        chain.mine(101, &miner.address()).expect("mine");
        let vigil =
            Node::start([7; 32], ManagerConfig::default(), Arc::new(MemoryStore::new()), chain.clone())
                .expect("the Vigil node starts");
        let ldk = LdkNode::new([8; 32], chain.clone(), LdkNode::config());
        let addr = vigil.listen("127.0.0.1:0".parse().expect("an address")).await.expect("Vigil listens");
        ldk.connect(vigil.node_id(), addr).await;
        let mut h =
            Harness { chain, vigil, ldk, vigil_events: Vec::new(), ldk_events: Vec::new(), miner, coins };
        let (vigil_id, ldk_id) = (h.vigil.node_id(), h.ldk.node_id());
        h.wait_for("both sides connected", |h| {
            (h.vigil.is_connected(&ldk_id) && h.ldk.is_connected(&vigil_id)).then_some(())
        })
        .await;
        h
    }

    /// One polling round: Vigil sends what is queued and its events are
    /// taken (and handled); LDK forwards, hands out its events and sends.
    /// Returns whether any event arrived.
    pub fn step(&mut self) -> bool {
        self.vigil.process_events();
        let mut moved = false;
        while let Some((id, event)) = self.vigil.next_event() {
            self.vigil.event_handled(id);
            self.vigil_events.push(event);
            moved = true;
        }
        let events = self.ldk.poll();
        moved |= !events.is_empty();
        self.ldk_events.extend(events);
        self.vigil.process_events();
        moved
    }

    fn fingerprint(&self) -> String {
        let vigil = self.vigil.with_manager(|m| m.list_channels());
        let ldk: Vec<_> = self
            .ldk
            .manager
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

    /// Waits for a Vigil event matching `pred`, and takes it.
    pub async fn wait_vigil(&mut self, what: &str, pred: impl Fn(&VigilEvent) -> bool) -> VigilEvent {
        self.wait_for(&format!("Vigil: {what}"), |h| {
            let at = h.vigil_events.iter().position(&pred)?;
            Some(h.vigil_events.remove(at))
        })
        .await
    }

    /// Waits for an LDK event matching `pred`, and takes it.
    pub async fn wait_ldk(&mut self, what: &str, pred: impl Fn(&LdkEvent) -> bool) -> LdkEvent {
        self.wait_for(&format!("LDK: {what}"), |h| {
            let at = h.ldk_events.iter().position(&pred)?;
            Some(h.ldk_events.remove(at))
        })
        .await
    }

    /// Mines `n` blocks (taking the mempool) and feeds each to both sides.
    pub async fn mine(&mut self, n: u32) {
        for _ in 0..n {
            self.chain.mine(1, &self.miner.address()).expect("mine");
            self.ldk.sync();
            self.vigil.sync_chain().expect("Vigil follows the chain");
            self.step();
        }
        self.settle().await;
    }

    /// Whether `txid` is in the mempool.
    pub fn in_mempool(&self, txid: &Txid) -> bool {
        self.chain.mempool().expect("mempool").iter().any(|tx| tx.compute_txid() == *txid)
    }

    /// A signed transaction paying `value_sat` to `script` from a mature
    /// coinbase coin of `side`, with change back to `side`'s key.
    pub fn funding_tx(&mut self, side: Side, script: ScriptBuf, value_sat: u64) -> Transaction {
        let at = self.coins.iter().position(|(s, _)| *s == side).expect("a coin left for this side");
        let (_, height) = self.coins.remove(at);
        let key = key_of(side);
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

    /// Waits until both sides report `channel_ready` for `channel_id` (by
    /// event) and can use it.
    async fn both_ready(&mut self, channel_id: ChannelId) {
        self.wait_ldk(
            "ChannelReady",
            |e| matches!(e, LdkEvent::ChannelReady { channel_id: c, .. } if *c == channel_id),
        )
        .await;
        self.wait_vigil(
            "ChannelReady",
            |e| matches!(e, VigilEvent::ChannelReady { channel_id: c, .. } if *c == channel_id),
        )
        .await;
        self.wait_for("the channel usable on both sides", |h| {
            let vigil = h
                .vigil
                .with_manager(|m| m.list_channels())
                .iter()
                .any(|c| c.channel_id == channel_id && c.usable);
            let ldk = h.ldk.manager.list_usable_channels().iter().any(|c| c.channel_id == channel_id);
            (vigil && ldk).then_some(())
        })
        .await;
    }

    /// LDK opens a channel of `funding_sat` to Vigil, funds it, and both
    /// sides see it ready after six blocks. Returns its id.
    pub async fn ldk_opens(&mut self, funding_sat: u64, push_msat: u64) -> ChannelId {
        let vigil_id = self.vigil.node_id();
        self.ldk
            .manager
            .create_channel(vigil_id, funding_sat, push_msat, 42, None, None)
            .unwrap_or_else(|e| panic!("LDK create_channel: {e:?}"));
        let LdkEvent::FundingGenerationReady {
            temporary_channel_id,
            counterparty_node_id,
            channel_value_satoshis,
            output_script,
            ..
        } = self
            .wait_ldk("FundingGenerationReady", |e| matches!(e, LdkEvent::FundingGenerationReady { .. }))
            .await
        else {
            unreachable!("matched above")
        };
        let tx = self.funding_tx(Side::Ldk, output_script, channel_value_satoshis);
        let txid = tx.compute_txid();
        self.ldk
            .manager
            .funding_transaction_generated(temporary_channel_id, counterparty_node_id, tx)
            .unwrap_or_else(|e| panic!("LDK funding_transaction_generated: {e:?}"));
        let channel_id =
            match self.wait_ldk("ChannelPending", |e| matches!(e, LdkEvent::ChannelPending { .. })).await {
                LdkEvent::ChannelPending { channel_id, .. } => channel_id,
                _ => unreachable!("matched above"),
            };
        self.wait_for("LDK's funding transaction in the mempool", |h| h.in_mempool(&txid).then_some(()))
            .await;
        self.mine(6).await;
        self.both_ready(channel_id).await;
        channel_id
    }

    /// Vigil opens a channel of `funding_sat` to LDK, funds it, and both
    /// sides see it ready after six blocks. Returns its id.
    pub async fn vigil_opens(&mut self, funding_sat: u64, push_msat: u64) -> ChannelId {
        let ldk_id = self.ldk.node_id();
        let temp = self
            .vigil
            .with_manager(|m| m.open_channel(ldk_id, funding_sat, push_msat, false))
            .unwrap_or_else(|e| panic!("Vigil open_channel: {e}"));
        let VigilEvent::FundingGenerationReady { script_pubkey, value_sat, .. } = self
            .wait_vigil("FundingGenerationReady", |e| {
                matches!(e, VigilEvent::FundingGenerationReady { temporary_channel_id, .. } if *temporary_channel_id == temp)
            })
            .await
        else {
            unreachable!("matched above")
        };
        let tx = self.funding_tx(Side::Vigil, script_pubkey, value_sat);
        let txid = tx.compute_txid();
        let channel_id = self
            .vigil
            .with_manager(|m| m.funding_transaction_generated(temp, tx))
            .unwrap_or_else(|e| panic!("Vigil funding_transaction_generated: {e}"));
        self.wait_for("Vigil's funding transaction in the mempool", |h| h.in_mempool(&txid).then_some(()))
            .await;
        self.mine(6).await;
        self.both_ready(channel_id).await;
        channel_id
    }

    /// What both sides look like: for failure messages.
    pub fn report(&self) -> String {
        let mut out = String::new();
        out += &format!("Vigil last_error: {:?}\n", self.vigil.last_error());
        out += &format!("Vigil channels: {:#?}\n", self.vigil.with_manager(|m| m.list_channels()));
        out += &format!("Vigil events not taken: {:#?}\n", self.vigil_events);
        let ldk: Vec<_> = self
            .ldk
            .manager
            .list_channels()
            .into_iter()
            .map(|c| {
                format!(
                    "{} ready={} usable={} out={} in={} htlcs in/out={}/{} shutdown={:?}",
                    c.channel_id,
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
        out += &format!("LDK channels: {ldk:#?}\n");
        out += &format!("LDK events not taken: {:#?}\n", self.ldk_events);
        out += &format!(
            "LDK broadcasts: {:?}\n",
            self.ldk.broadcaster.results.lock().unwrap_or_else(|e| e.into_inner())
        );
        let mempool: Vec<Txid> =
            self.chain.mempool().unwrap_or_default().iter().map(Transaction::compute_txid).collect();
        out += &format!("mempool: {mempool:?}\n");
        let monitors = self.ldk.persister.monitors.lock().unwrap_or_else(|e| e.into_inner()).len();
        out += &format!("LDK monitors stored: {monitors}\n");
        out += &format!("LDK warnings and errors: {:#?}\n", self.ldk.logger.warnings());
        out += "LDK log tail:\n";
        for line in self.ldk.logger.tail(60) {
            out += &format!("  {line}\n");
        }
        out
    }
}
