//! A started node's background work: following the chain, handing out
//! events, timer ticks, and reconnecting to the peers of our channels with
//! exponential backoff.
//!
//! One loop does it all, each round on a blocking thread (the chain source
//! and the store block): follow the chain (which syncs the wallet and funds
//! fee bumps), take the manager's events (the autopilot handles its own),
//! tick when due, send what is queued. Reconnections are spawned from the
//! loop. Nothing here is state that matters after a crash: every round
//! derives what to do from the manager and the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::node::{Node, NodeError};

/// The first reconnection delay; doubled at each failure up to
/// [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest reconnection delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The running background work of a node.
#[derive(Debug, Default)]
pub(crate) struct Service {
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    /// Where the node listens, once started.
    pub(crate) listening: Option<std::net::SocketAddr>,
    backoff: HashMap<PublicKey, (Instant, Duration)>,
}

impl Node {
    /// Starts the node's background work: listening for peers (where the
    /// builder said), following the chain, handling the autopilot's events,
    /// timer ticks and reconnections. Must be called inside a tokio runtime.
    /// Starting a started node does nothing.
    ///
    /// # Errors
    ///
    /// [`NodeError::Network`] if the listening address cannot be bound;
    /// [`NodeError::Stopped`] after [`Node::stop`].
    pub async fn start(self: &Arc<Self>) -> Result<(), NodeError> {
        if self.runtime().stopped {
            return Err(NodeError::Stopped);
        }
        if self.lock_service().task.is_some() {
            return Ok(());
        }
        if let Some(addr) = self.extras.listen {
            let bound = self.listen(addr).await?;
            tracing::info!(%bound, node_id = %self.node_id(), "listening for peers");
            self.lock_service().listening = Some(bound);
        }
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let node = self.clone();
        let task = tokio::spawn(async move {
            let mut last_tick = Instant::now();
            loop {
                let round_node = node.clone();
                let tick = last_tick.elapsed() >= node.extras.tick_interval;
                if tick {
                    last_tick = Instant::now();
                }
                let round = tokio::task::spawn_blocking(move || round_node.background_round(tick));
                if let Err(e) = round.await {
                    tracing::error!(error = %e, "a background round panicked; continuing");
                }
                node.reconnect_peers();
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    () = tokio::time::sleep(node.extras.poll_interval) => {}
                }
            }
        });
        let mut service = self.lock_service();
        service.stop = Some(stop_tx);
        service.task = Some(task);
        Ok(())
    }

    fn lock_service(&self) -> std::sync::MutexGuard<'_, Service> {
        self.service.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the node listens for peers, once started.
    pub fn listening_addr(&self) -> Option<std::net::SocketAddr> {
        self.lock_service().listening
    }

    /// One round of background work.
    fn background_round(&self, tick: bool) {
        let _round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        if self.runtime().stopped {
            return;
        }
        if let Err(e) = self.sync_chain() {
            tracing::warn!(error = %e, "following the chain failed; retrying");
            self.runtime().last_error = Some(e.to_string());
        }
        if tick {
            self.tick();
        }
        self.process_events();
        self.pump_events();
    }

    /// Spawns a connection to every peer we have a channel with, know an
    /// address for, and are not connected to, when its backoff allows.
    fn reconnect_peers(self: &Arc<Self>) {
        let now = Instant::now();
        let mut wanted: Vec<PublicKey> =
            self.list_channels().into_iter().map(|c| c.counterparty_node_id).collect();
        wanted.sort();
        wanted.dedup();
        for peer in wanted {
            if self.is_connected(&peer) {
                self.lock_service().backoff.remove(&peer);
                continue;
            }
            let Some(addr) = self.peer_address(&peer) else { continue };
            {
                let mut service = self.lock_service();
                let (due, delay) = *service.backoff.get(&peer).unwrap_or(&(now, MIN_BACKOFF));
                if due > now {
                    continue;
                }
                service.backoff.insert(peer, (now + delay, (delay * 2).min(MAX_BACKOFF)));
            }
            let node = self.clone();
            tokio::spawn(async move {
                match node.connect(peer, addr).await {
                    Ok(()) => tracing::info!(%peer, %addr, "reconnected"),
                    Err(e) => tracing::debug!(%peer, %addr, error = %e, "reconnection failed; backing off"),
                }
            });
        }
    }
}

/// Ends the background work (called by [`Node::stop`]).
pub(crate) fn stop(node: &Node) {
    let mut service = node.service.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(stop) = service.stop.take() {
        let _ = stop.send(true);
    }
    if let Some(task) = service.task.take() {
        task.abort();
    }
    service.listening = None;
}
