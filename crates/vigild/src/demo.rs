//! `vigil demo`: three real nodes in this process (each its own data
//! directory, SQLite store and TCP port; one embedded regtest chain) open
//! channels from their wallets and pay each other directly, forwarded and
//! in several parts. Then Bob, the forwarder, is killed while he holds a
//! payment for Carol, restarted from his data directory alone, and the
//! payment completes. The report checks that nothing was lost.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vigil_core::manager::Event;
use vigil_node::{Builder, ChainChoice, Direction, Node, PaymentState};

const WAIT: Duration = Duration::from_secs(60);

fn builder(dir: &std::path::Path) -> Builder {
    Builder::new()
        .data_dir(dir)
        .listen(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
        .poll_interval(Duration::from_millis(20))
}

async fn until(what: &str, f: impl Fn() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > WAIT {
            anyhow::bail!("gave up waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Handles every event of `node`; fails on a channel close (the demo never
/// asks for one). Returns the events.
fn drain(node: &Node) -> anyhow::Result<Vec<Event>> {
    let mut seen = Vec::new();
    while let Some((id, event)) = node.next_event() {
        node.event_handled(id);
        if let Event::ChannelClosed { reason, .. } = &event {
            anyhow::bail!("a channel closed: {reason}");
        }
        seen.push(event);
    }
    Ok(seen)
}

fn succeeded(node: &Node, direction: Direction) -> Vec<u64> {
    node.list_payments()
        .iter()
        .filter(|p| p.direction == direction && p.state == PaymentState::Succeeded)
        .map(|p| p.amount_msat)
        .collect()
}

async fn pay(payer: &Node, payee: &Node, msat: u64, label: &str) -> anyhow::Result<u64> {
    let invoice = payee.create_invoice(Some(msat), label, 600)?;
    let id = payer.pay_invoice(&invoice.to_string(), None)?;
    until(label, || payer.payment(&id).is_some_and(|p| p.state != PaymentState::Pending)).await?;
    let info = payer.payment(&id).expect("listed above");
    match info.state {
        PaymentState::Succeeded => Ok(info.fee_msat.unwrap_or(0)),
        other => anyhow::bail!("{label} did not succeed: {other:?}"),
    }
}

/// Runs the demo, printing its story line by line through `say`, and
/// returns its report.
///
/// # Errors
///
/// Whatever went wrong, in words: the demo checks itself.
pub async fn run(say: impl Fn(&str)) -> anyhow::Result<Value> {
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir()).collect::<Result<_, _>>()?;
    say("Starting Alice, Bob and Carol: three nodes, each with its own SQLite store and TCP port,");
    say("on one embedded regtest chain (Alice's).");
    let alice = builder(dirs[0].path()).build()?;
    alice.start().await?;
    let chain = alice.embedded_chain().expect("alice runs the embedded chain").clone();
    let node = |dir: &std::path::Path| builder(dir).chain(ChainChoice::Source(chain.clone()));
    let mut bob = node(dirs[1].path()).build()?;
    bob.start().await?;
    let carol = node(dirs[2].path()).build()?;
    carol.start().await?;

    say("Mining coins for Alice and Bob's wallets…");
    alice.mine(1, None)?;
    alice.mine(1, Some(&bob.new_address()?.to_string()))?;
    alice.mine(100, Some(&carol.new_address()?.to_string()))?;
    until("the wallets are funded", || {
        alice.balances().onchain_confirmed_sat > 0 && bob.balances().onchain_confirmed_sat > 0
    })
    .await?;

    say("Opening channels from the wallets: Alice-Bob twice (500,000 sat each), Bob-Carol (2,000,000 sat)…");
    let bob_addr = bob.listening_addr().expect("bob listens");
    let carol_addr = carol.listening_addr().expect("carol listens");
    alice.open_channel(bob.node_id(), Some(bob_addr), 500_000, 0, false).await?;
    alice.open_channel(bob.node_id(), None, 500_000, 0, true).await?;
    bob.open_channel(carol.node_id(), Some(carol_addr), 2_000_000, 0, false).await?;
    until("the funding transactions are broadcast", || chain.mempool_entries().len() == 3).await?;
    alice.mine(6, None)?;
    until("every channel is usable", || {
        bob.list_channels().iter().filter(|c| c.usable).count() == 3
            && alice.list_channels().iter().filter(|c| c.usable).count() == 2
            && carol.list_channels().iter().filter(|c| c.usable).count() == 1
    })
    .await?;

    let mut fees = pay(&alice, &bob, 20_000_000, "a direct payment, Alice to Bob (20,000 sat)").await?;
    say("  direct payment Alice -> Bob, 20,000 sat: paid");
    fees +=
        pay(&alice, &carol, 30_000_000, "a forwarded payment, Alice to Carol via Bob (30,000 sat)").await?;
    say("  forwarded payment Alice -> Bob -> Carol, 30,000 sat: paid");
    fees += pay(&alice, &bob, 600_000_000, "a multi-part payment, Alice to Bob (600,000 sat)").await?;
    say("  multi-part payment Alice -> Bob, 600,000 sat over both channels: paid");

    say("Now Carol goes offline, Alice pays her 40,000 sat, and Bob holds the payment…");
    let invoice = carol.create_invoice(Some(40_000_000), "paid through a crash", 600)?;
    carol.stop();
    drop(carol);
    let id = alice.pay_invoice(&invoice.to_string(), None)?;
    until("Bob holds Alice's HTLC", || bob.list_channels().iter().any(|c| c.pending_htlcs > 0)).await?;
    say("…and Bob is killed with the HTLC in flight (nothing flushed, nothing closed).");
    bob.stop();
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    say("Bob restarts from his data directory alone, then Carol comes back.");
    bob = node(dirs[1].path()).listen(Some(bob_addr)).build()?;
    bob.start().await?;
    let carol = node(dirs[2].path()).listen(Some(carol_addr)).build()?;
    carol.start().await?;
    until("the payment through the crash is decided", || {
        alice.payment(&id).is_some_and(|p| p.state != PaymentState::Pending)
    })
    .await?;
    let through_crash = alice.payment(&id).expect("listed above");
    if through_crash.state != PaymentState::Succeeded {
        anyhow::bail!("the payment through the crash failed: {:?}", through_crash.state);
    }
    fees += through_crash.fee_msat.unwrap_or(0);
    say("  payment Alice -> Bob -> Carol through Bob's crash, 40,000 sat: paid");
    until("Carol has claimed both payments", || succeeded(&carol, Direction::Inbound).len() == 2).await?;

    let idle = |n: &Node| n.list_channels().iter().all(|c| c.usable && c.pending_htlcs == 0);
    until("every channel is idle", || idle(&alice) && idle(&bob) && idle(&carol)).await?;
    for n in [&alice, &bob, &carol] {
        drain(n)?;
    }
    let sent: u64 = succeeded(&alice, Direction::Outbound).iter().sum();
    let to_bob: u64 = succeeded(&bob, Direction::Inbound).iter().sum();
    let to_carol: u64 = succeeded(&carol, Direction::Inbound).iter().sum();
    let channels: Vec<_> = [&alice, &bob, &carol].iter().flat_map(|n| n.list_channels()).collect();
    let all_usable = channels.iter().all(|c| c.usable && c.pending_htlcs == 0);
    let no_loss = sent == to_bob + to_carol && all_usable && sent == 690_000_000;
    let report = json!({
        "payments_sent": alice.list_payments().len(),
        "sent_msat": sent,
        "received_by_bob_msat": to_bob,
        "received_by_carol_msat": to_carol,
        "fees_paid_msat": fees,
        "channels_open": channels.len() / 2,
        "force_closes": 0,
        "nothing_lost": no_loss,
        "seconds": started.elapsed().as_secs_f64(),
    });
    say("");
    say("Report");
    say(&format!("  payments sent by Alice       {}, all succeeded", alice.list_payments().len()));
    say(&format!("  Alice sent                   {} sat (+ {} msat of fees to Bob)", sent / 1000, fees));
    say(&format!("  Bob received                 {} sat", to_bob / 1000));
    say(&format!("  Carol received               {} sat", to_carol / 1000));
    say(&format!("  channels still open          {} (no force-close, no HTLC left)", channels.len() / 2));
    say(&format!("  nothing lost                 {}", if no_loss { "yes" } else { "NO" }));
    for n in [&alice, &bob, &carol] {
        n.stop();
    }
    if !no_loss {
        anyhow::bail!("the demo's accounts do not add up: {report}");
    }
    Ok(report)
}
