//! How monitors sit in the key-value store, and the writes the chain monitor
//! asks for.
//!
//! Layout, in namespace [`MONITORS_NAMESPACE`], per channel (`<id>` is the
//! channel id in lowercase hex):
//!
//! - `<id>/snapshot`: the whole monitor ([`ChannelMonitor::serialize`]);
//! - `<id>/delta-<n>`: a [`Delta`] (an update, acknowledgements, resolution
//!   records), `n` a zero-padded per-channel counter, applied in order on
//!   top of the snapshot.
//!
//! Every snapshot write removes the deltas it supersedes in the same atomic
//! batch. Applying a delta is idempotent, so a stale one would be harmless
//! anyway. An archived monitor moves to [`ARCHIVE_NAMESPACE`] under `<id>`,
//! which start-up never reads.

use lightning::ln::types::ChannelId;

use crate::channel::MonitorUpdate;
use crate::monitor::{ChannelMonitor, MonitorEventId, ResolutionRecord};
use crate::ser::{
    from_versioned, versioned, Decode, DecodeError, Encode, Reader, Records, Seq, SeqRef, TlvWriter,
};

/// The namespace of live monitors.
pub const MONITORS_NAMESPACE: &str = "monitors";

/// The namespace of archived monitors.
pub const ARCHIVE_NAMESPACE: &str = "monitors-archive";

/// The version byte of a serialized [`Delta`].
pub const DELTA_VERSION: u8 = 1;

/// One write or removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Write `value` under `(namespace, key)`.
    Write {
        /// The namespace.
        namespace: &'static str,
        /// The key.
        key: String,
        /// The bytes.
        value: Vec<u8>,
    },
    /// Remove `(namespace, key)`; an absent key is not an error.
    Remove {
        /// The namespace.
        namespace: &'static str,
        /// The key.
        key: String,
    },
}

impl StoreOp {
    /// The bytes it writes (0 for a removal).
    pub fn value_len(&self) -> u64 {
        match self {
            StoreOp::Write { value, .. } => value.len() as u64,
            StoreOp::Remove { .. } => 0,
        }
    }
}

/// What a persistence writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistKind {
    /// A delta on top of the snapshot.
    Delta,
    /// A full snapshot, removing the deltas it supersedes.
    Snapshot,
    /// The monitor moves to the archive.
    Archive,
}

/// "Persist these bytes under these keys": one atomic batch, to be reported
/// back with [`ChainMonitor::persist_completed`](super::ChainMonitor::persist_completed)
/// once durable.
///
/// The persister may complete requests of different channels in any order,
/// but must make the requests of one channel durable in the order they were
/// handed out (a per-channel queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRequest {
    /// The channel.
    pub channel_id: ChannelId,
    /// Its sequence number, to report completion with.
    pub seq: u64,
    /// What it writes.
    pub kind: PersistKind,
    /// The operations, applied atomically in order.
    pub ops: Vec<StoreOp>,
}

impl PersistRequest {
    /// The bytes this request writes.
    pub fn bytes_written(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                StoreOp::Write { key, value, .. } => key.len() + value.len(),
                StoreOp::Remove { key, .. } => key.len(),
            })
            .sum()
    }
}

/// A change to a monitor since its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// A channel update.
    pub update: Option<MonitorUpdate>,
    /// Events acknowledged.
    pub acks: Vec<MonitorEventId>,
    /// Outcomes the user has seen.
    pub records: Vec<ResolutionRecord>,
}

// Delta: 1 update, 3 acknowledged event ids, 5 resolution records.
impl Encode for Delta {
    fn encode(&self, out: &mut Vec<u8>) {
        let acks: Vec<u64> = self.acks.iter().map(|id| id.0).collect();
        let mut w = TlvWriter::new();
        w.opt(1, &self.update).field(3, &SeqRef(&acks)).field(5, &SeqRef(&self.records));
        w.finish(out);
    }
}

impl Decode for Delta {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = Delta {
            update: rec.opt(1)?,
            acks: rec
                .opt::<Seq<u64>>(3)?
                .map(|s| s.0.into_iter().map(MonitorEventId).collect())
                .unwrap_or_default(),
            records: rec.opt::<Seq<ResolutionRecord>>(5)?.map(|s| s.0).unwrap_or_default(),
        };
        rec.finish()?;
        Ok(value)
    }
}

impl Delta {
    /// The delta's versioned encoding.
    pub fn serialize(&self) -> Vec<u8> {
        versioned(DELTA_VERSION, self)
    }

    /// Reads what [`Delta::serialize`] wrote.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for corrupt, truncated or too-new bytes.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, DecodeError> {
        from_versioned(bytes, DELTA_VERSION)
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.update.is_none() && self.acks.is_empty() && self.records.is_empty()
    }
}

/// The channel id in lowercase hex: the key prefix of its monitor.
pub fn channel_hex(channel_id: &ChannelId) -> String {
    channel_id.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of a monitor's snapshot.
pub fn snapshot_key(channel_id: &ChannelId) -> String {
    format!("{}/snapshot", channel_hex(channel_id))
}

/// The key of a monitor's `n`th delta.
pub fn delta_key(channel_id: &ChannelId, n: u64) -> String {
    format!("{}/delta-{n:020}", channel_hex(channel_id))
}

/// What a key of [`MONITORS_NAMESPACE`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKey {
    /// A snapshot.
    Snapshot(ChannelId),
    /// A delta.
    Delta(ChannelId, u64),
}

/// Parses a key of [`MONITORS_NAMESPACE`]; `None` if it is not one this
/// layout writes.
pub fn parse_key(key: &str) -> Option<MonitorKey> {
    let (hex, rest) = key.split_once('/')?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    let channel_id = ChannelId(id);
    if rest == "snapshot" {
        return Some(MonitorKey::Snapshot(channel_id));
    }
    let n = rest.strip_prefix("delta-")?;
    if n.len() != 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(MonitorKey::Delta(channel_id, n.parse().ok()?))
}

/// The operations that write `monitor`'s snapshot and remove the deltas
/// `deltas` it supersedes.
pub(crate) fn snapshot_ops(monitor: &ChannelMonitor, deltas: &[u64]) -> Vec<StoreOp> {
    let channel_id = monitor.channel_id();
    let mut ops = vec![StoreOp::Write {
        namespace: MONITORS_NAMESPACE,
        key: snapshot_key(&channel_id),
        value: monitor.serialize(),
    }];
    ops.extend(
        deltas
            .iter()
            .map(|n| StoreOp::Remove { namespace: MONITORS_NAMESPACE, key: delta_key(&channel_id, *n) }),
    );
    ops
}

/// The operations that move `monitor` to the archive.
pub(crate) fn archive_ops(monitor: &ChannelMonitor, deltas: &[u64]) -> Vec<StoreOp> {
    let channel_id = monitor.channel_id();
    let mut ops = vec![StoreOp::Write {
        namespace: ARCHIVE_NAMESPACE,
        key: channel_hex(&channel_id),
        value: monitor.serialize(),
    }];
    ops.extend(
        deltas
            .iter()
            .map(|n| StoreOp::Remove { namespace: MONITORS_NAMESPACE, key: delta_key(&channel_id, *n) }),
    );
    ops.push(StoreOp::Remove { namespace: MONITORS_NAMESPACE, key: snapshot_key(&channel_id) });
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let id = ChannelId([0xab; 32]);
        assert_eq!(parse_key(&snapshot_key(&id)), Some(MonitorKey::Snapshot(id)));
        assert_eq!(parse_key(&delta_key(&id, 42)), Some(MonitorKey::Delta(id, 42)));
        assert_eq!(parse_key(&delta_key(&id, u64::MAX)), Some(MonitorKey::Delta(id, u64::MAX)));
        let hex = channel_hex(&id);
        for bad in [
            "snapshot".to_owned(),
            format!("{hex}/other"),
            format!("{hex}/delta-12"),
            format!("{hex}/delta-9999999999999999999x"),
            format!("{}/snapshot", &hex[..62]),
            format!("{}/snapshot", hex.to_uppercase()),
            format!("{hex}/delta-99999999999999999999"),
        ] {
            assert_eq!(parse_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn deltas_round_trip() {
        let delta = Delta {
            update: None,
            acks: vec![MonitorEventId(3), MonitorEventId(9)],
            records: vec![ResolutionRecord::PaymentSeen([4; 32])],
        };
        assert_eq!(Delta::deserialize(&delta.serialize()), Ok(delta));
        assert_eq!(Delta::deserialize(&Delta::default().serialize()), Ok(Delta::default()));
        let mut newer = Delta::default().serialize();
        newer[0] = DELTA_VERSION + 1;
        assert_eq!(Delta::deserialize(&newer), Err(DecodeError::UnknownVersion(DELTA_VERSION + 1)));
    }
}
