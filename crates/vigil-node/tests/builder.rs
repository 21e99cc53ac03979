//! Nodes made by `Builder` and run by their own background work, as a user
//! of the library runs them: channels funded from the wallet, invoices paid
//! over two hops, keysend, payments listed on both sides, and a forwarder
//! restarted from its data directory that its peers reconnect to and that
//! forwards again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vigil_core::manager::Event;
use vigil_node::{Builder, ChainChoice, Direction, Node, OpError, PaymentState};

const WAIT: Duration = Duration::from_secs(20);

fn builder(dir: &std::path::Path) -> Builder {
    Builder::new()
        .data_dir(dir)
        .listen(Some("127.0.0.1:0".parse().expect("addr")))
        .poll_interval(Duration::from_millis(20))
}

async fn wait_for(node: &Node, what: &str, f: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok((id, event)) = tokio::time::timeout(remaining, node.wait_next_event()).await else {
            panic!("timed out waiting for {what}; last error {:?}", node.last_error());
        };
        node.event_handled(id);
        assert!(!matches!(event, Event::ChannelClosed { .. }), "no channel may close: {event:?}");
        if f(&event) {
            return event;
        }
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn addr(node: &Node) -> SocketAddr {
    node.listening_addr().expect("the node listens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_nodes_fund_channels_pay_over_two_hops_and_reconnect_after_a_restart() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let alice = builder(dirs[0].path()).build().expect("alice");
    alice.start().await.expect("start");
    let chain = alice.embedded_chain().expect("alice runs the embedded chain").clone();
    let shared = |dir| builder(dir).chain(ChainChoice::Source(chain.clone()));
    let bob = shared(dirs[1].path()).build().expect("bob");
    bob.start().await.expect("start");
    let carol = shared(dirs[2].path()).build().expect("carol");
    carol.start().await.expect("start");

    // A second node on a data directory in use is refused.
    assert!(matches!(builder(dirs[1].path()).build(), Err(vigil_node::BuildError::DataDir(_))));

    // An open without funds is refused before anything is sent.
    let refused = bob.open_channel(carol.node_id(), Some(addr(&carol)), 500_000, 0, false).await;
    assert!(matches!(refused, Err(OpError::InsufficientFunds { available_sat: 0, .. })), "{refused:?}");

    // Fund Alice and Bob: their coinbases mature after 100 more blocks.
    let bob_address = bob.new_address().expect("address").to_string();
    alice.mine(1, None).expect("mine");
    alice.mine(1, Some(&bob_address)).expect("mine");
    alice.mine(100, Some(&carol.new_address().expect("address").to_string())).expect("mine");
    until("the wallets see their coins", || {
        alice.balances().onchain_confirmed_sat > 0 && bob.balances().onchain_confirmed_sat > 0
    })
    .await;

    alice.open_channel(bob.node_id(), Some(addr(&bob)), 1_000_000, 0, false).await.expect("open a-b");
    bob.open_channel(carol.node_id(), Some(addr(&carol)), 1_000_000, 0, true).await.expect("open b-c");
    until("both fundings are in the mempool", || chain.mempool_entries().len() == 2).await;
    alice.mine(6, None).expect("mine");
    wait_for(&alice, "alice's channel", |e| matches!(e, Event::ChannelReady { .. })).await;
    wait_for(&carol, "carol's channel", |e| matches!(e, Event::ChannelReady { .. })).await;
    until("bob's channels are usable", || bob.list_channels().iter().filter(|c| c.usable).count() == 2).await;
    let funded = alice.balances();
    let before_msat = funded.lightning_msat;
    assert!(funded.onchain_confirmed_sat < 50 * 100_000_000 - 1_000_000, "the funding came from the wallet");

    // An invoice of Carol's, paid by Alice through Bob.
    let invoice = carol.create_invoice(Some(50_000_000), "coffee", 3600).expect("invoice");
    let id = alice.pay_invoice(&invoice.to_string(), None).expect("pay");
    assert!(matches!(alice.pay_invoice(&invoice.to_string(), None), Err(OpError::Refused(_))), "paid once");
    wait_for(&alice, "the payment", |e| matches!(e, Event::PaymentSent { .. })).await;
    let sent = alice.payment(&id).expect("listed");
    assert_eq!((sent.state.clone(), sent.amount_msat), (PaymentState::Succeeded, 50_000_000));
    until("carol lists the payment as received", || {
        carol.list_payments().iter().any(|p| {
            p.direction == Direction::Inbound
                && p.payment_hash == sent.payment_hash
                && p.state == PaymentState::Succeeded
                && p.amount_msat == 50_000_000
        })
    })
    .await;
    assert_eq!(sent.preimage, carol.list_payments()[0].preimage, "the proof of payment is carol's preimage");

    // Bob restarts from his data directory on the same address; everyone
    // reconnects by themselves, and a keysend crosses him again.
    let bob_addr = addr(&bob);
    bob.stop();
    drop(bob);
    let bob = shared(dirs[1].path()).listen(Some(bob_addr)).build().expect("bob again");
    bob.start().await.expect("start");
    until("bob's peers are back", || bob.list_peers().len() == 2).await;
    until("bob's channels are usable again", || bob.list_channels().iter().filter(|c| c.usable).count() == 2)
        .await;
    // Keysend to a peer (private channels: keysend reaches only those we
    // know a route to), and another invoice forwarded by the restarted Bob.
    let (_, hash) = alice.keysend(bob.node_id(), 2_000_000).expect("keysend");
    wait_for(
        &alice,
        "the keysend",
        |e| matches!(e, Event::PaymentSent { payment_hash, .. } if *payment_hash == hash),
    )
    .await;
    until("bob received the keysend", || {
        bob.list_payments().iter().any(|p| p.payment_hash == hash && p.state == PaymentState::Succeeded)
    })
    .await;
    let invoice = carol.create_invoice(Some(5_000_000), "tea", 3600).expect("invoice");
    alice.pay_invoice(&invoice.to_string(), None).expect("pay");
    wait_for(&alice, "the second payment", |e| matches!(e, Event::PaymentSent { .. })).await;
    until("carol received both", || {
        carol.list_payments().iter().filter(|p| p.state == PaymentState::Succeeded).count() == 2
    })
    .await;
    assert_eq!(alice.list_payments().len(), 3);
    let fees: u64 = alice.list_payments().iter().filter_map(|p| p.fee_msat).sum();
    assert!(fees > 0, "bob charged for forwarding");
    assert_eq!(
        alice.balances().lightning_msat,
        before_msat - 57_000_000 - fees,
        "alice's channel balance dropped by what she paid, fees included"
    );
    for node in [&alice, &bob, &carol] {
        node.stop();
    }
}

/// A store whose writes fail while `failing` is set (a full or vanished
/// disk); reads keep working.
#[derive(Debug)]
struct Flaky {
    inner: vigil_store::MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), vigil_store::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(vigil_store::StoreError::Backend("disk full".into()));
        }
        Ok(())
    }
}

impl vigil_store::KvStore for Flaky {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, vigil_store::StoreError> {
        self.inner.read(namespace, key)
    }
    fn write(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), vigil_store::StoreError> {
        self.check()?;
        self.inner.write(namespace, key, value)
    }
    fn remove(&self, namespace: &str, key: &str) -> Result<(), vigil_store::StoreError> {
        self.check()?;
        self.inner.remove(namespace, key)
    }
    fn list(&self, namespace: &str) -> Result<Vec<String>, vigil_store::StoreError> {
        self.inner.list(namespace)
    }
    fn write_batch(&self, batch: &vigil_store::Batch) -> Result<(), vigil_store::StoreError> {
        self.check()?;
        self.inner.write_batch(batch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_writes_stops_progress_safely_and_the_node_recovers() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = builder(dir.path()).build().expect("alice");
    alice.start().await.expect("start");
    let chain = alice.embedded_chain().expect("embedded").clone();
    let disk = std::sync::Arc::new(Flaky { inner: vigil_store::MemoryStore::new(), failing: false.into() });
    let bob = Builder::new()
        .seed([7; 32])
        .store(vigil_node::StoreChoice::Store(disk.clone()))
        .chain(ChainChoice::Source(chain.clone()))
        .listen(Some("127.0.0.1:0".parse().expect("addr")))
        .poll_interval(Duration::from_millis(20))
        .build()
        .expect("bob");
    bob.start().await.expect("start");
    alice.mine(101, None).expect("mine");
    until("alice is funded", || alice.balances().onchain_confirmed_sat > 0).await;
    alice.open_channel(bob.node_id(), Some(addr(&bob)), 1_000_000, 0, false).await.expect("open");
    until("the funding is broadcast", || chain.mempool_entries().len() == 1).await;
    alice.mine(6, None).expect("mine");
    until("the channel is usable", || bob.list_channels().iter().any(|c| c.usable)).await;
    until("alice sees it usable", || alice.list_channels().iter().any(|c| c.usable)).await;

    // Bob's disk fills up while Alice pays him: Bob cannot make the new
    // commitment durable, so he answers nothing and the payment waits.
    let invoice = bob.create_invoice(Some(3_000_000), "during the outage", 3600).expect("invoice");
    disk.failing.store(true, Ordering::SeqCst);
    let id = alice.pay_invoice(&invoice.to_string(), None).expect("pay");
    until("bob reports the failing store", || bob.last_error().is_some_and(|e| e.contains("disk full")))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alice.payment(&id).expect("listed").state, PaymentState::Pending, "nothing was released");
    assert!(bob.list_payments().is_empty(), "bob received nothing he could not write");

    // The disk recovers: the writes are retried in order and the payment
    // completes, with no channel closed.
    disk.failing.store(false, Ordering::SeqCst);
    wait_for(&alice, "the payment after the outage", |e| matches!(e, Event::PaymentSent { .. })).await;
    until("bob lists the payment", || {
        bob.list_payments().iter().any(|p| p.state == PaymentState::Succeeded && p.amount_msat == 3_000_000)
    })
    .await;
    assert!(bob.list_channels().iter().all(|c| c.usable), "the channel survived the outage");
    assert!(
        !bob.last_error().is_some_and(|e| e.contains("disk full")),
        "the store error is cleared once writes work again: {:?}",
        bob.last_error()
    );
    alice.stop();
    bob.stop();
}
