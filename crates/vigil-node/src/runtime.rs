//! The runtime around a sans-IO `ChannelManager`: it carries out what the
//! manager asks for (writes to the store, broadcasts, messages to peers)
//! and reports back, so the core never touches IO itself.
//!
//! Writes are made synchronously here: everything the manager asks to write
//! in one round (monitor updates of any number of channels, payment records)
//! goes to the store as one atomic batch, so one `fsync` covers them all
//! (group commit), and each is reported complete once the batch returns. A write that
//! fails is kept and tried again at the next drive; nothing that depends on
//! it leaves the node meanwhile (I1).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{CommitmentUpdate, ErrorAction, MessageSendEvent};
use lightning::ln::types::ChannelId;
use vigil_chain::ChainSource;
use vigil_core::chain_monitor::{PersistRequest, StoreOp};
use vigil_core::channel::ChannelMessage;
use vigil_core::manager::{ChannelManager, RecordWrite};
use vigil_store::{Batch, KvStore};

/// A manager with its store and chain.
pub struct Runtime {
    /// The manager.
    pub manager: ChannelManager,
    store: Arc<dyn KvStore + Send + Sync>,
    chain: Arc<dyn ChainSource + Send + Sync>,
    /// Messages for LDK's `PeerManager`, in order.
    outbound: Vec<MessageSendEvent>,
    /// Writes the store refused, to try again.
    failed_persists: VecDeque<PersistRequest>,
    failed_records: VecDeque<RecordWrite>,
    /// The last store or broadcast error, for the operator. A store error
    /// is cleared once the store accepts a batch again.
    pub last_error: Option<String>,
    /// Whether `last_error` is a store failure.
    store_failing: bool,
    /// What the store was asked to do, and how long it took.
    pub stats: PersistStats,
    /// Set when the node stops: nothing more is written or sent.
    pub stopped: bool,
}

/// Counters of the runtime's writes (for metrics and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistStats {
    /// Atomic batches written: one transaction and one `fsync` each.
    pub batches: u64,
    /// Monitor updates (persist requests) made durable.
    pub monitor_writes: u64,
    /// Payment records made durable.
    pub record_writes: u64,
    /// Value bytes written.
    pub bytes: u64,
    /// Batches the store refused (retried later).
    pub failures: u64,
    /// Total time spent in the store's batch writes.
    pub latency_total: Duration,
    /// The longest batch write.
    pub latency_max: Duration,
}

impl PersistStats {
    fn record(&mut self, took: Duration, monitor_writes: usize, record_writes: usize, bytes: usize) {
        self.batches += 1;
        self.monitor_writes += monitor_writes as u64;
        self.record_writes += record_writes as u64;
        self.bytes += bytes as u64;
        self.latency_total += took;
        self.latency_max = self.latency_max.max(took);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("manager", &self.manager).finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime over `manager`.
    pub fn new(
        manager: ChannelManager,
        store: Arc<dyn KvStore + Send + Sync>,
        chain: Arc<dyn ChainSource + Send + Sync>,
    ) -> Self {
        Self {
            manager,
            store,
            chain,
            outbound: Vec::new(),
            failed_persists: VecDeque::new(),
            failed_records: VecDeque::new(),
            last_error: None,
            store_failing: false,
            stats: PersistStats::default(),
            stopped: false,
        }
    }

    /// Writes `requests` and `records`, behind any earlier writes the
    /// store refused, as one atomic batch: one transaction, one `fsync`
    /// (group commit). Completions are reported only once the batch is
    /// durable; if the store refuses it, everything in it waits for the next
    /// drive, still in order.
    fn commit(&mut self, requests: Vec<PersistRequest>, records: Vec<RecordWrite>) {
        if requests.is_empty() && records.is_empty() && !self.has_failed_writes() {
            return;
        }
        let mut all_requests: Vec<PersistRequest> = self.failed_persists.drain(..).collect();
        all_requests.extend(requests);
        let mut all_records: Vec<RecordWrite> = self.failed_records.drain(..).collect();
        all_records.extend(records);
        let mut batch = Batch::new();
        let mut bytes = 0;
        for op in all_requests.iter().flat_map(|r| &r.ops) {
            match op {
                StoreOp::Write { namespace, key, value } => {
                    bytes += value.len();
                    batch.write(namespace, key, value.clone())
                }
                StoreOp::Remove { namespace, key } => batch.remove(namespace, key),
            };
        }
        for write in &all_records {
            bytes += write.value.len();
            batch.write(write.namespace, &write.key, write.value.clone());
        }
        let started = Instant::now();
        match self.store.write_batch(&batch) {
            Ok(()) => {
                if std::mem::take(&mut self.store_failing) {
                    self.last_error = None;
                }
                self.stats.record(started.elapsed(), all_requests.len(), all_records.len(), bytes);
                for request in all_requests {
                    if let Err(e) = self.manager.persist_completed(request.channel_id, request.seq) {
                        self.last_error = Some(format!("persistence completion refused: {e}"));
                    }
                }
                for write in all_records {
                    self.manager.record_persisted(write.payment_id);
                }
            }
            Err(e) => {
                self.stats.failures += 1;
                self.last_error = Some(format!("store write failed (will retry): {e}"));
                self.store_failing = true;
                self.failed_persists = all_requests.into();
                self.failed_records = all_records.into();
            }
        }
    }

    /// Carries out everything the manager asked for, until it asks for
    /// nothing more.
    pub fn drive(&mut self) {
        if self.stopped {
            self.outbound.clear();
            return;
        }
        // Earlier failures first: a channel's writes complete in order, so
        // once one fails, the rest wait behind it.
        self.commit(Vec::new(), Vec::new());
        for _ in 0..10_000 {
            let mut moved = false;
            let mut requests = Vec::new();
            while let Some(request) = self.manager.poll_persist() {
                requests.push(request);
            }
            let mut records = Vec::new();
            while let Some(write) = self.manager.poll_record_write() {
                records.push(write);
            }
            if !requests.is_empty() || !records.is_empty() {
                moved = true;
                self.commit(requests, records);
            }
            while let Some(tx) = self.manager.poll_broadcast() {
                moved = true;
                if let Err(e) = self.chain.broadcast(&tx) {
                    self.last_error = Some(format!("broadcast of {} failed: {e}", tx.compute_txid()));
                }
            }
            let mut messages = Vec::new();
            while let Some(m) = self.manager.poll_message() {
                messages.push(m);
            }
            if !messages.is_empty() {
                moved = true;
                self.outbound.extend(to_send_events(messages));
            }
            if !moved {
                break;
            }
        }
    }

    /// Queues a message for the peer manager that does not come from the
    /// manager (a warning about an unsupported message).
    pub fn push_outbound(&mut self, event: MessageSendEvent) {
        self.outbound.push(event);
    }

    /// Whether writes the store refused are waiting to be tried again.
    pub fn has_failed_writes(&self) -> bool {
        !self.failed_persists.is_empty() || !self.failed_records.is_empty()
    }

    /// The messages for the peer manager.
    pub fn take_outbound(&mut self) -> Vec<MessageSendEvent> {
        std::mem::take(&mut self.outbound)
    }
}

/// Turns the manager's messages into LDK's send events, in order. HTLC
/// updates followed by a `commitment_signed` of the same channel travel as
/// one `UpdateHTLCs`.
fn to_send_events(messages: Vec<(PublicKey, ChannelMessage)>) -> Vec<MessageSendEvent> {
    let mut out = Vec::new();
    let mut group: Option<(PublicKey, ChannelId, CommitmentUpdate)> = None;
    let flush = |group: &mut Option<(PublicKey, ChannelId, CommitmentUpdate)>,
                 out: &mut Vec<MessageSendEvent>| {
        if let Some((node_id, channel_id, updates)) = group.take() {
            out.push(MessageSendEvent::UpdateHTLCs { node_id, channel_id, updates });
        }
    };
    for (node_id, message) in messages {
        let channel_id = match &message {
            ChannelMessage::UpdateAddHtlc(m) => Some(m.channel_id),
            ChannelMessage::UpdateFulfillHtlc(m) => Some(m.channel_id),
            ChannelMessage::UpdateFailHtlc(m) => Some(m.channel_id),
            ChannelMessage::UpdateFailMalformedHtlc(m) => Some(m.channel_id),
            ChannelMessage::UpdateFee(m) => Some(m.channel_id),
            ChannelMessage::CommitmentSigned(m) => Some(m.channel_id),
            _ => None,
        };
        if let Some(channel_id) = channel_id {
            if group.as_ref().is_some_and(|(n, c, _)| *n != node_id || *c != channel_id) {
                flush(&mut group, &mut out);
            }
            let (_, _, updates) = group.get_or_insert_with(|| {
                (
                    node_id,
                    channel_id,
                    CommitmentUpdate {
                        update_add_htlcs: Vec::new(),
                        update_fulfill_htlcs: Vec::new(),
                        update_fail_htlcs: Vec::new(),
                        update_fail_malformed_htlcs: Vec::new(),
                        update_fee: None,
                        commitment_signed: Vec::new(),
                    },
                )
            });
            let done = matches!(message, ChannelMessage::CommitmentSigned(_));
            match message {
                ChannelMessage::UpdateAddHtlc(m) => updates.update_add_htlcs.push(m),
                ChannelMessage::UpdateFulfillHtlc(m) => updates.update_fulfill_htlcs.push(m),
                ChannelMessage::UpdateFailHtlc(m) => updates.update_fail_htlcs.push(m),
                ChannelMessage::UpdateFailMalformedHtlc(m) => updates.update_fail_malformed_htlcs.push(m),
                ChannelMessage::UpdateFee(m) => updates.update_fee = Some(m),
                ChannelMessage::CommitmentSigned(m) => updates.commitment_signed.push(m),
                _ => unreachable!("only update messages have a channel id here"),
            }
            if done {
                flush(&mut group, &mut out);
            }
            continue;
        }
        flush(&mut group, &mut out);
        out.push(match message {
            ChannelMessage::OpenChannel(msg) => MessageSendEvent::SendOpenChannel { node_id, msg },
            ChannelMessage::AcceptChannel(msg) => MessageSendEvent::SendAcceptChannel { node_id, msg },
            ChannelMessage::FundingCreated(msg) => MessageSendEvent::SendFundingCreated { node_id, msg },
            ChannelMessage::FundingSigned(msg) => MessageSendEvent::SendFundingSigned { node_id, msg },
            ChannelMessage::ChannelReady(msg) => MessageSendEvent::SendChannelReady { node_id, msg },
            ChannelMessage::RevokeAndAck(msg) => MessageSendEvent::SendRevokeAndACK { node_id, msg },
            ChannelMessage::Shutdown(msg) => MessageSendEvent::SendShutdown { node_id, msg },
            ChannelMessage::ClosingSigned(msg) => MessageSendEvent::SendClosingSigned { node_id, msg },
            ChannelMessage::ChannelReestablish(msg) => {
                MessageSendEvent::SendChannelReestablish { node_id, msg }
            }
            ChannelMessage::Error(msg) => {
                MessageSendEvent::HandleError { node_id, action: ErrorAction::SendErrorMessage { msg } }
            }
            ChannelMessage::ChannelUpdate(msg) => MessageSendEvent::SendChannelUpdate { node_id, msg },
            ChannelMessage::Warning(msg) => MessageSendEvent::HandleError {
                node_id,
                action: ErrorAction::SendWarningMessage {
                    msg,
                    log_level: lightning::util::logger::Level::Warn,
                },
            },
            _ => unreachable!("update messages are grouped above"),
        });
    }
    flush(&mut group, &mut out);
    out
}
