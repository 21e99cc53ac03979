//! The HTLC pipeline: what the manager does with each monitor event.
//!
//! Every handler is idempotent (I4): it looks at the channels' current state
//! before acting, so a replayed event finds its work done and only
//! re-arranges the acknowledgement.
//!
//! - `HtlcAccepted`: peel the onion, then forward, receive or fail back.
//!   A forward is recognised by its source `(incoming channel, htlc id)`.
//! - `ForwardedHtlcClaimed`: claim upstream; `PaymentForwarded` once that is
//!   durable; its handling acknowledges the downstream event.
//! - `ForwardedHtlcFailed`: fail upstream (our wrap of the downstream
//!   packet); acknowledged once the fail is durable upstream.
//! - `PaymentPath*`: to [`super::send`].
//! - `InboundClaimPersisted` (start-up only): to [`super::receive`].

use bitcoin::hashes::{sha256, Hash};
use lightning::ln::channelmanager::{PendingHTLCInfo, PendingHTLCRouting};
use lightning::ln::msgs::UpdateAddHTLC;
use lightning::ln::onion_payment::{peel_payment_onion, InboundHTLCErr};
use lightning::ln::types::ChannelId;
use lightning::ln::LocalHTLCFailureReason as Reason;
use lightning::util::ser::Writeable;

use super::events::{AckAction, Event, PaymentPurpose};
use super::receive::{Part, PartOutcome};
use super::{ChannelManager, Then};
use crate::chain_monitor::ReleasedEvent;
use crate::channel::{HtlcFailure, HtlcSource, Phase};
use crate::monitor::{MonitorEvent, MonitorEventId};
use crate::onion::{build_failure_packet, codes, hop_shared_secret, wrap_failure_packet, FailureMessage};

/// A logger that drops LDK's log lines (the core does no IO; the node logs
/// what the manager returns).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLog;

impl lightning::util::logger::Logger for NoLog {
    fn log(&self, _record: lightning::util::logger::Record) {}
}

/// How to fail an inbound HTLC back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FailBack {
    /// A BOLT 4 failure we originate.
    Message(FailureMessage),
    /// A packet from downstream, to wrap with our layer.
    Wrap(Vec<u8>),
    /// A packet already built for our layer (LDK builds one for a bad
    /// payload).
    Ready(Vec<u8>),
    /// The onion could not be parsed.
    Malformed(u16),
}

/// The BOLT 4 code of an LDK failure reason.
fn reason_code(reason: Reason) -> u16 {
    let bytes = reason.encode();
    u16::from_be_bytes([bytes[0], bytes[1]])
}

impl ChannelManager {
    /// Handles a released monitor event. An event whose work must wait for
    /// a peer to come back is parked and tried again as channels change.
    pub(super) fn handle_monitor_event(&mut self, released: ReleasedEvent, parked_at: Option<u64>) {
        let ReleasedEvent { channel_id, id, event } = released.clone();
        match event {
            MonitorEvent::HtlcAccepted { update_add, policy_violation } => {
                let since = parked_at.unwrap_or(self.ticks);
                if !self.htlc_accepted(channel_id, id, &update_add, policy_violation.is_some(), since) {
                    self.parked.push((released, since));
                }
            }
            MonitorEvent::ForwardedHtlcClaimed { htlc_id, amount_msat, preimage, source, .. } => {
                self.forward_claimed(channel_id, id, htlc_id, amount_msat, preimage, source);
            }
            MonitorEvent::ForwardedHtlcFailed { failure, source, .. } => {
                self.forward_failed(channel_id, id, failure, source);
            }
            MonitorEvent::PaymentPathClaimed { amount_msat, preimage, source, .. } => {
                self.path_claimed(channel_id, id, amount_msat, preimage, &source);
            }
            MonitorEvent::PaymentPathFailed { failure, source, amount_msat, .. } => {
                self.path_failed(channel_id, id, amount_msat, &failure, &source);
            }
            MonitorEvent::InboundClaimPersisted { .. } => {
                // Deferred: only the start-up replay surfaces these.
            }
            MonitorEvent::ChannelClosed { closed_by } => {
                // Closed on chain (the funding was spent) while the channel
                // still runs: it stops now, telling the peer.
                if let Some(c) = self.channels.get_mut(&channel_id) {
                    if !matches!(c.phase(), crate::channel::Phase::Closed(_)) {
                        c.fail_because("the funding output was spent on chain".into());
                        self.drain_channel(channel_id);
                    }
                }
                self.channels.retain(|id, c| {
                    !(*id == channel_id && matches!(c.phase(), crate::channel::Phase::Closed(_)))
                });
                self.events.push(
                    Event::ChannelClosed { channel_id, reason: format!("{closed_by:?}") },
                    vec![AckAction::Ack(channel_id, id)],
                );
            }
        }
    }

    /// A deferred `InboundClaimPersisted` found at start-up.
    pub(super) fn handle_deferred_event(&mut self, released: ReleasedEvent) {
        let MonitorEvent::InboundClaimPersisted { htlc_id, preimage, claim } = released.event else { return };
        // The user saw the claim if any part's monitor says so: handling
        // `PaymentClaimed` records it in every part's monitor, but those
        // writes are per channel, and a crash may keep some and lose
        // others. A part's deferred event is only ever acknowledged in the
        // same write as that record, and a monitor is archived only once
        // its deferred events are: a part whose monitor is gone saw it too.
        let seen = crate::monitor::ResolutionRecord::ClaimSeen(claim.payment_hash);
        let seen_somewhere = claim.parts.iter().any(|p| match self.chain_monitor.monitor(&p.channel_id) {
            Some(m) => m.has_record(&seen),
            None => true,
        });
        if seen_somewhere {
            self.chain_monitor.ack(&released.channel_id, &[released.id]);
            self.dirty = true;
            return;
        }
        self.receive.resume_claim(released.channel_id, htlc_id, preimage, &claim);
        // Parts without a durable preimage are claimed again; their
        // `HtlcAccepted` replays too and finds the claim.
        for part in &claim.parts {
            self.claim_part(part.channel_id, part.htlc_id, preimage, Some(claim.clone()), None);
        }
        self.receive.maybe_claimed(claim.payment_hash, &mut self.events, &self.chain_monitor);
    }

    /// Returns `false` when the HTLC must wait (its outbound channel's peer
    /// is reconnecting).
    fn htlc_accepted(
        &mut self,
        channel_id: ChannelId,
        id: MonitorEventId,
        add: &UpdateAddHTLC,
        violation: bool,
        since: u64,
    ) -> bool {
        let event = (channel_id, id);
        let Some(channel) = self.channels.get(&channel_id).filter(|c| c.phase() == &Phase::Funded) else {
            // The channel closed: nothing is forwarded from it; its monitor
            // resolves the HTLC on chain.
            return true;
        };
        let Some(entry) = channel.snapshot().ledger.htlc(false, add.htlc_id) else {
            // Fully resolved and gone: nothing left to do.
            self.chain_monitor.ack(&channel_id, &[id]);
            self.dirty = true;
            return true;
        };
        if entry.removal.is_some() && !self.receive.claiming.contains_key(&add.payment_hash) {
            // Already being removed (a replay): acknowledge once durable.
            self.wait(channel_id, Then::Ack(event, Some(add.htlc_id)), true);
            return true;
        }
        if let Some((out_channel, _)) = self.find_forward(channel_id, add.htlc_id) {
            // A duplicate forward (I4): the outbound HTLC exists.
            self.wait(out_channel, Then::Ack(event, None), true);
            return true;
        }
        if violation {
            let message = FailureMessage::with_update(codes::TEMPORARY_CHANNEL_FAILURE, &[]);
            self.fail_back(channel_id, id, add, FailBack::Message(message));
            return true;
        }
        let peeled = peel_payment_onion(add, &self.keys, &NoLog, &self.secp, self.best_height, false);
        match peeled {
            Err(InboundHTLCErr { reason, err_data, .. }) => {
                let code = reason_code(reason);
                let fail = if code & codes::BADONION != 0 {
                    FailBack::Malformed(code)
                } else if reason == Reason::InvalidOnionPayload && !err_data.is_empty() {
                    FailBack::Ready(err_data)
                } else {
                    FailBack::Message(self.failure_for(code, err_data, add))
                };
                self.fail_back(channel_id, id, add, fail);
                true
            }
            Ok(info) => self.route_peeled(channel_id, id, add, info, since),
        }
    }

    /// The failure message for a peel error, with the data BOLT 4 wants.
    fn failure_for(&self, code: u16, err_data: Vec<u8>, add: &UpdateAddHTLC) -> FailureMessage {
        match code {
            codes::INCORRECT_CLTV_EXPIRY => FailureMessage::with_update(code, &add.cltv_expiry.to_be_bytes()),
            c if c & codes::UPDATE != 0 && err_data.is_empty() => FailureMessage::with_update(c, &[]),
            codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS if err_data.is_empty() => {
                FailureMessage::unknown_payment_details(add.amount_msat, self.best_height)
            }
            _ => FailureMessage { code, data: err_data },
        }
    }

    fn route_peeled(
        &mut self,
        channel_id: ChannelId,
        id: MonitorEventId,
        add: &UpdateAddHTLC,
        info: PendingHTLCInfo,
        since: u64,
    ) -> bool {
        match info.routing {
            PendingHTLCRouting::Forward { onion_packet, short_channel_id, .. } => {
                let result = self.forward(
                    channel_id,
                    add,
                    short_channel_id,
                    onion_packet,
                    info.outgoing_amt_msat,
                    info.outgoing_cltv_value,
                    since,
                );
                match result {
                    Ok(out_channel) => self.wait(out_channel, Then::Ack((channel_id, id), None), false),
                    Err(Some(message)) => self.fail_back(channel_id, id, add, FailBack::Message(message)),
                    Err(None) => return false,
                }
            }
            PendingHTLCRouting::Receive { payment_data, .. } => {
                let secret = payment_data.payment_secret.0;
                match self.invoice_preimage(
                    &add.payment_hash,
                    &secret,
                    info.outgoing_amt_msat,
                    payment_data.total_msat,
                ) {
                    Some(preimage) => self.receive_part(
                        channel_id,
                        id,
                        add,
                        info.outgoing_amt_msat,
                        payment_data.total_msat,
                        PaymentPurpose::Invoice { preimage },
                    ),
                    None => {
                        let message =
                            FailureMessage::unknown_payment_details(add.amount_msat, self.best_height);
                        self.fail_back(channel_id, id, add, FailBack::Message(message));
                    }
                }
            }
            PendingHTLCRouting::ReceiveKeysend { payment_preimage, payment_data, .. } => {
                let total = payment_data.map_or(info.outgoing_amt_msat, |d| d.total_msat);
                self.receive_part(
                    channel_id,
                    id,
                    add,
                    info.outgoing_amt_msat,
                    total,
                    PaymentPurpose::Keysend { preimage: payment_preimage },
                );
            }
            PendingHTLCRouting::TrampolineForward { .. } => {
                let message = FailureMessage::simple(codes::REQUIRED_NODE_FEATURE_MISSING);
                self.fail_back(channel_id, id, add, FailBack::Message(message));
            }
        }
        true
    }

    /// Forwards a peeled HTLC. Returns the outbound channel, or the failure
    /// to return (`None`: wait, the outbound peer is reconnecting).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        in_channel: ChannelId,
        add: &UpdateAddHTLC,
        scid: u64,
        onion: lightning::ln::msgs::OnionPacket,
        out_amount: u64,
        out_cltv: u32,
        since: u64,
    ) -> Result<ChannelId, Option<FailureMessage>> {
        let policy = self.config.forwarding.clone();
        let fail = |m: FailureMessage| Err(Some(m));
        let Some(out_channel) = self.channel_by_scid(scid) else {
            return fail(FailureMessage::simple(codes::UNKNOWN_NEXT_PEER));
        };
        if out_amount < policy.htlc_minimum_msat {
            return fail(FailureMessage::with_update(
                codes::AMOUNT_BELOW_MINIMUM,
                &add.amount_msat.to_be_bytes(),
            ));
        }
        if out_amount > policy.htlc_maximum_msat {
            return fail(FailureMessage::with_update(codes::TEMPORARY_CHANNEL_FAILURE, &[]));
        }
        if add.amount_msat < out_amount || add.amount_msat - out_amount < policy.fee_msat(out_amount) {
            return fail(FailureMessage::with_update(
                codes::FEE_INSUFFICIENT,
                &add.amount_msat.to_be_bytes(),
            ));
        }
        if add.cltv_expiry < out_cltv.saturating_add(u32::from(policy.cltv_expiry_delta)) {
            return fail(FailureMessage::with_update(
                codes::INCORRECT_CLTV_EXPIRY,
                &add.cltv_expiry.to_be_bytes(),
            ));
        }
        let source = HtlcSource::Forwarded {
            incoming_channel_id: in_channel,
            incoming_htlc_id: add.htlc_id,
            incoming_amount_msat: add.amount_msat,
        };
        let wait_ticks = u64::from(self.config.forward_wait_ticks);
        let ticks = self.ticks;
        let channel = self.channels.get_mut(&out_channel).expect("found by scid");
        if !channel.is_usable() {
            let s = channel.snapshot();
            let reconnecting = s.phase == crate::channel::Phase::Funded
                && s.channel_ready_received
                && !s.shutdown.started()
                && !channel.is_live();
            if reconnecting && ticks < since + wait_ticks {
                return Err(None);
            }
            return fail(FailureMessage::with_update(codes::TEMPORARY_CHANNEL_FAILURE, &[]));
        }
        if channel.add_htlc(out_amount, add.payment_hash, out_cltv, onion, source).is_err() {
            return fail(FailureMessage::with_update(codes::TEMPORARY_CHANNEL_FAILURE, &[]));
        }
        Ok(out_channel)
    }

    /// The channel a forward to `scid` goes on: our alias for it, or its
    /// real short channel id.
    fn channel_by_scid(&self, scid: u64) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, c)| {
                let s = c.snapshot();
                s.our_scid_alias == scid || s.short_channel_id == Some(scid)
            })
            .map(|(id, _)| *id)
    }

    /// The outbound HTLC forwarding inbound HTLC `htlc_id` of `in_channel`,
    /// if any channel or monitor holds one.
    fn find_forward(&self, in_channel: ChannelId, htlc_id: u64) -> Option<(ChannelId, u64)> {
        let matches = |s: &Option<HtlcSource>| {
            matches!(s, Some(HtlcSource::Forwarded { incoming_channel_id, incoming_htlc_id, .. })
                if *incoming_channel_id == in_channel && *incoming_htlc_id == htlc_id)
        };
        for (id, channel) in &self.channels {
            if let Some(h) = channel.snapshot().ledger.htlcs.iter().find(|h| h.outbound && matches(&h.source))
            {
                return Some((*id, h.id));
            }
        }
        for monitor in self.chain_monitor.monitors() {
            if let Some(h) = monitor.pending_outbound().find(|h| matches(&h.source)) {
                return Some((monitor.channel_id(), h.id));
            }
            let resolved = monitor.events().iter().find_map(|e| match &e.event {
                MonitorEvent::ForwardedHtlcClaimed { htlc_id: out, source, .. }
                | MonitorEvent::ForwardedHtlcFailed { htlc_id: out, source, .. }
                    if matches(&Some(source.clone())) =>
                {
                    Some(*out)
                }
                _ => None,
            });
            if let Some(out) = resolved {
                return Some((monitor.channel_id(), out));
            }
        }
        None
    }

    fn receive_part(
        &mut self,
        channel_id: ChannelId,
        id: MonitorEventId,
        add: &UpdateAddHTLC,
        amount_msat: u64,
        total_msat: u64,
        purpose: PaymentPurpose,
    ) {
        let part = Part {
            channel_id,
            htlc_id: add.htlc_id,
            amount_msat,
            cltv_expiry: add.cltv_expiry,
            event_id: id,
        };
        let outcome =
            self.receive.add_part(add.payment_hash, part, total_msat, purpose, self.ticks, &mut self.events);
        match outcome {
            PartOutcome::Held => {}
            PartOutcome::Claim(preimage, claim) => {
                self.claim_part(channel_id, add.htlc_id, preimage, Some(claim), Some(id));
            }
            PartOutcome::Reject => {
                let message = FailureMessage::unknown_payment_details(add.amount_msat, self.best_height);
                self.fail_back(channel_id, id, add, FailBack::Message(message));
            }
        }
    }

    /// Claims one inbound HTLC. `event` is its `HtlcAccepted`, acknowledged
    /// once the preimage is durable.
    pub(super) fn claim_part(
        &mut self,
        channel_id: ChannelId,
        htlc_id: u64,
        preimage: lightning::types::payment::PaymentPreimage,
        claim: Option<crate::channel::InboundClaim>,
        event: Option<MonitorEventId>,
    ) {
        let then = match event {
            Some(id) => Then::Ack((channel_id, id), Some(htlc_id)),
            None => Then::PartDurable(channel_id, htlc_id),
        };
        let open = self.channels.get(&channel_id).is_some_and(|c| c.phase() == &Phase::Funded);
        if !open {
            self.claim_on_closed_channel(channel_id, htlc_id, preimage, claim, then);
            return;
        }
        let channel = self.channels.get_mut(&channel_id).expect("checked above");
        if channel.fulfill_htlc(htlc_id, preimage, claim).is_err() {
            return;
        }
        self.wait(channel_id, then, true);
    }

    /// Fails inbound HTLC `add` of `channel_id` back; its `HtlcAccepted`
    /// (`id`) is acknowledged once the fail is durable.
    pub(super) fn fail_back(
        &mut self,
        channel_id: ChannelId,
        id: MonitorEventId,
        add: &UpdateAddHTLC,
        fail: FailBack,
    ) {
        if self.fail_inbound(channel_id, add, fail) {
            self.wait(channel_id, Then::Ack((channel_id, id), None), false);
        }
    }

    /// Fails an inbound HTLC. Returns whether the channel took the fail.
    fn fail_inbound(&mut self, channel_id: ChannelId, add: &UpdateAddHTLC, fail: FailBack) -> bool {
        let secret =
            add.onion_routing_packet.public_key.ok().map(|k| hop_shared_secret(&k, &self.node_secret));
        let Some(channel) = self.channels.get_mut(&channel_id) else { return false };
        let result = match (fail, secret) {
            (FailBack::Ready(packet), _) => channel.fail_htlc(add.htlc_id, packet),
            (FailBack::Message(message), Some(secret)) => {
                channel.fail_htlc(add.htlc_id, build_failure_packet(&secret, &message))
            }
            (FailBack::Wrap(packet), Some(secret)) => {
                channel.fail_htlc(add.htlc_id, wrap_failure_packet(&secret, &packet))
            }
            (FailBack::Malformed(code), _) => {
                let sha = sha256::Hash::hash(&add.onion_routing_packet.hop_data).to_byte_array();
                channel.fail_malformed_htlc(add.htlc_id, code, sha)
            }
            (FailBack::Message(_) | FailBack::Wrap(_), None) => {
                // No shared secret: the onion key itself is bad.
                let sha = sha256::Hash::hash(&add.onion_routing_packet.hop_data).to_byte_array();
                channel.fail_malformed_htlc(add.htlc_id, codes::INVALID_ONION_KEY, sha)
            }
        };
        result.is_ok()
    }

    fn forward_claimed(
        &mut self,
        out_channel: ChannelId,
        id: MonitorEventId,
        out_htlc_id: u64,
        out_amount: u64,
        preimage: lightning::types::payment::PaymentPreimage,
        source: HtlcSource,
    ) {
        let HtlcSource::Forwarded { incoming_channel_id, incoming_htlc_id, incoming_amount_msat } = source
        else {
            return;
        };
        let event = Event::PaymentForwarded {
            prev_channel_id: incoming_channel_id,
            prev_htlc_id: incoming_htlc_id,
            next_channel_id: out_channel,
            next_htlc_id: out_htlc_id,
            inbound_amount_msat: incoming_amount_msat,
            outbound_amount_msat: out_amount,
            fee_earned_msat: incoming_amount_msat.saturating_sub(out_amount),
        };
        let then = Then::Emit(event, vec![AckAction::Ack(out_channel, id)]);
        let open = self.channels.get(&incoming_channel_id).is_some_and(|c| c.phase() == &Phase::Funded);
        if !open {
            // The upstream channel closed: its monitor claims on chain with
            // the preimage.
            self.claim_on_closed_channel(incoming_channel_id, incoming_htlc_id, preimage, None, then);
            return;
        }
        let channel = self.channels.get_mut(&incoming_channel_id).expect("checked above");
        match channel.fulfill_htlc(incoming_htlc_id, preimage, None) {
            #[cfg(feature = "bug-injection")]
            Ok(()) if crate::bugs::active(crate::bugs::Bug::EarlyForwardAck) => {
                if let Then::Emit(event, actions) = then {
                    self.events.push(event, actions);
                }
            }
            Ok(()) => self.wait(incoming_channel_id, then, true),
            Err(_) if channel.snapshot().ledger.htlc(false, incoming_htlc_id).is_none() => {
                // Upstream already settled (a replay after the claim went
                // through): only the user event is left.
                self.wait(incoming_channel_id, then, true);
            }
            Err(_) => {}
        }
    }

    fn forward_failed(
        &mut self,
        out_channel: ChannelId,
        id: MonitorEventId,
        failure: HtlcFailure,
        source: HtlcSource,
    ) {
        let HtlcSource::Forwarded { incoming_channel_id, incoming_htlc_id, .. } = source else { return };
        let event = (out_channel, id);
        // The upstream channel closed: its HTLC is the upstream peer's to
        // time out on chain, and nothing of ours depends on it any more,
        // once the close is durable (before that, a crash brings the
        // channel back with the HTLC to fail).
        let Some(channel) = self.channels.get(&incoming_channel_id) else {
            self.chain_monitor.ack(&out_channel, &[id]);
            self.dirty = true;
            return;
        };
        if channel.phase() != &Phase::Funded {
            self.wait(incoming_channel_id, Then::Ack(event, None), true);
            return;
        }
        let Some(entry) = channel.snapshot().ledger.htlc(false, incoming_htlc_id) else {
            self.chain_monitor.ack(&out_channel, &[id]);
            self.dirty = true;
            return;
        };
        let add = entry.update_add.clone();
        let fail = match failure {
            HtlcFailure::Onion(packet) => FailBack::Wrap(packet),
            HtlcFailure::Malformed { failure_code, .. } => {
                FailBack::Message(FailureMessage::simple(failure_code))
            }
            HtlcFailure::OnChainTimeout => {
                FailBack::Message(FailureMessage::simple(codes::PERMANENT_CHANNEL_FAILURE))
            }
        };
        if entry.removal.is_some() || self.fail_inbound(incoming_channel_id, &add, fail) {
            self.wait(incoming_channel_id, Then::Ack(event, None), false);
        }
    }

    /// Mints `PaymentClaimed` bookkeeping when a part's preimage is durable.
    pub(super) fn part_durable(&mut self, channel_id: ChannelId, htlc_id: u64) {
        self.receive.part_durable(channel_id, htlc_id, &mut self.events, &self.chain_monitor);
    }

    /// Fails back the parts of incomplete payments that waited too long.
    pub(super) fn expire_incomplete_payments(&mut self) {
        let parts = self.receive.expire(self.ticks, self.config.mpp_timeout_ticks);
        self.fail_parts(parts, codes::MPP_TIMEOUT);
    }

    /// Fails back payments to us that were not claimed in time: within
    /// `claim_deadline_blocks` of a part's expiry.
    pub(super) fn fail_expiring_payments(&mut self) {
        let deadline = self.best_height.saturating_add(self.config.claim_deadline_blocks);
        let parts = self.receive.expiring(deadline);
        self.fail_parts(parts, codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
    }

    /// Fails parts back with `code` (and, for unknown payment details, the
    /// HTLC's value and our height as its data).
    pub(super) fn fail_parts(&mut self, parts: Vec<Part>, code: u16) {
        for part in parts {
            let add = self
                .channels
                .get(&part.channel_id)
                .and_then(|c| c.snapshot().ledger.htlc(false, part.htlc_id))
                .map(|h| h.update_add.clone());
            if let Some(add) = add {
                let message = if code == codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS {
                    FailureMessage::unknown_payment_details(add.amount_msat, self.best_height)
                } else {
                    FailureMessage::simple(code)
                };
                self.fail_back(part.channel_id, part.event_id, &add, FailBack::Message(message));
            }
        }
    }
}
