//! Sending: routes from LDK's router, onions from `create_payment_onion`,
//! intents in payment records, HTLC sources in the monitors.
//!
//! 1. `pay_invoice`/`send_spontaneous_payment` check the request, find a
//!    route and write the payment's record. Its HTLCs leave only once the
//!    record is durable ([`super::ChannelManager::record_persisted`]).
//! 2. Each path's HTLC carries `HtlcSource::Sent` (payment id, session
//!    key, route), which its monitor keeps.
//! 3. `PaymentPathClaimed`/`PaymentPathFailed` come back as monitor events.
//!    A failed path is retried over a new route while attempts remain. The
//!    record's final status is written before `PaymentSent` or
//!    `PaymentFailed` reaches the user; handling either records "payment
//!    seen" in every monitor involved and acknowledges its path events.
//! 4. At start-up, a pending payment with nothing in flight (its failed
//!    paths were acknowledged, its retry not yet durable) is retried or
//!    failed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use lightning::bolt11_invoice::Bolt11Invoice;
use lightning::ln::channel_state::{ChannelCounterparty, ChannelDetails as LdkChannelDetails};
use lightning::ln::channelmanager::{provided_init_features, RecipientOnionFields};
use lightning::ln::create_payment_onion;
use lightning::ln::types::ChannelId;
use lightning::routing::router::{find_route, Path, PaymentParameters, Route, RouteHop, RouteParameters};
use lightning::routing::scoring::FixedPenaltyScorer;
use lightning::sign::EntropySource;
use lightning::types::payment::{PaymentHash, PaymentPreimage, PaymentSecret};
use lightning::util::config::UserConfig;

use super::events::{AckAction, Event, PaymentId};
use super::htlcs::NoLog;
use super::records::{PaymentRecord, PaymentStatus, RecordWrite};
use super::ChannelManager;
use crate::channel::{HtlcFailure, HtlcSource};
use crate::monitor::{MonitorEvent, MonitorEventId, ResolutionRecord};
use crate::onion::{codes, decode_failure_packet};

static NO_LOG: NoLog = NoLog;

/// Why a payment was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayError {
    /// A payment with this id exists.
    DuplicatePayment(PaymentId),
    /// The invoice has expired.
    InvoiceExpired,
    /// The invoice is for another network.
    WrongNetwork,
    /// The invoice has no amount and none was given, or the amount given
    /// is below the invoice's.
    InvalidAmount(String),
    /// No route to the payee with our channels' balances.
    NoRoute(String),
    /// The onion could not be built for the route.
    Onion(String),
}

impl std::fmt::Display for PayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DuplicatePayment(id) => {
                write!(
                    f,
                    "a payment with id {} exists; use a new id",
                    bitcoin::hex::DisplayHex::to_lower_hex_string(&id.0[..])
                )
            }
            Self::InvoiceExpired => write!(f, "the invoice has expired; ask the payee for a new one"),
            Self::WrongNetwork => write!(f, "the invoice is for another network"),
            Self::InvalidAmount(m) => write!(f, "invalid amount: {m}"),
            Self::NoRoute(m) => write!(f, "no route to the payee: {m} (check channel balances)"),
            Self::Onion(m) => write!(f, "the onion could not be built: {m}"),
        }
    }
}

impl std::error::Error for PayError {}

/// What this run knows of a payment beyond its record.
#[derive(Debug, Default)]
struct RunState {
    attempts: u32,
    /// Session keys of paths whose resolution was seen this run.
    resolved: BTreeSet<[u8; 32]>,
    /// Channels (by short id) that failed paths: avoided by retries.
    failed_scids: Vec<u64>,
    /// Paths claimed: (session key, fee).
    claimed: BTreeMap<[u8; 32], u64>,
    /// What the claimed paths delivered.
    claimed_delivered: u64,
    sent_emitted: bool,
    failed_emitted: bool,
    /// The user handled `PaymentSent`/`PaymentFailed` in this run: late path
    /// events are recorded as seen and acknowledged at once.
    outcome_handled: bool,
}

/// The sending side of the manager.
#[derive(Debug, Default)]
pub(crate) struct Sender {
    records: BTreeMap<PaymentId, PaymentRecord>,
    writes: VecDeque<RecordWrite>,
    /// Routes waiting for their payment's record to be durable.
    awaiting_record: BTreeMap<PaymentId, Route>,
    /// Events waiting for their payment's record to be durable.
    emit_after_record: BTreeMap<PaymentId, Vec<(Event, Vec<AckAction>)>>,
    /// Records written and not yet reported durable.
    unconfirmed: BTreeSet<PaymentId>,
    ready: Vec<(PaymentId, Route)>,
    /// Retries that found no route (peers still reconnecting), with the
    /// amount to send and the tick they stalled at.
    stalled: BTreeMap<PaymentId, (u64, u64)>,
    run: BTreeMap<PaymentId, RunState>,
}

impl Sender {
    pub(crate) fn new(records: Vec<PaymentRecord>) -> Self {
        Self { records: records.into_iter().map(|r| (r.payment_id, r)).collect(), ..Self::default() }
    }

    pub(crate) fn poll_record_write(&mut self) -> Option<RecordWrite> {
        self.writes.pop_front()
    }

    fn write(&mut self, record: PaymentRecord) {
        self.unconfirmed.insert(record.payment_id);
        self.writes.push_back(record.write());
        self.records.insert(record.payment_id, record);
    }

    pub(crate) fn record_persisted(&mut self, payment_id: PaymentId) -> Vec<(Event, Vec<AckAction>)> {
        if self.writes.iter().any(|w| w.payment_id == payment_id) {
            // A newer write of the same record is still queued.
            return Vec::new();
        }
        self.unconfirmed.remove(&payment_id);
        if let Some(route) = self.awaiting_record.remove(&payment_id) {
            self.ready.push((payment_id, route));
        }
        self.emit_after_record.remove(&payment_id).unwrap_or_default()
    }

    /// The user handled the payment's outcome: remembered in this run, and
    /// written into its record so no restart reports it again.
    pub(crate) fn outcome_handled(&mut self, payment_id: PaymentId) {
        self.run.entry(payment_id).or_default().outcome_handled = true;
        if let Some(record) = self.records.get(&payment_id).filter(|r| !r.seen).cloned() {
            self.write(PaymentRecord { seen: true, ..record });
        }
    }

    /// Every payment record.
    pub(crate) fn records(&self) -> impl Iterator<Item = &PaymentRecord> {
        self.records.values()
    }
}

/// A route's path in the manager's encoding (kept in the HTLC's source):
/// version 1, then per hop its node id, short channel id, fee and CLTV
/// delta.
fn encode_path(path: &Path) -> Vec<u8> {
    let mut out = vec![1u8];
    for hop in &path.hops {
        out.extend_from_slice(&hop.pubkey.serialize());
        out.extend_from_slice(&hop.short_channel_id.to_be_bytes());
        out.extend_from_slice(&hop.fee_msat.to_be_bytes());
        out.extend_from_slice(&hop.cltv_expiry_delta.to_be_bytes());
    }
    out
}

/// One hop of an encoded path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hop {
    node: PublicKey,
    scid: u64,
    fee_msat: u64,
}

fn decode_path(bytes: &[u8]) -> Option<Vec<Hop>> {
    let (&version, mut rest) = bytes.split_first()?;
    if version != 1 || rest.len() % 53 != 0 {
        return None;
    }
    let mut hops = Vec::new();
    while !rest.is_empty() {
        let node = PublicKey::from_slice(&rest[..33]).ok()?;
        let scid = u64::from_be_bytes(rest[33..41].try_into().ok()?);
        let fee_msat = u64::from_be_bytes(rest[41..49].try_into().ok()?);
        hops.push(Hop { node, scid, fee_msat });
        rest = &rest[53..];
    }
    Some(hops)
}

/// What a path delivers to the payee, and the fees it pays.
fn path_amounts(hops: &[Hop]) -> (u64, u64) {
    let delivered = hops.last().map_or(0, |h| h.fee_msat);
    let fees = hops[..hops.len().saturating_sub(1)].iter().map(|h| h.fee_msat).sum();
    (delivered, fees)
}

impl ChannelManager {
    /// Pays a BOLT 11 invoice. `amount_msat` is required for an invoice
    /// without an amount, and may exceed the invoice's.
    ///
    /// # Errors
    ///
    /// [`PayError`]: a duplicate id, an expired or foreign invoice, a bad
    /// amount, or no route. Nothing is sent.
    pub fn pay_invoice(
        &mut self,
        invoice: &Bolt11Invoice,
        amount_msat: Option<u64>,
        payment_id: PaymentId,
    ) -> Result<(), PayError> {
        if invoice.network() != self.config.network {
            return Err(PayError::WrongNetwork);
        }
        if invoice.would_expire(Duration::from_secs(self.now_secs)) {
            return Err(PayError::InvoiceExpired);
        }
        let amount = match (invoice.amount_milli_satoshis(), amount_msat) {
            (Some(a), None) => a,
            (Some(a), Some(b)) if b >= a => b,
            (Some(a), Some(b)) => {
                return Err(PayError::InvalidAmount(format!("{b} msat is below the invoice's {a}")))
            }
            (None, Some(b)) if b > 0 => b,
            (None, _) => return Err(PayError::InvalidAmount("the invoice has no amount; give one".into())),
        };
        let record = PaymentRecord {
            payment_id,
            payment_hash: PaymentHash(invoice.payment_hash().to_byte_array()),
            amount_msat: amount,
            payee: invoice.recover_payee_pub_key(),
            payment_secret: Some(invoice.payment_secret().0),
            keysend_preimage: None,
            final_cltv_expiry_delta: u32::try_from(invoice.min_final_cltv_expiry_delta()).unwrap_or(u32::MAX),
            invoice: Some(invoice.to_string()),
            created_at_secs: self.now_secs,
            status: PaymentStatus::Pending,
            seen: false,
        };
        self.start_payment(record)
    }

    /// Sends `amount_msat` to `payee` without an invoice (keysend): the
    /// preimage is ours and travels in the onion.
    ///
    /// # Errors
    ///
    /// As [`ChannelManager::pay_invoice`].
    pub fn send_spontaneous_payment(
        &mut self,
        payee: PublicKey,
        amount_msat: u64,
        payment_id: PaymentId,
    ) -> Result<PaymentHash, PayError> {
        if amount_msat == 0 {
            return Err(PayError::InvalidAmount("the amount must be positive".into()));
        }
        let preimage = PaymentPreimage(self.keys.get_secure_random_bytes());
        let payment_hash = PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array());
        let record = PaymentRecord {
            payment_id,
            payment_hash,
            amount_msat,
            payee,
            payment_secret: None,
            keysend_preimage: Some(preimage),
            final_cltv_expiry_delta: u32::from(self.config.min_final_cltv_expiry_delta),
            invoice: None,
            created_at_secs: self.now_secs,
            status: PaymentStatus::Pending,
            seen: false,
        };
        self.start_payment(record)?;
        Ok(payment_hash)
    }

    fn start_payment(&mut self, record: PaymentRecord) -> Result<(), PayError> {
        if self.send.records.contains_key(&record.payment_id) {
            return Err(PayError::DuplicatePayment(record.payment_id));
        }
        let route = self.route_for(&record, record.amount_msat, &[])?;
        self.start_with_route(record, route);
        Ok(())
    }

    /// Pays over a route chosen by the caller (every path must start on
    /// one of our usable channels). `payment_secret` is the payee's, when it
    /// has one. Retries, if a path fails, use routes of our own.
    ///
    /// # Errors
    ///
    /// [`PayError::DuplicatePayment`], or [`PayError::NoRoute`] for an empty
    /// route or one whose first hop is not a channel of ours.
    pub fn send_payment_with_route(
        &mut self,
        route: Route,
        payment_hash: PaymentHash,
        payment_secret: Option<PaymentSecret>,
        payment_id: PaymentId,
    ) -> Result<(), PayError> {
        if self.send.records.contains_key(&payment_id) {
            return Err(PayError::DuplicatePayment(payment_id));
        }
        let (Some(first), Some(last)) = (
            route.paths.first().and_then(|p| p.hops.first()),
            route.paths.first().and_then(|p| p.hops.last()),
        ) else {
            return Err(PayError::NoRoute("the route is empty".into()));
        };
        if route.paths.iter().any(|p| p.hops.first().and_then(|h| self.first_hop_channel(h)).is_none()) {
            return Err(PayError::NoRoute(format!(
                "no usable channel of ours to {} on the route",
                first.pubkey
            )));
        }
        let record = PaymentRecord {
            payment_id,
            payment_hash,
            amount_msat: route.paths.iter().map(Path::final_value_msat).sum(),
            payee: last.pubkey,
            payment_secret: payment_secret.map(|s| s.0),
            keysend_preimage: None,
            final_cltv_expiry_delta: last.cltv_expiry_delta,
            invoice: None,
            created_at_secs: self.now_secs,
            status: PaymentStatus::Pending,
            seen: false,
        };
        self.start_with_route(record, route);
        Ok(())
    }

    fn start_with_route(&mut self, record: PaymentRecord, route: Route) {
        let payment_id = record.payment_id;
        self.send.run.entry(payment_id).or_default().attempts = 1;
        self.send.awaiting_record.insert(payment_id, route);
        self.send.write(record);
    }

    /// Every payment we sent, from the records.
    pub fn list_payments(&self) -> Vec<PaymentRecord> {
        self.send.records().cloned().collect()
    }

    /// Our channels as LDK's router sees first hops.
    fn first_hops(&self) -> Vec<LdkChannelDetails> {
        let features = provided_init_features(&UserConfig::default());
        self.channels
            .values()
            .filter(|c| c.is_usable())
            .map(|c| {
                let s = c.snapshot();
                let limit = c.next_outbound_htlc_limit_msat();
                LdkChannelDetails {
                    channel_id: c.channel_id(),
                    counterparty: ChannelCounterparty {
                        node_id: c.counterparty_node_id(),
                        features: features.clone(),
                        unspendable_punishment_reserve: s.holder.channel_reserve_sat,
                        forwarding_info: None,
                        outbound_htlc_minimum_msat: None,
                        outbound_htlc_maximum_msat: None,
                    },
                    funding_txo: None,
                    channel_type: Some(s.params.channel_type_features.clone()),
                    short_channel_id: None,
                    outbound_scid_alias: Some(s.our_scid_alias),
                    inbound_scid_alias: s.their_scid_alias,
                    channel_value_satoshis: s.value_sat(),
                    unspendable_punishment_reserve: Some(s.counterparty.channel_reserve_sat),
                    user_channel_id: 0,
                    feerate_sat_per_1000_weight: None,
                    outbound_capacity_msat: limit,
                    next_outbound_htlc_limit_msat: limit,
                    next_outbound_htlc_minimum_msat: c.next_outbound_htlc_minimum_msat(),
                    inbound_capacity_msat: 0,
                    confirmations_required: None,
                    confirmations: None,
                    force_close_spend_delay: None,
                    is_outbound: s.is_funder(),
                    is_channel_ready: true,
                    channel_shutdown_state: None,
                    is_usable: true,
                    is_announced: false,
                    inbound_htlc_minimum_msat: None,
                    inbound_htlc_maximum_msat: None,
                    config: None,
                    pending_inbound_htlcs: Vec::new(),
                    pending_outbound_htlcs: Vec::new(),
                    funding_redeem_script: None,
                }
            })
            .collect()
    }

    /// A route delivering `amount_msat` for `record`, avoiding
    /// `failed_scids`.
    fn route_for(
        &self,
        record: &PaymentRecord,
        amount_msat: u64,
        failed_scids: &[u64],
    ) -> Result<Route, PayError> {
        let mut params = match &record.invoice {
            Some(invoice) => {
                let invoice: Bolt11Invoice =
                    invoice.parse().map_err(|e| PayError::NoRoute(format!("{e:?}")))?;
                PaymentParameters::from_bolt11_invoice(&invoice)
            }
            None => PaymentParameters::for_keysend(record.payee, record.final_cltv_expiry_delta, false),
        };
        params.previously_failed_channels = failed_scids.to_vec();
        let route_params = RouteParameters::from_payment_params_and_value(params, amount_msat);
        let hops = self.first_hops();
        let refs: Vec<&LdkChannelDetails> = hops.iter().collect();
        let scorer = FixedPenaltyScorer::with_penalty(0);
        find_route(
            &self.node_id,
            &route_params,
            &self.graph,
            Some(&refs),
            &NO_LOG,
            &scorer,
            &(),
            &self.keys.get_secure_random_bytes(),
        )
        .map_err(|e| PayError::NoRoute(e.to_string()))
    }

    /// Sends the routes of payments whose records are durable.
    pub(super) fn start_ready_payments(&mut self) -> bool {
        let ready = std::mem::take(&mut self.send.ready);
        let moved = !ready.is_empty();
        for (payment_id, route) in ready {
            for path in &route.paths {
                if let Err(e) = self.send_path(payment_id, path) {
                    // The channel refused (its balance moved since routing):
                    // the path counts as failed at once.
                    self.path_not_sent(payment_id, e);
                }
            }
        }
        moved
    }

    fn send_path(&mut self, payment_id: PaymentId, path: &Path) -> Result<(), String> {
        let record = self.send.records.get(&payment_id).ok_or("no record")?.clone();
        let session_priv =
            SecretKey::from_slice(&self.keys.get_secure_random_bytes()).map_err(|e| e.to_string())?;
        let onion_fields = match record.payment_secret {
            Some(secret) => RecipientOnionFields::secret_only(PaymentSecret(secret)),
            None => RecipientOnionFields::spontaneous_empty(),
        };
        let (onion, amount, cltv) = create_payment_onion(
            &self.secp,
            path,
            &session_priv,
            record.amount_msat,
            &onion_fields,
            self.best_height + 1,
            &record.payment_hash,
            &record.keysend_preimage,
            None,
            self.keys.get_secure_random_bytes(),
        )
        .map_err(|e| format!("{e:?}"))?;
        let first = path.hops.first().ok_or("an empty path")?;
        let channel_id = self.first_hop_channel(first).ok_or("the first hop's channel is gone")?;
        let source = HtlcSource::Sent {
            payment_id: payment_id.0,
            session_priv: session_priv.secret_bytes(),
            path: encode_path(path),
        };
        let channel = self.channels.get_mut(&channel_id).expect("found above");
        channel
            .add_htlc(amount, record.payment_hash, cltv, onion, source)
            .map_err(|e| e.message().to_string())?;
        Ok(())
    }

    fn first_hop_channel(&self, hop: &RouteHop) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, c)| {
                c.snapshot().our_scid_alias == hop.short_channel_id && c.counterparty_node_id() == hop.pubkey
            })
            .map(|(id, _)| *id)
    }

    /// A path that could not even be sent.
    fn path_not_sent(&mut self, payment_id: PaymentId, reason: String) {
        self.events
            .push(Event::PaymentPathFailed { payment_id, failure_code: None, retrying: false }, Vec::new());
        self.maybe_fail_payment(payment_id, format!("a path could not be sent: {reason}"));
    }

    /// The payment's paths in flight (in a channel, in a monitor, or
    /// resolved in a monitor event not yet seen this run), by session key,
    /// with what each delivers to the payee and the fees it pays.
    fn in_flight(&self, payment_id: PaymentId) -> BTreeMap<[u8; 32], (u64, u64)> {
        let mut sessions = BTreeMap::new();
        let mut add = |source: &Option<HtlcSource>| {
            if let Some(HtlcSource::Sent { payment_id: p, session_priv, path }) = source {
                if *p == payment_id.0 {
                    let amounts = decode_path(path).map_or((0, 0), |hops| path_amounts(&hops));
                    sessions.insert(*session_priv, amounts);
                }
            }
        };
        for channel in self.channels.values() {
            for h in channel.snapshot().ledger.htlcs.iter().filter(|h| h.outbound && h.removal.is_none()) {
                add(&h.source);
            }
        }
        for monitor in self.chain_monitor.monitors() {
            for h in monitor.pending_outbound() {
                add(&h.source);
            }
            for e in monitor.events() {
                if let MonitorEvent::PaymentPathClaimed { source, .. }
                | MonitorEvent::PaymentPathFailed { source, .. } = &e.event
                {
                    add(&Some(source.clone()));
                }
            }
        }
        let resolved = self.send.run.get(&payment_id).map(|r| r.resolved.clone()).unwrap_or_default();
        sessions.retain(|s, _| !resolved.contains(s));
        sessions
    }

    /// What the payment still has to send: its amount less what its paths
    /// in flight and claimed deliver.
    fn remaining_msat(&self, payment_id: PaymentId, amount_msat: u64) -> u64 {
        let in_flight: u64 = self.in_flight(payment_id).values().map(|(delivered, _)| delivered).sum();
        let claimed: u64 = self.send.run.get(&payment_id).map_or(0, |r| r.claimed_delivered);
        // Retries already decided (a route waiting to be sent, or one
        // waiting for a peer) are not missing either.
        let queued: u64 = self
            .send
            .ready
            .iter()
            .filter(|(p, _)| *p == payment_id)
            .map(|(_, route)| route.paths.iter().map(|path| path.final_value_msat()).sum::<u64>())
            .sum::<u64>()
            + self.send.stalled.get(&payment_id).map_or(0, |(amount, _)| *amount);
        amount_msat.saturating_sub(in_flight + claimed + queued)
    }

    /// Acknowledges a path event of a payment whose outcome the user saw.
    /// Returns whether it did.
    fn settled_if_seen(&mut self, channel_id: ChannelId, id: MonitorEventId, payment_id: PaymentId) -> bool {
        if !self.payment_seen(&channel_id, payment_id) {
            return false;
        }
        self.chain_monitor.ack(&channel_id, &[id]);
        self.dirty = true;
        true
    }

    /// Whether the user saw the payment's outcome: recorded in
    /// `channel_id`'s monitor, or handled in this run (then recorded there
    /// now, so a late path event is settled like the others).
    fn payment_seen(&mut self, channel_id: &ChannelId, payment_id: PaymentId) -> bool {
        let record = ResolutionRecord::PaymentSeen(payment_id.0);
        if self.chain_monitor.monitor(channel_id).is_some_and(|m| m.has_record(&record)) {
            return true;
        }
        let handled = self.send.run.get(&payment_id).is_some_and(|r| r.outcome_handled)
            || self.send.records.get(&payment_id).is_some_and(|r| r.seen);
        if handled {
            self.chain_monitor.record(channel_id, record);
            return true;
        }
        false
    }

    pub(super) fn path_claimed(
        &mut self,
        channel_id: ChannelId,
        id: MonitorEventId,
        _amount_msat: u64,
        preimage: PaymentPreimage,
        source: &HtlcSource,
    ) {
        let HtlcSource::Sent { payment_id, session_priv, path } = source else { return };
        let payment_id = PaymentId(*payment_id);
        if self.settled_if_seen(channel_id, id, payment_id) {
            return;
        }
        let (delivered, fee) = decode_path(path).map_or((0, 0), |hops| path_amounts(&hops));
        let run = self.send.run.entry(payment_id).or_default();
        if run.resolved.insert(*session_priv) {
            run.claimed_delivered += delivered;
        }
        run.claimed.insert(*session_priv, fee);
        if run.sent_emitted {
            return;
        }
        run.sent_emitted = true;
        // The payee claims every part: the fee is that of the paths claimed
        // and of those still in flight.
        let claimed_fees: u64 = run.claimed.values().sum();
        let fee_paid_msat =
            claimed_fees + self.in_flight(payment_id).values().map(|(_, fee)| fee).sum::<u64>();
        let Some(mut record) = self.send.records.get(&payment_id).cloned() else {
            // No record (it cannot be read): tell the user all the same.
            let payment_hash = PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array());
            let event = Event::PaymentSent { payment_id, payment_hash, preimage, fee_paid_msat };
            self.events.push(event, vec![AckAction::PaymentSeen(payment_id)]);
            return;
        };
        let event =
            Event::PaymentSent { payment_id, payment_hash: record.payment_hash, preimage, fee_paid_msat };
        record.status = PaymentStatus::Succeeded { preimage, fee_paid_msat };
        self.emit_after_record(record, event);
    }

    /// Writes the payment's final record, then gives the user `event`.
    fn emit_after_record(&mut self, record: PaymentRecord, event: Event) {
        let payment_id = record.payment_id;
        let unchanged = self.send.records.get(&payment_id) == Some(&record)
            && !self.send.unconfirmed.contains(&payment_id);
        let actions = vec![AckAction::PaymentSeen(payment_id)];
        if unchanged {
            self.events.push(event, actions);
            return;
        }
        self.send.emit_after_record.entry(payment_id).or_default().push((event, actions));
        self.send.write(record);
    }

    pub(super) fn path_failed(
        &mut self,
        channel_id: ChannelId,
        id: MonitorEventId,
        _amount_msat: u64,
        failure: &HtlcFailure,
        source: &HtlcSource,
    ) {
        let HtlcSource::Sent { payment_id, session_priv, path } = source else { return };
        let payment_id = PaymentId(*payment_id);
        if self.settled_if_seen(channel_id, id, payment_id) {
            return;
        }
        let hops = decode_path(path).unwrap_or_default();
        let decoded = match failure {
            HtlcFailure::Onion(packet) => SecretKey::from_slice(session_priv).ok().and_then(|key| {
                let nodes: Vec<PublicKey> = hops.iter().map(|h| h.node).collect();
                decode_failure_packet(&key, &nodes, packet).ok().map(|d| (d.hop, d.message.code))
            }),
            HtlcFailure::Malformed { failure_code, .. } => Some((0, *failure_code)),
            HtlcFailure::OnChainTimeout => None,
        };
        let run = self.send.run.entry(payment_id).or_default();
        run.resolved.insert(*session_priv);
        // The channel after the failing hop is avoided from now on.
        if let Some((hop, _)) = decoded {
            if let Some(next) = hops.get(hop + 1) {
                run.failed_scids.push(next.scid);
            }
        }
        let final_reject =
            decoded.is_some_and(|(hop, code)| hop + 1 >= hops.len() && code & codes::PERM != 0);
        let done = run.sent_emitted || run.failed_emitted;
        let failure_code = decoded.map(|(_, c)| c);
        let amount = self.send.records.get(&payment_id).map_or(0, |r| r.amount_msat);
        let remaining = self.remaining_msat(payment_id, amount);
        let retrying = !done && !final_reject && remaining > 0 && self.retry(payment_id, remaining);
        self.events.push(
            Event::PaymentPathFailed { payment_id, failure_code, retrying },
            vec![AckAction::Ack(channel_id, id)],
        );
        if !retrying && !done {
            let reason = match failure_code {
                Some(code) => format!("a path failed with {} (0x{code:04x})", codes::name(code)),
                None => "a path failed on chain".to_string(),
            };
            self.maybe_fail_payment(payment_id, reason);
        }
    }

    /// Sends `amount_msat` again over a new route. Returns whether it did.
    fn retry(&mut self, payment_id: PaymentId, amount_msat: u64) -> bool {
        let Some(record) = self.send.records.get(&payment_id).cloned() else { return false };
        let run = self.send.run.entry(payment_id).or_default();
        if run.attempts >= self.config.max_payment_attempts || record.status != PaymentStatus::Pending {
            return false;
        }
        run.attempts += 1;
        let failed = run.failed_scids.clone();
        let expired = record
            .invoice
            .as_ref()
            .and_then(|i| i.parse::<Bolt11Invoice>().ok())
            .is_some_and(|i| i.would_expire(Duration::from_secs(self.now_secs)));
        if expired {
            return false;
        }
        match self.route_for(&record, amount_msat, &failed) {
            Ok(route) => self.send.ready.push((payment_id, route)),
            // Tried again at each tick while peers reconnect.
            Err(_) => {
                // Several failed paths waiting together: their amounts add.
                self.send
                    .stalled
                    .entry(payment_id)
                    .and_modify(|(waiting, _)| *waiting += amount_msat)
                    .or_insert((amount_msat, self.ticks));
            }
        }
        true
    }

    /// At a tick: stalled retries try again, and fail once they have
    /// waited `forward_wait_ticks`.
    pub(super) fn retry_stalled(&mut self) {
        let stalled = std::mem::take(&mut self.send.stalled);
        for (payment_id, (amount_msat, since)) in stalled {
            let Some(record) = self.send.records.get(&payment_id).cloned() else { continue };
            let failed = self.send.run.get(&payment_id).map(|r| r.failed_scids.clone()).unwrap_or_default();
            match self.route_for(&record, amount_msat, &failed) {
                Ok(route) => self.send.ready.push((payment_id, route)),
                Err(e) if self.ticks >= since + u64::from(self.config.forward_wait_ticks) => {
                    self.maybe_fail_payment(payment_id, format!("no route for a retry: {e}"));
                }
                Err(_) => {
                    self.send.stalled.insert(payment_id, (amount_msat, since));
                }
            }
        }
    }

    /// Fails the payment for good if nothing of it is in flight.
    fn maybe_fail_payment(&mut self, payment_id: PaymentId, reason: String) {
        if !self.in_flight(payment_id).is_empty()
            || self.send.ready.iter().any(|(p, _)| *p == payment_id)
            || self.send.stalled.contains_key(&payment_id)
        {
            return;
        }
        let run = self.send.run.entry(payment_id).or_default();
        if run.failed_emitted || run.sent_emitted {
            return;
        }
        run.failed_emitted = true;
        let Some(mut record) = self.send.records.get(&payment_id).cloned() else { return };
        let event =
            Event::PaymentFailed { payment_id, payment_hash: record.payment_hash, reason: reason.clone() };
        record.status = PaymentStatus::Failed { reason };
        self.emit_after_record(record, event);
    }

    /// At start-up: pending payments with nothing in flight are retried,
    /// or failed if they cannot be.
    pub(super) fn reconcile_payments(&mut self) {
        // Outcomes recorded but not seen by the user (a crash took the
        // event) are reported again, unless the replay just did.
        let unseen: Vec<PaymentRecord> =
            self.send.records().filter(|r| r.status != PaymentStatus::Pending && !r.seen).cloned().collect();
        for record in unseen {
            let id = record.payment_id;
            let run = self.send.run.entry(id).or_default();
            if run.sent_emitted || run.failed_emitted {
                continue;
            }
            let seen_in_monitor =
                self.chain_monitor.monitors().any(|m| m.has_record(&ResolutionRecord::PaymentSeen(id.0)));
            if seen_in_monitor {
                continue;
            }
            let event = match record.status {
                PaymentStatus::Succeeded { preimage, fee_paid_msat } => {
                    run.sent_emitted = true;
                    Event::PaymentSent {
                        payment_id: id,
                        payment_hash: record.payment_hash,
                        preimage,
                        fee_paid_msat,
                    }
                }
                PaymentStatus::Failed { reason } => {
                    run.failed_emitted = true;
                    Event::PaymentFailed { payment_id: id, payment_hash: record.payment_hash, reason }
                }
                PaymentStatus::Pending => continue,
            };
            self.events.push(event, vec![AckAction::PaymentSeen(id)]);
        }
        let pending: Vec<PaymentRecord> =
            self.send.records().filter(|r| r.status == PaymentStatus::Pending).cloned().collect();
        for record in pending {
            let seen = self
                .chain_monitor
                .monitors()
                .any(|m| m.has_record(&ResolutionRecord::PaymentSeen(record.payment_id.0)));
            let remaining = self.remaining_msat(record.payment_id, record.amount_msat);
            if seen || remaining == 0 {
                continue;
            }
            // Paths lost in the crash are sent again (the payee still holds
            // the others, waiting for the rest).
            if !self.retry(record.payment_id, remaining) {
                self.maybe_fail_payment(
                    record.payment_id,
                    "no path of the payment survived the restart".into(),
                );
            }
        }
    }

    /// The actions that make "the user saw this payment's outcome"
    /// durable: a record in every monitor involved, and its path events
    /// acknowledged.
    pub(super) fn payment_seen_actions(&self, payment_id: PaymentId) -> Vec<AckAction> {
        let mut actions = Vec::new();
        let involves = |source: &HtlcSource| matches!(source, HtlcSource::Sent { payment_id: p, .. } if *p == payment_id.0);
        for monitor in self.chain_monitor.monitors() {
            let channel_id = monitor.channel_id();
            let mut involved = monitor.pending_outbound().any(|h| h.source.as_ref().is_some_and(involves));
            for e in monitor.events() {
                if let MonitorEvent::PaymentPathClaimed { source, .. }
                | MonitorEvent::PaymentPathFailed { source, .. } = &e.event
                {
                    if involves(source) {
                        involved = true;
                        actions.push(AckAction::Ack(channel_id, e.id));
                    }
                }
            }
            if involved {
                actions.push(AckAction::Record(channel_id, ResolutionRecord::PaymentSeen(payment_id.0)));
            }
        }
        actions
    }
}
