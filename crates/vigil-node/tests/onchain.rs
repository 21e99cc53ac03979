//! On-chain enforcement on the real stack: Vigil nodes on SQLite stores and
//! the embedded regtest chain (every transaction checked by
//! libbitcoinconsensus on submission) force-close, claim, time out and
//! sweep, with restarts in between; outcomes reach the users as ordinary
//! events and every satoshi is accounted for.

mod vnet;

use std::collections::BTreeMap;
use std::time::Duration;

use bitcoin::{OutPoint, Transaction, TxOut};
use lightning::ln::types::ChannelId;
use lightning::types::payment::PaymentPreimage;
use vigil_chain::ChainSource;
use vigil_core::manager::{Event, PaymentId};
use vnet::{Net, SAT};

/// Mines one block at a time (at most `max`), letting the nodes follow,
/// until node `i` has an event matching `f`; handles every event of `i`
/// on the way. Returns the event.
async fn mine_until_event(net: &mut Net, i: usize, max: u32, f: impl Fn(&Event) -> bool) -> Event {
    for _ in 0..=max {
        for _ in 0..3 {
            net.step();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        for node in net.nodes.iter().flatten() {
            node.tick(); // retries give up once no route is left
        }
        while let Some((id, event)) = net.node(i).next_event() {
            net.node(i).event_handled(id);
            net.handled[i].push(event.clone());
            if f(&event) {
                return event;
            }
        }
        net.chain.mine(1, &net.miner.address()).expect("mine");
    }
    panic!("node {i} saw no matching event in {max} blocks; handled {:?}", net.handled[i]);
}

/// Waits (without mining) for an event of node `i` matching `f`, with
/// timer ticks, so that payments waiting for a retry give up; handles
/// every event of `i` on the way.
async fn wait_ticking(net: &mut Net, i: usize, f: impl Fn(&Event) -> bool) -> Event {
    let start = std::time::Instant::now();
    loop {
        net.step();
        for node in net.nodes.iter().flatten() {
            node.tick();
        }
        while let Some((id, event)) = net.node(i).next_event() {
            net.node(i).event_handled(id);
            net.handled[i].push(event.clone());
            if f(&event) {
                return event;
            }
        }
        assert!(start.elapsed() < vnet::WAIT, "node {i} waited too long; handled {:?}", net.handled[i]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Mines until no running node has anything left to sweep, handling
/// every event on the way.
async fn mine_until_swept(net: &mut Net, max: u32) {
    for _ in 0..max {
        net.chain.mine(1, &net.miner.address()).expect("mine");
        for _ in 0..2 {
            net.step();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for i in 0..net.nodes.len() {
            while let Some((id, event)) = net.nodes[i].as_ref().and_then(|n| n.next_event()) {
                net.node(i).event_handled(id);
                net.handled[i].push(event);
            }
        }
        let settled = net
            .nodes
            .iter()
            .flatten()
            .all(|n| n.with_manager(|m| m.pending_sweeps().is_empty() && m.closed_channels_settled()));
        if settled {
            return;
        }
    }
    let left: Vec<_> =
        net.nodes.iter().flatten().map(|n| n.with_manager(|m| m.pending_sweeps().to_vec())).collect();
    panic!("still sweeping after {max} blocks: {left:?}");
}

fn channel_with(net: &Net, i: usize, j: usize) -> ChannelId {
    let peer = net.node(j).node_id();
    net.node(i)
        .with_manager(|m| m.list_channels())
        .into_iter()
        .find(|c| c.counterparty_node_id == peer)
        .expect("a channel between the two")
        .channel_id
}

/// Node `from` pays node `to` `amount_sat` over an invoice; returns the
/// payment id and preimage once `to` has it claimable (unclaimed).
async fn pay_and_hold(
    net: &mut Net,
    from: usize,
    to: usize,
    amount_sat: u64,
    tag: u8,
) -> (PaymentId, PaymentPreimage) {
    let invoice =
        net.node(to).with_manager(|m| m.create_invoice(Some(amount_sat * SAT), "t", 3600)).expect("invoice");
    let id = PaymentId([tag; 32]);
    net.node(from).with_manager(|m| m.pay_invoice(&invoice, None, id)).expect("pay");
    let hash = invoice.payment_hash().to_byte_array();
    let claimable = net
        .wait(
            to,
            true,
            |e| matches!(e, Event::PaymentClaimable { payment_hash, .. } if payment_hash.0 == hash),
        )
        .await;
    let Event::PaymentClaimable { purpose, .. } = claimable else { unreachable!("matched above") };
    (id, purpose.preimage())
}

/// The coins of the closing tree: every transaction descending from the
/// funding output, mined from height `from`.
struct Tree {
    /// Outputs no transaction spends.
    unspent: BTreeMap<OutPoint, TxOut>,
    /// Fees paid by the tree's transactions.
    fees: u64,
    /// Wallet coins the tree's transactions spent (fee inputs).
    wallet_in: u64,
}

impl Tree {
    /// Unspent outputs other than anchors, and the anchors' value.
    fn split(&self) -> (u64, u64) {
        let anchors: u64 = self.unspent.values().map(|o| o.value.to_sat()).filter(|v| *v == 330).sum();
        let total: u64 = self.unspent.values().map(|o| o.value.to_sat()).sum();
        (total - anchors, anchors)
    }
}

fn closing_tree(net: &Net, funding: OutPoint, value: u64, from: u32) -> Tree {
    let mut coins = BTreeMap::new();
    coins.insert(
        funding,
        TxOut { value: bitcoin::Amount::from_sat(value), script_pubkey: bitcoin::ScriptBuf::new() },
    );
    let mut unspent = coins.clone();
    let (mut fees, mut wallet_in) = (0, 0);
    for h in from..=net.chain.height() {
        let hash = net.chain.block_hash(h).expect("chain").expect("block");
        let txs: Vec<Transaction> = net.chain.block(&hash).expect("chain").expect("block").txdata;
        for tx in &txs {
            if !tx.input.iter().any(|i| coins.contains_key(&i.previous_output)) {
                continue;
            }
            let mut inputs = 0;
            for i in &tx.input {
                let value = match coins.get(&i.previous_output) {
                    Some(o) => o.value.to_sat(),
                    None => {
                        // A fee input from a wallet.
                        let prev =
                            net.chain.transaction(&i.previous_output.txid).expect("chain").expect("known");
                        let v = prev.tx.output[i.previous_output.vout as usize].value.to_sat();
                        wallet_in += v;
                        v
                    }
                };
                inputs += value;
                unspent.remove(&i.previous_output);
            }
            fees += inputs - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
            let txid = tx.compute_txid();
            for (vout, o) in tx.output.iter().enumerate() {
                coins.insert(OutPoint { txid, vout: vout as u32 }, o.clone());
                unspent.insert(OutPoint { txid, vout: vout as u32 }, o.clone());
            }
        }
    }
    Tree { unspent, fees, wallet_in }
}

/// Checks the coins after a close, to the satoshi: the wallets hold what
/// they were given plus every output of the closing tree but the anchors
/// (so nothing was left unclaimed), and that is the capacity less the
/// fees and the anchors.
fn assert_wallets_add_up(net: &Net, tree: &Tree, capacity: u64, given: u64, nodes: &[usize]) {
    let wallets: u64 = nodes.iter().map(|i| net.wallet_sat(*i)).sum();
    let (claimed, anchors) = tree.split();
    assert_eq!(wallets, given - tree.wallet_in + claimed, "every output of the close is in a wallet");
    assert_eq!(
        wallets + tree.fees + anchors,
        capacity + given,
        "the wallets hold the capacity (and what they were given) less fees and anchors"
    );
}

fn funding_of(net: &Net, i: usize, channel_id: ChannelId) -> (OutPoint, u64) {
    net.node(i).with_manager(|m| {
        let monitor = m.chain_monitor().monitor(&channel_id).expect("the monitor");
        (monitor.funding_outpoint().expect("funded"), monitor.params().channel_value_satoshis)
    })
}

/// Two nodes with a channel from node 0 of which node 1 holds 300,000 sat
/// (paid over it), so that both can pay.
async fn pair_with_balances() -> (Net, ChannelId) {
    let mut net = Net::new(2).await;
    net.connect(0, 1).await;
    net.open(0, 1, 1_000_000).await;
    let channel = channel_with(&net, 0, 1);
    let (_, p) = pay_and_hold(&mut net, 0, 1, 300_000, 1).await;
    net.node(1).with_manager(|m| m.claim_funds(p)).expect("claim");
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { .. })).await;
    (net, channel)
}

/// A force-close by user command with HTLCs both ways: one claimed after
/// the close by each side (on chain, with the preimage), one timed out,
/// one dust. Every payment resolves, and the two wallets plus the fees add
/// up to the capacity, to the satoshi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_close_by_the_funder_with_htlcs_both_ways_adds_up() {
    force_close_with_htlcs_both_ways_adds_up(0).await;
}

/// The same, closed by the other side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_close_by_the_fundee_with_htlcs_both_ways_adds_up() {
    force_close_with_htlcs_both_ways_adds_up(1).await;
}

async fn force_close_with_htlcs_both_ways_adds_up(closer: usize) {
    let (mut net, channel) = pair_with_balances().await;
    let (to_1, p_to_1) = pay_and_hold(&mut net, 0, 1, 50_000, 2).await;
    let (to_0, p_to_0) = pay_and_hold(&mut net, 1, 0, 40_000, 3).await;
    let (timeout, _) = pay_and_hold(&mut net, 0, 1, 30_000, 4).await;
    let (dust, _) = pay_and_hold(&mut net, 0, 1, 300, 5).await;
    let (funding, capacity) = funding_of(&net, 0, channel);
    let closed_from = net.chain.height() + 1;

    net.node(closer).with_manager(|m| m.force_close_channel(channel)).expect("force-close");
    // Each side claims what it was paid after the close: on chain now.
    net.node(1).with_manager(|m| m.claim_funds(p_to_1)).expect("claim after close");
    net.node(0).with_manager(|m| m.claim_funds(p_to_0)).expect("claim after close");
    let sent = |id: PaymentId| move |e: &Event| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id);
    let failed = |id: PaymentId| move |e: &Event| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == id);
    mine_until_event(&mut net, 0, 20, sent(to_1)).await;
    mine_until_event(&mut net, 1, 20, sent(to_0)).await;
    mine_until_event(&mut net, 0, 10, failed(dust)).await;
    mine_until_event(&mut net, 0, 250, failed(timeout)).await;
    mine_until_swept(&mut net, 400).await;

    let tree = closing_tree(&net, funding, capacity, closed_from);
    assert_wallets_add_up(&net, &tree, capacity, 0, &[0, 1]);
    // Node 1 had 300,000 + 50,000 (claimed on chain) - 40,000 (paid to 0),
    // less the fees of its claims.
    let expected_1 = 310_000;
    let got_1 = net.wallet_sat(1);
    assert!(got_1 <= expected_1 && got_1 + 3_000 > expected_1, "node 1's wallet: {got_1}");
    for i in [0, 1] {
        assert!(
            net.node(i).with_manager(|m| m.chain_monitor().monitor(&channel).is_none()),
            "node {i}: settled and acknowledged, the channel's monitor is archived"
        );
    }
}

/// A–B–C, connected, with a channel opened by each left node.
async fn line_of_three() -> Net {
    let mut net = Net::new(3).await;
    net.connect(0, 1).await;
    net.connect(1, 2).await;
    net.open(0, 1, 1_000_000).await;
    net.open(1, 2, 1_000_000).await;
    net
}

/// A→B→C; C force-closes B–C and claims on chain; B, down while C's claim
/// confirms, learns the preimage from the chain after its restart and
/// claims upstream off-chain: A's payment succeeds and A–B stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_claimed_on_chain_is_claimed_upstream_after_a_restart() {
    let mut net = line_of_three().await;
    let downstream = channel_with(&net, 2, 1);
    let (id, preimage) = pay_and_hold(&mut net, 0, 2, 100_000, 7).await;
    net.kill(1);
    net.node(2).with_manager(|m| m.force_close_channel(downstream)).expect("force-close");
    net.node(2).with_manager(|m| m.claim_funds(preimage)).expect("claim");
    mine_until_event(&mut net, 2, 10, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    // C's commitment and its HTLC-success confirm while B is down.
    for _ in 0..3 {
        net.mine(1).await;
    }
    net.start(1).await;
    net.connect(0, 1).await;
    mine_until_event(
        &mut net,
        0,
        10,
        |e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id),
    )
    .await;
    mine_until_event(&mut net, 1, 5, |e| matches!(e, Event::PaymentForwarded { .. })).await;
    for i in [0, 1] {
        assert!(
            !net.handled[i]
                .iter()
                .any(|e| matches!(e, Event::ChannelClosed { channel_id, .. } if *channel_id != downstream)),
            "node {i}: A–B stays open: {:?}",
            net.handled[i]
        );
    }
}

/// A→B→C with C gone: B fails B–C at the HTLC's deadline on its own, times
/// the HTLC out on chain, and (restarted in between) fails A's HTLC back
/// off-chain once the timeout is 6 blocks deep. A–B stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_timed_out_on_chain_fails_upstream_after_a_restart() {
    let mut net = line_of_three().await;
    let downstream = channel_with(&net, 1, 2);
    let (id, _) = pay_and_hold(&mut net, 0, 2, 100_000, 8).await;
    net.kill(2);
    // B closes B–C by itself once the HTLC is past its deadline.
    mine_until_event(
        &mut net,
        1,
        250,
        |e| matches!(e, Event::ChannelClosed { channel_id, .. } if *channel_id == downstream),
    )
    .await;
    // A few blocks in (the timeout transaction in flight), B restarts.
    for _ in 0..3 {
        net.mine(1).await;
    }
    net.kill(1);
    net.start(1).await;
    net.connect(0, 1).await;
    // Enough blocks for the timeout to be 6 deep, then the fail reaches A
    // off-chain (no more blocks: A's own HTLC must not reach its deadline).
    for _ in 0..8 {
        net.mine(1).await;
    }
    wait_ticking(&mut net, 0, |e| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == id))
        .await;
    assert!(
        !net.handled[0].iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
        "A–B stays open: {:?}",
        net.handled[0]
    );
    // The fail's commitment dance finishes and A–B carries payments again.
    let upstream = channel_with(&net, 0, 1);
    let start = std::time::Instant::now();
    while !net
        .node(0)
        .with_manager(|m| m.list_channels())
        .iter()
        .any(|c| c.channel_id == upstream && c.usable)
    {
        assert!(start.elapsed() < vnet::WAIT, "A–B becomes usable again");
        net.settle().await;
    }
}

/// Node 1, restored from an old backup (taken with a payment pending),
/// force-closes with its revoked commitment, HTLC output included. Node 0
/// sees it confirm, is restarted, and still takes every output: node 1's
/// wallet gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_commitment_is_punished_across_a_restart() {
    let (mut net, channel) = pair_with_balances().await;
    // A payment is pending when node 1's backup is taken: the revoked
    // commitment will have its HTLC output.
    let (_, pending) = pay_and_hold(&mut net, 0, 1, 100_000, 2).await;
    net.settle().await;
    net.kill(1);
    let old = net.backup(1);
    net.start(1).await;
    net.connect(0, 1).await;
    // The HTLC is resolved off-chain after the backup, and more payments
    // revoke the state the backup holds.
    net.wait(1, true, |e| matches!(e, Event::PaymentClaimable { .. })).await;
    net.node(1).with_manager(|m| m.claim_funds(pending)).expect("claim");
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { payment_id, .. } if payment_id.0 == [2; 32]))
        .await;
    let (_, p) = pay_and_hold(&mut net, 0, 1, 50_000, 3).await;
    net.node(1).with_manager(|m| m.claim_funds(p)).expect("claim");
    net.wait(0, true, |e| matches!(e, Event::PaymentSent { payment_id, .. } if payment_id.0 == [3; 32]))
        .await;
    net.settle().await;
    let (funding, capacity) = funding_of(&net, 0, channel);
    let closed_from = net.chain.height() + 1;

    // Node 1 comes back from the backup and force-closes: its commitment
    // is a revoked one.
    net.kill(1);
    net.restore(1, &old);
    net.start(1).await;
    net.node(1).with_manager(|m| m.force_close_channel(channel)).expect("force-close");
    net.mine(1).await;
    // Node 0 saw the revoked commitment confirm; it restarts before
    // punishing it.
    net.kill(0);
    net.start(0).await;
    mine_until_swept(&mut net, 400).await;

    let tree = closing_tree(&net, funding, capacity, closed_from);
    assert_eq!(net.wallet_sat(1), 0, "the cheater's wallet gets nothing");
    assert_wallets_add_up(&net, &tree, capacity, 0, &[0, 1]);
    assert!(
        net.node(0).with_manager(|m| m.chain_monitor().monitor(&channel).is_none()),
        "settled and acknowledged, the channel's monitor is archived"
    );
}

/// Two nodes with an anchors channel from node 0, whose own balance a long
/// CSV delay (400 blocks) keeps out of its wallet until well after any HTLC
/// expires: what the wallet holds is only what a test gives it.
async fn anchors_pair() -> (Net, ChannelId) {
    let mut config = vigil_core::manager::ManagerConfig::default();
    config.channel.to_self_delay = 400;
    let mut net = Net::with_config(2, config).await;
    net.connect(0, 1).await;
    net.open_with(0, 1, 1_000_000, true).await;
    let channel = channel_with(&net, 0, 1);
    (net, channel)
}

/// An anchors channel force-closed with an HTLC of ours that times out:
/// the zero-fee HTLC-timeout transaction needs the wallet's coins. With an
/// empty wallet the node says so and keeps trying at every block; once the
/// wallet is funded the claim goes through and everything adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_claims_wait_for_wallet_funds_then_go_through() {
    let (mut net, channel) = anchors_pair().await;
    let (timeout, _) = pay_and_hold(&mut net, 0, 1, 100_000, 9).await;
    let (funding, capacity) = funding_of(&net, 0, channel);
    let closed_from = net.chain.height() + 1;
    net.node(0).with_manager(|m| m.force_close_channel(channel)).expect("force-close");
    // Mine until the timeout is claimable: the empty wallet cannot pay.
    let mut blocks = 0;
    while net.node(0).fee_bump_errors().is_empty() {
        net.chain.mine(1, &net.miner.address()).expect("mine");
        net.step();
        blocks += 1;
        assert!(blocks < 300, "the timeout became claimable");
    }
    let error = net.node(0).fee_bump_errors().join("; ");
    assert!(error.contains("HtlcTimeout") && error.contains("insufficient funds"), "{error}");
    // It keeps trying.
    for _ in 0..3 {
        net.chain.mine(1, &net.miner.address()).expect("mine");
        net.step();
    }
    assert!(!net.node(0).fee_bump_errors().is_empty(), "still reported while the wallet is empty");
    let given = net.fund_wallet(0, 200_000).await;
    mine_until_event(
        &mut net,
        0,
        20,
        |e| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == timeout),
    )
    .await;
    assert!(net.node(0).fee_bump_errors().is_empty());
    mine_until_swept(&mut net, 400).await;
    let tree = closing_tree(&net, funding, capacity, closed_from);
    assert!(tree.wallet_in > 0, "the wallet paid the HTLC transaction's fee");
    assert_wallets_add_up(&net, &tree, capacity, given, &[0, 1]);
}

use bitcoin::hashes::Hash as _;

/// The payee claims while the payer is down: the fulfill cannot be
/// delivered, so at the BOLT 2 fulfillment deadline the payee closes the
/// channel by itself and takes the HTLC on chain. The payer, back up,
/// learns the preimage from the chain: its payment succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_the_payer_never_takes_is_enforced_on_chain_at_the_deadline() {
    let mut net = Net::new(2).await;
    net.connect(0, 1).await;
    net.open(0, 1, 1_000_000).await;
    let channel = channel_with(&net, 0, 1);
    let (id, preimage) = pay_and_hold(&mut net, 0, 1, 100_000, 11).await;
    net.kill(0);
    net.node(1).with_manager(|m| m.claim_funds(preimage)).expect("claim");
    net.wait(1, true, |e| matches!(e, Event::PaymentClaimed { .. })).await;
    mine_until_event(
        &mut net,
        1,
        250,
        |e| matches!(e, Event::ChannelClosed { channel_id, .. } if *channel_id == channel),
    )
    .await;
    let expiry_margin = net.node(1).with_manager(|m| {
        let monitor = m.chain_monitor().monitor(&channel).expect("the monitor");
        let htlcs = monitor.holder_commitment().expect("a commitment").nondust_htlcs().clone();
        htlcs[0].cltv_expiry - net.chain.height()
    });
    assert!(
        expiry_margin >= vigil_core::manager::onchain::FULFILLED_HTLC_DEADLINE_BLOCKS - 1,
        "closed at the deadline, {expiry_margin} blocks before the expiry"
    );
    net.start(0).await;
    mine_until_event(
        &mut net,
        0,
        30,
        |e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id),
    )
    .await;
}

/// An anchors HTLC claim on a busy network (the miner leaves out anything
/// under 3 sat/vB): the wallet-funded transaction is replaced by better
/// paying ones, block after block, until one is mined; everything still
/// adds up to the satoshi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchors_claim_is_replaced_with_higher_fees_until_it_confirms() {
    let (mut net, channel) = anchors_pair().await;
    let given = net.fund_wallet(0, 200_000).await;
    let (timeout, _) = pay_and_hold(&mut net, 0, 1, 100_000, 12).await;
    let (funding, capacity) = funding_of(&net, 0, channel);
    let closed_from = net.chain.height() + 1;
    net.node(0).with_manager(|m| m.force_close_channel(channel)).expect("force-close");
    net.mine(1).await;
    net.chain.set_min_block_feerate(3_000);
    let mut claim: Option<OutPoint> = None;
    let mut versions: Vec<bitcoin::Txid> = Vec::new();
    for _ in 0..300 {
        net.chain.mine(1, &net.miner.address()).expect("mine");
        net.step();
        if claim.is_none() {
            claim = net.node(0).with_manager(|m| m.fee_needs().first().map(|(_, n)| n.outpoint));
        }
        let Some(outpoint) = claim else { continue };
        for tx in net.chain.mempool().expect("mempool") {
            let txid = tx.compute_txid();
            if tx.input.iter().any(|i| i.previous_output == outpoint) && !versions.contains(&txid) {
                versions.push(txid);
            }
        }
        if net.chain.utxo(&outpoint, false).expect("chain").is_none() {
            break;
        }
    }
    let outpoint = claim.expect("the HTLC-timeout needed the wallet");
    assert!(net.chain.utxo(&outpoint, false).expect("chain").is_none(), "the claim confirmed");
    assert!(versions.len() >= 2, "the first version was replaced: {versions:?}");
    let mined =
        versions.iter().find(|t| matches!(net.chain.transaction(t), Ok(Some(info)) if info.block.is_some()));
    assert_eq!(mined, versions.last(), "the last, best paying version is the one mined");
    net.chain.set_min_block_feerate(0);
    mine_until_event(
        &mut net,
        0,
        20,
        |e| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == timeout),
    )
    .await;
    mine_until_swept(&mut net, 500).await;
    let tree = closing_tree(&net, funding, capacity, closed_from);
    assert_wallets_add_up(&net, &tree, capacity, given, &[0, 1]);
}
