//! Block assembly and proof of work for the embedded regtest chain.

use std::sync::Arc;

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut,
    Witness,
};

use crate::BlockRef;

/// Blocks between subsidy halvings on regtest (Bitcoin Core's
/// `nSubsidyHalvingInterval` for regtest).
pub const HALVING_INTERVAL: u32 = 150;
/// The proof-of-work limit of regtest, as compact bits.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// The block subsidy at `height`.
pub fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(Amount::from_int_btc(50).to_sat() >> halvings)
}

/// Builds a block on `parent` paying subsidy and `fees` to `payout`, with
/// `txs` after the coinbase, a BIP34 height, a BIP141 witness commitment, and
/// valid proof of work. `extra_nonce` goes into the coinbase after the height,
/// so that a block mined again after a reorg differs from the one it replaces.
pub fn assemble(
    parent: BlockRef,
    time: u32,
    payout: &Script,
    txs: &[Arc<Transaction>],
    fees: Amount,
    extra_nonce: u32,
) -> Block {
    let height = parent.height + 1;
    let reserved = [0u8; 32];
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new()
                .push_int(i64::from(height))
                .push_int(i64::from(extra_nonce))
                .into_script(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[reserved]),
        }],
        output: vec![TxOut { value: subsidy(height) + fees, script_pubkey: payout.to_owned() }],
    };
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase);
    txdata.extend(txs.iter().map(|tx| (**tx).clone()));
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: parent.hash,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        },
        txdata,
    };
    // The witness root treats the coinbase's wtxid as zero, so it can be
    // computed before the commitment output is added.
    let witness_root = block.witness_root().expect("a block with a coinbase has a witness root");
    let commitment = Block::compute_witness_commitment(&witness_root, &reserved);
    let mut payload = [0u8; 36];
    payload[..4].copy_from_slice(&[0xaa, 0x21, 0xa9, 0xed]);
    payload[4..].copy_from_slice(commitment.as_byte_array());
    let commitment_script: ScriptBuf =
        Builder::new().push_opcode(OP_RETURN).push_slice(payload).into_script();
    block.txdata[0].output.push(TxOut { value: Amount::ZERO, script_pubkey: commitment_script });
    block.header.merkle_root =
        block.compute_merkle_root().expect("a block with a coinbase has a merkle root");
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(1), Amount::from_int_btc(50));
        assert_eq!(subsidy(149), Amount::from_int_btc(50));
        assert_eq!(subsidy(150), Amount::from_int_btc(25));
        assert_eq!(subsidy(150 * 64), Amount::ZERO);
    }

    #[test]
    fn assembled_block_is_well_formed() {
        let parent = BlockRef { height: 99, hash: bitcoin::BlockHash::all_zeros() };
        let block = assemble(parent, 1_700_000_000, &ScriptBuf::new_op_return([1u8]), &[], Amount::ZERO, 0);
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        assert!(block.header.validate_pow(block.header.target()).is_ok());
        assert_eq!(block.bip34_block_height().ok(), Some(100));
        assert_eq!(block.txdata[0].output[0].value, subsidy(100));
    }
}
