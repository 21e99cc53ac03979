//! Encodings of primitives, bitcoin types and LDK types.
//!
//! Inside a TLV record the record's length delimits the value, so a byte
//! string or a script is the value's bytes as they are. Fixed-size integers
//! are big-endian. LDK types use LDK's serialization; sequences of any type
//! are a [`Seq`].

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{BlockHash, ScriptBuf, Transaction, Txid};
use lightning::ln::chan_utils::{
    ChannelTransactionParameters, CommitmentTransaction, CounterpartyCommitmentSecrets,
    HTLCOutputInCommitment, HolderCommitmentTransaction,
};
use lightning::ln::msgs::UpdateAddHTLC;
use lightning::ln::types::ChannelId;
use lightning::types::features::ChannelTypeFeatures;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning::util::ser::{LengthReadable, Readable, ReadableArgs, Writeable};

use super::{read_bigsize, write_bigsize, Decode, DecodeError, Encode, Reader};

macro_rules! int_impl {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(r.array()?))
            }
        }
    )*};
}
int_impl!(u8, u16, u32, u64, u128);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue("bool")),
        }
    }
}

impl Encode for [u8; 32] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Decode for [u8; 32] {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array()
    }
}

/// A byte string: the rest of the record.
impl Encode for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Decode for Vec<u8> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.rest().to_vec())
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Decode for String {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        String::from_utf8(r.rest().to_vec()).map_err(|_| DecodeError::InvalidValue("UTF-8 string"))
    }
}

/// A sequence: a BigSize count, then each element length-prefixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq<T>(pub Vec<T>);

impl<T: Encode> Encode for Seq<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_seq(&self.0, out);
    }
}

impl<T: Decode> Decode for Seq<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = read_bigsize(r)?;
        // Each element takes at least one byte: a count above what remains is
        // malformed, and must not make us allocate.
        let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(r.rest_len()));
        for _ in 0..count {
            let len = usize::try_from(read_bigsize(r)?).map_err(|_| DecodeError::ShortRead)?;
            items.push(T::from_bytes(r.take(len)?)?);
        }
        Ok(Seq(items))
    }
}

/// Encodes `items` as a [`Seq`] without cloning them.
pub fn encode_seq<T: Encode>(items: &[T], out: &mut Vec<u8>) {
    write_bigsize(out, items.len() as u64);
    for item in items {
        let bytes = item.to_bytes();
        write_bigsize(out, bytes.len() as u64);
        out.extend_from_slice(&bytes);
    }
}

/// A borrowed sequence, for encoding.
#[derive(Debug)]
pub struct SeqRef<'a, T>(pub &'a [T]);

impl<T: Encode> Encode for SeqRef<'_, T> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_seq(self.0, out);
    }
}

impl Encode for PublicKey {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.serialize());
    }
}

impl Decode for PublicKey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        PublicKey::from_slice(r.take(33)?).map_err(|_| DecodeError::InvalidValue("public key"))
    }
}

impl Encode for Signature {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.serialize_compact());
    }
}

impl Decode for Signature {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Signature::from_compact(r.take(64)?).map_err(|_| DecodeError::InvalidValue("signature"))
    }
}

macro_rules! hash_impl {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.as_byte_array());
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_byte_array(r.array()?))
            }
        }
    )*};
}
hash_impl!(Txid, BlockHash);

macro_rules! array_newtype_impl {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(Self(r.array()?))
            }
        }
    )*};
}
array_newtype_impl!(PaymentHash, PaymentPreimage, ChannelId);

impl Encode for ScriptBuf {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Decode for ScriptBuf {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ScriptBuf::from_bytes(r.rest().to_vec()))
    }
}

impl Encode for Transaction {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&serialize(self));
    }
}

impl Decode for Transaction {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        deserialize(r.rest()).map_err(|_| DecodeError::InvalidValue("transaction"))
    }
}

impl Encode for ChannelTypeFeatures {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.le_flags());
    }
}

impl Decode for ChannelTypeFeatures {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChannelTypeFeatures::from_le_bytes(r.rest().to_vec()))
    }
}

fn ldk_error(e: impl std::fmt::Debug) -> DecodeError {
    DecodeError::Ldk(format!("{e:?}"))
}

/// Decodes an LDK type from the whole of `bytes`.
fn ldk_read<T: Readable>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut slice = bytes;
    let value = T::read(&mut slice).map_err(ldk_error)?;
    if !slice.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(value)
}

macro_rules! ldk_impl {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&Writeable::encode(self));
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                ldk_read(r.rest())
            }
        }
    )*};
}
ldk_impl!(
    CommitmentTransaction,
    HolderCommitmentTransaction,
    CounterpartyCommitmentSecrets,
    HTLCOutputInCommitment
);

impl Encode for ChannelTransactionParameters {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&Writeable::encode(self));
    }
}

impl Decode for ChannelTransactionParameters {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut slice = r.rest();
        let value = ChannelTransactionParameters::read(&mut slice, None).map_err(ldk_error)?;
        if !slice.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(value)
    }
}

impl Encode for UpdateAddHTLC {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&Writeable::encode(self));
    }
}

impl Decode for UpdateAddHTLC {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut slice = r.rest();
        UpdateAddHTLC::read_from_fixed_length_buffer(&mut slice).map_err(ldk_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Encode + Decode + PartialEq + std::fmt::Debug>(value: T) {
        assert_eq!(T::from_bytes(&value.to_bytes()), Ok(value));
    }

    #[test]
    fn primitives_round_trip() {
        round_trip(7u8);
        round_trip(u64::MAX);
        round_trip(true);
        round_trip([9u8; 32]);
        round_trip(vec![1u8, 2, 3]);
        round_trip(String::from("é"));
        round_trip(Seq(vec![1u64, 2, 3]));
        round_trip(Seq(vec![vec![1u8], vec![], vec![2, 3]]));
        round_trip(ScriptBuf::from_bytes(vec![0x51]));
        round_trip(PaymentHash([3; 32]));
        assert_eq!(bool::from_bytes(&[2]), Err(DecodeError::InvalidValue("bool")));
        assert!(String::from_bytes(&[0xff]).is_err());
        // A huge count with no elements behind it is refused, not allocated.
        assert_eq!(
            Seq::<u64>::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::ShortRead)
        );
    }
}
