//! Disconnection and `channel_reestablish` (BOLT 2 "Message Retransmission").
//!
//! On disconnection the peer's uncommitted updates are forgotten (it re-sends
//! them) and nothing more is sent. On reconnection each side states the next
//! commitment and revocation it expects; we re-send a lost `revoke_and_ack`
//! and a lost `commitment_signed` with its updates, in their original order,
//! then our updates not yet signed. A peer that proves our state is stale
//! makes us stop without broadcasting anything; a peer that lost state is
//! told to close.

use lightning::ln::msgs;
use lightning::sign::ecdsa::EcdsaChannelSigner;

use super::commitment::{commitment_index, INITIAL_COMMITMENT_INDEX};
use super::error::{close, ignore};
use super::ledger::Outcome;
use super::state::{LastSent, Phase};
use super::wire;
use super::{Channel, ChannelError, ChannelMessage, ChannelOutput, CloseReason};

/// What we must re-send after reestablishing.
#[derive(Debug, Default)]
struct Retransmit {
    revoke_and_ack: bool,
    commitment_signed: bool,
}

impl<S: EcdsaChannelSigner> Channel<S> {
    /// Forgets the peer's updates not yet covered by a `commitment_signed` it
    /// sent (BOLT 2: they are reversed on disconnection).
    pub(super) fn drop_uncommitted_remote_changes(&mut self) {
        let funder = self.state.is_funder();
        let ledger = &mut self.state.ledger;
        // Their uncommitted adds are their latest ones: they will re-send them
        // with the same ids.
        let first_dropped =
            ledger.htlcs.iter().filter(|h| !h.outbound && h.heights.local.is_none()).map(|h| h.id).min();
        ledger.htlcs.retain(|h| h.outbound || h.heights.local.is_some());
        if let Some(id) = first_dropped {
            ledger.next_inbound_id = id;
        }
        for h in ledger.htlcs.iter_mut().filter(|h| h.outbound) {
            if h.removal.as_ref().is_some_and(|r| r.heights.local.is_none()) {
                h.removal = None;
            }
        }
        if !funder {
            ledger.fees.retain(|f| f.heights.local.is_some());
        }
    }

    /// The connection to the peer dropped. A channel not yet funded is
    /// abandoned (BOLT 2: it is not remembered).
    pub fn peer_disconnected(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.awaiting_reestablish = false;
        // Messages not yet handed out are dropped; reestablishment re-sends
        // what is needed. Events stay.
        self.outbox.retain(|q| matches!(q.output, ChannelOutput::Event(_)));
        match self.state.phase {
            Phase::OpenSent | Phase::Accepted | Phase::AcceptSent | Phase::FundingCreatedSent => {
                self.state.phase =
                    Phase::Closed(CloseReason::LocalError("disconnected before funding".into()));
                self.queue_event(
                    super::ChannelEvent::Closed {
                        reason: CloseReason::LocalError("disconnected before funding".into()),
                    },
                    None,
                );
            }
            _ => self.drop_uncommitted_remote_changes(),
        }
        // Negotiation restarts on reconnection, and a `shutdown` we sent is
        // sent again (once our updates are signed).
        self.state.shutdown.our_last_fee_sat = None;
        self.state.shutdown.our_fee_range = None;
        self.state.shutdown.ours_sent = false;
    }

    /// The peer is connected again: queues our `channel_reestablish`. Other
    /// messages wait for the peer's.
    pub fn peer_connected(&mut self) {
        self.connected = true;
        if self.state.phase != Phase::Funded {
            return;
        }
        self.awaiting_reestablish = true;
        let last_secret = match self.state.remote_unrevoked.checked_sub(1) {
            Some(n) => self.state.counterparty_secrets.get_secret(commitment_index(n)).unwrap_or([0; 32]),
            None => [0; 32],
        };
        let Ok(point) = self.holder_point(self.state.local_number) else { return };
        let msg = msgs::ChannelReestablish {
            channel_id: self.state.channel_id,
            next_local_commitment_number: self.state.local_number + 1,
            next_remote_commitment_number: self.state.remote_unrevoked,
            your_last_per_commitment_secret: last_secret,
            my_current_per_commitment_point: point,
            next_funding: None,
            my_current_funding_locked: None,
        };
        self.queue_message(ChannelMessage::ChannelReestablish(msg), None);
    }

    /// The peer's `channel_reestablish`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] when the two states cannot be reconciled; when
    /// the peer proves our state is stale, the channel closes without
    /// broadcasting our commitment.
    pub fn handle_channel_reestablish(&mut self, msg: &msgs::ChannelReestablish) -> Result<(), ChannelError> {
        if self.state.phase != Phase::Funded {
            return ignore("channel_reestablish for a channel that is not open");
        }
        if !self.awaiting_reestablish {
            return ignore("unexpected channel_reestablish");
        }
        let result = self.reestablish_inner(msg);
        match result {
            Err(ChannelError::Close(m)) if m.starts_with(STALE) => {
                self.fail_channel(CloseReason::StaleLocalState, false);
                Err(ChannelError::Close(m))
            }
            other => self.outcome(other),
        }
    }

    fn reestablish_inner(&mut self, msg: &msgs::ChannelReestablish) -> Result<(), ChannelError> {
        let their_next_local = msg.next_local_commitment_number;
        let their_next_revocation = msg.next_remote_commitment_number;
        if their_next_local == 0 {
            return close("channel_reestablish with next_commitment_number 0");
        }
        if their_next_local > INITIAL_COMMITMENT_INDEX || their_next_revocation > INITIAL_COMMITMENT_INDEX {
            return close("channel_reestablish with a commitment number beyond 2^48");
        }
        // Did the peer see revocations we never sent? Then our state is stale.
        if their_next_revocation > self.state.local_number {
            let claimed = their_next_revocation - 1;
            let ours = self.signer.release_commitment_secret(commitment_index(claimed));
            if ours.is_ok_and(|s| s == msg.your_last_per_commitment_secret) {
                return close(format!(
                    "{STALE}: the peer has revocations up to {claimed}, we are at {}",
                    self.state.local_number
                ));
            }
            return close("channel_reestablish claims revocations we never made");
        }
        if their_next_revocation > 0 {
            let expected = self
                .signer
                .release_commitment_secret(commitment_index(their_next_revocation - 1))
                .or_else(|_| close("the signer refused to release a commitment secret"))?;
            if expected != msg.your_last_per_commitment_secret {
                return close("your_last_per_commitment_secret is wrong");
            }
        }
        let mut todo = Retransmit::default();
        // The revocation the peer expects next.
        if self.state.local_number > 0 && their_next_revocation + 1 == self.state.local_number {
            todo.revoke_and_ack = true;
        } else if their_next_revocation != self.state.local_number {
            return close(format!(
                "the peer expects revocation {their_next_revocation}, we revoked up to {}",
                self.state.local_number.saturating_sub(1)
            ));
        }
        // The commitment the peer expects next.
        if self.state.awaiting_revoke() && their_next_local == self.state.remote_number {
            todo.commitment_signed = true;
        } else if their_next_local != self.state.remote_number + 1 {
            if their_next_local > self.state.remote_number + 1 {
                return close("the peer holds commitments we never signed: our state may be stale");
            }
            return close(format!(
                "the peer expects commitment {their_next_local}, we signed up to {}",
                self.state.remote_number
            ));
        }
        self.awaiting_reestablish = false;
        if their_next_local == 1 && self.state.local_number == 0 && self.state.channel_ready_sent {
            let next = self.holder_point(1)?;
            self.queue_channel_ready(next);
        }
        self.retransmit(todo)?;
        self.send_commitment_inner()?;
        self.after_commitment_progress()?;
        Ok(())
    }

    fn retransmit(&mut self, todo: Retransmit) -> Result<(), ChannelError> {
        let raa_first = self.state.last_sent != LastSent::RevokeAndAck;
        if todo.revoke_and_ack && (raa_first || !todo.commitment_signed) {
            self.resend_revoke_and_ack()?;
        }
        if todo.commitment_signed {
            self.resend_updates(Some(self.state.remote_number));
            self.resend_commitment_signed()?;
        }
        if todo.revoke_and_ack && !raa_first && todo.commitment_signed {
            self.resend_revoke_and_ack()?;
        }
        // Our updates that no commitment covers yet.
        self.resend_updates(None);
        Ok(())
    }

    fn resend_revoke_and_ack(&mut self) -> Result<(), ChannelError> {
        let n = self.state.local_number;
        let secret = self
            .signer
            .release_commitment_secret(commitment_index(n - 1))
            .or_else(|_| close("the signer refused to release a commitment secret"))?;
        let msg = msgs::RevokeAndACK {
            channel_id: self.state.channel_id,
            per_commitment_secret: secret,
            next_per_commitment_point: self.holder_point(n + 1)?,
            release_htlc_message_paths: Vec::new(),
        };
        let after = Some(self.last_raa_update);
        self.queue_message(ChannelMessage::RevokeAndAck(msg), after);
        Ok(())
    }

    /// Re-sends, in their original order, our updates first included in
    /// remote commitment `number` (or in none yet, for `None`).
    fn resend_updates(&mut self, number: Option<u64>) {
        let channel_id = self.state.channel_id;
        let mut msgs_by_seq: Vec<(u64, ChannelMessage)> = Vec::new();
        for h in &self.state.ledger.htlcs {
            if h.outbound && h.heights.remote == number {
                msgs_by_seq.push((h.seq, ChannelMessage::UpdateAddHtlc(h.update_add.clone())));
            }
            if let Some(r) = h.removal.as_ref().filter(|r| !h.outbound && r.heights.remote == number) {
                let msg = match &r.outcome {
                    Outcome::Fulfill(preimage) => {
                        ChannelMessage::UpdateFulfillHtlc(msgs::UpdateFulfillHTLC {
                            channel_id,
                            htlc_id: h.id,
                            payment_preimage: *preimage,
                            attribution_data: None,
                        })
                    }
                    Outcome::Fail(reason) => {
                        ChannelMessage::UpdateFailHtlc(wire::update_fail_htlc(channel_id, h.id, reason))
                    }
                    Outcome::FailMalformed { failure_code, sha256_of_onion } => {
                        ChannelMessage::UpdateFailMalformedHtlc(wire::update_fail_malformed_htlc(
                            channel_id,
                            h.id,
                            *sha256_of_onion,
                            *failure_code,
                        ))
                    }
                };
                msgs_by_seq.push((r.seq, msg));
            }
        }
        if self.state.is_funder() {
            for f in self.state.ledger.fees.iter().filter(|f| f.heights.remote == number) {
                let msg = msgs::UpdateFee { channel_id, feerate_per_kw: f.feerate_per_kw };
                msgs_by_seq.push((f.seq, ChannelMessage::UpdateFee(msg)));
            }
        }
        msgs_by_seq.sort_by_key(|(seq, _)| *seq);
        // A fulfil reveals a preimage: it waits until every update so far,
        // the one holding that preimage included, is durable.
        let latest = self.state.next_update_id - 1;
        for (_, msg) in msgs_by_seq {
            let after = matches!(msg, ChannelMessage::UpdateFulfillHtlc(_)).then_some(latest);
            self.queue_message(msg, after);
        }
    }

    /// Signs the same counterparty commitment again (the monitor already
    /// holds it) and queues it.
    fn resend_commitment_signed(&mut self) -> Result<(), ChannelError> {
        let n = self.state.remote_number;
        let built = self.build(&self.state.ledger, super::ledger::Side::Remote, n)?;
        let (signature, htlc_signatures) = self
            .signer
            .sign_counterparty_commitment(&self.state.params, &built.tx, Vec::new(), Vec::new(), &self.secp)
            .or_else(|_| close("the signer refused to sign a commitment"))?;
        let msg = msgs::CommitmentSigned {
            channel_id: self.state.channel_id,
            signature,
            htlc_signatures,
            funding_txid: None,
        };
        let after = Some(self.last_cs_update);
        self.queue_message(ChannelMessage::CommitmentSigned(msg), after);
        Ok(())
    }
}

/// The prefix of the error that means our own state is stale.
const STALE: &str = "stale local state";
