//! A chain monitor over a disk with two images (redb's crash-test model):
//! the requests handed out are in flight, and only those reported complete
//! reach the *durable* image, which is all a crash leaves.
//!
//! Vocabulary: [`Rig::feed`] (updates in), [`Rig::complete_next`] /
//! [`Rig::complete_all`] (persistence done), [`Rig::events`] (released events
//! out), [`Rig::crash`] (lose what is in flight, reload from the durable
//! image).

use std::collections::BTreeMap;

use lightning::ln::types::ChannelId;
use vigil_core::chain_monitor::{
    ChainMonitor, ChainMonitorConfig, PersistRequest, ReleasedEvent, StoreOp, TornDelta, MONITORS_NAMESPACE,
};
use vigil_core::channel::MonitorUpdate;

/// A chain monitor and its disk.
pub struct Rig {
    pub cm: ChainMonitor,
    pub config: ChainMonitorConfig,
    /// What survives a crash: `(namespace, key) -> value`.
    pub durable: BTreeMap<(String, String), Vec<u8>>,
    /// Requests handed out and not complete, in the order handed out.
    pub in_flight: Vec<PersistRequest>,
    /// Every completed request's bytes, in total.
    pub bytes_written: usize,
    /// Update ids reported durable, per channel.
    pub durable_updates: Vec<(ChannelId, u64)>,
}

impl Rig {
    pub fn new(config: ChainMonitorConfig) -> Self {
        Self {
            cm: ChainMonitor::new(config.clone()),
            config,
            durable: BTreeMap::new(),
            in_flight: Vec::new(),
            bytes_written: 0,
            durable_updates: Vec::new(),
        }
    }

    /// Moves the chain monitor's new requests in flight.
    pub fn take_requests(&mut self) {
        while let Some(r) = self.cm.poll_persist() {
            self.in_flight.push(r);
        }
    }

    /// Applies `updates` in order (their requests stay in flight).
    pub fn feed(&mut self, updates: &[MonitorUpdate]) {
        for u in updates {
            self.cm.update_channel(u).expect("the chain monitor applies the channel's updates");
        }
        self.take_requests();
    }

    /// Makes the oldest in-flight request of `channel_id` durable. Returns
    /// its sequence number.
    pub fn complete_next(&mut self, channel_id: ChannelId) -> Option<u64> {
        let pos = self.in_flight.iter().position(|r| r.channel_id == channel_id)?;
        let request = self.in_flight.remove(pos);
        self.apply(&request);
        if let Some(id) = self.cm.persist_completed(channel_id, request.seq).expect("completed in order") {
            self.durable_updates.push((channel_id, id));
        }
        self.take_requests();
        Some(request.seq)
    }

    /// Makes every in-flight request durable, in order.
    pub fn complete_all(&mut self) {
        while let Some(r) = self.in_flight.first() {
            let channel_id = r.channel_id;
            self.complete_next(channel_id);
        }
    }

    fn apply(&mut self, request: &PersistRequest) {
        self.bytes_written += request.bytes_written();
        for op in &request.ops {
            match op {
                StoreOp::Write { namespace, key, value } => {
                    self.durable.insert((namespace.to_string(), key.clone()), value.clone());
                }
                StoreOp::Remove { namespace, key } => {
                    self.durable.remove(&(namespace.to_string(), key.clone()));
                }
            }
        }
    }

    /// Every released event not given out yet.
    pub fn events(&mut self) -> Vec<ReleasedEvent> {
        std::iter::from_fn(|| self.cm.poll_event()).collect()
    }

    /// The durable entries of the monitors' namespace, as start-up reads
    /// them.
    pub fn monitor_entries(&self) -> Vec<(String, Vec<u8>)> {
        self.durable
            .iter()
            .filter(|((ns, _), _)| ns == MONITORS_NAMESPACE)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Keys of the durable image in `namespace`.
    pub fn keys(&self, namespace: &str) -> Vec<String> {
        self.durable.keys().filter(|(ns, _)| ns == namespace).map(|(_, k)| k.clone()).collect()
    }

    /// A crash: what is in flight is lost, and the chain monitor is rebuilt
    /// from the durable image.
    pub fn crash(&mut self) -> Vec<TornDelta> {
        self.in_flight.clear();
        let (cm, torn) =
            ChainMonitor::load(self.config.clone(), self.monitor_entries()).expect("the durable image loads");
        self.cm = cm;
        self.take_requests();
        torn
    }
}
