//! The `ChainMonitor`: every channel's monitor, their persistence, their
//! event logs, and the blocks they watch (DESIGN.md §4).
//!
//! It is sans-IO. Updates go in ([`ChainMonitor::update_channel`]); "persist
//! these bytes under these keys" requests come out
//! ([`ChainMonitor::poll_persist`]); the runtime reports each one durable
//! ([`ChainMonitor::persist_completed`]), synchronously or later, several per
//! channel in flight, in any order across channels and in order within one.
//! Only then are the events the persisted state holds released
//! ([`ChainMonitor::poll_event`]), and the channel told its update is durable.
//!
//! Acknowledgements ([`ChainMonitor::ack`]) and resolution records
//! ([`ChainMonitor::record`]) take effect in memory at once and are written
//! lazily: they ride on the next delta of their channel, or go out with
//! [`ChainMonitor::flush`]. Losing one in a crash only replays an event, which
//! the manager's idempotence absorbs.
//!
//! - [`store`]: the storage layout and the requests;
//! - `load`: rebuilding the chain monitor from the store at start-up.

mod load;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bitcoin::Transaction;
use lightning::ln::types::ChannelId;

use crate::channel::MonitorUpdate;
use crate::monitor::{
    ChannelMonitor, MonitorEvent, MonitorEventId, ResolutionRecord, StoredEvent, UpdateError,
};
pub use load::{LoadError, TornDelta};
pub use store::{Delta, PersistKind, PersistRequest, StoreOp, ARCHIVE_NAMESPACE, MONITORS_NAMESPACE};

/// How the chain monitor persists.
///
/// A monitor's snapshot is rewritten, and its deltas removed, when its
/// deltas since the last snapshot weigh as much as that snapshot (so the
/// bytes written stay within about twice the deltas' own, however large
/// the monitor grows; ADR 0012), or after `compaction_interval` deltas,
/// whichever comes first (so a load replays at most that many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMonitorConfig {
    /// The most deltas a monitor keeps before its snapshot is rewritten
    /// (K).
    pub compaction_interval: u64,
    /// Whether the snapshot is also rewritten once the deltas weigh as much
    /// as it does. Off, only `compaction_interval` counts.
    pub compact_by_size: bool,
}

impl Default for ChainMonitorConfig {
    fn default() -> Self {
        Self { compaction_interval: 256, compact_by_size: true }
    }
}

impl ChainMonitorConfig {
    /// Whether the next write of `slot` should be a snapshot.
    fn compact(&self, slot: &Slot) -> bool {
        slot.deltas.len() as u64 + 1 >= self.compaction_interval
            || (self.compact_by_size && slot.delta_bytes >= slot.snapshot_bytes)
    }
}

/// Why an update was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// No monitor for this channel, and the update does not start one.
    UnknownChannel(ChannelId),
    /// The channel's monitor is being archived.
    Archived(ChannelId),
    /// The monitor refused the update and is unchanged.
    Refused(UpdateError),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownChannel(id) => {
                write!(f, "no monitor for channel {id}, and the update does not start one")
            }
            Self::Archived(id) => write!(f, "the monitor of channel {id} is archived"),
            Self::Refused(e) => write!(f, "update refused: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Refused(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a completion was not accepted. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionError {
    /// No monitor for this channel.
    UnknownChannel(ChannelId),
    /// No such request is in flight for the channel.
    NotInFlight {
        /// The channel.
        channel_id: ChannelId,
        /// The sequence number reported.
        seq: u64,
    },
    /// An earlier request of the same channel is not complete: a channel's
    /// requests must be made durable in order.
    OutOfOrder {
        /// The channel.
        channel_id: ChannelId,
        /// The request that must complete first.
        expected: u64,
        /// The one reported.
        got: u64,
    },
}

impl std::fmt::Display for CompletionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownChannel(id) => write!(f, "no monitor for channel {id}"),
            Self::NotInFlight { channel_id, seq } => {
                write!(f, "persistence {seq} of channel {channel_id} is not in flight")
            }
            Self::OutOfOrder { channel_id, expected, got } => write!(
                f,
                "persistence {got} of channel {channel_id} completed before {expected}: \
                 a channel's writes must complete in order"
            ),
        }
    }
}

impl std::error::Error for CompletionError {}

/// A released event, for the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedEvent {
    /// The channel whose monitor holds it.
    pub channel_id: ChannelId,
    /// Its id, to acknowledge it with.
    pub id: MonitorEventId,
    /// The event.
    pub event: MonitorEvent,
}

/// A persistence started and not complete.
#[derive(Debug, Clone)]
struct InFlight {
    seq: u64,
    /// The latest update it makes durable.
    update_id: u64,
    kind: PersistKind,
}

/// One channel's monitor and its persistence state.
#[derive(Debug, Clone)]
struct Slot {
    monitor: ChannelMonitor,
    in_flight: VecDeque<InFlight>,
    /// The last completed persistence (0: what was loaded).
    durable_seq: u64,
    /// The latest update known durable.
    durable_update_id: u64,
    /// Deltas written (or being written) since the snapshot.
    deltas: Vec<u64>,
    next_delta: u64,
    /// Their size, and the last snapshot's (for size-based compaction).
    delta_bytes: u64,
    snapshot_bytes: u64,
    /// Acknowledgements and records not written yet.
    pending: Delta,
    /// Events given to the manager in this run.
    handed_out: BTreeSet<MonitorEventId>,
    archiving: bool,
}

impl Slot {
    /// A slot for `monitor`, whose stored snapshot and `deltas` weigh
    /// `stored_bytes` (snapshot, deltas).
    fn new(monitor: ChannelMonitor, durable: bool, deltas: Vec<u64>, stored_bytes: (u64, u64)) -> Self {
        let durable_update_id = if durable { monitor.latest_update_id() } else { 0 };
        let next_delta = deltas.iter().max().map_or(1, |n| n + 1);
        Self {
            monitor,
            in_flight: VecDeque::new(),
            durable_seq: 0,
            durable_update_id,
            deltas,
            next_delta,
            snapshot_bytes: stored_bytes.0,
            delta_bytes: stored_bytes.1,
            pending: Delta::default(),
            handed_out: BTreeSet::new(),
            archiving: false,
        }
    }

    fn is_released(&self, event: &StoredEvent) -> bool {
        event.gate.is_some_and(|g| g <= self.durable_seq)
    }
}

/// What to write for a slot.
enum Write {
    Delta(Box<Delta>),
    Snapshot,
    Archive,
}

/// The monitors of every channel.
#[derive(Debug, Clone)]
pub struct ChainMonitor {
    config: ChainMonitorConfig,
    slots: BTreeMap<ChannelId, Slot>,
    next_seq: u64,
    requests: VecDeque<PersistRequest>,
    /// The deferred events found at start-up, until taken.
    startup_replay: Vec<ReleasedEvent>,
    best_height: u32,
}

impl ChainMonitor {
    /// An empty chain monitor (a node with no channels yet).
    pub fn new(config: ChainMonitorConfig) -> Self {
        Self {
            config,
            slots: BTreeMap::new(),
            next_seq: 1,
            requests: VecDeque::new(),
            startup_replay: Vec::new(),
            best_height: 0,
        }
    }

    /// The monitor of `channel_id`.
    pub fn monitor(&self, channel_id: &ChannelId) -> Option<&ChannelMonitor> {
        self.slots.get(channel_id).map(|s| &s.monitor)
    }

    /// Every monitor, by channel.
    pub fn monitors(&self) -> impl Iterator<Item = &ChannelMonitor> {
        self.slots.values().map(|s| &s.monitor)
    }

    /// The latest update of `channel_id` known durable.
    pub fn durable_update_id(&self, channel_id: &ChannelId) -> Option<u64> {
        self.slots.get(channel_id).map(|s| s.durable_update_id)
    }

    /// Applies a channel's update; its first update (which funds it) starts
    /// its monitor. Returns `false` if the update was applied already
    /// (nothing changes). The update is durable once the request it
    /// produces completes.
    ///
    /// # Errors
    ///
    /// [`ApplyError`]: an unknown or archived channel, or an update the
    /// monitor refuses. Nothing changes.
    pub fn update_channel(&mut self, update: &MonitorUpdate) -> Result<bool, ApplyError> {
        let channel_id = update.channel_id;
        let Some(slot) = self.slots.get_mut(&channel_id) else {
            if update.update_id != 1 {
                return Err(ApplyError::UnknownChannel(channel_id));
            }
            let mut monitor = ChannelMonitor::from_first_update(update).map_err(ApplyError::Refused)?;
            monitor.best_height = self.best_height;
            self.slots.insert(channel_id, Slot::new(monitor, false, Vec::new(), (0, 0)));
            self.write(channel_id, Write::Snapshot);
            return Ok(true);
        };
        if slot.archiving {
            return Err(ApplyError::Archived(channel_id));
        }
        if !slot.monitor.apply(update).map_err(ApplyError::Refused)? {
            return Ok(false);
        }
        if self.config.compact(slot) {
            self.write(channel_id, Write::Snapshot);
        } else {
            let mut delta = std::mem::take(&mut slot.pending);
            delta.update = Some(update.clone());
            self.write(channel_id, Write::Delta(Box::new(delta)));
        }
        Ok(true)
    }

    /// Gives a closed channel's monitor the preimage of an HTLC offered to
    /// us (see [`ChannelMonitor::provide_preimage`]). Returns the sequence
    /// number of the write that makes it durable, or `None` if the monitor
    /// already had it.
    ///
    /// # Errors
    ///
    /// [`ApplyError::UnknownChannel`] or [`ApplyError::Archived`].
    pub fn provide_preimage(
        &mut self,
        channel_id: ChannelId,
        htlc_id: u64,
        preimage: lightning::types::payment::PaymentPreimage,
        claim: Option<crate::channel::InboundClaim>,
    ) -> Result<Option<u64>, ApplyError> {
        let slot = self.slots.get_mut(&channel_id).ok_or(ApplyError::UnknownChannel(channel_id))?;
        if slot.archiving {
            return Err(ApplyError::Archived(channel_id));
        }
        if !slot.monitor.provide_preimage(htlc_id, preimage, claim) {
            return Ok(None);
        }
        Ok(Some(self.write(channel_id, Write::Snapshot)))
    }

    /// The sequence number of `channel_id`'s latest write (in flight or
    /// durable).
    pub fn latest_seq(&self, channel_id: &ChannelId) -> Option<u64> {
        self.slots.get(channel_id).map(|s| s.in_flight.back().map_or(s.durable_seq, |f| f.seq))
    }

    /// The sequence number up to which `channel_id`'s writes are durable.
    pub fn durable_seq(&self, channel_id: &ChannelId) -> Option<u64> {
        self.slots.get(channel_id).map(|s| s.durable_seq)
    }

    /// Queues a write of the slot's state. Every event not yet held by a
    /// persistence is held by this one. Returns its sequence number.
    fn write(&mut self, channel_id: ChannelId, what: Write) -> u64 {
        let slot = self.slots.get_mut(&channel_id).expect("writes are queued for existing slots");
        let seq = self.next_seq;
        self.next_seq += 1;
        let (kind, ops) = match what {
            Write::Delta(delta) => {
                let n = slot.next_delta;
                slot.next_delta += 1;
                slot.deltas.push(n);
                let value = delta.serialize();
                slot.delta_bytes += value.len() as u64;
                let op = StoreOp::Write {
                    namespace: MONITORS_NAMESPACE,
                    key: store::delta_key(&channel_id, n),
                    value,
                };
                (PersistKind::Delta, vec![op])
            }
            Write::Snapshot => {
                slot.pending = Delta::default();
                let ops = store::snapshot_ops(&slot.monitor, &std::mem::take(&mut slot.deltas));
                slot.delta_bytes = 0;
                slot.snapshot_bytes = ops.iter().map(StoreOp::value_len).sum();
                (PersistKind::Snapshot, ops)
            }
            Write::Archive => {
                slot.pending = Delta::default();
                slot.archiving = true;
                (PersistKind::Archive, store::archive_ops(&slot.monitor, &std::mem::take(&mut slot.deltas)))
            }
        };
        slot.monitor.stamp_events(seq);
        slot.in_flight.push_back(InFlight { seq, update_id: slot.monitor.latest_update_id(), kind });
        self.requests.push_back(PersistRequest { channel_id, seq, kind, ops });
        seq
    }

    /// The next write to make durable, then report with
    /// [`ChainMonitor::persist_completed`].
    pub fn poll_persist(&mut self) -> Option<PersistRequest> {
        self.requests.pop_front()
    }

    /// Reports request `seq` of `channel_id` durable. Returns the channel's
    /// latest update now durable, if that advanced (to pass to
    /// `Channel::update_persisted`). The events the request holds are
    /// released.
    ///
    /// # Errors
    ///
    /// [`CompletionError`] for an unknown request, or one completed before
    /// an earlier request of the same channel. Nothing changes.
    pub fn persist_completed(
        &mut self,
        channel_id: ChannelId,
        seq: u64,
    ) -> Result<Option<u64>, CompletionError> {
        let slot = self.slots.get_mut(&channel_id).ok_or(CompletionError::UnknownChannel(channel_id))?;
        let front = slot.in_flight.front().ok_or(CompletionError::NotInFlight { channel_id, seq })?;
        if front.seq != seq {
            if slot.in_flight.iter().any(|f| f.seq == seq) {
                return Err(CompletionError::OutOfOrder { channel_id, expected: front.seq, got: seq });
            }
            return Err(CompletionError::NotInFlight { channel_id, seq });
        }
        let done = slot.in_flight.pop_front().expect("the front was just read");
        slot.durable_seq = seq;
        if done.kind == PersistKind::Archive {
            self.slots.remove(&channel_id);
            return Ok(None);
        }
        if done.update_id > slot.durable_update_id {
            slot.durable_update_id = done.update_id;
            return Ok(Some(done.update_id));
        }
        Ok(None)
    }

    /// The next released event not given out yet in this run. An event
    /// stays in its monitor until acknowledged; after a restart every
    /// unacknowledged one is given out again.
    pub fn poll_event(&mut self) -> Option<ReleasedEvent> {
        for (channel_id, slot) in &mut self.slots {
            let durable = slot.durable_seq;
            // Events are kept in id order and released in that order (a
            // later event is held by the same or a later write), and given
            // out in that order: everything up to the last one given out was
            // given out (or acknowledged). Start after it, so a backlog of
            // unacknowledged events costs nothing per poll.
            let events = slot.monitor.events();
            let start = slot.handed_out.last().map_or(0, |last| events.partition_point(|e| e.id <= *last));
            let next = events[start..].iter().find(|e| {
                let released = e.gate.is_some_and(|g| g <= durable);
                #[cfg(feature = "bug-injection")]
                let released =
                    released || (crate::bugs::active(crate::bugs::Bug::EarlyRelease) && e.gate.is_some());
                released && !slot.handed_out.contains(&e.id)
            });
            if let Some(e) = next {
                slot.handed_out.insert(e.id);
                return Some(ReleasedEvent { channel_id: *channel_id, id: e.id, event: e.event.clone() });
            }
        }
        None
    }

    /// The deferred restart events (`InboundClaimPersisted`) found at
    /// start-up. Returned once; deferred events made while running are only
    /// surfaced by the next start-up.
    pub fn take_startup_replay(&mut self) -> Vec<ReleasedEvent> {
        #[cfg(feature = "bug-injection")]
        if crate::bugs::active(crate::bugs::Bug::DropDeferred) {
            self.startup_replay.clear();
        }
        std::mem::take(&mut self.startup_replay)
    }

    /// Acknowledges events of `channel_id`: they are removed for good.
    /// Unknown ids, and ids of events not durable yet, are ignored. Returns
    /// how many were removed. Written lazily (see the module doc).
    pub fn ack(&mut self, channel_id: &ChannelId, ids: &[MonitorEventId]) -> usize {
        let Some(slot) = self.slots.get_mut(channel_id) else { return 0 };
        let durable: Vec<MonitorEventId> = slot
            .monitor
            .events()
            .iter()
            .chain(slot.monitor.deferred_events())
            .filter(|e| ids.contains(&e.id) && slot.is_released(e))
            .map(|e| e.id)
            .collect();
        let removed = slot.monitor.ack(&durable);
        for id in &durable {
            slot.handed_out.remove(id);
        }
        slot.pending.acks.extend(durable);
        self.maybe_archive(*channel_id);
        removed
    }

    /// Acknowledges every durable event of `channel_id` with an id up to
    /// `up_to`. Returns how many were removed.
    pub fn ack_up_to(&mut self, channel_id: &ChannelId, up_to: MonitorEventId) -> usize {
        let Some(slot) = self.slots.get(channel_id) else { return 0 };
        let ids: Vec<MonitorEventId> = slot
            .monitor
            .events()
            .iter()
            .chain(slot.monitor.deferred_events())
            .map(|e| e.id)
            .filter(|id| *id <= up_to)
            .collect();
        self.ack(channel_id, &ids)
    }

    /// Records that the user has seen an outcome, in `channel_id`'s monitor.
    /// Returns whether it is new. Written lazily: call
    /// [`ChainMonitor::flush`] and complete its requests before telling the
    /// user the acknowledgement is durable.
    pub fn record(&mut self, channel_id: &ChannelId, record: ResolutionRecord) -> bool {
        let Some(slot) = self.slots.get_mut(channel_id) else { return false };
        if !slot.monitor.record(record) {
            return false;
        }
        slot.pending.records.push(record);
        true
    }

    /// Queues a write of every acknowledgement and record not written yet.
    /// Returns how many requests it queued.
    pub fn flush(&mut self) -> usize {
        let dirty: Vec<ChannelId> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.archiving && !s.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for channel_id in &dirty {
            let slot = self.slots.get_mut(channel_id).expect("listed above");
            if self.config.compact(slot) {
                self.write(*channel_id, Write::Snapshot);
            } else {
                let delta = std::mem::take(&mut slot.pending);
                self.write(*channel_id, Write::Delta(Box::new(delta)));
            }
        }
        dirty.len()
    }

    /// Feeds the block at `height` to every monitor. A monitor that learned
    /// something is written; the events it made are released once that is
    /// durable.
    pub fn block_connected(&mut self, height: u32, txdata: &[Transaction]) {
        self.best_height = height;
        self.for_each_live(|m| m.block_connected(height, txdata));
    }

    /// The block at `height` left the chain.
    pub fn block_disconnected(&mut self, height: u32) {
        self.best_height = height.saturating_sub(1);
        self.for_each_live(|m| m.block_disconnected(height));
    }

    fn for_each_live(&mut self, mut f: impl FnMut(&mut ChannelMonitor) -> bool) {
        let ids: Vec<ChannelId> = self.slots.keys().copied().collect();
        for channel_id in ids {
            let slot = self.slots.get_mut(&channel_id).expect("listed above");
            if slot.archiving {
                continue;
            }
            if f(&mut slot.monitor) {
                self.write(channel_id, Write::Snapshot);
            }
            self.maybe_archive(channel_id);
        }
    }

    /// Archives the monitor if it no longer matters (see
    /// [`ChannelMonitor::is_archivable`]).
    fn maybe_archive(&mut self, channel_id: ChannelId) {
        let Some(slot) = self.slots.get(&channel_id) else { return };
        if !slot.archiving && slot.monitor.is_archivable() {
            self.write(channel_id, Write::Archive);
        }
    }
}
