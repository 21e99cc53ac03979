//! Building and reading the two LDK messages whose fields LDK keeps private
//! (`update_fail_htlc`'s reason, `update_fail_malformed_htlc`'s onion hash),
//! through their BOLT 2 wire encoding.

use lightning::ln::msgs::{DecodeError, UpdateFailHTLC, UpdateFailMalformedHTLC};
use lightning::ln::types::ChannelId;
use lightning::util::ser::{LengthReadable, Readable, Writeable};

/// An `update_fail_htlc` carrying `reason` (the encrypted onion error).
pub fn update_fail_htlc(channel_id: ChannelId, htlc_id: u64, reason: &[u8]) -> UpdateFailHTLC {
    let mut bytes = Vec::with_capacity(42 + reason.len());
    bytes.extend_from_slice(&channel_id.0);
    bytes.extend_from_slice(&htlc_id.to_be_bytes());
    let len = u16::try_from(reason.len()).expect("onion errors are at most a few hundred bytes");
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(reason);
    UpdateFailHTLC::read_from_fixed_length_buffer(&mut &bytes[..])
        .expect("a well-formed update_fail_htlc decodes")
}

/// The encrypted onion error an `update_fail_htlc` carries.
pub fn fail_reason(msg: &UpdateFailHTLC) -> Result<Vec<u8>, DecodeError> {
    let bytes = msg.encode();
    let mut rest = bytes.get(40..).ok_or(DecodeError::ShortRead)?;
    <Vec<u8> as Readable>::read(&mut rest)
}

/// An `update_fail_malformed_htlc`.
pub fn update_fail_malformed_htlc(
    channel_id: ChannelId,
    htlc_id: u64,
    sha256_of_onion: [u8; 32],
    failure_code: u16,
) -> UpdateFailMalformedHTLC {
    let mut bytes = Vec::with_capacity(74);
    bytes.extend_from_slice(&channel_id.0);
    bytes.extend_from_slice(&htlc_id.to_be_bytes());
    bytes.extend_from_slice(&sha256_of_onion);
    bytes.extend_from_slice(&failure_code.to_be_bytes());
    UpdateFailMalformedHTLC::read_from_fixed_length_buffer(&mut &bytes[..])
        .expect("a well-formed update_fail_malformed_htlc decodes")
}

/// The onion hash an `update_fail_malformed_htlc` carries.
pub fn malformed_onion_hash(msg: &UpdateFailMalformedHTLC) -> [u8; 32] {
    let bytes = msg.encode();
    bytes[40..72].try_into().expect("the message encodes the 32-byte hash after channel id and htlc id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_fields_round_trip_through_the_wire_encoding() {
        let id = ChannelId::from_bytes([7; 32]);
        let msg = update_fail_htlc(id, 5, &[1, 2, 3]);
        assert_eq!((msg.channel_id, msg.htlc_id), (id, 5));
        assert_eq!(fail_reason(&msg).expect("decodes"), vec![1, 2, 3]);
        let long = vec![9u8; 292];
        assert_eq!(fail_reason(&update_fail_htlc(id, 6, &long)).expect("decodes"), long);
        let malformed = update_fail_malformed_htlc(id, 9, [4; 32], 0x8000 | 0x4000 | 5);
        assert_eq!((malformed.htlc_id, malformed.failure_code), (9, 0xc005));
        assert_eq!(malformed_onion_hash(&malformed), [4; 32]);
    }
}
