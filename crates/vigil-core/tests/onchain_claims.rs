//! On-chain enforcement with real transactions: both ends of a channel run
//! their monitors' claims block after block on the embedded regtest chain
//! (every transaction checked by libbitcoinconsensus on submission), until
//! both say enforcement is settled. Then the coins are counted: every
//! output of the closing transaction tree is either swept to its owner's
//! wallet script, an anchor, or paid as fee, to the satoshi.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
use common::{OpenOptions, Pair, Who};
use lightning::sign::InMemorySigner;
use lightning::types::payment::PaymentPreimage;
use vigil_chain::regtest::{validate::TxError, SubmitError};
use vigil_chain::testkit::{coin_of, sign_p2wpkh, spend_p2wpkh, Coin, TestKey};
use vigil_chain::ChainSource;
use vigil_core::channel::{MonitorUpdate, UpdateStep};
use vigil_core::monitor::{ChannelMonitor, MonitorEvent};
use vigil_core::onchain::{ClaimContext, ClaimKind, FeeNeed, FeeNeedKind};

/// The largest witness of a P2WPKH input: item count, a 73-byte signature
/// and a 33-byte key, with their lengths.
const P2WPKH_WITNESS_WEIGHT: u64 = 1 + 1 + 73 + 1 + 33;

fn monitor_of(updates: &[MonitorUpdate]) -> ChannelMonitor {
    let mut monitor = ChannelMonitor::from_first_update(&updates[0]).expect("funded");
    for u in &updates[1..] {
        monitor.apply(u).expect("applies");
    }
    monitor
}

/// One end of the channel enforcing it, with a small wallet (coinbase
/// coins of the harness's funder key) to fund anchor channels' claims.
struct Enforcer {
    monitor: ChannelMonitor,
    signer: InMemorySigner,
    sweep: ScriptBuf,
    /// Txids of the claims it broadcast.
    broadcast: BTreeSet<Txid>,
    kinds: BTreeSet<ClaimKind>,
    /// Fee needs it funded, by kind.
    funded: BTreeSet<(ClaimKind, bool)>,
    /// Its wallet: coins not used yet, the coins it used, and its change.
    coins: Vec<Coin>,
    used: BTreeMap<OutPoint, u64>,
    change: ScriptBuf,
    /// The feerate claims start at.
    feerate_per_kw: u32,
}

impl Enforcer {
    fn new(pair: &Pair, who: Who, sweep_key: u8) -> Self {
        let node = pair.node_ref(who);
        let coins = wallet_coins(pair, who);
        Enforcer {
            monitor: monitor_of(&node.durable),
            signer: node.signer(),
            sweep: TestKey::new(sweep_key).p2wpkh(),
            broadcast: BTreeSet::new(),
            kinds: BTreeSet::new(),
            funded: BTreeSet::new(),
            coins,
            used: BTreeMap::new(),
            change: TestKey::new(sweep_key + 10).p2wpkh(),
            feerate_per_kw: 1000,
        }
    }

    /// Funds `need` with one wallet coin: the need's input and outputs
    /// first, the coin and change after, at the need's fee; the monitor
    /// signs its input last.
    fn fund(&mut self, need: &FeeNeed) -> Transaction {
        let coin = self.coins.pop().expect("the test wallet has coins");
        let mut tx = need
            .funded_by_one_coin(coin.outpoint, coin.txout.value, self.change.clone(), P2WPKH_WITNESS_WEIGHT)
            .expect("a test coin pays any claim's fee");
        let funder = TestKey::new(42);
        sign_p2wpkh(&mut tx, 1, &funder, coin.txout.value);
        self.monitor.sign_fee_input(&self.signer, need, &mut tx, 0).expect("the monitor signs its input");
        self.used.insert(coin.outpoint, coin.txout.value.to_sat());
        tx
    }

    /// Broadcasts the monitor's claims at the current tip. A claim the
    /// mempool refuses for anything but a conflict or a duplicate fails
    /// the test.
    fn broadcast(&mut self, pair: &Pair) {
        let ctx = ClaimContext {
            height: pair.chain.height(),
            feerate_per_kw: self.feerate_per_kw,
            sweep_script: &self.sweep,
        };
        let plan = self.monitor.claims(&self.signer, &ctx);
        let needs: Vec<&FeeNeed> = plan.fee_needs.iter().filter(|n| self.unfunded(pair, n)).collect();
        let funded: Vec<(ClaimKind, bool, OutPoint, Transaction)> = needs
            .into_iter()
            .map(|n| (n.claim, n.kind == FeeNeedKind::AnchorCpfp, n.outpoint, self.fund(n)))
            .collect();
        let plain = plan.claims.into_iter().map(|c| (c.kind, false, c.outpoint, c.tx));
        for (kind, cpfp, outpoint, tx) in plain.chain(funded) {
            match pair.chain.submit_transaction(&tx) {
                Ok(txid) => {
                    self.broadcast.insert(txid);
                    self.kinds.insert(kind);
                    if cpfp {
                        self.funded.insert((kind, true));
                    }
                }
                Err(SubmitError::Invalid(
                    TxError::AlreadyInMempool { .. }
                    | TxError::AlreadyInChain { .. }
                    | TxError::DoubleSpend { .. },
                )) => {}
                Err(e) => panic!("{kind:?} claim of {outpoint} refused: {e}"),
            }
        }
    }

    /// Whether `need`'s output is not already being spent in the mempool
    /// by a transaction we funded (a fresh coin would only conflict).
    fn unfunded(&self, pair: &Pair, need: &FeeNeed) -> bool {
        !pair
            .chain
            .mempool()
            .expect("mempool")
            .iter()
            .any(|tx| tx.input.iter().any(|i| i.previous_output == need.outpoint))
    }
}

/// Ten coins of 100,000 sat for `who`'s test wallet, split from the change
/// of the funding transaction (the funder key's) in a transaction of their
/// own, confirmed in the next block.
fn wallet_coins(pair: &Pair, who: Who) -> Vec<Coin> {
    let funding = pair.funding.clone().expect("funded");
    let funder = TestKey::new(42);
    let coin = coin_of(&funding, 1);
    let coin = if who == Who::A {
        coin
    } else {
        // B splits what A's split left over.
        let split = block_txs(pair, pair.chain.height())
            .into_iter()
            .find(|t| t.input.iter().any(|i| i.previous_output == coin.outpoint))
            .expect("A's wallet was split first");
        coin_of(&split, 10)
    };
    let mut outputs: Vec<TxOut> =
        (0..10).map(|_| TxOut { value: Amount::from_sat(100_000), script_pubkey: funder.p2wpkh() }).collect();
    let rest = coin.txout.value - Amount::from_sat(1_000_000 + 1_000);
    outputs.push(TxOut { value: rest, script_pubkey: funder.p2wpkh() });
    let split = spend_p2wpkh(&funder, std::slice::from_ref(&coin), outputs);
    pair.chain.submit_transaction(&split).expect("the split is valid");
    pair.chain.mine(1, &TestKey::new(99).address()).expect("mine");
    (0..10).map(|vout| coin_of(&split, vout)).collect()
}

fn block_txs(pair: &Pair, height: u32) -> Vec<Transaction> {
    let hash = pair.chain.block_hash(height).expect("chain").expect("block at height");
    pair.chain.block(&hash).expect("chain").expect("block").txdata
}

/// Mines one block (with `extra` first) and feeds it to both monitors.
fn mine(pair: &Pair, enforcers: &mut [&mut Enforcer], extra: &[Transaction]) {
    for tx in extra {
        pair.chain.submit_transaction(tx).unwrap_or_else(|e| panic!("extra transaction refused: {e}"));
    }
    pair.chain.mine(1, &TestKey::new(99).address()).expect("mine");
    let height = pair.chain.height();
    let txs = block_txs(pair, height);
    for e in enforcers.iter_mut() {
        e.monitor.block_connected(height, &txs);
    }
}

/// Runs both enforcers until both are settled.
fn run_to_settlement(pair: &Pair, a: &mut Enforcer, b: &mut Enforcer) {
    for _ in 0..400 {
        if a.monitor.onchain_settled() && b.monitor.onchain_settled() {
            return;
        }
        a.broadcast(pair);
        b.broadcast(pair);
        mine(pair, &mut [a, b], &[]);
    }
    let ctx = |e: &Enforcer| {
        e.monitor.claims(
            &e.signer,
            &ClaimContext { height: pair.chain.height(), feerate_per_kw: 1000, sweep_script: &e.sweep },
        )
    };
    panic!("not settled after 400 blocks: A waits {:?}, B waits {:?}", ctx(a).waiting, ctx(b).waiting);
}

/// The coins of the closing tree (every transaction descending from the
/// funding output): unspent outputs by script, the fees paid, per
/// transaction, and the wallet coins that paid some of them.
struct Tree {
    unspent: BTreeMap<OutPoint, TxOut>,
    fees: BTreeMap<Txid, u64>,
    wallet_in: BTreeMap<OutPoint, u64>,
}

fn closing_tree(pair: &Pair, from: u32, wallets: &[&Enforcer]) -> Tree {
    let funding = pair.funding.clone().expect("funded");
    let mut coins: BTreeMap<OutPoint, TxOut> = BTreeMap::new();
    coins.insert(OutPoint { txid: funding.compute_txid(), vout: 0 }, funding.output[0].clone());
    let mut unspent = coins.clone();
    let mut fees = BTreeMap::new();
    let mut wallet_in = BTreeMap::new();
    for h in from..=pair.chain.height() {
        for tx in block_txs(pair, h) {
            if !tx.input.iter().any(|i| coins.contains_key(&i.previous_output)) {
                continue;
            }
            let foreign: Vec<TxIn> =
                tx.input.iter().filter(|i| !coins.contains_key(&i.previous_output)).cloned().collect();
            for i in &foreign {
                let value =
                    wallets.iter().find_map(|w| w.used.get(&i.previous_output)).unwrap_or_else(|| {
                        panic!("claims add only their own wallet's coins, not {}", i.previous_output)
                    });
                wallet_in.insert(i.previous_output, *value);
                coins.insert(
                    i.previous_output,
                    TxOut { value: Amount::from_sat(*value), script_pubkey: ScriptBuf::new() },
                );
            }
            let inputs: u64 = tx.input.iter().map(|i| coins[&i.previous_output].value.to_sat()).sum();
            let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
            let txid = tx.compute_txid();
            fees.insert(txid, inputs - outputs);
            for i in &tx.input {
                unspent.remove(&i.previous_output);
            }
            for (vout, o) in tx.output.iter().enumerate() {
                let op = OutPoint { txid, vout: vout as u32 };
                coins.insert(op, o.clone());
                unspent.insert(op, o.clone());
            }
        }
    }
    Tree { unspent, fees, wallet_in }
}

impl Tree {
    fn paid_to(&self, script: &ScriptBuf) -> u64 {
        self.unspent.values().filter(|o| o.script_pubkey == *script).map(|o| o.value.to_sat()).sum()
    }

    fn fees_of(&self, txids: &BTreeSet<Txid>) -> u64 {
        txids.iter().filter_map(|t| self.fees.get(t)).sum()
    }

    fn total_fees(&self) -> u64 {
        self.fees.values().sum()
    }

    /// What `wallet` put into the tree from its coins.
    fn wallet_in(&self, wallet: &Enforcer) -> u64 {
        self.wallet_in.iter().filter(|(op, _)| wallet.used.contains_key(op)).map(|(_, v)| v).sum()
    }

    /// What `wallet` holds at the end, from the tree: sweeps and change,
    /// less the coins it put in.
    fn net_of(&self, wallet: &Enforcer) -> i64 {
        (self.paid_to(&wallet.sweep) + self.paid_to(&wallet.change)) as i64 - self.wallet_in(wallet) as i64
    }

    /// Every unspent output is swept to `sweeps` or is an anchor; returns
    /// the anchors' value.
    fn anchors_only_besides(&self, sweeps: &[&ScriptBuf]) -> u64 {
        let mut anchors = 0;
        for (op, o) in &self.unspent {
            if sweeps.contains(&&o.script_pubkey) {
                continue;
            }
            assert_eq!(o.value.to_sat(), 330, "output {op} left unclaimed: {o:?}");
            anchors += 330;
        }
        anchors
    }
}

/// The receiver learns (durably) the preimage of HTLC `id` but the fulfill
/// never reaches the offerer.
fn learn_preimage_only(pair: &mut Pair, to: Who, id: u64, preimage: PaymentPreimage) {
    pair.node(to).channel.fulfill_htlc(id, preimage, None).expect("fulfill_htlc");
    pair.pump(to);
    pair.node(to).to_peer.clear();
}

/// HTLCs in both directions, then a force-close by `closer`: every output
/// ends in its owner's sweep script, to the satoshi.
fn force_close_with_htlcs_both_ways(anchors: bool, closer: Who) {
    let mut pair = Pair::open(OpenOptions { anchors, ..OpenOptions::default() });
    let capacity = 1_000_000;
    let (a_to_b_known, p1) = pair.pay(Who::A, 5_000_000);
    let (b_to_a_known, p2) = pair.pay(Who::B, 6_000_000);
    let (_a_to_b_timeout, _) = pair.pay(Who::A, 7_000_000);
    let (_b_to_a_timeout, _) = pair.pay(Who::B, 8_000_000);
    let (_dust, _) = pair.pay(Who::A, 300_000);
    learn_preimage_only(&mut pair, Who::B, a_to_b_known, p1);
    learn_preimage_only(&mut pair, Who::A, b_to_a_known, p2);
    pair.node(closer).channel.force_close();
    pair.pump(closer);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    let closed_from = pair.chain.height() + 1;
    run_to_settlement(&pair, &mut a, &mut b);

    let closing = if closer == Who::A { &a } else { &b };
    assert!(closing.kinds.contains(&ClaimKind::HolderCommitment), "{closer:?} broadcast its commitment");
    let (holder, other) = if closer == Who::A { (&a, &b) } else { (&b, &a) };
    for kind in [ClaimKind::HtlcTimeout, ClaimKind::HtlcSuccess, ClaimKind::DelayedOutput] {
        assert!(holder.kinds.contains(&kind), "the closer claimed {kind:?}: {:?}", holder.kinds);
    }
    for kind in [ClaimKind::CounterpartyHtlcTimeout, ClaimKind::CounterpartyHtlcSuccess, ClaimKind::ToRemote]
    {
        assert!(other.kinds.contains(&kind), "the other side claimed {kind:?}: {:?}", other.kinds);
    }

    if anchors {
        // Zero-fee HTLC transactions were funded from the closer's wallet.
        assert!(!closing.used.is_empty(), "the closer's wallet paid for its HTLC transactions");
    }
    let tree = closing_tree(&pair, closed_from, &[&a, &b]);
    let anchors_left = tree.anchors_only_besides(&[&a.sweep, &b.sweep, &a.change, &b.change]);
    let cpfp = closing.funded.contains(&(ClaimKind::HolderCommitment, true));
    assert_eq!(
        anchors_left,
        if !anchors {
            0
        } else if cpfp {
            330
        } else {
            660
        }
    );
    let (net_a, net_b) = (tree.net_of(&a), tree.net_of(&b));
    assert_eq!(
        net_a + net_b + (anchors_left + tree.total_fees()) as i64,
        capacity as i64,
        "value is conserved: what the wallets gained, the anchors left and the fees make the capacity"
    );
    // Each side got its balance and the HTLCs it was owed, less the fees of
    // its own claims (the commitment's fee is the funder's, A's, already
    // out of its balance).
    let commitment = pair.node_ref(closer).latest_holder_commitment().expect("commitment");
    let (to_closer, to_other) =
        (commitment.to_broadcaster_value_sat(), commitment.to_countersignatory_value_sat());
    let (base_a, base_b) = if closer == Who::A { (to_closer, to_other) } else { (to_other, to_closer) };
    let commitment_txid = commitment.trust().txid();
    let fees_a = tree.fees_of(&a.broadcast) - if closer == Who::A { tree.fees[&commitment_txid] } else { 0 };
    let fees_b = tree.fees_of(&b.broadcast) - if closer == Who::B { tree.fees[&commitment_txid] } else { 0 };
    // A is owed B's 6,000 sat (preimage known) and its own 7,000 sat (timed
    // out); B is owed A's 5,000 sat and its own 8,000 sat. A spent anchor
    // (CPFP) is the closer's too.
    let anchor_a = if cpfp && closer == Who::A { 330 } else { 0 };
    let anchor_b = if cpfp && closer == Who::B { 330 } else { 0 };
    assert_eq!(net_a, (base_a + 6_000 + 7_000 + anchor_a) as i64 - fees_a as i64, "A's coins");
    assert_eq!(net_b, (base_b + 5_000 + 8_000 + anchor_b) as i64 - fees_b as i64, "B's coins");

    // On-chain outcomes reached the monitors as events: the HTLC A offered
    // that B claimed on chain is claimed for A, with its preimage.
    let claimed_on_chain = a.monitor.events().iter().any(|e| {
        matches!(&e.event, MonitorEvent::PaymentPathClaimed { htlc_id, preimage, on_chain: true, .. }
            if *htlc_id == a_to_b_known && *preimage == p1)
    });
    assert!(claimed_on_chain, "A learned the preimage from the chain: {:?}", a.monitor.events());
    assert!(a.monitor.onchain_settled() && b.monitor.onchain_settled());
}

#[test]
fn holder_force_close_static_remotekey_sweeps_everything() {
    force_close_with_htlcs_both_ways(false, Who::A);
}

#[test]
fn counterparty_force_close_static_remotekey_sweeps_everything() {
    force_close_with_htlcs_both_ways(false, Who::B);
}

#[test]
fn holder_force_close_anchors_sweeps_everything() {
    force_close_with_htlcs_both_ways(true, Who::A);
}

#[test]
fn counterparty_force_close_anchors_sweeps_everything() {
    force_close_with_htlcs_both_ways(true, Who::B);
}

/// B's holder commitment as of its latest durable update, with that update.
fn latest_commitment_of(
    pair: &Pair,
    who: Who,
) -> (MonitorUpdate, lightning::ln::chan_utils::HolderCommitmentTransaction) {
    pair.node_ref(who)
        .durable
        .iter()
        .rev()
        .find_map(|u| {
            u.steps.iter().find_map(|s| match s {
                UpdateStep::HolderCommitment { commitment, .. } => Some((u.clone(), commitment.clone())),
                _ => None,
            })
        })
        .expect("a funded channel has a holder commitment")
}

/// B broadcasts a revoked commitment with HTLCs both ways; if
/// `second_stage`, also its HTLC-success transaction in the same block. A
/// takes every output, second stage included.
fn revoked_commitment_is_punished(anchors: bool, second_stage: bool) {
    let mut pair = Pair::open(OpenOptions { anchors, ..OpenOptions::default() });
    let capacity = 1_000_000;
    let (a_to_b, p1) = pair.pay(Who::A, 50_000_000);
    let (b_to_a, p2) = pair.pay(Who::B, 60_000_000);
    let (update, old) = latest_commitment_of(&pair, Who::B);
    let revoked = pair.sign_holder_commitment(Who::B, &old, &update.snapshot.params);
    let htlc_txs = pair.sign_holder_htlc_transactions(Who::B, &old, &update);
    pair.claim(Who::B, a_to_b, p1);
    pair.claim(Who::A, b_to_a, p2);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    let closed_from = pair.chain.height() + 1;
    let mut extra = vec![revoked.clone()];
    if second_stage {
        let success = htlc_txs.iter().find(|(h, _)| !h.offered).expect("B's HTLC-success").1.clone();
        extra.push(success);
    }
    // B's HTLC transactions with anchors carry no fee and need the commitment
    // confirmed first (1 CSV): they follow in the next block.
    let (first, second) = if anchors { (vec![revoked], extra[1..].to_vec()) } else { (extra, vec![]) };
    mine(&pair, &mut [&mut a, &mut b], &first);
    if !second.is_empty() {
        // Zero-fee: below the relay minimum, so the cheater has a miner
        // include it directly.
        pair.chain.mine_block_with(&TestKey::new(99).p2wpkh(), &second).expect("a valid block");
        let height = pair.chain.height();
        let txs = block_txs(&pair, height);
        for e in [&mut a, &mut b] {
            e.monitor.block_connected(height, &txs);
        }
    }
    run_to_settlement(&pair, &mut a, &mut b);
    assert!(a.kinds.contains(&ClaimKind::Justice));
    let tree = closing_tree(&pair, closed_from, &[&a, &b]);
    let anchors_left = tree.anchors_only_besides(&[&a.sweep, &b.sweep]);
    assert_eq!(tree.paid_to(&b.sweep), 0, "the cheater gets nothing");
    let swept_a = tree.paid_to(&a.sweep);
    assert_eq!(
        swept_a + anchors_left + tree.total_fees(),
        capacity,
        "A took everything but fees and anchors"
    );
}

#[test]
fn revoked_commitment_static_remotekey_punished() {
    revoked_commitment_is_punished(false, false);
}

#[test]
fn revoked_commitment_and_its_htlc_transaction_static_remotekey_punished() {
    revoked_commitment_is_punished(false, true);
}

#[test]
fn revoked_commitment_anchors_punished() {
    revoked_commitment_is_punished(true, false);
}

#[test]
fn revoked_commitment_and_its_htlc_transaction_anchors_punished() {
    revoked_commitment_is_punished(true, true);
}

/// A reorg undoes the close: the monitors forget the commitment and its
/// claims, A's commitment is claimed (broadcast) again, and once the chain
/// confirms it again everything still ends in the right wallets.
#[test]
fn a_reorg_undoing_the_close_makes_the_claims_again() {
    let mut pair = Pair::open(OpenOptions::default());
    let capacity = 1_000_000;
    let (_, _) = pair.pay(Who::A, 7_000_000);
    pair.node(Who::A).channel.force_close();
    pair.pump(Who::A);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    let closed_from = pair.chain.height() + 1;
    let plan_of = |e: &Enforcer, pair: &Pair| {
        let ctx = ClaimContext { height: pair.chain.height(), feerate_per_kw: 1000, sweep_script: &e.sweep };
        e.monitor.claims(&e.signer, &ctx).claims.iter().map(|c| c.kind).collect::<Vec<_>>()
    };
    a.broadcast(&pair);
    mine(&pair, &mut [&mut a, &mut b], &[]);
    b.broadcast(&pair);
    assert!(b.kinds.contains(&ClaimKind::ToRemote), "B claims its balance once the commitment confirms");
    mine(&pair, &mut [&mut a, &mut b], &[]);
    assert!(plan_of(&b, &pair).is_empty(), "B's claim confirmed: nothing left to claim");
    assert!(!plan_of(&a, &pair).contains(&ClaimKind::HolderCommitment));

    // Both blocks leave the chain.
    let tip = pair.chain.height();
    let hash = pair.chain.block_hash(tip - 1).expect("chain").expect("block");
    let gone = pair.chain.invalidate_block(&hash).expect("invalidate");
    assert_eq!(gone.len(), 2);
    for h in (tip - 1..=tip).rev() {
        a.monitor.block_disconnected(h);
        b.monitor.block_disconnected(h);
    }
    assert_eq!(plan_of(&a, &pair), vec![ClaimKind::HolderCommitment], "A claims its commitment again");
    // B saw the channel close on chain; with the close gone it goes out
    // with its own commitment too (whichever confirms settles it).
    assert_eq!(plan_of(&b, &pair), vec![ClaimKind::HolderCommitment], "B closes with its own commitment");

    run_to_settlement(&pair, &mut a, &mut b);
    let tree = closing_tree(&pair, closed_from, &[&a, &b]);
    let anchors_left = tree.anchors_only_besides(&[&a.sweep, &b.sweep]);
    let swept = tree.paid_to(&a.sweep) + tree.paid_to(&b.sweep);
    assert_eq!(swept + anchors_left + tree.total_fees(), capacity, "value is conserved across the reorg");
}

/// Claims rise in fee with every block they could have confirmed in and
/// did not, and are never bumped past what they take.
#[test]
fn unconfirmed_claims_are_bumped_but_never_above_their_value() {
    let mut pair = Pair::open(OpenOptions::default());
    let _ = pair.pay(Who::A, 7_000_000);
    let (small, preimage) = pair.pay(Who::A, 3_000_000);
    learn_preimage_only(&mut pair, Who::B, small, preimage);
    pair.node(Who::A).channel.force_close();
    pair.pump(Who::A);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    a.broadcast(&pair);
    mine(&pair, &mut [&mut a, &mut b], &[]);
    let fee_of = |e: &Enforcer, height: u32, kind: ClaimKind| -> Vec<(u64, u64)> {
        let ctx = ClaimContext { height, feerate_per_kw: 1000, sweep_script: &e.sweep };
        e.monitor
            .claims(&e.signer, &ctx)
            .claims
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.value_sat, c.value_sat - c.tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>()))
            .collect()
    };
    let now = pair.chain.height();
    let first = fee_of(&b, now, ClaimKind::CounterpartyHtlcTimeout);
    assert!(first.is_empty(), "B's timeout claim waits for the expiry");
    let to_remote_now = fee_of(&b, now, ClaimKind::ToRemote);
    let to_remote_later = fee_of(&b, now + 4, ClaimKind::ToRemote);
    assert_eq!(to_remote_now.len(), 1);
    assert!(to_remote_later[0].1 > to_remote_now[0].1, "a claim left unconfirmed is bumped");
    // B's 3,000 sat HTLC claim (it knows the preimage) is bumped too, and
    // faster: the counterparty could take it.
    let success_now = fee_of(&b, now, ClaimKind::CounterpartyHtlcSuccess);
    let success_later = fee_of(&b, now + 1, ClaimKind::CounterpartyHtlcSuccess);
    assert!(success_later[0].1 > success_now[0].1, "{success_now:?} then {success_later:?}");
    assert!(
        success_later[0].1 - success_now[0].1 > to_remote_later[0].1 - to_remote_now[0].1,
        "a contested claim rises faster"
    );
    // Long after, nothing is abandoned: the uncontested claim stops at
    // twice its first feerate, and the HTLC claim, whose fee would now eat
    // it, pays what leaves the dust limit.
    let late = now + 400;
    let to_remote_late = fee_of(&b, late, ClaimKind::ToRemote);
    assert!(to_remote_late[0].1 <= 2 * to_remote_now[0].1 + 2, "{to_remote_now:?} then {to_remote_late:?}");
    let success_late = fee_of(&b, late, ClaimKind::CounterpartyHtlcSuccess);
    assert_eq!(success_late.len(), 1, "still claimed");
    assert_eq!(
        success_late[0].1,
        3_000 - vigil_core::onchain::CLAIM_DUST_LIMIT_SAT,
        "clamped to the dust limit"
    );
}

/// An anchors commitment whose own feerate is below the target is paid for
/// by a child spending our anchor and a wallet coin: the two confirm
/// together, at the target feerate as a package.
#[test]
fn a_low_fee_anchors_commitment_is_paid_for_by_a_child() {
    let mut pair = Pair::open(OpenOptions { anchors: true, ..OpenOptions::default() });
    let _ = pair.pay(Who::A, 7_000_000);
    pair.node(Who::A).channel.force_close();
    pair.pump(Who::A);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    a.feerate_per_kw = 5_000;
    a.broadcast(&pair);
    assert!(
        a.funded.contains(&(ClaimKind::HolderCommitment, true)),
        "A paid for its commitment with a child"
    );
    let mempool = pair.chain.mempool().expect("mempool");
    let funding = pair.funding.clone().expect("funded");
    let commitment = mempool
        .iter()
        .find(|t| t.input[0].previous_output.txid == funding.compute_txid())
        .expect("the commitment is in the mempool")
        .clone();
    let child = mempool
        .iter()
        .find(|t| t.input.iter().any(|i| i.previous_output.txid == commitment.compute_txid()))
        .expect("its child is in the mempool")
        .clone();
    let commitment_fee =
        funding.output[0].value.to_sat() - commitment.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    let child_in: u64 = 330 + a.used.values().sum::<u64>();
    let child_fee = child_in - child.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    let package_weight = commitment.weight().to_wu() + child.weight().to_wu();
    assert!(
        commitment_fee * 1000 < 5_000 * commitment.weight().to_wu(),
        "the commitment alone is below the target"
    );
    assert!(
        (commitment_fee + child_fee) * 1000 >= 5_000 * package_weight,
        "together they pay the target: {} + {} sat for {} WU",
        commitment_fee,
        child_fee,
        package_weight
    );
    mine(&pair, &mut [&mut a, &mut b], &[]);
    for tx in [&commitment, &child] {
        let info = pair.chain.transaction(&tx.compute_txid()).expect("lookup").expect("known");
        assert!(info.block.is_some(), "confirmed together");
    }
    run_to_settlement(&pair, &mut a, &mut b);
}

/// Transactions that are not what the monitor expects (spending the
/// commitment's outputs with garbage witnesses, 32-byte items that are no
/// preimage, outputs copying our scripts) are taken as what they are:
/// nothing panics, no payment is claimed by a fake preimage, and the
/// claims of the outputs still unspent are still made.
#[test]
fn unexpected_transactions_in_blocks_are_ignored_safely() {
    let mut pair = Pair::open(OpenOptions { anchors: true, ..OpenOptions::default() });
    let (htlc, _) = pair.pay(Who::A, 7_000_000);
    pair.node(Who::A).channel.force_close();
    pair.pump(Who::A);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    a.broadcast(&pair);
    mine(&pair, &mut [&mut a, &mut b], &[]);
    let commitment = a.monitor.closing_transaction().cloned();
    assert!(commitment.is_none(), "a force-close, not a cooperative close");
    let spend_txid = block_txs(&pair, pair.chain.height())
        .iter()
        .find(|t| t.input[0].previous_output.txid == pair.funding.as_ref().expect("funded").compute_txid())
        .expect("the commitment confirmed")
        .compute_txid();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let before = a.monitor.claims(
        &a.signer,
        &ClaimContext { height: pair.chain.height() + 500, feerate_per_kw: 1000, sweep_script: &a.sweep },
    );
    let height = pair.chain.height() + 1;
    for round in 0..200 {
        let inputs = (0..1 + next() % 3)
            .map(|_| {
                let items: Vec<Vec<u8>> = (0..next() % 5)
                    .map(|_| (0..[0, 1, 32, 33, 72][(next() % 5) as usize]).map(|_| next() as u8).collect())
                    .collect();
                TxIn {
                    previous_output: OutPoint { txid: spend_txid, vout: (next() % 6) as u32 },
                    witness: bitcoin::Witness::from_slice(&items),
                    ..TxIn::default()
                }
            })
            .collect();
        let output = TxOut { value: Amount::from_sat(next() % 10_000), script_pubkey: a.sweep.clone() };
        let junk = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: inputs,
            output: vec![output],
        };
        // Fed to a copy: the real monitor keeps following the real chain.
        let mut copy = a.monitor.clone();
        copy.block_connected(height, std::slice::from_ref(&junk));
        let fake_claim = copy.events().iter().any(
            |e| matches!(&e.event, MonitorEvent::PaymentPathClaimed { htlc_id, .. } if *htlc_id == htlc),
        );
        assert!(!fake_claim, "round {round}: random bytes are no preimage");
        // Every output the junk did not spend is still claimed (and those
        // it did spend are taken as spent, not claimed twice).
        let ctx =
            ClaimContext { height: pair.chain.height() + 500, feerate_per_kw: 1000, sweep_script: &a.sweep };
        let still: Vec<OutPoint> = copy.claims(&a.signer, &ctx).claims.iter().map(|c| c.outpoint).collect();
        let spent_by_junk = |o: &OutPoint| junk.input.iter().any(|i| i.previous_output == *o);
        for claim in &before.claims {
            assert_eq!(
                still.contains(&claim.outpoint),
                !spent_by_junk(&claim.outpoint),
                "round {round}: {:?} of {}",
                claim.kind,
                claim.outpoint
            );
        }
    }
    assert!(!before.claims.is_empty(), "there were claims to check");
    run_to_settlement(&pair, &mut a, &mut b);
}

/// The peer's commitment confirms and a reorg takes it out again: the
/// channel is closed for good, so we broadcast our own commitment rather
/// than wait for the peer to send theirs again.
#[test]
fn a_reorg_undoing_the_peers_close_makes_us_close() {
    let mut pair = Pair::open(OpenOptions::default());
    let _ = pair.pay(Who::A, 7_000_000);
    pair.node(Who::B).channel.force_close();
    pair.pump(Who::B);
    let mut a = Enforcer::new(&pair, Who::A, 21);
    let mut b = Enforcer::new(&pair, Who::B, 22);
    b.broadcast(&pair);
    mine(&pair, &mut [&mut a, &mut b], &[]);
    assert!(a.monitor.is_closed() && !a.monitor.should_broadcast_holder_commitment());
    let tip = pair.chain.height();
    let hash = pair.chain.block_hash(tip).expect("chain").expect("block");
    pair.chain.invalidate_block(&hash).expect("invalidate");
    a.monitor.block_disconnected(tip);
    b.monitor.block_disconnected(tip);
    assert!(a.monitor.should_broadcast_holder_commitment(), "A closes with its own commitment now");
    let ctx = ClaimContext { height: pair.chain.height(), feerate_per_kw: 1000, sweep_script: &a.sweep };
    let kinds: Vec<ClaimKind> = a.monitor.claims(&a.signer, &ctx).claims.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![ClaimKind::HolderCommitment]);
    // Survives a restart.
    let reloaded = ChannelMonitor::deserialize(&a.monitor.serialize()).expect("round trip");
    assert!(reloaded.should_broadcast_holder_commitment());
}
