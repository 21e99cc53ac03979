//! Normal operation (BOLT 2): HTLC updates, fee updates, and the
//! `commitment_signed` / `revoke_and_ack` dance.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use lightning::ln::chan_utils::HolderCommitmentTransaction;
use lightning::ln::msgs;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use super::commitment::{commitment_index, verify_countersignatures};
use super::config::{MAX_CLTV_EXPIRY_DELTA, MIN_FEERATE_PER_KW};
use super::error::{close, ignore};
use super::ledger::{FeeEntry, Heights, HtlcEntry, Ledger, Outcome, Removal, Side};
use super::limits::{check_fee_update, check_new_htlc, max_outbound_htlc_msat};
use super::state::{LastSent, Phase};
use super::wire;
use super::{Channel, ChannelError, ChannelMessage, HtlcFailure, HtlcSource, InboundClaim, UpdateStep};

/// Locktimes at or above this are timestamps, which HTLCs cannot use.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Assigns remote commitment `n` to every change it includes: our proposals
/// not yet in a remote commitment, and theirs that we acknowledged (they are
/// in our local commitment).
fn assign_remote(ledger: &mut Ledger, n: u64, is_funder: bool) {
    for h in &mut ledger.htlcs {
        if h.heights.remote.is_none() && (h.outbound || h.heights.local.is_some()) {
            h.heights.remote = Some(n);
        }
        if let Some(r) = &mut h.removal {
            // We propose removals of inbound HTLCs; they propose the others.
            if r.heights.remote.is_none() && (!h.outbound || r.heights.local.is_some()) {
                r.heights.remote = Some(n);
            }
        }
    }
    for f in &mut ledger.fees {
        if f.heights.remote.is_none() && (is_funder || f.heights.local.is_some()) {
            f.heights.remote = Some(n);
        }
    }
}

/// Assigns local commitment `n` to every change it includes: their proposals
/// not yet in a local commitment, and ours they acknowledged (they revoked
/// the remote commitment before the one that first included them).
fn assign_local(ledger: &mut Ledger, n: u64, remote_unrevoked: u64, is_funder: bool) {
    let acked = |h: &Heights| h.remote.is_some_and(|r| r <= remote_unrevoked);
    for h in &mut ledger.htlcs {
        if h.heights.local.is_none() && (!h.outbound || acked(&h.heights)) {
            h.heights.local = Some(n);
        }
        if let Some(r) = &mut h.removal {
            if r.heights.local.is_none() && (h.outbound || acked(&r.heights)) {
                r.heights.local = Some(n);
            }
        }
    }
    for f in &mut ledger.fees {
        if f.heights.local.is_none() && (!is_funder || acked(&f.heights)) {
            f.heights.local = Some(n);
        }
    }
}

/// Whether the next remote commitment would differ from the current one.
fn has_changes_for_remote(ledger: &Ledger, is_funder: bool) -> bool {
    let mut probe = ledger.clone();
    assign_remote(&mut probe, u64::MAX, is_funder);
    probe != *ledger
}

impl<S: EcdsaChannelSigner> Channel<S> {
    /// Whether our proposals can be sent now (else they wait for
    /// `channel_reestablish`, which re-sends them).
    fn live(&self) -> bool {
        self.connected && !self.awaiting_reestablish
    }

    fn check_funded(&self) -> Result<(), ChannelError> {
        self.check_live()?;
        if self.state.phase != Phase::Funded {
            return close("channel update before the channel is funded");
        }
        Ok(())
    }

    /// The largest HTLC we could offer now (0 when the channel cannot take
    /// one).
    pub fn next_outbound_htlc_limit_msat(&self) -> u64 {
        if !self.is_usable() {
            return 0;
        }
        max_outbound_htlc_msat(&self.state, &self.config)
    }

    /// The smallest HTLC the peer accepts.
    pub fn next_outbound_htlc_minimum_msat(&self) -> u64 {
        self.state.counterparty.htlc_minimum_msat.max(1)
    }

    /// Offers an HTLC to the peer. `source` is the manager's record of where
    /// it comes from; the monitor keeps it. Returns the HTLC id.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] naming the limit it would break (expiry,
    /// minimum, count, value in flight, reserve, fee spike buffer, dust
    /// exposure) or why the channel cannot take HTLCs now; nothing changed.
    pub fn add_htlc(
        &mut self,
        amount_msat: u64,
        payment_hash: PaymentHash,
        cltv_expiry: u32,
        onion_routing_packet: msgs::OnionPacket,
        source: HtlcSource,
    ) -> Result<u64, ChannelError> {
        if !self.is_usable() {
            return ignore("the channel cannot take new HTLCs now (not ready, disconnected or closing)");
        }
        if cltv_expiry <= self.best_height {
            return ignore(format!("the HTLC expiry {cltv_expiry} has passed (height {})", self.best_height));
        }
        if cltv_expiry >= LOCKTIME_THRESHOLD || cltv_expiry > self.best_height + MAX_CLTV_EXPIRY_DELTA {
            return ignore(format!("the HTLC expiry {cltv_expiry} is too far in the future"));
        }
        check_new_htlc(&self.state, &self.config, true, amount_msat)?;
        let ledger = &mut self.state.ledger;
        let id = ledger.next_outbound_id;
        ledger.next_outbound_id += 1;
        let seq = ledger.take_seq();
        let update_add = msgs::UpdateAddHTLC {
            channel_id: self.state.channel_id,
            htlc_id: id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            skimmed_fee_msat: None,
            onion_routing_packet,
            blinding_point: None,
            hold_htlc: None,
        };
        ledger.htlcs.push(HtlcEntry {
            id,
            outbound: true,
            update_add: update_add.clone(),
            source: Some(source),
            heights: Heights::default(),
            seq,
            removal: None,
            irrevocable_reported: false,
            policy_violation: None,
        });
        self.queue_message(ChannelMessage::UpdateAddHtlc(update_add), None);
        Ok(id)
    }

    /// The peer offers an HTLC.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] for a BOLT 2 violation: before `channel_ready`
    /// or after `shutdown`, an unexpected id, a timestamp expiry, or a limit
    /// (minimum, count, value in flight, reserve, fee).
    pub fn handle_update_add_htlc(&mut self, msg: &msgs::UpdateAddHTLC) -> Result<(), ChannelError> {
        let result = self.update_add_inner(msg);
        self.outcome(result)
    }

    fn update_add_inner(&mut self, msg: &msgs::UpdateAddHTLC) -> Result<(), ChannelError> {
        self.check_funded()?;
        if !self.state.channel_ready_received {
            return close("update_add_htlc before channel_ready");
        }
        if self.state.shutdown.theirs.is_some() {
            return close("update_add_htlc after shutdown");
        }
        let expected = self.state.ledger.next_inbound_id;
        if msg.htlc_id != expected {
            return close(format!("update_add_htlc with id {} (expected {expected})", msg.htlc_id));
        }
        if msg.cltv_expiry >= LOCKTIME_THRESHOLD {
            return close(format!("cltv_expiry {} is a timestamp", msg.cltv_expiry));
        }
        let policy_violation = check_new_htlc(&self.state, &self.config, false, msg.amount_msat)?;
        let ledger = &mut self.state.ledger;
        ledger.next_inbound_id += 1;
        ledger.htlcs.push(HtlcEntry {
            id: msg.htlc_id,
            outbound: false,
            update_add: msg.clone(),
            source: None,
            heights: Heights::default(),
            seq: 0,
            removal: None,
            irrevocable_reported: false,
            policy_violation,
        });
        Ok(())
    }

    /// An inbound HTLC that can be removed now: irrevocably committed and
    /// not yet removed.
    ///
    /// Allowed while disconnected or waiting for the peer's
    /// `channel_reestablish`: the removal is then sent by the
    /// retransmission that follows reestablishment.
    fn removable(&self, htlc_id: u64) -> Result<&HtlcEntry, ChannelError> {
        if self.state.phase != Phase::Funded {
            return ignore("the channel is not open");
        }
        let Some(h) = self.state.ledger.htlc(false, htlc_id) else {
            return ignore(format!("no inbound HTLC {htlc_id}"));
        };
        if !h.irrevocable_reported {
            return ignore(format!("HTLC {htlc_id} is not irrevocably committed yet"));
        }
        Ok(h)
    }

    fn record_our_removal(&mut self, htlc_id: u64, outcome: Outcome) {
        let seq = self.state.ledger.take_seq();
        let h = self.state.ledger.htlc_mut(false, htlc_id).expect("checked by removable()");
        h.removal = Some(Removal { outcome, heights: Heights::default(), seq });
    }

    /// Claims an inbound HTLC with its preimage. The preimage goes to the
    /// monitor first; `update_fulfill_htlc` follows once that is durable.
    /// As the payee, pass the whole `claim` (every part of the payment): the
    /// monitor keeps it as a deferred restart event. Claiming an HTLC already
    /// claimed with the same preimage does nothing.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] for an unknown HTLC, one not yet irrevocably
    /// committed or already failed, or a preimage that does not match.
    pub fn fulfill_htlc(
        &mut self,
        htlc_id: u64,
        preimage: PaymentPreimage,
        claim: Option<InboundClaim>,
    ) -> Result<(), ChannelError> {
        let h = self.removable(htlc_id)?;
        match &h.removal {
            Some(Removal { outcome: Outcome::Fulfill(p), .. }) if *p == preimage => return Ok(()),
            Some(_) => return ignore(format!("HTLC {htlc_id} is already being removed")),
            None => {}
        }
        if PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array()) != h.payment_hash() {
            return ignore(format!("the preimage does not match HTLC {htlc_id}"));
        }
        self.record_our_removal(htlc_id, Outcome::Fulfill(preimage));
        let id = self.push_update(vec![UpdateStep::PaymentPreimage {
            htlc_id,
            outbound: false,
            preimage,
            source: None,
            claim,
        }]);
        if self.live() {
            let msg = msgs::UpdateFulfillHTLC {
                channel_id: self.state.channel_id,
                htlc_id,
                payment_preimage: preimage,
                attribution_data: None,
            };
            self.queue_message(ChannelMessage::UpdateFulfillHtlc(msg), Some(id));
        }
        Ok(())
    }

    /// Fails an inbound HTLC back with `reason`, the encrypted BOLT 4 error.
    /// Failing an HTLC already failed does nothing.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] for an unknown HTLC, one not yet irrevocably
    /// committed, or one being fulfilled.
    pub fn fail_htlc(&mut self, htlc_id: u64, reason: Vec<u8>) -> Result<(), ChannelError> {
        let h = self.removable(htlc_id)?;
        match &h.removal {
            Some(Removal { outcome: Outcome::Fulfill(_), .. }) => {
                return ignore(format!("HTLC {htlc_id} is being fulfilled"))
            }
            Some(_) => return Ok(()),
            None => {}
        }
        self.record_our_removal(htlc_id, Outcome::Fail(reason.clone()));
        if self.live() {
            let msg = wire::update_fail_htlc(self.state.channel_id, htlc_id, &reason);
            self.queue_message(ChannelMessage::UpdateFailHtlc(msg), None);
        }
        Ok(())
    }

    /// Fails an inbound HTLC whose onion we could not parse.
    ///
    /// # Errors
    ///
    /// As [`Channel::fail_htlc`], and [`ChannelError::Ignore`] for a failure
    /// code without the BADONION bit.
    pub fn fail_malformed_htlc(
        &mut self,
        htlc_id: u64,
        failure_code: u16,
        sha256_of_onion: [u8; 32],
    ) -> Result<(), ChannelError> {
        if failure_code & 0x8000 == 0 {
            return ignore("a malformed-onion failure needs the BADONION bit");
        }
        let h = self.removable(htlc_id)?;
        match &h.removal {
            Some(Removal { outcome: Outcome::Fulfill(_), .. }) => {
                return ignore(format!("HTLC {htlc_id} is being fulfilled"))
            }
            Some(_) => return Ok(()),
            None => {}
        }
        self.record_our_removal(htlc_id, Outcome::FailMalformed { failure_code, sha256_of_onion });
        if self.live() {
            let msg = wire::update_fail_malformed_htlc(
                self.state.channel_id,
                htlc_id,
                sha256_of_onion,
                failure_code,
            );
            self.queue_message(ChannelMessage::UpdateFailMalformedHtlc(msg), None);
        }
        Ok(())
    }

    /// An HTLC we offered that the peer may remove now.
    fn peer_removable(&self, htlc_id: u64) -> Result<(), ChannelError> {
        self.check_funded()?;
        let Some(h) = self.state.ledger.htlc(true, htlc_id) else {
            return close(format!("removal of unknown HTLC {htlc_id}"));
        };
        if h.heights.local.is_none() {
            return close(format!("removal of HTLC {htlc_id} before it is committed"));
        }
        if h.removal.is_some() {
            return close(format!("HTLC {htlc_id} removed twice"));
        }
        Ok(())
    }

    fn record_their_removal(&mut self, htlc_id: u64, outcome: Outcome) {
        let h = self.state.ledger.htlc_mut(true, htlc_id).expect("checked by peer_removable()");
        h.removal = Some(Removal { outcome, heights: Heights::default(), seq: 0 });
    }

    /// The peer claims an HTLC we offered. The preimage goes to the monitor at
    /// once, with the HTLC's source.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] for an unknown or uncommitted HTLC, a second
    /// removal, or a preimage that does not match.
    pub fn handle_update_fulfill_htlc(&mut self, msg: &msgs::UpdateFulfillHTLC) -> Result<(), ChannelError> {
        let result = self.update_fulfill_inner(msg);
        self.outcome(result)
    }

    fn update_fulfill_inner(&mut self, msg: &msgs::UpdateFulfillHTLC) -> Result<(), ChannelError> {
        self.peer_removable(msg.htlc_id)?;
        let h = self.state.ledger.htlc(true, msg.htlc_id).expect("checked above");
        let hash = PaymentHash(sha256::Hash::hash(&msg.payment_preimage.0).to_byte_array());
        if hash != h.payment_hash() {
            return close(format!("the preimage for HTLC {} does not match its hash", msg.htlc_id));
        }
        let source = h.source.clone();
        self.record_their_removal(msg.htlc_id, Outcome::Fulfill(msg.payment_preimage));
        self.push_update(vec![UpdateStep::PaymentPreimage {
            htlc_id: msg.htlc_id,
            outbound: true,
            preimage: msg.payment_preimage,
            source,
            claim: None,
        }]);
        Ok(())
    }

    /// The peer fails an HTLC we offered.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] for an unknown or uncommitted HTLC, or a second
    /// removal.
    pub fn handle_update_fail_htlc(&mut self, msg: &msgs::UpdateFailHTLC) -> Result<(), ChannelError> {
        let result = self.peer_removable(msg.htlc_id).and_then(|()| {
            let reason = wire::fail_reason(msg).or_else(|_| close("update_fail_htlc does not decode"))?;
            self.record_their_removal(msg.htlc_id, Outcome::Fail(reason));
            Ok(())
        });
        self.outcome(result)
    }

    /// The peer could not parse the onion of an HTLC we offered.
    ///
    /// # Errors
    ///
    /// As [`Channel::handle_update_fail_htlc`], and [`ChannelError::Close`]
    /// without the BADONION bit.
    pub fn handle_update_fail_malformed_htlc(
        &mut self,
        msg: &msgs::UpdateFailMalformedHTLC,
    ) -> Result<(), ChannelError> {
        let result = self.peer_removable(msg.htlc_id).and_then(|()| {
            if msg.failure_code & 0x8000 == 0 {
                return close("update_fail_malformed_htlc without the BADONION bit");
            }
            let outcome = Outcome::FailMalformed {
                failure_code: msg.failure_code,
                sha256_of_onion: wire::malformed_onion_hash(msg),
            };
            self.record_their_removal(msg.htlc_id, outcome);
            Ok(())
        });
        self.outcome(result)
    }

    /// Proposes a new commitment fee rate (funder only).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] if we are not the funder, the channel is not
    /// usable, the rate is below 253, or we cannot afford it.
    pub fn update_fee(&mut self, feerate_per_kw: u32) -> Result<(), ChannelError> {
        if !self.state.is_funder() {
            return ignore("only the funder updates the fee");
        }
        if !self.is_usable() {
            return ignore("the channel cannot update its fee now");
        }
        if feerate_per_kw < MIN_FEERATE_PER_KW {
            return ignore("the fee rate is below 253 sat/kw");
        }
        check_fee_update(&self.state, &self.config, feerate_per_kw)
            .map_err(|e| ChannelError::Ignore(e.message().into()))?;
        let seq = self.state.ledger.take_seq();
        self.state.ledger.fees.push(FeeEntry { feerate_per_kw, heights: Heights::default(), seq });
        let msg = msgs::UpdateFee { channel_id: self.state.channel_id, feerate_per_kw };
        self.queue_message(ChannelMessage::UpdateFee(msg), None);
        Ok(())
    }

    /// The funder proposes a new fee rate.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] if the peer is not the funder, the rate is
    /// unreasonable against our estimate, or the funder cannot afford it.
    pub fn handle_update_fee(&mut self, msg: &msgs::UpdateFee) -> Result<(), ChannelError> {
        let result = self.update_fee_inner(msg);
        self.outcome(result)
    }

    fn update_fee_inner(&mut self, msg: &msgs::UpdateFee) -> Result<(), ChannelError> {
        self.check_funded()?;
        if self.state.is_funder() {
            return close("update_fee from the fundee");
        }
        let rate = msg.feerate_per_kw;
        if rate < MIN_FEERATE_PER_KW {
            return close(format!("update_fee of {rate} sat/kw is below 253"));
        }
        if let Some(estimate) = self.fee_estimate {
            let factor = self.config.feerate_tolerance_factor.max(1);
            if rate > estimate.saturating_mul(factor) || rate.saturating_mul(factor) < estimate {
                return close(format!("update_fee of {rate} sat/kw is unreasonable (estimate {estimate})"));
            }
        }
        check_fee_update(&self.state, &self.config, rate)?;
        self.state.ledger.fees.push(FeeEntry { feerate_per_kw: rate, heights: Heights::default(), seq: 0 });
        Ok(())
    }

    /// Signs a new counterparty commitment with every pending change and
    /// queues `commitment_signed` (released once its monitor update is
    /// durable). Returns whether one was sent: not while a previous one
    /// awaits its `revoke_and_ack`, nor when nothing changed.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] if the signer refuses.
    pub fn send_commitment(&mut self) -> Result<bool, ChannelError> {
        let result = self.send_commitment_inner();
        self.outcome(result)
    }

    pub(super) fn send_commitment_inner(&mut self) -> Result<bool, ChannelError> {
        if self.check_funded().is_err() || !self.live() || self.state.awaiting_revoke() {
            return Ok(false);
        }
        let funder = self.state.is_funder();
        if !has_changes_for_remote(&self.state.ledger, funder) {
            return Ok(false);
        }
        let n = self.state.remote_number + 1;
        if self.state.counterparty_point(n).is_none() {
            return Ok(false);
        }
        let mut ledger = self.state.ledger.clone();
        assign_remote(&mut ledger, n, funder);
        let built = self.build(&ledger, Side::Remote, n)?;
        let (signature, htlc_signatures) = self
            .signer
            .sign_counterparty_commitment(&self.state.params, &built.tx, Vec::new(), Vec::new(), &self.secp)
            .or_else(|_| close("the signer refused to sign a commitment"))?;
        self.state.ledger = ledger;
        self.state.remote_number = n;
        self.state.last_sent = LastSent::CommitmentSigned;
        let htlcs = self.committed_htlcs(&built);
        let txid = built.tx.trust().txid();
        let id = self.push_update(vec![UpdateStep::CounterpartyCommitment {
            number: n,
            txid,
            commitment: built.tx,
            htlcs,
        }]);
        self.last_cs_update = id;
        let msg = msgs::CommitmentSigned {
            channel_id: self.state.channel_id,
            signature,
            htlc_signatures,
            funding_txid: None,
        };
        self.queue_message(ChannelMessage::CommitmentSigned(msg), Some(id));
        Ok(true)
    }

    /// The peer signed our next commitment: it becomes a monitor update, and
    /// our `revoke_and_ack` follows once that is durable. If the peer's
    /// changes now need to enter its own commitment, our `commitment_signed`
    /// follows too.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] for an invalid commitment or HTLC signature, or
    /// a wrong number of HTLC signatures.
    pub fn handle_commitment_signed(&mut self, msg: &msgs::CommitmentSigned) -> Result<(), ChannelError> {
        let result = self.commitment_signed_inner(msg);
        self.outcome(result)
    }

    fn commitment_signed_inner(&mut self, msg: &msgs::CommitmentSigned) -> Result<(), ChannelError> {
        self.check_funded()?;
        let n = self.state.local_number + 1;
        let funder = self.state.is_funder();
        let mut ledger = self.state.ledger.clone();
        assign_local(&mut ledger, n, self.state.remote_unrevoked, funder);
        let built = self.build(&ledger, Side::Local, n)?;
        let cp = self.state.params.counterparty_parameters.as_ref().expect("known once funded");
        let verified = verify_countersignatures(
            &self.state.params,
            &built.tx,
            &msg.signature,
            &msg.htlc_signatures,
            &self.secp,
        );
        match verified {
            Ok(()) => {}
            Err(None) if msg.htlc_signatures.len() != built.htlcs.len() => {
                return close(format!(
                    "commitment_signed has {} HTLC signatures for {} HTLC outputs",
                    msg.htlc_signatures.len(),
                    built.htlcs.len()
                ))
            }
            Err(None) => return close(format!("invalid signature for our commitment {n}")),
            Err(Some(i)) => {
                return close(format!("invalid signature for HTLC output {i} of our commitment {n}"))
            }
        }
        let htlcs = self.committed_htlcs(&built);
        let holder = HolderCommitmentTransaction::new(
            built.tx,
            msg.signature,
            msg.htlc_signatures.clone(),
            &self.state.params.holder_pubkeys.funding_pubkey,
            &cp.pubkeys.funding_pubkey,
        );
        self.signer
            .validate_holder_commitment(&holder, Vec::new())
            .or_else(|_| close("the signer refused our commitment"))?;
        let secret = self
            .signer
            .release_commitment_secret(commitment_index(n - 1))
            .or_else(|_| close("the signer refused to release a commitment secret"))?;
        let next_point = self.holder_point(n + 1)?;
        self.state.ledger = ledger;
        self.state.local_number = n;
        self.state.last_sent = LastSent::RevokeAndAck;
        let mut steps = vec![UpdateStep::HolderCommitment { commitment: holder, htlcs }];
        steps.extend(self.settle());
        let id = self.push_update(steps);
        self.last_raa_update = id;
        let raa = msgs::RevokeAndACK {
            channel_id: self.state.channel_id,
            per_commitment_secret: secret,
            next_per_commitment_point: next_point,
            release_htlc_message_paths: Vec::new(),
        };
        self.queue_message(ChannelMessage::RevokeAndAck(raa), Some(id));
        self.send_commitment_inner()?;
        self.after_commitment_progress()?;
        Ok(())
    }

    /// The peer revoked its previous commitment.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] if no `revoke_and_ack` was due, or the secret
    /// does not match the point or the secrets revealed before.
    pub fn handle_revoke_and_ack(&mut self, msg: &msgs::RevokeAndACK) -> Result<(), ChannelError> {
        let result = self.revoke_and_ack_inner(msg);
        self.outcome(result)
    }

    fn revoke_and_ack_inner(&mut self, msg: &msgs::RevokeAndACK) -> Result<(), ChannelError> {
        self.check_funded()?;
        if !self.state.awaiting_revoke() {
            return close("revoke_and_ack without a commitment_signed to answer");
        }
        let m = self.state.remote_unrevoked;
        let Ok(secret) = SecretKey::from_slice(&msg.per_commitment_secret) else {
            return close("the revocation secret is not a valid secret key");
        };
        let expected =
            self.state.counterparty_point(m).expect("the point of every signed commitment is kept");
        if PublicKey::from_secret_key(&self.secp, &secret) != expected {
            return close(format!("the revocation secret does not match commitment {m}"));
        }
        let mut secrets = self.state.counterparty_secrets.clone();
        if secrets.provide_secret(commitment_index(m), msg.per_commitment_secret).is_err() {
            return close("the revocation secret does not derive the earlier ones");
        }
        self.signer
            .validate_counterparty_revocation(commitment_index(m), &secret)
            .or_else(|_| close("the signer refused the revocation"))?;
        self.state.counterparty_secrets = secrets;
        self.state.remote_unrevoked = m + 1;
        self.state.remember_counterparty_point(m + 2, msg.next_per_commitment_point);
        let mut steps = vec![UpdateStep::CounterpartySecret { number: m, secret: msg.per_commitment_secret }];
        steps.extend(self.settle());
        self.push_update(steps);
        self.send_commitment_inner()?;
        self.after_commitment_progress()?;
        Ok(())
    }

    /// Reports inbound HTLCs that became irrevocable, and forgets HTLCs and
    /// fee updates whose resolution is irrevocable on both sides.
    pub(super) fn settle(&mut self) -> Vec<UpdateStep> {
        let unrevoked = self.state.remote_unrevoked;
        let irrevocable = |h: &Heights| h.local.is_some() && h.remote.is_some_and(|r| r <= unrevoked);
        let mut steps = Vec::new();
        let ledger = &mut self.state.ledger;
        for h in ledger.htlcs.iter_mut().filter(|h| !h.outbound && !h.irrevocable_reported) {
            if irrevocable(&h.heights) {
                h.irrevocable_reported = true;
                steps.push(UpdateStep::HtlcIrrevocablyCommitted {
                    update_add: h.update_add.clone(),
                    policy_violation: h.policy_violation.clone(),
                });
            }
        }
        let mut kept = Vec::with_capacity(ledger.htlcs.len());
        for h in std::mem::take(&mut ledger.htlcs) {
            match &h.removal {
                Some(r) if irrevocable(&r.heights) => {
                    // A failed HTLC we offered can be failed back upstream now.
                    let failure = match &r.outcome {
                        Outcome::Fulfill(_) => None,
                        Outcome::Fail(reason) => Some(HtlcFailure::Onion(reason.clone())),
                        Outcome::FailMalformed { failure_code, sha256_of_onion } => {
                            Some(HtlcFailure::Malformed {
                                failure_code: *failure_code,
                                sha256_of_onion: *sha256_of_onion,
                            })
                        }
                    };
                    if let (true, Some(failure)) = (h.outbound, failure) {
                        steps.push(UpdateStep::OutboundHtlcFailed {
                            htlc_id: h.id,
                            amount_msat: h.amount_msat(),
                            failure,
                            source: h.source.clone(),
                        });
                    }
                    if matches!(r.outcome, Outcome::Fulfill(_)) {
                        let amount = h.amount_msat();
                        if h.outbound {
                            ledger.settled_ours_msat -= amount;
                            ledger.settled_theirs_msat += amount;
                        } else {
                            ledger.settled_theirs_msat -= amount;
                            ledger.settled_ours_msat += amount;
                        }
                    }
                }
                _ => kept.push(h),
            }
        }
        ledger.htlcs = kept;
        if let Some(latest) =
            ledger.fees.iter().filter(|f| irrevocable(&f.heights)).max_by_key(|f| f.heights.local)
        {
            ledger.base_feerate_per_kw = latest.feerate_per_kw;
            ledger.fees.retain(|f| !irrevocable(&f.heights));
        }
        steps
    }
}
