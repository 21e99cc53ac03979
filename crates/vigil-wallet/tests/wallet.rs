//! The on-chain wallet against the embedded chain: funding, building and
//! signing transactions the chain's consensus checks accept, reorgs, and
//! restarts from SQLite.

use std::sync::Arc;

use bitcoin::{Amount, FeeRate, Network};
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
    // A broadcast the source refuses leaves the wallet unchanged.
    let before = (w.balance(), w.list_utxos());
    let refusing = RefusingSource(&chain);
    let to = TestKey::new(2).address().to_string().parse().expect("address");
    match w.send(&to, Amount::from_int_btc(1), fee(), &refusing, NOW) {
        Err(WalletError::Broadcast(vigil_chain::BroadcastError::Rejected(r))) => assert_eq!(r.code, -26),
        other => panic!("expected a rejected broadcast, got {other:?}"),
    }
    assert_eq!((w.balance(), w.list_utxos()), before, "a refused payment changes nothing");
    assert!(chain.mempool().expect("mempool").is_empty());
}

/// A chain source whose mempool refuses every transaction.
struct RefusingSource<'a>(&'a RegtestChain);

impl ChainSource for RefusingSource<'_> {
    fn tip(&self) -> Result<vigil_chain::BlockRef, vigil_chain::ChainSourceError> {
        ChainSource::tip(self.0)
    }
    fn block_hash(&self, h: u32) -> Result<Option<bitcoin::BlockHash>, vigil_chain::ChainSourceError> {
        ChainSource::block_hash(self.0, h)
    }
    fn header(
        &self,
        h: &bitcoin::BlockHash,
    ) -> Result<Option<vigil_chain::HeaderInfo>, vigil_chain::ChainSourceError> {
        ChainSource::header(self.0, h)
    }
    fn block(&self, h: &bitcoin::BlockHash) -> Result<Option<bitcoin::Block>, vigil_chain::ChainSourceError> {
        ChainSource::block(self.0, h)
    }
    fn mempool(&self) -> Result<Vec<bitcoin::Transaction>, vigil_chain::ChainSourceError> {
        ChainSource::mempool(self.0)
    }
    fn broadcast(&self, _: &bitcoin::Transaction) -> Result<bitcoin::Txid, vigil_chain::BroadcastError> {
        Err(vigil_chain::BroadcastError::Rejected(vigil_chain::Rejection {
            code: -26,
            reason: "min relay fee not met".into(),
            detail: None,
        }))
    }
    fn fee_rate(&self, t: u16) -> Result<FeeRate, vigil_chain::ChainSourceError> {
        ChainSource::fee_rate(self.0, t)
    }
    fn transaction(
        &self,
        t: &bitcoin::Txid,
    ) -> Result<Option<vigil_chain::TxInfo>, vigil_chain::ChainSourceError> {
        ChainSource::transaction(self.0, t)
    }
    fn utxo(
        &self,
        o: &bitcoin::OutPoint,
        m: bool,
    ) -> Result<Option<vigil_chain::UtxoInfo>, vigil_chain::ChainSourceError> {
        ChainSource::utxo(self.0, o, m)
    }
}

#[test]
fn reorg_that_replaces_a_confirmation_is_reflected() {
    let (chain, w) = funded();
    let to = TestKey::new(2).p2wpkh();
    let tx = w.build_transaction(&[(to, Amount::from_int_btc(1))], fee()).expect("build");
    chain.submit_transaction(&tx).expect("valid");
    let confirming = chain.mine(1, &TestKey::new(9).address()).expect("mine")[0];
    w.sync(&chain, NOW).expect("sync");
    let total_before = w.balance().total();

    // The confirming block is replaced by a longer branch: the payment goes
    // back to the mempool and is mined again at the same height.
    chain.invalidate_block(&confirming).expect("invalidate");
    chain.mine(2, &TestKey::new(9).address()).expect("mine");
    let summary = w.sync(&chain, NOW + 10).expect("sync");
    assert_eq!((summary.disconnected, summary.connected, summary.tip_height), (1, 2, 103));
    assert_eq!(w.balance().total(), total_before);
    assert_eq!(w.balance().trusted_pending, Amount::ZERO, "confirmed again on the new branch");
}

#[test]
fn a_shorter_chain_takes_confirmations_away() {
    let (chain, w) = funded();
    let tx =
        w.build_transaction(&[(TestKey::new(2).p2wpkh(), Amount::from_int_btc(1))], fee()).expect("build");
    chain.submit_transaction(&tx).expect("valid");
    let confirming = chain.mine(1, &TestKey::new(9).address()).expect("mine")[0];
    w.sync(&chain, NOW).expect("sync");
    assert_eq!(w.balance().trusted_pending, Amount::ZERO);

    // Invalidated, and nothing mined since: the chain is one block shorter.
    chain.invalidate_block(&confirming).expect("invalidate");
    let summary = w.sync(&chain, NOW + 10).expect("sync");
    assert_eq!((summary.disconnected, summary.tip_height), (1, 101));
    assert_eq!(w.tip_height(), 101);
    assert!(w.balance().trusted_pending > Amount::ZERO, "the change is unconfirmed again");
    assert_eq!(w.sync(&chain, NOW + 11).expect("sync").disconnected, 0, "forgotten once, durably");
    chain.mine(1, &TestKey::new(9).address()).expect("mine");
    w.sync(&chain, NOW + 12).expect("sync");
    assert_eq!(w.balance().trusted_pending, Amount::ZERO);
}

#[test]
fn a_received_payment_replaced_by_a_conflict_disappears() {
    let chain = chain();
    let payer = TestKey::new(3);
    chain.mine(101, &payer.address()).expect("mine");
    let w = wallet(Arc::new(MemoryStore::new()));
    let coin = vigil_chain::testkit::coinbase_coin(&chain, 1);
    let to_wallet = vigil_chain::testkit::spend_p2wpkh(
        &payer,
        std::slice::from_ref(&coin),
        vec![bitcoin::TxOut {
            value: Amount::from_int_btc(20),
            script_pubkey: w.new_address().expect("address").script_pubkey(),
        }],
    );
    chain.submit_transaction(&to_wallet).expect("valid");
    let confirming = chain.mine(1, &payer.address()).expect("mine")[0];
    w.sync(&chain, NOW).expect("sync");
    assert_eq!(w.balance().confirmed, Amount::from_int_btc(20));

    // The payer double-spends the coin in a competing branch.
    chain.invalidate_block(&confirming).expect("invalidate");
    let conflict = vigil_chain::testkit::spend_p2wpkh(
        &payer,
        &[coin],
        vec![bitcoin::TxOut { value: Amount::from_int_btc(49), script_pubkey: payer.p2wpkh() }],
    );
    chain.mine_block_with(&payer.p2wpkh(), &[conflict]).expect("competing block");
    chain.mine(1, &payer.address()).expect("mine");
    w.sync(&chain, NOW + 10).expect("sync");
    assert_eq!(w.balance(), vigil_wallet::WalletBalance::default(), "the payment is gone");
    assert!(w.list_utxos().is_empty());
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
