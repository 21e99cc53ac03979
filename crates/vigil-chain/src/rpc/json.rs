//! Bitcoin Core's JSON shapes for scripts, transactions, headers and blocks.
//!
//! Amounts are JSON numbers in BTC, as Core prints them (Core writes eight
//! fixed decimals; serde_json may write the same value as `1e-05`, which JSON
//! clients parse to the same number).

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Address, Amount, Block, BlockHash, Network, Script, Transaction};
use serde_json::{json, Map, Value};

use crate::regtest::ChainState;

/// An amount as Core prints it: a number of BTC.
pub fn btc(amount: Amount) -> Value {
    json!(amount.to_btc())
}

/// Core's `type` of an output script.
fn script_type(spk: &Script) -> &'static str {
    if spk.is_p2pkh() {
        "pubkeyhash"
    } else if spk.is_p2sh() {
        "scripthash"
    } else if spk.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if spk.is_p2wsh() {
        "witness_v0_scripthash"
    } else if spk.is_p2tr() {
        "witness_v1_taproot"
    } else if spk == bitcoin::ScriptBuf::new_p2a().as_script() {
        "anchor"
    } else if spk.is_op_return() {
        "nulldata"
    } else if spk.is_p2pk() {
        "pubkey"
    } else if spk.is_multisig() {
        "multisig"
    } else if spk.is_witness_program() {
        "witness_unknown"
    } else {
        "nonstandard"
    }
}

/// Core's `scriptPubKey` object.
pub fn script_pubkey(spk: &Script) -> Value {
    let mut out = Map::new();
    out.insert("asm".into(), json!(spk.to_asm_string()));
    out.insert("hex".into(), json!(spk.to_hex_string()));
    if let Ok(address) = Address::from_script(spk, Network::Regtest) {
        out.insert("address".into(), json!(address.to_string()));
    }
    out.insert("type".into(), json!(script_type(spk)));
    Value::Object(out)
}

/// Core's decoded transaction (`decoderawtransaction`), without `hex`.
pub fn transaction(tx: &Transaction) -> Map<String, Value> {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|input| {
            let mut o = Map::new();
            if tx.is_coinbase() {
                o.insert("coinbase".into(), json!(input.script_sig.to_hex_string()));
            } else {
                o.insert("txid".into(), json!(input.previous_output.txid.to_string()));
                o.insert("vout".into(), json!(input.previous_output.vout));
                o.insert(
                    "scriptSig".into(),
                    json!({"asm": input.script_sig.to_asm_string(), "hex": input.script_sig.to_hex_string()}),
                );
            }
            if !input.witness.is_empty() {
                let items: Vec<String> =
                    input.witness.iter().map(|w| w.iter().map(|b| format!("{b:02x}")).collect()).collect();
                o.insert("txinwitness".into(), json!(items));
            }
            o.insert("sequence".into(), json!(input.sequence.0));
            Value::Object(o)
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, out)| json!({"value": btc(out.value), "n": n, "scriptPubKey": script_pubkey(&out.script_pubkey)}))
        .collect();
    let mut o = Map::new();
    o.insert("txid".into(), json!(tx.compute_txid().to_string()));
    o.insert("hash".into(), json!(tx.compute_wtxid().to_string()));
    o.insert("version".into(), json!(tx.version.0));
    o.insert("size".into(), json!(tx.total_size()));
    o.insert("vsize".into(), json!(tx.vsize()));
    o.insert("weight".into(), json!(tx.weight().to_wu()));
    o.insert("locktime".into(), json!(tx.lock_time.to_consensus_u32()));
    o.insert("vin".into(), Value::Array(vin));
    o.insert("vout".into(), Value::Array(vout));
    o
}

/// A decoded transaction with its `hex`.
pub fn transaction_with_hex(tx: &Transaction) -> Map<String, Value> {
    let mut o = transaction(tx);
    o.insert("hex".into(), json!(serialize_hex(tx)));
    o
}

/// Core's verbose block header (`getblockheader` with `verbose=true`).
pub fn header(state: &ChainState, hash: &BlockHash, block: &Block, height: u32) -> Map<String, Value> {
    let h = &block.header;
    let active = state.is_active(hash);
    let confirmations: i64 = if active { i64::from(state.height() - height) + 1 } else { -1 };
    let mut o = Map::new();
    o.insert("hash".into(), json!(hash.to_string()));
    o.insert("confirmations".into(), json!(confirmations));
    o.insert("height".into(), json!(height));
    o.insert("version".into(), json!(h.version.to_consensus()));
    o.insert("versionHex".into(), json!(format!("{:08x}", h.version.to_consensus())));
    o.insert("merkleroot".into(), json!(h.merkle_root.to_string()));
    o.insert("time".into(), json!(h.time));
    if active {
        o.insert("mediantime".into(), json!(state.median_time_past(height)));
    }
    o.insert("nonce".into(), json!(h.nonce));
    o.insert("bits".into(), json!(format!("{:08x}", h.bits.to_consensus())));
    o.insert("target".into(), json!(format!("{:064x}", h.target())));
    o.insert("difficulty".into(), json!(h.difficulty_float()));
    o.insert("chainwork".into(), json!(state.chain_work_hex(height)));
    o.insert("nTx".into(), json!(block.txdata.len()));
    if height > 0 {
        o.insert("previousblockhash".into(), json!(h.prev_blockhash.to_string()));
    }
    if active {
        if let Some(next) = state.hash_at(height + 1) {
            o.insert("nextblockhash".into(), json!(next.to_string()));
        }
    }
    o
}

/// Core's verbose block (`getblock` with verbosity 1, or 2 and above for
/// decoded transactions).
pub fn block(state: &ChainState, hash: &BlockHash, block: &Block, height: u32, verbosity: u64) -> Value {
    let mut o = header(state, hash, block, height);
    let stripped = bitcoin::consensus::serialize(&block.header).len()
        + block.txdata.iter().map(|tx| tx.base_size()).sum::<usize>()
        + bitcoin::VarInt(block.txdata.len() as u64).size();
    o.insert("strippedsize".into(), json!(stripped));
    o.insert("size".into(), json!(block.total_size()));
    o.insert("weight".into(), json!(block.weight().to_wu()));
    let txs: Vec<Value> = if verbosity >= 2 {
        block.txdata.iter().map(|tx| Value::Object(transaction_with_hex(tx))).collect()
    } else {
        block.txdata.iter().map(|tx| json!(tx.compute_txid().to_string())).collect()
    };
    o.insert("tx".into(), Value::Array(txs));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_types_match_core_names() {
        let key = bitcoin::PublicKey::from_slice(&[
            0x02, 0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b,
            0x07, 0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17,
            0x98,
        ])
        .expect("the generator point is a valid key");
        let wpkh = bitcoin::ScriptBuf::new_p2wpkh(&key.wpubkey_hash().expect("compressed"));
        assert_eq!(script_pubkey(&wpkh)["type"], "witness_v0_keyhash");
        assert!(script_pubkey(&wpkh)["address"].as_str().expect("address").starts_with("bcrt1q"));
        assert_eq!(script_pubkey(&bitcoin::ScriptBuf::new_p2pkh(&key.pubkey_hash()))["type"], "pubkeyhash");
        assert_eq!(script_pubkey(&bitcoin::ScriptBuf::new_op_return([1u8]))["type"], "nulldata");
        assert_eq!(script_pubkey(&bitcoin::ScriptBuf::new_p2a())["type"], "anchor");
    }
}
