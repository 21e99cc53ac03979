//! Every class of invalid transaction is refused with its exact typed error,
//! and a refusal changes nothing about the chain or the mempool.

// `&[coin.clone()]` reads better than `std::slice::from_ref(&coin)` in tests.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::sync::Arc;

use bitcoin::blockdata::opcodes::all::{OP_CHECKSIG, OP_CLTV, OP_CSV, OP_DROP};
use bitcoin::script::Builder;
use bitcoin::{absolute, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Txid};
use vigil_chain::regtest::rbf::ReplacementRefusal;
use vigil_chain::regtest::validate::TxError;
use vigil_chain::regtest::{RelativeLockShortfall, SubmitError};
use vigil_chain::testkit::{
    coin_of, coinbase_coin, sign_p2pkh, sign_p2wpkh, sign_p2wsh, spend_p2wpkh, unsigned, Coin, TestKey,
};
use vigil_chain::{ChainSource, ManualClock, RegtestChain};

const START: u64 = 1_700_000_000;

struct Fixture {
    chain: RegtestChain,
    clock: Arc<ManualClock>,
    key: TestKey,
}

/// A chain with 101 blocks mined to `key`: the coinbase at height 1 is mature.
fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(START));
    let chain = RegtestChain::in_memory(clock.clone());
    let key = TestKey::new(1);
    chain.mine(101, &key.address()).expect("mine");
    Fixture { chain, clock, key }
}

fn pay(key: &TestKey, value: Amount) -> TxOut {
    TxOut { value, script_pubkey: key.p2wpkh() }
}

/// Submits `tx`, expecting `expected`, and checks that nothing changed.
fn assert_refused(f: &Fixture, tx: &Transaction, expected: TxError) {
    let tip = f.chain.tip();
    let mempool = f.chain.mempool().expect("mempool");
    match f.chain.submit_transaction(tx) {
        Err(SubmitError::Invalid(error)) => assert_eq!(error, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
    assert_eq!(f.chain.tip(), tip, "a refusal leaves the chain alone");
    assert_eq!(f.chain.mempool().expect("mempool"), mempool, "a refusal leaves the mempool alone");
}

/// A confirmed P2WPKH coin of `key` worth 10 BTC, confirmed in the tip block.
fn confirmed_coin(f: &Fixture) -> Coin {
    let funding = spend_p2wpkh(
        &f.key,
        &[coinbase_coin(&f.chain, 1)],
        vec![pay(&f.key, Amount::from_int_btc(10)), pay(&f.key, Amount::from_sat(3_999_990_000))],
    );
    f.chain.submit_transaction(&funding).expect("valid funding");
    f.chain.mine(1, &f.key.address()).expect("mine");
    coin_of(&funding, 0)
}

#[test]
fn valid_spend_is_accepted_and_mined_with_its_fee() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let tx =
        spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&TestKey::new(2), Amount::from_sat(4_999_000_000))]);
    let txid = f.chain.submit_transaction(&tx).expect("a valid spend is accepted");
    assert_eq!(f.chain.mempool().expect("mempool"), vec![tx.clone()]);
    let utxo = f.chain.utxo(&OutPoint { txid, vout: 0 }, true).expect("utxo").expect("mempool output");
    assert_eq!(utxo.height, None);
    assert!(f.chain.utxo(&coin.outpoint, true).expect("utxo").is_none(), "spent in the mempool");
    assert!(f.chain.utxo(&coin.outpoint, false).expect("utxo").is_some(), "unspent in the chain");

    let hash = f.chain.mine(1, &f.key.address()).expect("mine")[0];
    let block = f.chain.block(&hash).expect("block").expect("known");
    assert_eq!(block.txdata[1], tx);
    assert_eq!(
        block.txdata[0].output[0].value,
        vigil_chain::regtest::subsidy(102) + Amount::from_sat(1_000_000),
        "the coinbase collects subsidy and fee"
    );
    assert!(block.check_merkle_root() && block.check_witness_commitment());
    assert!(f.chain.mempool().expect("mempool").is_empty());
    let info = f.chain.transaction(&txid).expect("lookup").expect("confirmed");
    assert_eq!(info.block.map(|b| b.hash), Some(hash));
}

#[test]
fn missing_input() {
    let f = fixture();
    let ghost = Coin {
        outpoint: OutPoint { txid: Txid::from_byte_array_for_test(7), vout: 3 },
        txout: pay(&f.key, Amount::from_int_btc(1)),
    };
    let tx = spend_p2wpkh(&f.key, &[ghost.clone()], vec![pay(&f.key, Amount::from_sat(1000))]);
    assert_refused(&f, &tx, TxError::MissingInput { input: 0, outpoint: ghost.outpoint });
}

trait ForTest {
    fn from_byte_array_for_test(b: u8) -> Self;
}
impl ForTest for Txid {
    fn from_byte_array_for_test(b: u8) -> Self {
        use bitcoin::hashes::Hash;
        Txid::from_byte_array([b; 32])
    }
}

#[test]
fn spent_confirmed_output_is_a_missing_input() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let first = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    f.chain.submit_transaction(&first).expect("valid");
    f.chain.mine(1, &f.key.address()).expect("mine");
    let again = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    assert_refused(&f, &again, TxError::MissingInput { input: 0, outpoint: coin.outpoint });
}

#[test]
fn double_spend_against_the_mempool_without_a_higher_feerate_is_refused() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let first = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    let first_txid = f.chain.submit_transaction(&first).expect("valid");
    let second = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&TestKey::new(3), Amount::from_int_btc(49))]);
    let refused = match f.chain.submit_transaction(&second) {
        Err(SubmitError::Invalid(e)) => e,
        other => panic!("a cheaper conflict is refused, got {other:?}"),
    };
    assert!(
        matches!(
            &refused,
            TxError::DoubleSpend { input: 0, outpoint, conflict, refusal }
                if *outpoint == coin.outpoint && *conflict == first_txid
                    && matches!(**refusal, ReplacementRefusal::FeerateNotHigher { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(refused.reject_reason(), "insufficient fee");
    assert_refused(&f, &second, refused);
}

/// Full RBF, as Bitcoin Core 28: a conflict paying more replaces the
/// transaction and every descendant of it, if it pays for all of them.
#[test]
fn a_conflict_paying_more_replaces_the_transaction_and_its_descendants() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let parent = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_sat(4_999_990_000))]);
    let parent_txid = f.chain.submit_transaction(&parent).expect("valid");
    // A child paying a big fee: replacing the parent must pay for it too.
    let child =
        spend_p2wpkh(&f.key, &[coin_of(&parent, 0)], vec![pay(&f.key, Amount::from_sat(4_999_000_000))]);
    let child_txid = f.chain.submit_transaction(&child).expect("valid");
    // A higher feerate than the parent, but less than parent and child paid.
    let cheap =
        spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&TestKey::new(3), Amount::from_sat(4_999_900_000))]);
    let refused = match f.chain.submit_transaction(&cheap) {
        Err(SubmitError::Invalid(e)) => e,
        other => panic!("a replacement not paying for the child is refused, got {other:?}"),
    };
    assert!(
        matches!(
            &refused,
            TxError::DoubleSpend { refusal, .. } if matches!(**refusal, ReplacementRefusal::FeeTooLow { evicted: 2, .. })
        ),
        "{refused:?}"
    );
    assert_refused(&f, &cheap, refused);
    // Enough to pay for both, and the relay of itself.
    let rich =
        spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&TestKey::new(3), Amount::from_sat(4_998_000_000))]);
    let rich_txid = f.chain.submit_transaction(&rich).expect("the replacement is accepted");
    let pool: Vec<Txid> = f.chain.mempool().expect("mempool").iter().map(Transaction::compute_txid).collect();
    assert_eq!(pool, vec![rich_txid], "parent {parent_txid} and child {child_txid} were evicted");
    f.chain.mine(1, &f.key.address()).expect("mine");
    assert!(f.chain.transaction(&rich_txid).expect("lookup").is_some());
    assert!(f.chain.transaction(&parent_txid).expect("lookup").is_none());
}

/// BIP125 rule 2: a replacement may not bring in an unconfirmed output the
/// transactions it replaces did not spend.
#[test]
fn a_replacement_adding_an_unconfirmed_input_is_refused() {
    let f = fixture();
    let (a, b) = (coinbase_coin(&f.chain, 1), coinbase_coin(&f.chain, 2));
    let first = spend_p2wpkh(&f.key, &[a.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    f.chain.submit_transaction(&first).expect("valid");
    let other = spend_p2wpkh(&f.key, &[b], vec![pay(&f.key, Amount::from_int_btc(49))]);
    f.chain.submit_transaction(&other).expect("valid");
    let unconfirmed = coin_of(&other, 0);
    let replacement =
        spend_p2wpkh(&f.key, &[a, unconfirmed.clone()], vec![pay(&f.key, Amount::from_int_btc(90))]);
    let refused = match f.chain.submit_transaction(&replacement) {
        Err(SubmitError::Invalid(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(
        matches!(&refused, TxError::DoubleSpend { refusal, .. } if **refusal == ReplacementRefusal::AddsUnconfirmedInput(unconfirmed.outpoint)),
        "{refused:?}"
    );
    assert_eq!(refused.reject_reason(), "replacement-adds-unconfirmed");
    assert_refused(&f, &replacement, refused);
}

#[test]
fn duplicate_input_no_input_no_output() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let dup = spend_p2wpkh(&f.key, &[coin.clone(), coin.clone()], vec![pay(&f.key, Amount::from_int_btc(1))]);
    assert_refused(&f, &dup, TxError::DuplicateInput { input: 1, outpoint: coin.outpoint });
    let no_output = spend_p2wpkh(&f.key, &[coin], vec![]);
    assert_refused(&f, &no_output, TxError::NoOutputs);
    let no_input = unsigned(&[], vec![pay(&f.key, Amount::from_int_btc(1))]);
    assert_refused(&f, &no_input, TxError::NoInputs);
}

#[test]
fn coinbases_and_null_prevouts_are_not_relayed() {
    let f = fixture();
    let hash = f.chain.block_hash(5).expect("lookup").expect("exists");
    let mut coinbase = f.chain.block(&hash).expect("lookup").expect("exists").txdata[0].clone();
    coinbase.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51, 0x52]);
    assert_refused(&f, &coinbase, TxError::Coinbase);
    let coin = coinbase_coin(&f.chain, 1);
    let null = Coin { outpoint: OutPoint::null(), txout: coin.txout.clone() };
    let mut tx = unsigned(&[coin.clone(), null], vec![pay(&f.key, Amount::from_int_btc(49))]);
    sign_p2wpkh(&mut tx, 0, &f.key, coin.txout.value);
    assert_refused(&f, &tx, TxError::NullPrevout { input: 1 });
}

#[test]
fn wrong_signature_fails_the_script() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let mut tx = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    // Signed by another key, presented as the owner's: the signature check fails.
    sign_p2wpkh(&mut tx, 0, &TestKey::new(9), coin.txout.value);
    let mut witness: Vec<Vec<u8>> = tx.input[0].witness.iter().map(|w| w.to_vec()).collect();
    witness[1] = f.key.public.to_bytes().to_vec();
    tx.input[0].witness = bitcoin::Witness::from_slice(&witness);
    match f.chain.submit_transaction(&tx) {
        Err(SubmitError::Invalid(TxError::ScriptFailed { input: 0, .. })) => {}
        other => panic!("expected ScriptFailed on input 0, got {other:?}"),
    }
    // The amount is committed to by a segwit signature: lying about it fails too.
    let mut tx = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    sign_p2wpkh(&mut tx, 0, &f.key, Amount::from_int_btc(1));
    assert!(matches!(
        f.chain.submit_transaction(&tx),
        Err(SubmitError::Invalid(TxError::ScriptFailed { input: 0, .. }))
    ));
    // No witness at all.
    let tx = unsigned(&[coin], vec![pay(&f.key, Amount::from_int_btc(49))]);
    assert_refused(
        &f,
        &tx,
        TxError::ScriptFailed { input: 0, reason: "a segwit v0 output is spent without a witness".into() },
    );
}

#[test]
fn legacy_p2pkh_scripts_are_checked() {
    let f = fixture();
    let legacy_key = TestKey::new(4);
    let fund = spend_p2wpkh(
        &f.key,
        &[coinbase_coin(&f.chain, 1)],
        vec![TxOut { value: Amount::from_int_btc(49), script_pubkey: legacy_key.p2pkh() }],
    );
    f.chain.submit_transaction(&fund).expect("valid");
    let coin = coin_of(&fund, 0);
    let mut good = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    sign_p2pkh(&mut good, 0, &legacy_key);
    let mut bad = good.clone();
    sign_p2pkh(&mut bad, 0, &TestKey::new(5));
    match f.chain.submit_transaction(&bad) {
        Err(SubmitError::Invalid(TxError::ScriptFailed { input: 0, .. })) => {}
        other => panic!("expected ScriptFailed, got {other:?}"),
    }
    f.chain.submit_transaction(&good).expect("a correctly signed legacy spend of a mempool output");
}

#[test]
fn height_locktime_is_enforced() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let mut tx = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    tx.lock_time = absolute::LockTime::from_height(103).expect("height");
    sign_p2wpkh(&mut tx, 0, &f.key, coin.txout.value);
    // The next block is 102, and nLockTime must be below the block's height.
    assert_refused(
        &f,
        &tx,
        TxError::NonFinal { lock_time: 103, height: 102, median_time_past: f.chain.median_time_past() },
    );
    f.chain.mine(1, &f.key.address()).expect("mine");
    assert!(
        matches!(
            f.chain.test_accept(std::slice::from_ref(&tx))[0],
            Err(TxError::NonFinal { height: 103, .. })
        ),
        "a lock time equal to the block height is not final yet"
    );
    f.chain.mine(1, &f.key.address()).expect("mine");
    f.chain.submit_transaction(&tx).expect("final in block 104");
}

#[test]
fn time_locktime_uses_median_time_past() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let lock = f.chain.median_time_past() + 3_600;
    let mut tx = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    tx.lock_time = absolute::LockTime::from_time(lock).expect("time");
    sign_p2wpkh(&mut tx, 0, &f.key, coin.txout.value);
    assert_refused(
        &f,
        &tx,
        TxError::NonFinal { lock_time: lock, height: 102, median_time_past: f.chain.median_time_past() },
    );
    // A final sequence on every input disables nLockTime.
    let mut all_final = tx.clone();
    all_final.input[0].sequence = Sequence::MAX;
    sign_p2wpkh(&mut all_final, 0, &f.key, coin.txout.value);
    assert!(f.chain.test_accept(&[all_final])[0].is_ok());
    // Median time past only moves with blocks mined later in time.
    f.clock.advance(7_200);
    f.chain.mine(11, &f.key.address()).expect("mine");
    assert!(f.chain.median_time_past() > lock);
    f.chain.submit_transaction(&tx).expect("final once median time past passed the lock");
}

#[test]
fn immature_coinbase() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 2);
    let tx = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    // Coinbase at height 2, next block 102: 100 confirmations is mature, but
    // height 3's coinbase has 99.
    f.chain.submit_transaction(&tx).expect("coinbase at height 2 is mature in block 102");
    let coin = coinbase_coin(&f.chain, 3);
    let tx = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(49))]);
    assert_refused(
        &f,
        &tx,
        TxError::ImmatureCoinbase { input: 0, outpoint: coin.outpoint, confirmations: 99 },
    );
}

#[test]
fn values_out_of_range_and_negative_fee() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let huge = Amount::from_sat(Amount::MAX_MONEY.to_sat() + 1);
    let tx = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_sat(1)), pay(&f.key, huge)]);
    assert_refused(&f, &tx, TxError::ValueOutOfRange { output: 1, value: huge });
    let tx = spend_p2wpkh(
        &f.key,
        &[coin.clone()],
        vec![pay(&f.key, Amount::MAX_MONEY), pay(&f.key, Amount::MAX_MONEY)],
    );
    assert_refused(&f, &tx, TxError::OutputSumOutOfRange);
    let tx = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_sat(5_000_000_001))]);
    assert_refused(
        &f,
        &tx,
        TxError::NegativeFee { inputs: Amount::from_int_btc(50), outputs: Amount::from_sat(5_000_000_001) },
    );
    // Zero fee is valid in a block but below the mempool's minimum relay
    // fee (1 sat/vB); paying it is enough.
    let zero_fee = spend_p2wpkh(&f.key, &[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(50))]);
    let vsize = zero_fee.vsize() as u64;
    assert_refused(
        &f,
        &zero_fee,
        TxError::MinRelayFeeNotMet { fee: Amount::ZERO, required: Amount::from_sat(vsize) },
    );
    let minimal = spend_p2wpkh(&f.key, &[coin], vec![pay(&f.key, Amount::from_sat(5_000_000_000 - vsize))]);
    f.chain.submit_transaction(&minimal).expect("the minimum relay fee is enough");
}

#[test]
fn weight_limit() {
    let f = fixture();
    let coin = coinbase_coin(&f.chain, 1);
    let big = TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0x6a; 100_001]) };
    let tx = spend_p2wpkh(&f.key, &[coin], vec![pay(&f.key, Amount::from_int_btc(49)), big]);
    let weight = tx.weight().to_wu();
    assert_refused(&f, &tx, TxError::TooHeavy { weight, max: 400_000 });
}

#[test]
fn relative_locktime_in_blocks() {
    let f = fixture();
    let coin = confirmed_coin(&f); // confirmed in block 102, the tip
    let mut tx = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(9))]);
    tx.input[0].sequence = Sequence::from_height(5);
    sign_p2wpkh(&mut tx, 0, &f.key, coin.txout.value);
    assert_refused(
        &f,
        &tx,
        TxError::RelativeLocktime {
            input: 0,
            shortfall: RelativeLockShortfall::Blocks { required: 5, available: 1 },
        },
    );
    // Version 1 transactions ignore BIP68.
    let mut v1 = tx.clone();
    v1.version = bitcoin::transaction::Version::ONE;
    sign_p2wpkh(&mut v1, 0, &f.key, coin.txout.value);
    assert!(f.chain.test_accept(&[v1])[0].is_ok());
    f.chain.mine(3, &f.key.address()).expect("mine");
    assert!(matches!(
        f.chain.test_accept(std::slice::from_ref(&tx))[0],
        Err(TxError::RelativeLocktime {
            shortfall: RelativeLockShortfall::Blocks { required: 5, available: 4 },
            ..
        })
    ));
    f.chain.mine(1, &f.key.address()).expect("mine");
    f.chain.submit_transaction(&tx).expect("5 blocks after confirmation");
}

#[test]
fn relative_locktime_in_time() {
    let f = fixture();
    let coin = confirmed_coin(&f);
    let mut tx = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(9))]);
    tx.input[0].sequence = Sequence::from_512_second_intervals(2);
    sign_p2wpkh(&mut tx, 0, &f.key, coin.txout.value);
    match f.chain.submit_transaction(&tx) {
        Err(SubmitError::Invalid(TxError::RelativeLocktime {
            input: 0,
            shortfall: RelativeLockShortfall::Seconds { required: 1024, .. },
        })) => {}
        other => panic!("expected a time-based RelativeLocktime, got {other:?}"),
    }
    f.clock.advance(2_000);
    f.chain.mine(11, &f.key.address()).expect("mine");
    f.chain.submit_transaction(&tx).expect("1024 s of median time past later");
}

/// `<n> <lock opcode> OP_DROP <key> OP_CHECKSIG`, funded with 49 BTC and
/// confirmed `confirmations` times.
fn fund_locked_p2wsh(
    f: &Fixture,
    n: i64,
    lock: bitcoin::opcodes::Opcode,
    confirmations: u32,
) -> (ScriptBuf, Coin) {
    let witness_script = Builder::new()
        .push_int(n)
        .push_opcode(lock)
        .push_opcode(OP_DROP)
        .push_slice(f.key.public.to_bytes())
        .push_opcode(OP_CHECKSIG)
        .into_script();
    let fund = spend_p2wpkh(
        &f.key,
        &[coinbase_coin(&f.chain, 1)],
        vec![TxOut {
            value: Amount::from_int_btc(49),
            script_pubkey: ScriptBuf::new_p2wsh(&witness_script.wscript_hash()),
        }],
    );
    f.chain.submit_transaction(&fund).expect("valid");
    f.chain.mine(confirmations, &f.key.address()).expect("mine");
    (witness_script, coin_of(&fund, 0))
}

#[test]
fn checksequenceverify_script() {
    let f = fixture();
    let (witness_script, coin) = fund_locked_p2wsh(&f, 3, OP_CSV, 5);
    // A sequence below the script's CSV fails the script itself (BIP112).
    let mut short = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    short.input[0].sequence = Sequence::from_height(2);
    sign_p2wsh(&mut short, 0, &f.key, &witness_script, coin.txout.value);
    assert!(matches!(
        f.chain.submit_transaction(&short),
        Err(SubmitError::Invalid(TxError::ScriptFailed { input: 0, .. }))
    ));
    let mut ok = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    ok.input[0].sequence = Sequence::from_height(3);
    sign_p2wsh(&mut ok, 0, &f.key, &witness_script, coin.txout.value);
    f.chain.submit_transaction(&ok).expect("CSV satisfied after 5 confirmations");
}

#[test]
fn checklocktimeverify_script() {
    let f = fixture();
    let (witness_script, coin) = fund_locked_p2wsh(&f, 150, OP_CLTV, 1);
    let mut early = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    early.lock_time = absolute::LockTime::from_height(100).expect("height");
    sign_p2wsh(&mut early, 0, &f.key, &witness_script, coin.txout.value);
    assert!(matches!(
        f.chain.submit_transaction(&early),
        Err(SubmitError::Invalid(TxError::ScriptFailed { input: 0, .. }))
    ));
    let mut late = unsigned(&[coin.clone()], vec![pay(&f.key, Amount::from_int_btc(48))]);
    late.lock_time = absolute::LockTime::from_height(150).expect("height");
    sign_p2wsh(&mut late, 0, &f.key, &witness_script, coin.txout.value);
    assert!(matches!(f.chain.submit_transaction(&late), Err(SubmitError::Invalid(TxError::NonFinal { .. }))));
    f.chain.mine(150 - f.chain.height(), &f.key.address()).expect("mine");
    f.chain.submit_transaction(&late).expect("final and CLTV satisfied");
}

#[test]
fn taproot_spends_are_refused_not_waved_through() {
    let f = fixture();
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let (xonly, _) = f.key.public.0.x_only_public_key();
    let p2tr = ScriptBuf::new_p2tr(&secp, xonly, None);
    let fund = spend_p2wpkh(
        &f.key,
        &[coinbase_coin(&f.chain, 1)],
        vec![TxOut { value: Amount::from_int_btc(49), script_pubkey: p2tr }],
    );
    f.chain.submit_transaction(&fund).expect("paying to taproot is fine");
    let spend = unsigned(&[coin_of(&fund, 0)], vec![pay(&f.key, Amount::from_int_btc(48))]);
    assert_refused(&f, &spend, TxError::UnsupportedWitnessVersion { input: 0, version: 1 });
}

#[test]
fn pay_to_anchor_is_spendable_by_anyone() {
    let f = fixture();
    let fund = spend_p2wpkh(
        &f.key,
        &[coinbase_coin(&f.chain, 1)],
        vec![
            pay(&f.key, Amount::from_int_btc(49)),
            TxOut { value: Amount::from_sat(240), script_pubkey: ScriptBuf::new_p2a() },
        ],
    );
    f.chain.submit_transaction(&fund).expect("valid");
    let anchor = coin_of(&fund, 1);
    let spend = unsigned(
        &[anchor],
        vec![TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return([0u8; 3]) }],
    );
    f.chain.submit_transaction(&spend).expect("an anchor needs no signature");
}

#[test]
fn already_known_transactions() {
    let f = fixture();
    let tx = spend_p2wpkh(&f.key, &[coinbase_coin(&f.chain, 1)], vec![pay(&f.key, Amount::from_int_btc(49))]);
    let txid = f.chain.submit_transaction(&tx).expect("valid");
    assert_refused(&f, &tx, TxError::AlreadyInMempool { txid });
    assert_eq!(f.chain.broadcast(&tx), Ok(txid), "a broadcast of a mempool transaction is not an error");
    f.chain.mine(1, &f.key.address()).expect("mine");
    assert_refused(&f, &tx, TxError::AlreadyInChain { txid });
}

#[test]
fn package_test_accept_sees_parents_and_changes_nothing() {
    let f = fixture();
    let parent =
        spend_p2wpkh(&f.key, &[coinbase_coin(&f.chain, 1)], vec![pay(&f.key, Amount::from_int_btc(49))]);
    let child = spend_p2wpkh(&f.key, &[coin_of(&parent, 0)], vec![pay(&f.key, Amount::from_int_btc(48))]);
    let results = f.chain.test_accept(&[parent.clone(), child.clone()]);
    assert_eq!(results, vec![Ok(Amount::from_int_btc(1)), Ok(Amount::from_int_btc(1))]);
    assert!(f.chain.mempool().expect("mempool").is_empty());
    assert!(matches!(f.chain.test_accept(&[child])[0], Err(TxError::MissingInput { .. })));
}

#[test]
fn mined_block_with_invalid_transaction_is_refused_whole() {
    let f = fixture();
    let good =
        spend_p2wpkh(&f.key, &[coinbase_coin(&f.chain, 1)], vec![pay(&f.key, Amount::from_int_btc(49))]);
    let bad =
        spend_p2wpkh(&f.key, &[coinbase_coin(&f.chain, 2)], vec![pay(&f.key, Amount::from_int_btc(51))]);
    let tip = f.chain.tip();
    match f.chain.mine_block_with(&f.key.p2wpkh(), &[good, bad]) {
        Err(vigil_chain::regtest::MineError::InvalidTransaction {
            index: 1,
            error: TxError::NegativeFee { .. },
        }) => {}
        other => panic!("expected the second transaction to be refused, got {other:?}"),
    }
    assert_eq!(f.chain.tip(), tip);
}
