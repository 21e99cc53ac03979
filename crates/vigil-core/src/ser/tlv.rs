//! TLV streams: a writer, and a parsed set of records with the even/odd
//! rule.

use super::{read_bigsize, write_bigsize, Decode, DecodeError, Encode, Reader};

/// Writes one TLV stream, length-prefixed so it can sit inside another.
#[derive(Debug, Default)]
pub struct TlvWriter {
    stream: Vec<u8>,
    last: Option<u64>,
}

impl TlvWriter {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes field `t` with `value`.
    ///
    /// # Panics
    ///
    /// If `t` is not greater than the previous field (a bug in the caller's
    /// encoding).
    pub fn field<T: Encode + ?Sized>(&mut self, t: u64, value: &T) -> &mut Self {
        assert!(self.last.is_none_or(|l| t > l), "TLV fields are written in increasing order");
        self.last = Some(t);
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        write_bigsize(&mut self.stream, t);
        write_bigsize(&mut self.stream, bytes.len() as u64);
        self.stream.extend_from_slice(&bytes);
        self
    }

    /// Writes field `t` if `value` is set.
    ///
    /// # Panics
    ///
    /// As [`TlvWriter::field`].
    pub fn opt<T: Encode>(&mut self, t: u64, value: &Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.field(t, v);
        }
        self
    }

    /// Appends the length-prefixed stream to `out`.
    pub fn finish(&self, out: &mut Vec<u8>) {
        write_bigsize(out, self.stream.len() as u64);
        out.extend_from_slice(&self.stream);
    }
}

/// A parsed TLV stream. Fields are read by type; [`Records::finish`] then
/// refuses any unread even type.
#[derive(Debug)]
pub struct Records<'a> {
    records: Vec<(u64, &'a [u8])>,
    read: Vec<u64>,
}

impl<'a> Records<'a> {
    /// Parses a length-prefixed stream from the front of `r`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for a truncated stream or types out of order.
    pub fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let len = read_bigsize(r)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::ShortRead)?;
        let mut stream = Reader::new(r.take(len)?);
        let mut records = Vec::new();
        let mut last: Option<u64> = None;
        while !stream.is_empty() {
            let t = read_bigsize(&mut stream)?;
            if last.is_some_and(|l| t <= l) {
                return Err(DecodeError::UnorderedTypes);
            }
            last = Some(t);
            let len = usize::try_from(read_bigsize(&mut stream)?).map_err(|_| DecodeError::ShortRead)?;
            records.push((t, stream.take(len)?));
        }
        Ok(Self { records, read: Vec::new() })
    }

    fn value(&mut self, t: u64) -> Option<&'a [u8]> {
        self.read.push(t);
        self.records.iter().find(|(rt, _)| *rt == t).map(|(_, v)| *v)
    }

    /// The required field `t`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::MissingField`], or the field's decoding error.
    pub fn req<T: Decode>(&mut self, t: u64) -> Result<T, DecodeError> {
        self.opt(t)?.ok_or(DecodeError::MissingField(t))
    }

    /// The optional field `t`.
    ///
    /// # Errors
    ///
    /// The field's decoding error.
    pub fn opt<T: Decode>(&mut self, t: u64) -> Result<Option<T>, DecodeError> {
        match self.value(t) {
            Some(bytes) => T::from_bytes(bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Checks that no even type was left unread.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownEvenType`].
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.records.iter().find(|(t, _)| t % 2 == 0 && !self.read.contains(t)) {
            Some((t, _)) => Err(DecodeError::UnknownEvenType(*t)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Sample {
        a: u64,
        b: Option<u32>,
    }

    impl Encode for Sample {
        fn encode(&self, out: &mut Vec<u8>) {
            let mut w = TlvWriter::new();
            w.field(0, &self.a).opt(3, &self.b);
            w.finish(out);
        }
    }

    impl Decode for Sample {
        fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
            let mut rec = Records::parse(r)?;
            let s = Sample { a: rec.req(0)?, b: rec.opt(3)? };
            rec.finish()?;
            Ok(s)
        }
    }

    fn stream(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut inner = Vec::new();
        for (t, v) in records {
            write_bigsize(&mut inner, *t);
            write_bigsize(&mut inner, v.len() as u64);
            inner.extend_from_slice(v);
        }
        let mut out = Vec::new();
        write_bigsize(&mut out, inner.len() as u64);
        out.extend(inner);
        out
    }

    #[test]
    fn odd_unknown_fields_are_skipped_even_ones_refused() {
        let s = Sample { a: 5, b: Some(7) };
        assert_eq!(Sample::from_bytes(&s.to_bytes()), Ok(s));
        let a = 5u64.to_be_bytes();
        assert_eq!(Sample::from_bytes(&stream(&[(0, &a), (9, b"new")])), Ok(Sample { a: 5, b: None }));
        assert_eq!(
            Sample::from_bytes(&stream(&[(0, &a), (8, b"new")])),
            Err(DecodeError::UnknownEvenType(8))
        );
        assert_eq!(
            Sample::from_bytes(&stream(&[(3, &7u32.to_be_bytes())])),
            Err(DecodeError::MissingField(0))
        );
        assert_eq!(Sample::from_bytes(&stream(&[(3, b""), (0, &a)])), Err(DecodeError::UnorderedTypes));
        assert_eq!(Sample::from_bytes(&stream(&[(0, &a[..4])])), Err(DecodeError::ShortRead));
        let mut truncated = Sample { a: 1, b: None }.to_bytes();
        truncated.pop();
        assert_eq!(Sample::from_bytes(&truncated), Err(DecodeError::ShortRead));
    }
}
