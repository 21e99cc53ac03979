//! What a user asks a node for: channels opened from the wallet, invoices,
//! payments and their list, the on-chain wallet, and events. With the
//! autopilot (nodes made by [`crate::Builder`]) the node funds the channels
//! it opens and claims payments to its invoices itself; everything else is
//! the user's, through [`Node::next_event`] and [`Node::event_handled`].
//!
//! Payments we receive are listed from small records (`inbound/<hash>`)
//! written when a payment becomes claimable and when its claim is durable;
//! the events that cause them come back after a crash until acknowledged,
//! so the records are rewritten, never lost.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Address, Amount, FeeRate, Txid};
use lightning::ln::types::ChannelId;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning_invoice::Bolt11Invoice;
use vigil_core::manager::{ChannelDetails, Event, EventId, PaymentId, PaymentRecord, PaymentStatus};

use crate::node::{Node, NODE_NAMESPACE};

/// The store namespace of the records of payments we receive.
pub const INBOUND_NAMESPACE: &str = "inbound";

/// The fee rate for funding and wallet transactions when the chain has no
/// estimate (a fresh regtest chain): 2 sat/vB.
pub const DEFAULT_FEERATE: FeeRate = FeeRate::from_sat_per_vb_u32(2);

/// Why an operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// An argument is unusable.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The on-chain wallet cannot pay for it.
    #[error("the on-chain wallet has {available_sat} sat confirmed, {needed_sat} sat are needed; fund it (`vigil newaddr`) and wait for a confirmation")]
    InsufficientFunds {
        /// What is needed.
        needed_sat: u64,
        /// What the wallet has, confirmed.
        available_sat: u64,
    },
    /// A peer could not be reached.
    #[error("cannot reach the peer: {0}")]
    PeerUnreachable(String),
    /// No such channel or payment.
    #[error("{0}")]
    NotFound(String),
    /// The node refused it in its current state.
    #[error("{0}")]
    Refused(String),
    /// Not possible on this node (e.g. mining without the embedded chain).
    #[error("{0}")]
    Unsupported(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> OpError {
    OpError::InvalidInput { field, reason: reason.into() }
}

/// Which way a payment went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We paid.
    Outbound,
    /// We were paid.
    Inbound,
}

/// Where a listed payment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentState {
    /// In flight (outbound), or claimable and being claimed (inbound).
    Pending,
    /// Done.
    Succeeded,
    /// Failed for good (outbound only), with the reason.
    Failed(String),
}

/// A payment, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInfo {
    /// Which way.
    pub direction: Direction,
    /// The payment hash.
    pub payment_hash: PaymentHash,
    /// Outbound: the payment id.
    pub payment_id: Option<PaymentId>,
    /// What the payee gets (outbound) or got (inbound).
    pub amount_msat: u64,
    /// Routing fees paid (outbound, once succeeded).
    pub fee_msat: Option<u64>,
    /// The preimage, once known.
    pub preimage: Option<PaymentPreimage>,
    /// Where it stands.
    pub state: PaymentState,
    /// When it started or arrived (seconds since the epoch).
    pub created_at_secs: u64,
}

impl PaymentInfo {
    fn outbound(r: PaymentRecord) -> Self {
        let (state, fee_msat, preimage) = match r.status {
            PaymentStatus::Pending => (PaymentState::Pending, None, None),
            PaymentStatus::Succeeded { preimage, fee_paid_msat } => {
                (PaymentState::Succeeded, Some(fee_paid_msat), Some(preimage))
            }
            PaymentStatus::Failed { reason } => (PaymentState::Failed(reason), None, None),
        };
        Self {
            direction: Direction::Outbound,
            payment_hash: r.payment_hash,
            payment_id: Some(r.payment_id),
            amount_msat: r.amount_msat,
            fee_msat,
            preimage: preimage.or(r.keysend_preimage.filter(|_| state == PaymentState::Succeeded)),
            state,
            created_at_secs: r.created_at_secs,
        }
    }

    /// Version 1: `[1][state: 0 pending, 1 succeeded][amount u64][created
    /// u64][hash 32][preimage 32, zeros if unknown]`.
    fn encode_inbound(&self) -> Vec<u8> {
        let mut v = vec![1, u8::from(self.state == PaymentState::Succeeded)];
        v.extend_from_slice(&self.amount_msat.to_be_bytes());
        v.extend_from_slice(&self.created_at_secs.to_be_bytes());
        v.extend_from_slice(&self.payment_hash.0);
        v.extend_from_slice(&self.preimage.map_or([0; 32], |p| p.0));
        v
    }

    fn decode_inbound(v: &[u8]) -> Option<Self> {
        if v.len() != 82 || v[0] != 1 || v[1] > 1 {
            return None;
        }
        let preimage = PaymentPreimage(v[50..82].try_into().ok()?);
        let payment_hash = PaymentHash(v[18..50].try_into().ok()?);
        let known = sha256::Hash::hash(&preimage.0).to_byte_array() == payment_hash.0;
        Some(Self {
            direction: Direction::Inbound,
            payment_hash,
            payment_id: None,
            amount_msat: u64::from_be_bytes(v[2..10].try_into().ok()?),
            fee_msat: None,
            preimage: known.then_some(preimage),
            state: if v[1] == 1 { PaymentState::Succeeded } else { PaymentState::Pending },
            created_at_secs: u64::from_be_bytes(v[10..18].try_into().ok()?),
        })
    }
}

/// The node's on-chain wallet, summed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balances {
    /// Confirmed and spendable.
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed or immature.
    pub onchain_pending_sat: u64,
    /// Ours in open channels, HTLCs excluded.
    pub lightning_msat: u64,
}

impl Node {
    // ---- peers ----

    /// Connects to a peer and remembers its address, so that the node
    /// reconnects to it after a disconnection or a restart.
    ///
    /// # Errors
    ///
    /// [`OpError::PeerUnreachable`] if the connection fails or the peer does
    /// not complete the handshake within ten seconds.
    pub async fn connect_peer(&self, peer: PublicKey, addr: SocketAddr) -> Result<(), OpError> {
        if peer == self.node_id() {
            return Err(invalid("node_id", "that is this node's own id"));
        }
        if self.runtime().stopped {
            return Err(OpError::Refused("the node is stopped".into()));
        }
        if !self.is_connected(&peer) {
            let connect = self.connect(peer, addr);
            match tokio::time::timeout(Duration::from_secs(10), connect).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(OpError::PeerUnreachable(format!("{peer}@{addr}: {e}"))),
                Err(_) => return Err(OpError::PeerUnreachable(format!("{peer}@{addr}: timed out"))),
            }
            let started = std::time::Instant::now();
            while !self.is_connected(&peer) {
                if started.elapsed() > Duration::from_secs(10) {
                    return Err(OpError::PeerUnreachable(format!(
                        "{peer}@{addr}: connected, but the handshake did not finish (wrong node id?)"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Err(e) = self.store.write(NODE_NAMESPACE, &peer_key(&peer), addr.to_string().as_bytes()) {
            tracing::warn!(%peer, error = %e, "could not remember the peer's address");
        }
        Ok(())
    }

    /// The address we last reached `peer` at.
    pub(crate) fn peer_address(&self, peer: &PublicKey) -> Option<SocketAddr> {
        let bytes = self.store.read(NODE_NAMESPACE, &peer_key(peer)).ok()??;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    /// The peers connected now.
    pub fn list_peers(&self) -> Vec<PublicKey> {
        self.peer_manager().list_peers().into_iter().map(|p| p.counterparty_node_id).collect()
    }

    // ---- channels ----

    /// Opens a channel of `amount_sat` to `peer` (connecting first if an
    /// address is given), funded from the on-chain wallet once the peer
    /// accepts. `ChannelReady` follows once the funding is confirmed.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientFunds`] when the wallet's confirmed coins
    /// cannot cover the amount and a fee, [`OpError::PeerUnreachable`], or
    /// [`OpError::Refused`] with the channel's reason.
    pub async fn open_channel(
        &self,
        peer: PublicKey,
        addr: Option<SocketAddr>,
        amount_sat: u64,
        push_msat: u64,
        anchors: bool,
    ) -> Result<ChannelId, OpError> {
        if !self.autopilot {
            return Err(OpError::Unsupported(
                "this node leaves funding to its user: use the manager's open_channel".into(),
            ));
        }
        if push_msat > amount_sat.saturating_mul(1000) {
            return Err(invalid("push_msat", "more than the channel's value"));
        }
        let available_sat = self.wallet.balance().confirmed.to_sat();
        // The funding transaction's fee, at a generous 200 vB.
        let needed_sat = amount_sat.saturating_add(self.funding_feerate().to_sat_per_vb_ceil() * 200);
        if available_sat < needed_sat {
            return Err(OpError::InsufficientFunds { needed_sat, available_sat });
        }
        if let Some(addr) = addr {
            self.connect_peer(peer, addr).await?;
        } else if !self.is_connected(&peer) {
            return Err(OpError::PeerUnreachable(format!(
                "{peer} is not connected and no address was given"
            )));
        }
        self.with_manager(|m| m.open_channel(peer, amount_sat, push_msat, anchors))
            .map_err(|e| OpError::Refused(e.to_string()))
    }

    /// The fee rate for funding transactions and wallet payments.
    fn funding_feerate(&self) -> FeeRate {
        self.chain.fee_rate(6).ok().filter(|r| *r > DEFAULT_FEERATE).unwrap_or(DEFAULT_FEERATE)
    }

    /// Our channels.
    pub fn list_channels(&self) -> Vec<ChannelDetails> {
        self.runtime().manager.list_channels()
    }

    /// Closes a channel cooperatively, or by putting our commitment on
    /// chain with `force`.
    ///
    /// # Errors
    ///
    /// [`OpError::NotFound`] for an unknown channel, [`OpError::Refused`]
    /// when it cannot close cooperatively now (e.g. the peer is offline).
    pub fn close_channel(&self, channel_id: ChannelId, force: bool) -> Result<(), OpError> {
        if !self.list_channels().iter().any(|c| c.channel_id == channel_id) {
            return Err(OpError::NotFound(format!("no channel {channel_id}")));
        }
        self.with_manager(
            |m| if force { m.force_close_channel(channel_id) } else { m.close_channel(channel_id) },
        )
        .map_err(|e| OpError::Refused(e.to_string()))
    }

    // ---- payments ----

    /// A BOLT 11 invoice for `amount_msat` (any amount if `None`). The
    /// node claims payments to it itself.
    ///
    /// # Errors
    ///
    /// [`OpError::InvalidInput`] if the description or expiry is refused.
    pub fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Bolt11Invoice, OpError> {
        if amount_msat == Some(0) {
            return Err(invalid("amount_msat", "must be positive (or left out for any amount)"));
        }
        if expiry_secs == 0 {
            return Err(invalid("expiry_secs", "must be positive"));
        }
        self.with_manager(|m| m.create_invoice(amount_msat, description, expiry_secs))
            .map_err(|e| invalid("description", e.to_string()))
    }

    /// Pays a BOLT 11 invoice. Its payment hash is the payment's id, so the
    /// same invoice is never paid twice.
    ///
    /// # Errors
    ///
    /// [`OpError::InvalidInput`] for an invoice that does not parse, is for
    /// another network, expired, or lacks an amount; [`OpError::Refused`]
    /// for a duplicate or without a route.
    pub fn pay_invoice(&self, invoice: &str, amount_msat: Option<u64>) -> Result<PaymentId, OpError> {
        let invoice = Bolt11Invoice::from_str(invoice.trim())
            .map_err(|e| invalid("invoice", format!("not a BOLT 11 invoice: {e}")))?;
        let id = PaymentId(invoice.payment_hash().to_byte_array());
        self.with_manager(|m| m.pay_invoice(&invoice, amount_msat, id)).map_err(|e| {
            use vigil_core::manager::PayError as P;
            match e {
                P::WrongNetwork => invalid("invoice", format!("the invoice is not for {}", self.network)),
                P::InvoiceExpired => invalid("invoice", "the invoice has expired"),
                P::InvalidAmount(reason) => invalid("amount_msat", reason),
                other => OpError::Refused(other.to_string()),
            }
        })?;
        Ok(id)
    }

    /// Sends `amount_msat` to `payee` without an invoice (keysend).
    ///
    /// # Errors
    ///
    /// [`OpError::InvalidInput`] for a zero amount, [`OpError::Refused`]
    /// without a route.
    pub fn keysend(&self, payee: PublicKey, amount_msat: u64) -> Result<(PaymentId, PaymentHash), OpError> {
        if amount_msat == 0 {
            return Err(invalid("amount_msat", "must be positive"));
        }
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| OpError::Refused(format!("no randomness: {e}")))?;
        let id = PaymentId(id);
        let hash = self
            .with_manager(|m| m.send_spontaneous_payment(payee, amount_msat, id))
            .map_err(|e| OpError::Refused(e.to_string()))?;
        Ok((id, hash))
    }

    /// Every payment, sent and received, newest first.
    pub fn list_payments(&self) -> Vec<PaymentInfo> {
        let mut all: Vec<PaymentInfo> =
            self.runtime().manager.list_payments().into_iter().map(PaymentInfo::outbound).collect();
        match self.store.read_namespace(INBOUND_NAMESPACE) {
            Ok(records) => all.extend(records.iter().filter_map(|(_, v)| PaymentInfo::decode_inbound(v))),
            Err(e) => tracing::warn!(error = %e, "cannot read the records of received payments"),
        }
        all.sort_by(|a, b| b.created_at_secs.cmp(&a.created_at_secs));
        all
    }

    /// The payment we sent with this id.
    pub fn payment(&self, id: &PaymentId) -> Option<PaymentInfo> {
        self.runtime()
            .manager
            .list_payments()
            .into_iter()
            .find(|r| r.payment_id == *id)
            .map(PaymentInfo::outbound)
    }

    // ---- the on-chain wallet ----

    /// A new address of the on-chain wallet.
    ///
    /// # Errors
    ///
    /// [`OpError::Refused`] if the wallet cannot store its new index.
    pub fn new_address(&self) -> Result<Address, OpError> {
        self.wallet.new_address().map_err(|e| OpError::Refused(e.to_string()))
    }

    /// What the node has, on chain and in channels.
    pub fn balances(&self) -> Balances {
        let b = self.wallet.balance();
        let lightning_msat = self.list_channels().iter().filter(|c| c.usable).map(|c| c.balance_msat).sum();
        Balances {
            onchain_confirmed_sat: b.confirmed.to_sat(),
            onchain_pending_sat: (b.trusted_pending + b.untrusted_pending + b.immature).to_sat(),
            lightning_msat,
        }
    }

    /// Pays `amount_sat` on chain to `address`.
    ///
    /// # Errors
    ///
    /// [`OpError::InvalidInput`] for an address of another network or an
    /// amount below dust, [`OpError::InsufficientFunds`], or
    /// [`OpError::Refused`] if the chain refuses the transaction.
    pub fn send_onchain(&self, address: &str, amount_sat: u64) -> Result<Txid, OpError> {
        let address: Address<bitcoin::address::NetworkUnchecked> =
            address.trim().parse().map_err(|e| invalid("address", format!("not an address: {e}")))?;
        if amount_sat == 0 {
            return Err(invalid("amount_sat", "must be positive"));
        }
        let fee_rate = self.funding_feerate();
        let now = crate::node::now_secs();
        self.wallet.send(&address, Amount::from_sat(amount_sat), fee_rate, &*self.chain, now).map_err(|e| {
            use vigil_wallet::WalletError as W;
            match e {
                W::WrongNetwork { .. } => invalid("address", e.to_string()),
                W::OutputBelowDust(_) => invalid("amount_sat", "below the dust limit"),
                W::InsufficientFunds { needed, available } => OpError::InsufficientFunds {
                    needed_sat: needed.to_sat(),
                    available_sat: available.to_sat(),
                },
                other => OpError::Refused(other.to_string()),
            }
        })
    }

    /// Mines `blocks` blocks on the embedded chain, paying their rewards to
    /// `address` (the wallet's when `None`), and follows them.
    ///
    /// # Errors
    ///
    /// [`OpError::Unsupported`] when the node does not run the embedded
    /// chain, [`OpError::InvalidInput`] for a bad address or count.
    pub fn mine(&self, blocks: u32, address: Option<&str>) -> Result<Vec<bitcoin::BlockHash>, OpError> {
        let Some(chain) = &self.extras.embedded else {
            return Err(OpError::Unsupported(
                "this node does not run the embedded chain; mine on the chain it follows".into(),
            ));
        };
        if blocks == 0 || blocks > 1000 {
            return Err(invalid("blocks", "between 1 and 1000"));
        }
        let address = match address {
            Some(a) => a
                .trim()
                .parse::<Address<bitcoin::address::NetworkUnchecked>>()
                .map_err(|e| invalid("address", format!("not an address: {e}")))?
                .require_network(self.network)
                .map_err(|_| invalid("address", format!("not a {} address", self.network)))?,
            None => self.wallet.receive_address().map_err(|e| OpError::Refused(e.to_string()))?,
        };
        let hashes = chain.mine(blocks, &address).map_err(|e| OpError::Refused(e.to_string()))?;
        if let Err(e) = self.sync_chain() {
            tracing::warn!(error = %e, "following the mined blocks failed; the background loop retries");
        }
        Ok(hashes)
    }

    /// The node's network directory (`<data-dir>/<network>`), while it
    /// holds it.
    pub fn data_dir(&self) -> Option<std::path::PathBuf> {
        let dir = self.extras.dir.lock().unwrap_or_else(|e| e.into_inner());
        dir.as_ref().map(|d| d.network_dir().to_path_buf())
    }

    /// The embedded chain, when the node runs on it.
    pub fn embedded_chain(&self) -> Option<&std::sync::Arc<vigil_chain::RegtestChain>> {
        self.extras.embedded.as_ref()
    }

    // ---- what the node is doing ----

    /// The tip of the chain the node follows.
    ///
    /// # Errors
    ///
    /// The chain source's error, in words.
    pub fn chain_tip(&self) -> Result<vigil_chain::BlockRef, String> {
        self.chain.tip().map_err(|e| e.to_string())
    }

    /// The height the node has followed the chain to.
    pub fn best_height(&self) -> u32 {
        self.runtime().manager.best_height()
    }

    /// What the runtime wrote so far.
    pub fn persist_stats(&self) -> crate::runtime::PersistStats {
        self.runtime().stats
    }

    /// Monitor events not yet acknowledged by the manager, over every
    /// monitor.
    pub fn unacknowledged_monitor_events(&self) -> usize {
        self.runtime().manager.chain_monitor().monitors().map(|m| m.events().len()).sum()
    }

    // ---- events ----

    /// Every event not handled yet, oldest first (including those already
    /// given out by [`Node::next_event`]).
    pub fn unhandled_events(&self) -> Vec<(EventId, Event)> {
        self.pump_events();
        self.runtime().manager.unhandled_events()
    }

    /// Waits for the next event not given out yet (the node must be
    /// started, or something else must drive it).
    pub async fn wait_next_event(&self) -> (EventId, Event) {
        loop {
            let notified = self.event_notify.notified();
            if let Some(e) = self.next_event() {
                return e;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// A future that completes when new events reach the user's queue (or
    /// never, if none do: wait on it with a timeout). Take it before
    /// reading `unhandled_events`, so nothing that arrives in between is
    /// missed.
    pub fn event_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.event_notify.notified()
    }

    /// Takes the manager's new events: the autopilot handles its own, the
    /// rest wait for the user in order.
    pub(crate) fn pump_events(&self) {
        loop {
            let next = self.runtime().manager.next_event();
            let Some((id, event)) = next else { break };
            if self.autopilot && self.autopilot_handles(id, &event) {
                continue;
            }
            self.user_events.lock().unwrap_or_else(|e| e.into_inner()).push_back((id, event));
            self.event_notify.notify_waiters();
        }
    }

    /// Handles what the autopilot owns; returns whether the event was
    /// handled (else it goes to the user).
    fn autopilot_handles(&self, id: EventId, event: &Event) -> bool {
        match event {
            Event::FundingGenerationReady { temporary_channel_id, script_pubkey, value_sat, .. } => {
                let outputs = [(script_pubkey.clone(), Amount::from_sat(*value_sat))];
                let funded = self
                    .wallet
                    .build_transaction(&outputs, self.funding_feerate())
                    .map_err(|e| e.to_string())
                    .and_then(|tx| {
                        self.wallet.record_unconfirmed(&tx, crate::node::now_secs());
                        self.with_manager(|m| m.funding_transaction_generated(*temporary_channel_id, tx))
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = funded {
                    tracing::warn!(channel = %temporary_channel_id, error = %e, "cannot fund the channel; abandoning it");
                    self.runtime().last_error = Some(format!("funding {temporary_channel_id}: {e}"));
                    let _ = self.with_manager(|m| m.force_close_channel(*temporary_channel_id));
                }
                self.event_handled(id);
                true
            }
            Event::PaymentClaimable { payment_hash, amount_msat, purpose } => {
                self.write_inbound(*payment_hash, *amount_msat, Some(purpose.preimage()), false);
                if let Err(e) = self.with_manager(|m| m.claim_funds(purpose.preimage())) {
                    tracing::warn!(%payment_hash, error = %e, "cannot claim a payment to us");
                }
                self.event_handled(id);
                true
            }
            Event::PaymentClaimed { payment_hash, amount_msat } => {
                // The preimage is in the record written when the payment
                // became claimable (if that write failed, the payment is
                // still listed, without it).
                let preimage = self.inbound(payment_hash).and_then(|p| p.preimage);
                self.write_inbound(*payment_hash, *amount_msat, preimage, true);
                false
            }
            _ => false,
        }
    }

    fn inbound(&self, hash: &PaymentHash) -> Option<PaymentInfo> {
        let bytes = self.store.read(INBOUND_NAMESPACE, &hex(&hash.0)).ok()??;
        PaymentInfo::decode_inbound(&bytes)
    }

    fn write_inbound(
        &self,
        hash: PaymentHash,
        amount_msat: u64,
        preimage: Option<PaymentPreimage>,
        done: bool,
    ) {
        if self.runtime().stopped {
            return;
        }
        let created_at_secs = self.inbound(&hash).map_or_else(crate::node::now_secs, |p| p.created_at_secs);
        let info = PaymentInfo {
            direction: Direction::Inbound,
            payment_hash: hash,
            payment_id: None,
            amount_msat,
            fee_msat: None,
            preimage,
            state: if done { PaymentState::Succeeded } else { PaymentState::Pending },
            created_at_secs,
        };
        if let Err(e) = self.store.write(INBOUND_NAMESPACE, &hex(&hash.0), &info.encode_inbound()) {
            tracing::warn!(%hash, error = %e, "cannot record a received payment");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_records_round_trip_and_refuse_junk() {
        let preimage = PaymentPreimage([7; 32]);
        let hash = PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array());
        let mut info = PaymentInfo {
            direction: Direction::Inbound,
            payment_hash: hash,
            payment_id: None,
            amount_msat: 42_000,
            fee_msat: None,
            preimage: Some(preimage),
            state: PaymentState::Succeeded,
            created_at_secs: 1_700_000_000,
        };
        assert_eq!(PaymentInfo::decode_inbound(&info.encode_inbound()), Some(info.clone()));
        info.preimage = None;
        info.state = PaymentState::Pending;
        assert_eq!(PaymentInfo::decode_inbound(&info.encode_inbound()), Some(info.clone()));
        let bytes = info.encode_inbound();
        assert_eq!(PaymentInfo::decode_inbound(&bytes[..81]), None);
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert_eq!(PaymentInfo::decode_inbound(&bad), None, "an unknown version is refused");
        bad = bytes;
        bad[1] = 9;
        assert_eq!(PaymentInfo::decode_inbound(&bad), None);
    }
}

fn peer_key(peer: &PublicKey) -> String {
    format!("peers/{peer}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
