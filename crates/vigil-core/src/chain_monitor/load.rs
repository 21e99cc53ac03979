//! Rebuilding the chain monitor from the store at start-up: each monitor is
//! its snapshot plus its deltas, in order.
//!
//! A delta that does not decode is accepted only if it is its channel's last
//! one and merely malformed (a write torn by a crash: it was never reported
//! durable, so nothing depends on it). It is ignored, and a snapshot write
//! that removes it is queued at once. Anything else (a corrupt snapshot or
//! middle delta, a too-new version, deltas without a snapshot, a missing
//! delta, an update that does not apply) stops the load with a
//! [`LoadError`] naming the channel: loading never proceeds with a guess.

use std::collections::BTreeMap;

use lightning::ln::types::ChannelId;

use super::store::{parse_key, Delta, MonitorKey};
use super::{ChainMonitor, ChainMonitorConfig, ReleasedEvent, Slot, Write};
use crate::monitor::ChannelMonitor;
use crate::ser::DecodeError;

/// Why the monitors could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A key this layout does not write.
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A channel has deltas but no snapshot.
    MissingSnapshot {
        /// The channel.
        channel_id: ChannelId,
    },
    /// Stored bytes are corrupt or truncated.
    Corrupt {
        /// The channel.
        channel_id: ChannelId,
        /// The key read.
        key: String,
        /// What is wrong.
        error: DecodeError,
    },
    /// Stored bytes were written by a newer version of Vigil.
    TooNew {
        /// The channel.
        channel_id: ChannelId,
        /// The key read.
        key: String,
        /// What this version does not know.
        error: DecodeError,
    },
    /// The stored pieces do not fit together.
    Inconsistent {
        /// The channel.
        channel_id: ChannelId,
        /// The key read.
        key: String,
        /// What does not fit.
        reason: String,
    },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKey { key } => write!(f, "unknown key {key:?} among the monitors"),
            Self::MissingSnapshot { channel_id } => {
                write!(f, "the monitor of channel {channel_id} has deltas but no snapshot")
            }
            Self::Corrupt { channel_id, key, error } => {
                write!(f, "the monitor of channel {channel_id} is corrupt ({key}): {error}")
            }
            Self::TooNew { channel_id, key, error } => write!(
                f,
                "the monitor of channel {channel_id} was written by a newer version of Vigil ({key}): {error}"
            ),
            Self::Inconsistent { channel_id, key, reason } => {
                write!(f, "the monitor of channel {channel_id} is inconsistent ({key}): {reason}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// A torn last delta that the load ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornDelta {
    /// The channel.
    pub channel_id: ChannelId,
    /// The delta's key.
    pub key: String,
    /// Why it does not decode.
    pub error: DecodeError,
}

fn decode_error(channel_id: ChannelId, key: &str, error: DecodeError) -> LoadError {
    let key = key.to_owned();
    match error {
        DecodeError::UnknownVersion(_) | DecodeError::UnknownEvenType(_) => {
            LoadError::TooNew { channel_id, key, error }
        }
        error => LoadError::Corrupt { channel_id, key, error },
    }
}

/// A channel's stored pieces.
#[derive(Default)]
struct Stored {
    snapshot: Option<(String, Vec<u8>)>,
    deltas: BTreeMap<u64, (String, Vec<u8>)>,
}

impl ChainMonitor {
    /// Rebuilds the chain monitor from every `(key, value)` of
    /// [`MONITORS_NAMESPACE`](super::MONITORS_NAMESPACE). Loaded events are
    /// durable, hence released; the deferred ones are returned once by
    /// [`ChainMonitor::take_startup_replay`]. Also returns the torn deltas
    /// ignored, whose repair is queued as persistence requests.
    ///
    /// # Errors
    ///
    /// [`LoadError`], naming the channel, if anything stored is corrupt,
    /// too new, or does not fit together.
    pub fn load(
        config: ChainMonitorConfig,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(Self, Vec<TornDelta>), LoadError> {
        let mut stored: BTreeMap<ChannelId, Stored> = BTreeMap::new();
        for (key, value) in entries {
            match parse_key(&key) {
                Some(MonitorKey::Snapshot(id)) => stored.entry(id).or_default().snapshot = Some((key, value)),
                Some(MonitorKey::Delta(id, n)) => {
                    stored.entry(id).or_default().deltas.insert(n, (key, value));
                }
                None => return Err(LoadError::UnknownKey { key }),
            }
        }
        let mut chain_monitor = ChainMonitor::new(config);
        let mut torn = Vec::new();
        for (channel_id, pieces) in stored {
            let (slot, torn_delta) = load_channel(channel_id, pieces)?;
            chain_monitor.best_height = chain_monitor.best_height.max(slot.monitor.best_height);
            chain_monitor.startup_replay.extend(
                slot.monitor.deferred_events().iter().map(|e| ReleasedEvent {
                    channel_id,
                    id: e.id,
                    event: e.event.clone(),
                }),
            );
            chain_monitor.slots.insert(channel_id, slot);
            if let Some(t) = torn_delta {
                chain_monitor.write(channel_id, Write::Snapshot);
                torn.push(t);
            }
        }
        Ok((chain_monitor, torn))
    }
}

fn load_channel(channel_id: ChannelId, pieces: Stored) -> Result<(Slot, Option<TornDelta>), LoadError> {
    let (key, bytes) = pieces.snapshot.ok_or(LoadError::MissingSnapshot { channel_id })?;
    let mut monitor = ChannelMonitor::deserialize(&bytes).map_err(|e| decode_error(channel_id, &key, e))?;
    if monitor.channel_id() != channel_id {
        let reason = format!("the snapshot is the monitor of channel {}", monitor.channel_id());
        return Err(LoadError::Inconsistent { channel_id, key, reason });
    }
    let last = pieces.deltas.keys().next_back().copied();
    let numbers: Vec<u64> = pieces.deltas.keys().copied().collect();
    let stored_bytes = (bytes.len() as u64, pieces.deltas.values().map(|(_, v)| v.len() as u64).sum::<u64>());
    if let Some(pair) = numbers.windows(2).find(|w| w[1] != w[0] + 1) {
        let key = pieces.deltas[&pair[1]].0.clone();
        let reason = format!("delta {} is missing", pair[0] + 1);
        return Err(LoadError::Inconsistent { channel_id, key, reason });
    }
    let mut torn = None;
    for (n, (key, bytes)) in pieces.deltas {
        let delta = match Delta::deserialize(&bytes) {
            Ok(delta) => delta,
            Err(error @ (DecodeError::UnknownVersion(_) | DecodeError::UnknownEvenType(_))) => {
                return Err(decode_error(channel_id, &key, error))
            }
            Err(error) if Some(n) == last => {
                torn = Some(TornDelta { channel_id, key, error });
                break;
            }
            Err(error) => return Err(decode_error(channel_id, &key, error)),
        };
        if let Some(update) = &delta.update {
            monitor.apply(update).map_err(|e| LoadError::Inconsistent {
                channel_id,
                key: key.clone(),
                reason: e.to_string(),
            })?;
        }
        monitor.ack(&delta.acks);
        for record in delta.records {
            monitor.record(record);
        }
    }
    // Whatever was stored is durable: its events are released.
    monitor.stamp_events(0);
    Ok((Slot::new(monitor, true, numbers, stored_bytes), torn))
}
