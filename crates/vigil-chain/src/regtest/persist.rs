//! How the embedded chain is laid out in a [`vigil_store::KvStore`].
//!
//! - `chain/blocks/<block hash>`: every block ever mined, active or stale, in
//!   consensus encoding;
//! - `chain/meta/tip`: the hash of the active tip, as hex;
//! - `chain/meta/fee_rate`: the fee rate `estimatesmartfee` reports, in
//!   sat/kwu, as decimal;
//! - `chain/mempool/<txid>`: a mempool entry (see [`encode_entry`]).
//!
//! The UTXO set and indexes are rebuilt from the blocks at open. Every change
//! (a block mined, a reorg, a transaction accepted) is one atomic batch, so
//! the stored tip, blocks and mempool always agree.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::Transaction;

/// Namespace of the blocks.
pub const NS_BLOCKS: &str = "chain/blocks";
/// Namespace of the mempool.
pub const NS_MEMPOOL: &str = "chain/mempool";
/// Namespace of the chain's metadata.
pub const NS_META: &str = "chain/meta";
/// Key of the active tip.
pub const KEY_TIP: &str = "tip";
/// Key of the configured fee rate.
pub const KEY_FEE_RATE: &str = "fee_rate";

/// Version byte of a mempool entry.
///
/// Version history: `1`: sequence (u64 BE), time (u64 BE), transaction.
const ENTRY_VERSION: u8 = 1;

/// A stored mempool entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: u64,
    pub time: u64,
    pub tx: Transaction,
}

/// Encodes a mempool entry: a version byte, the arrival sequence, the arrival
/// time, and the transaction.
pub fn encode_entry(seq: u64, time: u64, tx: &Transaction) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + tx.total_size());
    out.push(ENTRY_VERSION);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time.to_be_bytes());
    out.extend_from_slice(&serialize(tx));
    out
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry(bytes: &[u8]) -> Result<StoredEntry, String> {
    match bytes.first() {
        Some(&ENTRY_VERSION) if bytes.len() > 17 => {}
        Some(&v) if v != ENTRY_VERSION => return Err(format!("unknown mempool entry version {v}")),
        _ => return Err("truncated mempool entry".into()),
    }
    let seq = u64::from_be_bytes(bytes[1..9].try_into().expect("length checked above"));
    let time = u64::from_be_bytes(bytes[9..17].try_into().expect("length checked above"));
    let tx = deserialize(&bytes[17..]).map_err(|e| format!("bad mempool transaction: {e}"))?;
    Ok(StoredEntry { seq, time, tx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_and_rejects_damage() {
        let key = crate::testkit::TestKey::new(1);
        let coin = crate::testkit::Coin {
            outpoint: bitcoin::OutPoint::null(),
            txout: bitcoin::TxOut { value: bitcoin::Amount::from_sat(1000), script_pubkey: key.p2wpkh() },
        };
        let tx = crate::testkit::spend_p2wpkh(&key, std::slice::from_ref(&coin), vec![coin.txout.clone()]);
        let bytes = encode_entry(7, 1_700_000_000, &tx);
        assert_eq!(decode_entry(&bytes), Ok(StoredEntry { seq: 7, time: 1_700_000_000, tx }));
        assert!(decode_entry(&bytes[..10]).is_err());
        assert!(decode_entry(&[]).is_err());
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(decode_entry(&future).unwrap_err().contains("version 2"));
    }
}
