//! Test helpers: deterministic keys, and transactions built and signed by
//! hand with rust-bitcoin (outside any wallet), to exercise the chain's
//! validation and the RPC server. Only built for tests or with the
//! `test-utils` feature.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Address, Amount, CompressedPublicKey, Network, OutPoint, PublicKey, Script, ScriptBuf,
    Sequence, Transaction, TxIn, TxOut, Witness,
};

use crate::ChainSource;

/// A key pair with the scripts and address that pay to it.
#[derive(Debug, Clone, Copy)]
pub struct TestKey {
    /// The secret key.
    pub secret: SecretKey,
    /// The compressed public key.
    pub public: CompressedPublicKey,
}

impl TestKey {
    /// A deterministic key; different `n` give different keys.
    pub fn new(n: u8) -> Self {
        let mut bytes = [0x11u8; 32];
        bytes[31] = n;
        let secret = SecretKey::from_slice(&bytes).expect("a small non-zero scalar is a valid key");
        let public = CompressedPublicKey(secret.public_key(&Secp256k1::new()));
        Self { secret, public }
    }

    /// Pay-to-witness-public-key-hash to this key.
    pub fn p2wpkh(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.public.wpubkey_hash())
    }

    /// Legacy pay-to-public-key-hash to this key.
    pub fn p2pkh(&self) -> ScriptBuf {
        ScriptBuf::new_p2pkh(&PublicKey::from(self.public).pubkey_hash())
    }

    /// The regtest P2WPKH address of this key.
    pub fn address(&self) -> Address {
        Address::p2wpkh(&self.public, Network::Regtest)
    }

    fn sign(&self, digest: [u8; 32]) -> Vec<u8> {
        let sig = Secp256k1::new().sign_ecdsa(&Message::from_digest(digest), &self.secret);
        bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All }.to_vec()
    }
}

/// An output with its outpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it holds.
    pub txout: TxOut,
}

/// The first output of the coinbase at `height` of `chain`'s active chain.
///
/// # Panics
///
/// If there is no block at `height`.
pub fn coinbase_coin(chain: &dyn ChainSource, height: u32) -> Coin {
    let hash = chain.block_hash(height).expect("chain source").expect("a block at that height");
    let block = chain.block(&hash).expect("chain source").expect("a known block");
    let tx = &block.txdata[0];
    Coin { outpoint: OutPoint { txid: tx.compute_txid(), vout: 0 }, txout: tx.output[0].clone() }
}

/// The output `vout` of `tx` as a coin.
pub fn coin_of(tx: &Transaction, vout: u32) -> Coin {
    Coin { outpoint: OutPoint { txid: tx.compute_txid(), vout }, txout: tx.output[vout as usize].clone() }
}

/// An unsigned version-2 transaction spending `coins` (with sequence
/// `0xfffffffd`) to `outputs`.
pub fn unsigned(coins: &[Coin], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: coins
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

/// Signs input `input` of `tx`, which spends a P2WPKH output of `key` worth
/// `value`.
pub fn sign_p2wpkh(tx: &mut Transaction, input: usize, key: &TestKey, value: Amount) {
    let digest = SighashCache::new(&*tx)
        .p2wpkh_signature_hash(input, &key.p2wpkh(), value, EcdsaSighashType::All)
        .expect("input index in range and a P2WPKH script");
    let sig = key.sign(digest.to_byte_array());
    tx.input[input].witness = Witness::from_slice(&[sig, key.public.to_bytes().to_vec()]);
}

/// Signs input `input` of `tx`, which spends a legacy P2PKH output of `key`.
pub fn sign_p2pkh(tx: &mut Transaction, input: usize, key: &TestKey) {
    let digest = SighashCache::new(&*tx)
        .legacy_signature_hash(input, &key.p2pkh(), EcdsaSighashType::All.to_u32())
        .expect("input index in range");
    let sig = key.sign(digest.to_byte_array());
    let push = bitcoin::script::PushBytesBuf::try_from(sig).expect("a signature is a short push");
    tx.input[input].script_sig =
        bitcoin::script::Builder::new().push_slice(push).push_slice(key.public.to_bytes()).into_script();
}

/// Signs input `input` of `tx`, which spends a P2WSH output of
/// `witness_script` worth `value` whose only signature is `key`'s; the
/// witness becomes `[signature, witness_script]`.
pub fn sign_p2wsh(tx: &mut Transaction, input: usize, key: &TestKey, witness_script: &Script, value: Amount) {
    let digest = SighashCache::new(&*tx)
        .p2wsh_signature_hash(input, witness_script, value, EcdsaSighashType::All)
        .expect("input index in range");
    let sig = key.sign(digest.to_byte_array());
    tx.input[input].witness = Witness::from_slice(&[sig, witness_script.to_bytes()]);
}

/// A signed channel funding: `coin` (P2WPKH of `key`) pays `value_sat` to
/// `script` at output 0 and the rest, less a 1,000 sat fee, back to `key`.
///
/// # Panics
///
/// If the coin holds less than `value_sat` plus the fee.
pub fn funding_spend(key: &TestKey, coin: &Coin, script: ScriptBuf, value_sat: u64) -> Transaction {
    let change = coin.txout.value - Amount::from_sat(value_sat) - Amount::from_sat(1_000);
    spend_p2wpkh(
        key,
        std::slice::from_ref(coin),
        vec![
            TxOut { value: Amount::from_sat(value_sat), script_pubkey: script },
            TxOut { value: change, script_pubkey: key.p2wpkh() },
        ],
    )
}

/// A signed transaction spending `coins` (all P2WPKH of `key`) to `outputs`.
pub fn spend_p2wpkh(key: &TestKey, coins: &[Coin], outputs: Vec<TxOut>) -> Transaction {
    let mut tx = unsigned(coins, outputs);
    for (i, coin) in coins.iter().enumerate() {
        sign_p2wpkh(&mut tx, i, key, coin.txout.value);
    }
    tx
}
