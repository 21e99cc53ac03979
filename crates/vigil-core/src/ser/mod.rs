//! Versioned TLV serialization for everything Vigil persists.
//!
//! A persisted value is a version byte followed by a TLV stream (BOLT 1
//! style): records of `type`, `length` and `value`, with BigSize `type` and
//! `length`, in strictly increasing type order. When decoding, an unknown
//! **odd** type is skipped (it was added by a newer version and is optional),
//! an unknown **even** type is an error (a newer version made it required),
//! and a missing required type is an error. Every type is encoded by hand,
//! field by field, so the layout is visible in the code; each type's list of
//! field numbers, retired ones included as comments, sits beside its impl.
//!
//! Nested values are TLV streams inside a record. Sequences are a BigSize
//! count followed by length-prefixed elements, so elements can grow new
//! fields too. LDK's types are carried in LDK's own encoding.

mod impls;
mod tlv;

pub use impls::{encode_seq, Seq, SeqRef};
pub use tlv::{Records, TlvWriter};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended early.
    ShortRead,
    /// A value is malformed.
    InvalidValue(&'static str),
    /// A required field is missing.
    MissingField(u64),
    /// A field a newer version made required.
    UnknownEvenType(u64),
    /// Types are not strictly increasing.
    UnorderedTypes,
    /// A version byte this build does not know.
    UnknownVersion(u8),
    /// Bytes remain after the value.
    TrailingBytes,
    /// LDK could not decode one of its types.
    Ldk(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShortRead => write!(f, "the input is truncated"),
            Self::InvalidValue(what) => write!(f, "invalid {what}"),
            Self::MissingField(t) => write!(f, "required field {t} is missing"),
            Self::UnknownEvenType(t) => write!(f, "unknown required field {t} (written by a newer version?)"),
            Self::UnorderedTypes => write!(f, "fields are not in increasing order"),
            Self::UnknownVersion(v) => write!(f, "unknown format version {v} (written by a newer version?)"),
            Self::TrailingBytes => write!(f, "unexpected bytes after the value"),
            Self::Ldk(e) => write!(f, "LDK type does not decode: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Writes a value into bytes.
pub trait Encode {
    /// Appends this value's encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// This value's encoding.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Reads a value from bytes.
pub trait Decode: Sized {
    /// Reads a value from the front of `r`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed input.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes exactly `bytes`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for malformed input or trailing bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

/// A cursor over bytes being decoded.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError::ShortRead`] if fewer remain.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::ShortRead);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    ///
    /// # Errors
    ///
    /// [`DecodeError::ShortRead`] if fewer remain.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    /// How many bytes remain.
    pub fn rest_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Checks that everything was read.
    ///
    /// # Errors
    ///
    /// [`DecodeError::TrailingBytes`] otherwise.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// Writes a BigSize (BOLT 1).
pub fn write_bigsize(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfc => out.push(v as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Reads a BigSize, refusing non-canonical encodings (BOLT 1).
///
/// # Errors
///
/// [`DecodeError::ShortRead`] or [`DecodeError::InvalidValue`].
pub fn read_bigsize(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let first = r.array::<1>()?[0];
    let (v, min) = match first {
        0xfd => (u64::from(u16::from_be_bytes(r.array()?)), 0xfd),
        0xfe => (u64::from(u32::from_be_bytes(r.array()?)), 0x1_0000),
        0xff => (u64::from_be_bytes(r.array()?), 0x1_0000_0000),
        b => return Ok(u64::from(b)),
    };
    if v < min {
        return Err(DecodeError::InvalidValue("non-canonical BigSize"));
    }
    Ok(v)
}

/// Writes `version` and then `value`.
pub fn versioned<T: Encode>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    value.encode(&mut out);
    out
}

/// Reads what [`versioned`] wrote, accepting versions up to `max_version`.
///
/// # Errors
///
/// [`DecodeError::UnknownVersion`] for a newer version, or any decoding
/// error of `T`.
pub fn from_versioned<T: Decode>(bytes: &[u8], max_version: u8) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.array::<1>()?[0];
    if version == 0 || version > max_version {
        return Err(DecodeError::UnknownVersion(version));
    }
    let value = T::decode(&mut r)?;
    r.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigsize_round_trips_and_refuses_non_canonical() {
        for v in [0, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut out = Vec::new();
            write_bigsize(&mut out, v);
            assert_eq!(read_bigsize(&mut Reader::new(&out)), Ok(v));
        }
        assert!(read_bigsize(&mut Reader::new(&[0xfd, 0x00, 0xfc])).is_err());
        assert!(read_bigsize(&mut Reader::new(&[0xfe, 0x00, 0x00, 0xff, 0xff])).is_err());
        assert_eq!(read_bigsize(&mut Reader::new(&[0xfd, 0x00])), Err(DecodeError::ShortRead));
    }

    #[test]
    fn versions_are_checked() {
        let bytes = versioned(1, &7u64);
        assert_eq!(from_versioned::<u64>(&bytes, 1), Ok(7));
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(from_versioned::<u64>(&newer, 1), Err(DecodeError::UnknownVersion(2)));
        assert_eq!(from_versioned::<u64>(&[], 1), Err(DecodeError::ShortRead));
        let mut trailing = bytes;
        trailing.push(0);
        assert_eq!(from_versioned::<u64>(&trailing, 1), Err(DecodeError::TrailingBytes));
    }
}
