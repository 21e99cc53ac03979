//! A network of Vigil nodes for the node's integration tests: each on its
//! own SQLite store, all on one embedded regtest chain, over loopback TCP.
//! Vocabulary: `Net::new`, `start`, `kill`, `connect`, `open`, `wait`,
//! `mine`, `settle`, `no_closes`, `fund_wallet`, `wallet_sat`. Each node
//! sweeps its on-chain claims to its own wallet.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Amount, TxOut};
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{RegtestChain, SystemClock};
use vigil_core::manager::{Event, ManagerConfig};
use vigil_node::Node;
use vigil_store::SqliteStore;

pub const SAT: u64 = 1000;
pub const WAIT: Duration = Duration::from_secs(10);

/// Vigil nodes on one chain, each with a store on disk.
pub struct Net {
    pub chain: Arc<RegtestChain>,
    pub nodes: Vec<Option<Node>>,
    pub addrs: Vec<SocketAddr>,
    dirs: Vec<tempfile::TempDir>,
    /// Every outcome each node's user handled, across restarts.
    pub handled: Vec<Vec<Event>>,
    pub miner: TestKey,
    coin_heights: Vec<u32>,
    config: ManagerConfig,
}

fn seed(i: usize) -> [u8; 32] {
    [40 + i as u8; 32]
}

impl Net {
    pub async fn new(n: usize) -> Net {
        Self::with_config(n, ManagerConfig::default()).await
    }

    /// `n` nodes, all with `config`.
    pub async fn with_config(n: usize, config: ManagerConfig) -> Net {
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
            config,
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

    /// Copies the store files of node `i` (which must be stopped) to a new
    /// directory: a backup.
    pub fn backup(&self, i: usize) -> tempfile::TempDir {
        assert!(self.nodes[i].is_none(), "back up a stopped node");
        // Connection tasks may hold the store a moment longer: wait until
        // SQLite closed it (its log checkpointed and gone), so the copy is
        // one consistent file.
        let wal = self.path(i).with_extension("sqlite-wal");
        let start = Instant::now();
        while wal.exists() && start.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let backup = tempfile::tempdir().expect("tempdir");
        for entry in std::fs::read_dir(self.dirs[i].path()).expect("the store directory") {
            let path = entry.expect("an entry").path();
            std::fs::copy(&path, backup.path().join(path.file_name().expect("a file"))).expect("copy");
        }
        backup
    }

    /// Replaces the store of node `i` (stopped) with `backup`.
    pub fn restore(&mut self, i: usize, backup: &tempfile::TempDir) {
        assert!(self.nodes[i].is_none(), "restore a stopped node");
        for entry in std::fs::read_dir(self.dirs[i].path()).expect("the store directory") {
            std::fs::remove_file(entry.expect("an entry").path()).expect("remove");
        }
        for entry in std::fs::read_dir(backup.path()).expect("the backup") {
            let path = entry.expect("an entry").path();
            std::fs::copy(&path, self.dirs[i].path().join(path.file_name().expect("a file"))).expect("copy");
        }
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("the node is running")
    }

    /// Starts node `i` from its store (new on the first start).
    pub async fn start(&mut self, i: usize) {
        let store = Arc::new(SqliteStore::open(self.path(i)).expect("the store opens"));
        let node =
            Node::open(seed(i), self.config.clone(), store, self.chain.clone()).expect("the node starts");
        node.sync_chain().expect("sync");
        self.addrs[i] = node.listen("127.0.0.1:0".parse().expect("addr")).await.expect("listen");
        self.nodes[i] = Some(node);
    }

    /// Kills node `i`: connections drop, nothing is flushed or closed.
    pub fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.stop();
        }
    }

    pub async fn connect(&self, a: usize, b: usize) {
        let id = self.node(b).node_id();
        self.node(a).connect(id, self.addrs[b]).await.expect("connect");
        let start = Instant::now();
        while !(self.node(a).is_connected(&id) && self.node(b).is_connected(&self.node(a).node_id())) {
            assert!(start.elapsed() < WAIT, "nodes {a} and {b} connect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls every running node once.
    pub fn step(&self) {
        for node in self.nodes.iter().flatten() {
            node.sync_chain().expect("sync");
            node.process_events();
        }
    }

    pub async fn settle(&self) {
        for _ in 0..30 {
            self.step();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for an event of node `i` matching `f`, handling every event
    /// before it. With `handle == false` the match is delivered but left
    /// unhandled (as a user who dies before handling it).
    pub async fn wait(&mut self, i: usize, handle: bool, f: impl Fn(&Event) -> bool) -> Event {
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

    pub async fn mine(&self, n: u32) {
        self.chain.mine(n, &self.miner.address()).expect("mine");
        self.settle().await;
    }

    /// Node `a` opens a channel to `b`, funded from its coin.
    pub async fn open(&mut self, a: usize, b: usize, sat: u64) {
        self.open_with(a, b, sat, false).await;
    }

    /// Node `a` opens a channel to `b` (with zero-fee-HTLC anchors if
    /// `anchors`), funded from its coin.
    pub async fn open_with(&mut self, a: usize, b: usize, sat: u64, anchors: bool) {
        let peer = self.node(b).node_id();
        let temp = self.node(a).with_manager(|m| m.open_channel(peer, sat, 0, anchors)).expect("open");
        let (script, value) =
            match self.wait(a, true, |e| matches!(e, Event::FundingGenerationReady { .. })).await {
                Event::FundingGenerationReady { script_pubkey, value_sat, .. } => (script_pubkey, value_sat),
                _ => unreachable!("matched above"),
            };
        let tx = self.pay_from_coin(a, script, value);
        self.node(a).with_manager(|m| m.funding_transaction_generated(temp, tx)).expect("funding");
        self.settle().await;
        self.mine(6).await;
        self.wait(a, true, |e| matches!(e, Event::ChannelReady { .. })).await;
        self.wait(b, true, |e| matches!(e, Event::ChannelReady { .. })).await;
    }

    /// A transaction paying `sat` to `script` from node `i`'s next test coin
    /// (change back to the coin's key, 1,000 sat of fee), not broadcast.
    fn pay_from_coin(&mut self, i: usize, script: bitcoin::ScriptBuf, sat: u64) -> bitcoin::Transaction {
        let key = TestKey::new(70 + i as u8);
        let coin = coinbase_coin(&*self.chain, self.coin_heights[i]);
        self.coin_heights[i] += 1;
        let change = coin.txout.value - Amount::from_sat(sat) - Amount::from_sat(1_000);
        spend_p2wpkh(
            &key,
            std::slice::from_ref(&coin),
            vec![
                TxOut { value: Amount::from_sat(sat), script_pubkey: script },
                TxOut { value: change, script_pubkey: key.p2wpkh() },
            ],
        )
    }

    /// Pays `sat` from the test coins to node `i`'s on-chain wallet, in a
    /// transaction mined in the next block. Returns the amount.
    pub async fn fund_wallet(&mut self, i: usize, sat: u64) -> u64 {
        let address = self.node(i).wallet().receive_address().expect("an address");
        let tx = self.pay_from_coin(i, address.script_pubkey(), sat);
        self.chain.submit_transaction(&tx).expect("the wallet funding is valid");
        self.mine(1).await;
        sat
    }

    /// Everything node `i`'s on-chain wallet holds, in satoshis.
    pub fn wallet_sat(&self, i: usize) -> u64 {
        self.node(i).wallet().sync(&*self.chain, 0).expect("wallet sync");
        self.node(i).wallet().balance().total().to_sat()
    }

    pub fn count(&self, i: usize, f: impl Fn(&Event) -> bool) -> usize {
        self.handled[i].iter().filter(|e| f(e)).count()
    }

    pub fn no_closes(&self) {
        for (i, h) in self.handled.iter().enumerate() {
            assert!(
                !h.iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
                "node {i} saw a close: {h:?}"
            );
        }
    }
}
