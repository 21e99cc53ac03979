//! Reorgs (a confirmed spend returns to the mempool, a conflicting branch
//! replaces it), pull sync across reorgs, and restarts from SQLite.

// `&[coin.clone()]` reads better than `std::slice::from_ref(&coin)` in tests.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::sync::Arc;

use bitcoin::{Amount, TxOut};
use vigil_chain::regtest::{InvalidateError, OpenError};
use vigil_chain::testkit::{coin_of, coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{ChainEvent, ChainFollower, ChainSource, ManualClock, RegtestChain};
use vigil_store::{KvStore, SqliteStore};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000))
}

fn pay(key: &TestKey, value: Amount) -> TxOut {
    TxOut { value, script_pubkey: key.p2wpkh() }
}

#[test]
fn confirmed_spend_returns_to_the_mempool_after_a_reorg() {
    let chain = RegtestChain::in_memory(clock());
    let key = TestKey::new(1);
    chain.mine(101, &key.address()).expect("mine");
    let tx = spend_p2wpkh(&key, &[coinbase_coin(&chain, 1)], vec![pay(&key, Amount::from_int_btc(49))]);
    let txid = chain.submit_transaction(&tx).expect("valid");
    let confirming = chain.mine(1, &key.address()).expect("mine")[0];
    chain.mine(2, &key.address()).expect("mine");
    assert!(chain.mempool().expect("mempool").is_empty());

    let disconnected = chain.invalidate_block(&confirming).expect("invalidate");
    assert_eq!(disconnected.len(), 3, "the block and the two above it");
    assert_eq!(disconnected.last(), Some(&confirming));
    assert_eq!(chain.height(), 101);
    assert_eq!(chain.mempool().expect("mempool"), vec![tx.clone()], "back in the mempool");
    assert_eq!(chain.transaction(&txid).expect("lookup").expect("known").block, None);
    assert_eq!(chain.block_hash(102).expect("lookup"), None);
    assert!(chain.header(&confirming).expect("lookup").is_some(), "stale blocks stay known");

    // Mining again confirms it on the new branch.
    let new_tip = chain.mine(4, &key.address()).expect("mine");
    assert_eq!(chain.height(), 105);
    let info = chain.transaction(&txid).expect("lookup").expect("known");
    assert_eq!(info.block.map(|b| b.height), Some(102));
    assert_ne!(info.block.map(|b| b.hash), Some(confirming));
    assert_eq!(chain.tip().hash, new_tip[3]);
}

#[test]
fn conflicting_branch_replaces_a_confirmed_spend() {
    let chain = RegtestChain::in_memory(clock());
    let key = TestKey::new(1);
    let thief = TestKey::new(2);
    chain.mine(101, &key.address()).expect("mine");
    let coin = coinbase_coin(&chain, 1);
    let honest = spend_p2wpkh(&key, &[coin.clone()], vec![pay(&key, Amount::from_int_btc(49))]);
    // A child of the honest spend, left in the mempool.
    chain.submit_transaction(&honest).expect("valid");
    let confirming = chain.mine(1, &key.address()).expect("mine")[0];
    let child = spend_p2wpkh(&key, &[coin_of(&honest, 0)], vec![pay(&key, Amount::from_int_btc(48))]);
    chain.submit_transaction(&child).expect("valid");

    chain.invalidate_block(&confirming).expect("invalidate");
    assert_eq!(chain.mempool().expect("mempool"), vec![honest.clone(), child.clone()]);
    let conflict = spend_p2wpkh(&key, &[coin.clone()], vec![pay(&thief, Amount::from_int_btc(49))]);
    chain.mine_block_with(&key.p2wpkh(), std::slice::from_ref(&conflict)).expect("a valid competing block");
    chain.mine(1, &key.address()).expect("mine");

    assert!(chain.mempool().expect("mempool").is_empty(), "the honest spend and its child are evicted");
    assert!(chain.transaction(&honest.compute_txid()).expect("lookup").is_none());
    let info = chain.transaction(&conflict.compute_txid()).expect("lookup").expect("confirmed");
    assert_eq!(info.block.map(|b| b.height), Some(102));
    assert!(chain.utxo(&coin_of(&conflict, 0).outpoint, false).expect("utxo").is_some());
    assert!(chain.utxo(&coin_of(&honest, 0).outpoint, true).expect("utxo").is_none());
}

#[test]
fn reorg_drops_spends_of_vanished_coinbases() {
    let chain = RegtestChain::in_memory(clock());
    let key = TestKey::new(1);
    chain.mine(101, &key.address()).expect("mine");
    // The coinbase of block 101 matures at 201.
    chain.mine(100, &key.address()).expect("mine");
    let tx = spend_p2wpkh(&key, &[coinbase_coin(&chain, 101)], vec![pay(&key, Amount::from_int_btc(49))]);
    chain.submit_transaction(&tx).expect("valid");
    let block_101 = chain.block_hash(101).expect("lookup").expect("exists");
    chain.invalidate_block(&block_101).expect("invalidate");
    assert!(chain.mempool().expect("mempool").is_empty(), "its input no longer exists");
}

#[test]
fn reorg_of_a_block_holding_parent_and_child_restores_exactly_the_old_coins() {
    let chain = RegtestChain::in_memory(clock());
    let key = TestKey::new(1);
    chain.mine(101, &key.address()).expect("mine");
    // The parent spends the coinbase of block 2, which is mature for block
    // 102 but not once the chain is cut back to 100.
    let coinbase = coinbase_coin(&chain, 2);
    let parent =
        spend_p2wpkh(&key, std::slice::from_ref(&coinbase), vec![pay(&key, Amount::from_int_btc(49))]);
    let child = spend_p2wpkh(&key, &[coin_of(&parent, 0)], vec![pay(&key, Amount::from_int_btc(48))]);
    let block = chain.mine_block_with(&key.p2wpkh(), &[parent.clone(), child.clone()]).expect("one block");
    let parent_out = coin_of(&parent, 0).outpoint;
    assert!(chain.utxo(&parent_out, false).expect("utxo").is_none(), "spent inside the block");

    chain.invalidate_block(&block).expect("invalidate");
    assert!(chain.utxo(&parent_out, false).expect("utxo").is_none(), "no coin of an unconfirmed parent");
    assert!(chain.utxo(&coinbase.outpoint, false).expect("utxo").is_some(), "the coinbase is unspent again");
    assert_eq!(chain.mempool().expect("mempool"), vec![parent.clone(), child.clone()]);

    // Cut deeper: the parent's coinbase is now immature, so both leave the
    // mempool, and nothing mined later can confirm the child alone.
    let block_101 = chain.block_hash(101).expect("lookup").expect("exists");
    chain.invalidate_block(&block_101).expect("invalidate");
    assert!(chain.mempool().expect("mempool").is_empty());
    assert!(chain.utxo(&parent_out, true).expect("utxo").is_none());
    chain.mine(3, &key.address()).expect("mine");
    assert!(chain.transaction(&child.compute_txid()).expect("lookup").is_none());
}

#[test]
fn invalidate_errors() {
    let chain = RegtestChain::in_memory(clock());
    let genesis = chain.tip().hash;
    assert!(matches!(chain.invalidate_block(&genesis), Err(InvalidateError::Genesis)));
    let unknown = bitcoin::BlockHash::from_byte_array([9; 32]);
    assert!(
        matches!(chain.invalidate_block(&unknown), Err(InvalidateError::UnknownBlock(h)) if h == unknown)
    );
    let key = TestKey::new(1);
    let first = chain.mine(2, &key.address()).expect("mine");
    chain.invalidate_block(&first[0]).expect("invalidate");
    assert_eq!(
        chain.invalidate_block(&first[1]).expect("a stale block"),
        Vec::<bitcoin::BlockHash>::new(),
        "a block off the active chain disconnects nothing"
    );
}

use bitcoin::hashes::Hash;

#[test]
fn follower_sees_reorgs_as_disconnections() {
    let chain = RegtestChain::in_memory(clock());
    let key = TestKey::new(1);
    chain.mine(5, &key.address()).expect("mine");
    let mut follower = ChainFollower::new(chain.tip());
    let old: Vec<_> = (4..=5).map(|h| chain.block_hash(h).expect("lookup").expect("exists")).collect();
    chain.invalidate_block(&old[0]).expect("invalidate");
    let new = chain.mine(3, &key.address()).expect("mine");

    let mut events = Vec::new();
    while let Some(event) = follower.poll(&chain).expect("poll") {
        events.push(match event {
            ChainEvent::Disconnected(b) => ("disconnected", b.height, b.hash),
            ChainEvent::Connected { height, block } => ("connected", height, block.block_hash()),
        });
    }
    assert_eq!(
        events,
        vec![
            ("disconnected", 5, old[1]),
            ("disconnected", 4, old[0]),
            ("connected", 4, new[0]),
            ("connected", 5, new[1]),
            ("connected", 6, new[2]),
        ]
    );
    assert_eq!(follower.position(), chain.tip());
}

#[test]
fn chain_and_mempool_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.sqlite");
    let key = TestKey::new(1);
    let (tip, tx, stale) = {
        let store: Arc<dyn KvStore> = Arc::new(SqliteStore::open(&path).expect("open"));
        let chain = RegtestChain::open(store, clock()).expect("open chain");
        chain.mine(101, &key.address()).expect("mine");
        let stale = chain.mine(2, &key.address()).expect("mine");
        chain.invalidate_block(&stale[0]).expect("invalidate");
        chain.mine(3, &key.address()).expect("mine");
        chain.set_fee_rate(bitcoin::FeeRate::from_sat_per_vb_u32(7)).expect("fee rate");
        let tx = spend_p2wpkh(&key, &[coinbase_coin(&chain, 1)], vec![pay(&key, Amount::from_int_btc(49))]);
        chain.submit_transaction(&tx).expect("valid");
        (chain.tip(), tx, stale)
    };
    let store: Arc<dyn KvStore> = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let chain = RegtestChain::open(store, clock()).expect("reopen chain");
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.height(), 104);
    assert_eq!(chain.mempool().expect("mempool"), vec![tx.clone()]);
    assert_eq!(chain.fee_rate(), bitcoin::FeeRate::from_sat_per_vb_u32(7));
    assert!(chain.header(&stale[1]).expect("lookup").is_some(), "stale blocks are reloaded");
    // The UTXO set and mempool were rebuilt: the same coin cannot be spent
    // again for less (a replacement must pay more), and the mempool
    // transaction confirms.
    let again =
        spend_p2wpkh(&key, &[coinbase_coin(&chain, 1)], vec![pay(&key, Amount::from_sat(4_950_000_000))]);
    assert!(chain.submit_transaction(&again).is_err());
    chain.mine(1, &key.address()).expect("mine");
    assert!(chain.transaction(&tx.compute_txid()).expect("lookup").expect("known").block.is_some());
}

#[test]
fn corrupt_stored_chain_is_reported_and_left_alone() {
    let store = Arc::new(vigil_store::MemoryStore::new());
    {
        let chain = RegtestChain::open(store.clone(), clock()).expect("open");
        chain.mine(3, &TestKey::new(1).address()).expect("mine");
    }
    let block2 = store.list("chain/blocks").expect("list");
    assert_eq!(block2.len(), 3);
    // Damage one block's bytes.
    let key = &block2[1];
    let mut bytes = store.read("chain/blocks", key).expect("read").expect("exists");
    let len = bytes.len();
    bytes[len - 5] ^= 0xff;
    store.write("chain/blocks", key, &bytes).expect("write");
    match RegtestChain::open(store.clone(), clock()) {
        Err(OpenError::Corrupt(detail)) => assert!(detail.contains(key.as_str()), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(store.read("chain/blocks", key).expect("read"), Some(bytes), "nothing rewritten");

    let store = Arc::new(vigil_store::MemoryStore::new());
    store.write("chain/meta", "tip", b"not a hash").expect("write");
    assert!(matches!(RegtestChain::open(store, clock()), Err(OpenError::Corrupt(_))));
}
