//! Restart on the real stack: Vigil nodes on SQLite stores, talking over
//! loopback TCP, are killed at each stage of a payment and started again
//! from their store alone. The payment completes, no channel closes, and
//! each outcome is delivered until handled and never after.
//!
//! (The core's `manager_restart` tests crash nodes before every single
//! write; here the writes are synchronous, so the kill points are the
//! stages between messages and events.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Amount, TxOut};
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{RegtestChain, SystemClock};
use vigil_core::manager::{Event, ManagerConfig, PaymentId};
use vigil_node::Node;
use vigil_store::SqliteStore;

const SAT: u64 = 1000;
const WAIT: Duration = Duration::from_secs(10);

/// Vigil nodes on one chain, each with a store on disk.
struct Net {
    chain: Arc<RegtestChain>,
    nodes: Vec<Option<Node>>,
    addrs: Vec<SocketAddr>,
    dirs: Vec<tempfile::TempDir>,
    /// Every outcome each node's user handled, across restarts.
    handled: Vec<Vec<Event>>,
    miner: TestKey,
    coin_heights: Vec<u32>,
}

fn seed(i: usize) -> [u8; 32] {
    [40 + i as u8; 32]
}

impl Net {
    async fn new(n: usize) -> Net {
        let chain = Arc::new(RegtestChain::in_memory(Arc::new(SystemClock)));
        let mut coin_heights = Vec::new();
        for i in 0..n {
            chain.mine(2, &TestKey::new(70 + i as u8).address()).expect("mine");
            coin_heights.push(chain.height() - 1);
        }
        let miner = TestKey::new(99);
        chain.mine(101, &miner.address()).expect("mine");
        let mut net = Net {
            chain,
            nodes: Vec::new(),
            addrs: Vec::new(),
            dirs: Vec::new(),
            handled: vec![Vec::new(); n],
            miner,
            coin_heights,
        };
        for i in 0..n {
            net.dirs.push(tempfile::tempdir().expect("tempdir"));
            net.nodes.push(None);
            net.addrs.push("127.0.0.1:0".parse().expect("addr"));
            net.start(i).await;
        }
        net
    }

    fn path(&self, i: usize) -> PathBuf {
        self.dirs[i].path().join("vigil.sqlite")
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("the node is running")
    }

    /// Starts node `i` from its store (new on the first start).
    async fn start(&mut self, i: usize) {
        let store = Arc::new(SqliteStore::open(self.path(i)).expect("the store opens"));
        let node = Node::start(seed(i), ManagerConfig::default(), store, self.chain.clone())
            .expect("the node starts");
        node.sync_chain().expect("sync");
        self.addrs[i] = node.listen("127.0.0.1:0".parse().expect("addr")).await.expect("listen");
        self.nodes[i] = Some(node);
    }

    /// Kills node `i`: connections drop, nothing is flushed or closed.
    fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.stop();
        }
    }

    async fn connect(&self, a: usize, b: usize) {
        let id = self.node(b).node_id();
        self.node(a).connect(id, self.addrs[b]).await.expect("connect");
        let start = Instant::now();
        while !(self.node(a).is_connected(&id) && self.node(b).is_connected(&self.node(a).node_id())) {
            assert!(start.elapsed() < WAIT, "nodes {a} and {b} connect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls every running node once.
    fn step(&self) {
        for node in self.nodes.iter().flatten() {
            node.sync_chain().expect("sync");
            node.process_events();
        }
    }

    async fn settle(&self) {
        for _ in 0..30 {
            self.step();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for an event of node `i` matching `f`, handling every event
    /// before it. With `handle == false` the match is delivered but left
    /// unhandled (as a user who dies before handling it).
    async fn wait(&mut self, i: usize, handle: bool, f: impl Fn(&Event) -> bool) -> Event {
        let start = Instant::now();
        loop {
            self.step();
            while let Some((id, event)) = self.node(i).next_event() {
                if f(&event) {
                    if handle {
                        self.node(i).event_handled(id);
                        self.handled[i].push(event.clone());
                    }
                    return event;
                }
                self.node(i).event_handled(id);
                self.handled[i].push(event);
            }
            assert!(
                start.elapsed() < WAIT,
                "node {i} waited too long; last error {:?}",
                self.node(i).last_error()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn mine(&self, n: u32) {
        self.chain.mine(n, &self.miner.address()).expect("mine");
        self.settle().await;
    }

    /// Node `a` opens a channel to `b`, funded from its coin.
    async fn open(&mut self, a: usize, b: usize, sat: u64) {
        let peer = self.node(b).node_id();
        let temp = self.node(a).with_manager(|m| m.open_channel(peer, sat, 0, false)).expect("open");
        let (script, value) =
            match self.wait(a, true, |e| matches!(e, Event::FundingGenerationReady { .. })).await {
                Event::FundingGenerationReady { script_pubkey, value_sat, .. } => (script_pubkey, value_sat),
                _ => unreachable!("matched above"),
            };
        let key = TestKey::new(70 + a as u8);
        let coin = coinbase_coin(&*self.chain, self.coin_heights[a]);
        self.coin_heights[a] += 1;
        let change = coin.txout.value - Amount::from_sat(value) - Amount::from_sat(1_000);
        let tx = spend_p2wpkh(
            &key,
            std::slice::from_ref(&coin),
            vec![
                TxOut { value: Amount::from_sat(value), script_pubkey: script },
                TxOut { value: change, script_pubkey: key.p2wpkh() },
            ],
        );
        self.node(a).with_manager(|m| m.funding_transaction_generated(temp, tx)).expect("funding");
        self.settle().await;
        self.mine(6).await;
        self.wait(a, true, |e| matches!(e, Event::ChannelReady { .. })).await;
        self.wait(b, true, |e| matches!(e, Event::ChannelReady { .. })).await;
    }

    fn count(&self, i: usize, f: impl Fn(&Event) -> bool) -> usize {
        self.handled[i].iter().filter(|e| f(e)).count()
    }

    fn no_closes(&self) {
        for (i, h) in self.handled.iter().enumerate() {
            assert!(
                !h.iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
                "node {i} saw a close: {h:?}"
            );
        }
    }
}

/// A→B, with B killed while the payment waits for its claim, and again
/// after `PaymentClaimed` was delivered but not handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payee_killed_before_and_after_claiming() {
    let mut net = Net::new(2).await;
    net.connect(0, 1).await;
    net.open(0, 1, 1_000_000).await;
    let invoice =
        net.node(1).with_manager(|m| m.create_invoice(Some(50_000 * SAT), "t", 3600)).expect("invoice");
    let id = PaymentId([1; 32]);
    net.node(0).with_manager(|m| m.pay_invoice(&invoice, None, id)).expect("pay");
    net.wait(1, false, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    // Killed before claiming: the payment is offered again after restart.
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    let claimable = net.wait(1, true, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    let Event::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched") };
    net.node(1).with_manager(|m| m.claim_funds(purpose.preimage())).expect("claim");
    net.wait(1, false, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    // Killed with PaymentClaimed delivered, not handled: it comes back once.
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    net.wait(1, true, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id)).await;
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    net.settle().await;
    while let Some((eid, e)) = net.node(1).next_event() {
        assert!(!matches!(e, Event::PaymentClaimed { .. }), "an acknowledged PaymentClaimed never returns");
        net.node(1).event_handled(eid);
    }
    assert_eq!(net.count(1, |e| matches!(e, Event::PaymentClaimed { .. })), 1);
    assert_eq!(net.count(0, |e| matches!(e, Event::PaymentSent { .. })), 1);
    net.no_closes();
}

/// A→B→C with the forwarder killed after forwarding and before the claim
/// comes back, then the payer killed with `PaymentSent` unhandled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_and_payer_killed_mid_payment() {
    let mut net = Net::new(3).await;
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    net.open(0, 1, 1_000_000).await;
    net.open(1, 2, 1_000_000).await;
    let amount = 100_000 * SAT;
    let invoice = net.node(2).with_manager(|m| m.create_invoice(Some(amount), "t", 3600)).expect("invoice");
    let id = PaymentId([2; 32]);
    net.node(0).with_manager(|m| m.pay_invoice(&invoice, None, id)).expect("pay");
    let claimable = net.wait(2, true, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    // B forwarded; it dies before C's claim reaches it.
    net.kill(1);
    let Event::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched") };
    net.node(2).with_manager(|m| m.claim_funds(purpose.preimage())).expect("claim");
    net.wait(2, true, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    net.start(1).await;
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    let forwarded = net.wait(1, true, |e| matches!(e, Event::PaymentForwarded { .. })).await;
    let fee = ManagerConfig::default().forwarding.fee_msat(amount);
    assert!(matches!(forwarded, Event::PaymentForwarded { fee_earned_msat, .. } if fee_earned_msat == fee));
    net.wait(0, false, |e| matches!(e, Event::PaymentSent { .. })).await;
    net.kill(0);
    net.start(0).await;
    net.connect(0, 1).await;
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id)).await;
    for i in [0, 1] {
        net.kill(i);
        net.start(i).await;
    }
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    net.settle().await;
    for i in 0..3 {
        while let Some((eid, e)) = net.node(i).next_event() {
            assert!(
                !matches!(
                    e,
                    Event::PaymentSent { .. } | Event::PaymentForwarded { .. } | Event::PaymentClaimed { .. }
                ),
                "node {i}: an acknowledged outcome never returns: {e:?}"
            );
            net.node(i).event_handled(eid);
        }
    }
    assert_eq!(net.count(0, |e| matches!(e, Event::PaymentSent { .. })), 1);
    assert_eq!(net.count(1, |e| matches!(e, Event::PaymentForwarded { .. })), 1);
    net.no_closes();
}
