//! The on-chain wallet against the embedded chain: funding, building and
//! signing transactions the chain's consensus checks accept, reorgs, and
//! restarts from SQLite.

use std::sync::Arc;

use bitcoin::{Amount, FeeRate, Network, ScriptBuf};
use vigil_chain::testkit::TestKey;
use vigil_chain::{ChainSource, ManualClock, RegtestChain};
use vigil_store::{KvStore, MemoryStore, SqliteStore};
use vigil_wallet::persist::{COMPACT_AFTER, NAMESPACE};
use vigil_wallet::{OnchainWallet, WalletError};

const NOW: u64 = 1_700_000_000;
const SEED: [u8; 32] = [7; 32];

fn chain() -> RegtestChain {
    RegtestChain::in_memory(Arc::new(ManualClock::new(NOW)))
}

fn wallet(store: Arc<dyn KvStore>) -> OnchainWallet {
    OnchainWallet::open(&SEED, Network::Regtest, store).expect("open wallet")
}

fn fee() -> FeeRate {
    FeeRate::from_sat_per_vb_u32(2)
}

/// Mines 101 blocks to the wallet and syncs: one coinbase is mature.
fn funded() -> (RegtestChain, OnchainWallet) {
    let chain = chain();
    let w = wallet(Arc::new(MemoryStore::new()));
    chain.mine(101, &w.new_address().expect("address")).expect("mine");
    w.sync(&chain, NOW).expect("sync");
    (chain, w)
}

#[test]
fn addresses_are_fresh_regtest_p2wpkh() {
    let w = wallet(Arc::new(MemoryStore::new()));
    let a = w.new_address().expect("address");
    let b = w.new_address().expect("address");
    assert_ne!(a, b);
    assert!(a.to_string().starts_with("bcrt1q"), "{a}");
    let unused = w.receive_address().expect("address");
    assert_eq!(w.receive_address().expect("address"), unused, "stable until used");
    assert_eq!(w.network(), Network::Regtest);
}

#[test]
fn mined_coins_are_counted_immature_then_confirmed() {
    let (chain, w) = funded();
    let balance = w.balance();
    assert_eq!(balance.total(), Amount::from_int_btc(50) * 101);
    assert!(balance.confirmed >= Amount::from_int_btc(50), "{balance:?}");
    assert!(balance.immature >= Amount::from_int_btc(50) * 99, "{balance:?}");
    assert_eq!(w.tip_height(), 101);
    assert_eq!(w.list_utxos().len(), 101);
    let funded_script = w.list_utxos()[0].txout.script_pubkey.clone();
    assert_ne!(
        w.receive_address().expect("address").script_pubkey(),
        funded_script,
        "a used address is not offered again"
    );
    chain.mine(100, &TestKey::new(9).address()).expect("mine");
    w.sync(&chain, NOW).expect("sync");
    assert_eq!(w.balance().confirmed, Amount::from_int_btc(50) * 101, "all mature now");
}

#[test]
fn built_transaction_passes_the_chain_consensus_checks() {
    let (chain, w) = funded();
    let target = TestKey::new(2).p2wpkh();
    let tx = w.build_transaction(&[(target.clone(), Amount::from_int_btc(3))], fee()).expect("build");
    assert!(tx.output.iter().any(|o| o.script_pubkey == target && o.value == Amount::from_int_btc(3)));
    let txid = chain.submit_transaction(&tx).expect("signatures and scripts are valid");
    // A built transaction is not spent until it is seen.
    assert_eq!(w.balance().trusted_pending, Amount::ZERO);
    w.sync(&chain, NOW + 1).expect("sync");
    assert!(w.balance().trusted_pending > Amount::ZERO, "change is pending");
    chain.mine(1, &TestKey::new(9).address()).expect("mine");
    w.sync(&chain, NOW + 2).expect("sync");
    assert_eq!(chain.transaction(&txid).expect("lookup").expect("known").block.map(|b| b.height), Some(102));
    assert_eq!(w.balance().trusted_pending, Amount::ZERO);
}

#[test]
fn send_pays_an_address_and_tracks_it() {
    let (chain, w) = funded();
    let other_seed =
        OnchainWallet::open(&[8; 32], Network::Regtest, Arc::new(MemoryStore::new())).expect("open");
    let to = other_seed.new_address().expect("address");
    let before = w.balance().total();
    let txid = w
        .send(&to.to_string().parse().expect("address"), Amount::from_int_btc(1), fee(), &chain, NOW)
        .expect("send");
    assert!(chain.mempool().expect("mempool").iter().any(|tx| tx.compute_txid() == txid));
    let after = w.balance().total();
    assert!(before - after > Amount::from_int_btc(1), "amount and fee left the wallet");
    assert!(before - after < Amount::from_int_btc(1) + Amount::from_sat(10_000));
    other_seed.sync(&chain, NOW).expect("sync");
    assert_eq!(other_seed.balance().untrusted_pending, Amount::from_int_btc(1));
    chain.mine(1, &TestKey::new(9).address()).expect("mine");
    other_seed.sync(&chain, NOW).expect("sync");
    assert_eq!(other_seed.balance().confirmed, Amount::from_int_btc(1));
}

#[test]
fn typed_errors_for_bad_payments() {
    let (chain, w) = funded();
    let spendable = w.balance().confirmed;
    match w.build_transaction(&[(TestKey::new(2).p2wpkh(), spendable * 2)], fee()) {
        Err(WalletError::InsufficientFunds { available, .. }) => assert_eq!(available, spendable),
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    assert!(matches!(
        w.build_transaction(&[(TestKey::new(2).p2wpkh(), Amount::from_sat(10))], fee()),
        Err(WalletError::OutputBelowDust(0))
    ));
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".parse().expect("address");
    assert!(matches!(
        w.send(&mainnet, Amount::from_int_btc(1), fee(), &chain, NOW),
        Err(WalletError::WrongNetwork { expected: Network::Regtest, .. })
    ));
    // A broadcast the chain refuses leaves the wallet unchanged: paying to a
    // script far above the standard weight is refused by the mempool.
    let heavy = ScriptBuf::from_bytes(vec![0x51; 110_000]);
    let tx = w.build_transaction(&[(heavy, Amount::from_int_btc(1))], fee()).expect("build");
    assert!(chain.submit_transaction(&tx).is_err());
}

#[test]
fn reorg_that_drops_a_payment_is_reflected() {
    let (chain, w) = funded();
    let to = TestKey::new(2).p2wpkh();
    let tx = w.build_transaction(&[(to, Amount::from_int_btc(1))], fee()).expect("build");
    chain.submit_transaction(&tx).expect("valid");
    let confirming = chain.mine(1, &TestKey::new(9).address()).expect("mine")[0];
    w.sync(&chain, NOW).expect("sync");
    let total_before = w.balance().total();

    // The confirming block is replaced by a longer branch.
    chain.invalidate_block(&confirming).expect("invalidate");
    chain.mine(2, &TestKey::new(9).address()).expect("mine");
    let summary = w.sync(&chain, NOW + 10).expect("sync");
    assert_eq!(summary.disconnected, 1);
    assert_eq!(summary.connected, 2);
    assert_eq!(w.tip_height(), 103);
    // The payment went back to the mempool and was mined again in the new
    // branch: same holdings, nothing pending, confirmed at 102 on the new chain.
    assert_eq!(w.balance().total(), total_before);
    assert_eq!(w.balance().trusted_pending, Amount::ZERO);
    let height =
        chain.transaction(&tx.compute_txid()).expect("lookup").expect("known").block.map(|b| b.height);
    assert_eq!(height, Some(102));
}

#[test]
fn wallet_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.sqlite");
    let chain = chain();
    let (balance, last_address) = {
        let w = wallet(Arc::new(SqliteStore::open(&path).expect("open")));
        let address = w.new_address().expect("address");
        chain.mine(101, &address).expect("mine");
        w.sync(&chain, NOW).expect("sync");
        w.send(
            &TestKey::new(2).address().to_string().parse().expect("address"),
            Amount::from_int_btc(2),
            fee(),
            &chain,
            NOW,
        )
        .expect("send");
        (w.balance(), address)
    };
    let w = wallet(Arc::new(SqliteStore::open(&path).expect("reopen")));
    assert_eq!(w.balance(), balance, "balance, pending payment included, is restored");
    assert_eq!(w.tip_height(), 101, "the chain checkpoint is restored");
    assert_ne!(w.new_address().expect("address"), last_address, "revealed indexes are restored");
    chain.mine(1, &TestKey::new(9).address()).expect("mine");
    assert_eq!(w.sync(&chain, NOW).expect("sync").connected, 1, "sync resumes from the checkpoint");
}

#[test]
fn another_seed_cannot_open_the_wallet() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    wallet(store.clone()).new_address().expect("address");
    match OnchainWallet::open(&[9; 32], Network::Regtest, store.clone()) {
        Err(WalletError::Mismatch(_)) => {}
        other => panic!("expected Mismatch, got {other:?}"),
    }
    assert!(matches!(OnchainWallet::open(&SEED, Network::Testnet, store), Err(WalletError::Mismatch(_))));
}

#[test]
fn changesets_are_compacted_and_reload() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let w = wallet(store.clone());
    let mut last = None;
    for _ in 0..(COMPACT_AFTER * 2 + 5) {
        last = Some(w.new_address().expect("address"));
    }
    let stored = store.list(NAMESPACE).expect("list").len();
    assert!(stored <= COMPACT_AFTER + 1, "{stored} changesets stored");
    drop(w);
    let w = wallet(store.clone());
    let next = w.new_address().expect("address");
    assert_ne!(Some(next), last, "the reveal index survived compaction");
    store.write(NAMESPACE, "00000000000000000000", b"\x01{broken").expect("write");
    assert!(matches!(
        OnchainWallet::open(&SEED, Network::Regtest, store),
        Err(WalletError::Persist(vigil_wallet::persist::PersistError::Corrupt { .. }))
    ));
}

#[test]
fn wallet_syncs_the_same_through_the_chain_source_trait() {
    let chain = chain();
    let source: &dyn ChainSource = &chain;
    let w = wallet(Arc::new(MemoryStore::new()));
    chain.mine(3, &w.new_address().expect("address")).expect("mine");
    assert_eq!(w.sync(source, NOW).expect("sync").connected, 3);
    assert_eq!(w.sync(source, NOW).expect("sync").connected, 0, "a second sync has nothing to do");
}
