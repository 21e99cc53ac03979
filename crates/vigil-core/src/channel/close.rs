//! Cooperative close (BOLT 2): `shutdown`, then `closing_signed` fee
//! negotiation.
//!
//! Our `shutdown` goes out only once none of our updates is left unsigned
//! (BOLT 2 forbids a `shutdown` with updates pending on the peer's side); it
//! waits for the next `commitment_signed` otherwise. Once both sides sent
//! `shutdown` and no HTLC or fee update is left, the funder proposes a fee
//! and a `fee_range`; the fundee accepts it when it is in its own range, or
//! answers with a fee in the overlap (with a peer that sends no range, each
//! counter-proposal moves halfway). A node that receives the fee it last
//! proposed holds both signatures. The agreed transaction becomes a monitor
//! update before anything else leaves.
//!
//! BOLT 3 lets each signer drop outputs below its own dust limit, so a
//! signature is checked against every variant the peer may have signed.

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::{ScriptBuf, Transaction, Witness};
use lightning::ln::chan_utils::ClosingTransaction;
use lightning::ln::msgs;
use lightning::sign::ecdsa::EcdsaChannelSigner;

use super::config::MIN_FEERATE_PER_KW;
use super::error::{close, ignore};
use super::ledger::Side;
use super::limits::check_shutdown_script;
use super::state::Phase;
use super::{Channel, ChannelError, ChannelEvent, ChannelMessage, CloseReason, UpdateStep};
use crate::fees::fee_for_weight;

/// The weight a closing transaction's witness adds: the element count, an
/// empty element, two signatures and the funding script.
const CLOSING_WITNESS_WEIGHT: u64 = 1 + 1 + 73 + 73 + 1 + 71;

impl<S: EcdsaChannelSigner> Channel<S> {
    /// Starts a cooperative close, paying our side to `script` (or the
    /// channel's close script). No new HTLCs are accepted after it; our
    /// `shutdown` goes out once our pending updates are signed.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] before funding, for a script of a form BOLT 2
    /// does not allow, or one that differs from our upfront script.
    pub fn shutdown(&mut self, script: Option<ScriptBuf>) -> Result<(), ChannelError> {
        self.check_live()?;
        if self.state.phase != Phase::Funded {
            return ignore("only a funded channel can be shut down");
        }
        if self.state.shutdown.ours.is_some() {
            return Ok(());
        }
        let script = script.unwrap_or_else(|| self.close_script.clone());
        check_shutdown_script(&script).map_err(|e| ChannelError::Ignore(e.message().into()))?;
        if self.state.our_upfront_shutdown.as_ref().is_some_and(|s| *s != script) {
            return ignore("the script differs from our upfront shutdown script");
        }
        self.state.shutdown.ours = Some(script);
        let result = self.send_commitment_inner().and_then(|_| self.after_commitment_progress());
        self.outcome(result)
    }

    /// Whether some of our updates wait for a `commitment_signed`.
    pub(super) fn own_changes_uncommitted(&self) -> bool {
        let l = &self.state.ledger;
        let funder = self.state.is_funder();
        l.htlcs.iter().any(|h| {
            (h.outbound && h.heights.remote.is_none())
                || (!h.outbound && h.removal.as_ref().is_some_and(|r| r.heights.remote.is_none()))
        }) || (funder && l.fees.iter().any(|f| f.heights.remote.is_none()))
    }

    /// Sends our `shutdown` if we decided on one and nothing of ours is
    /// unsigned, then records the scripts once both are known.
    fn maybe_send_shutdown(&mut self) {
        let Some(script) = self.state.shutdown.ours.clone() else { return };
        if !self.state.shutdown.ours_sent
            && self.connected
            && !self.awaiting_reestablish
            && !self.own_changes_uncommitted()
        {
            self.state.shutdown.ours_sent = true;
            let msg = msgs::Shutdown { channel_id: self.state.channel_id, scriptpubkey: script };
            self.queue_message(ChannelMessage::Shutdown(msg), None);
        }
        if let (Some(holder), Some(counterparty)) = (&self.state.shutdown.ours, &self.state.shutdown.theirs) {
            if self.state.shutdown.ours_sent && !self.state.shutdown.scripts_recorded {
                self.state.shutdown.scripts_recorded = true;
                let step = UpdateStep::ShutdownScripts {
                    holder: holder.clone(),
                    counterparty: counterparty.clone(),
                };
                self.push_update(vec![step]);
            }
        }
    }

    /// Called after each step of the commitment dance: a held `shutdown` may
    /// go out now, and the fee negotiation may start.
    pub(super) fn after_commitment_progress(&mut self) -> Result<(), ChannelError> {
        self.maybe_send_shutdown();
        self.maybe_negotiate_close()
    }

    /// The peer's `shutdown`: we answer with ours (once our updates are
    /// signed) and, once nothing is pending, negotiate the close.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Warn`] for a script of a form BOLT 2 does not allow;
    /// [`ChannelError::Close`] for a script that breaks the upfront script or
    /// changes, or a `shutdown` sent after HTLCs it has not signed.
    pub fn handle_shutdown(&mut self, msg: &msgs::Shutdown) -> Result<(), ChannelError> {
        let result = self.shutdown_inner(msg);
        self.outcome(result)
    }

    fn shutdown_inner(&mut self, msg: &msgs::Shutdown) -> Result<(), ChannelError> {
        self.check_live()?;
        if self.state.phase != Phase::Funded {
            return close("shutdown before the channel is funded");
        }
        check_shutdown_script(&msg.scriptpubkey)?;
        if self.state.their_upfront_shutdown.as_ref().is_some_and(|s| *s != msg.scriptpubkey) {
            return close("shutdown script differs from the upfront shutdown script");
        }
        match &self.state.shutdown.theirs {
            Some(s) if *s == msg.scriptpubkey => return self.after_commitment_progress(),
            Some(_) => return close("shutdown script changed"),
            None => {}
        }
        // Like LDK, only HTLCs the sender added without signing them break
        // the rule; its pending removals and fee updates resolve normally.
        if self.state.ledger.htlcs.iter().any(|h| !h.outbound && h.heights.local.is_none()) {
            return close("shutdown while HTLCs of the sender are not committed");
        }
        self.state.shutdown.theirs = Some(msg.scriptpubkey.clone());
        if self.state.shutdown.ours.is_none() {
            self.state.shutdown.ours = Some(self.close_script.clone());
        }
        self.send_commitment_inner()?;
        self.after_commitment_progress()
    }

    /// Our and their balances (sat) with no HTLC left.
    fn closing_balances(&self) -> (u64, u64) {
        let view = self.state.ledger.view(Side::Local, self.state.local_number);
        (view.ours_msat / 1000, view.theirs_msat / 1000)
    }

    /// The closing transaction at `fee_sat`, paid by the funder, as a signer
    /// with dust limit `dust_sat` builds it; `drop_ours` also leaves out our
    /// output.
    fn closing_transaction(
        &self,
        fee_sat: u64,
        dust_sat: u64,
        drop_ours: bool,
    ) -> Result<ClosingTransaction, ChannelError> {
        let (mut ours, mut theirs) = self.closing_balances();
        let funder = if self.state.is_funder() { &mut ours } else { &mut theirs };
        let Some(rest) = funder.checked_sub(fee_sat) else {
            return close(format!("the funder cannot pay a closing fee of {fee_sat} sat"));
        };
        *funder = rest;
        if ours < dust_sat || drop_ours {
            ours = 0;
        }
        if theirs < dust_sat {
            theirs = 0;
        }
        let (Some(our_script), Some(their_script)) = (&self.state.shutdown.ours, &self.state.shutdown.theirs)
        else {
            return close("closing_signed before both shutdown messages");
        };
        let outpoint = self.state.params.funding_outpoint.expect("funded").into_bitcoin_outpoint();
        Ok(ClosingTransaction::new(ours, theirs, our_script.clone(), their_script.clone(), outpoint))
    }

    /// The closing fee at `feerate_per_kw`.
    fn closing_fee(&self, feerate_per_kw: u32) -> Result<u64, ChannelError> {
        let tx = self.closing_transaction(0, self.state.holder.dust_limit_sat, false)?;
        let weight = tx.trust().built_transaction().weight().to_wu() + CLOSING_WITNESS_WEIGHT;
        Ok(fee_for_weight(feerate_per_kw, weight))
    }

    fn preferred_closing_fee(&self) -> Result<u64, ChannelError> {
        self.closing_fee(self.fee_estimate.unwrap_or(self.state.ledger.base_feerate_per_kw))
    }

    /// The fee range we accept: from the relay floor to what the funder can
    /// pay (as fundee, any fee the funder pays is fine with us).
    fn our_fee_range(&self) -> Result<(u64, u64), ChannelError> {
        let (ours, theirs) = self.closing_balances();
        let funder_balance = if self.state.is_funder() { ours } else { theirs };
        let min = self.closing_fee(MIN_FEERATE_PER_KW)?;
        let max = if self.state.is_funder() {
            (self.preferred_closing_fee()? * 3).min(funder_balance)
        } else {
            funder_balance
        };
        Ok((min.min(max), max))
    }

    fn ready_to_close(&self) -> bool {
        self.state.phase == Phase::Funded
            && self.state.shutdown.ours_sent
            && self.state.shutdown.theirs.is_some()
            && self.state.ledger.htlcs.is_empty()
            && self.state.ledger.fees.is_empty()
            && !self.state.awaiting_revoke()
            && self.connected
            && !self.awaiting_reestablish
    }

    /// The funder opens the fee negotiation once nothing is pending.
    fn maybe_negotiate_close(&mut self) -> Result<(), ChannelError> {
        if !self.ready_to_close() || !self.state.is_funder() || self.state.shutdown.our_last_fee_sat.is_some()
        {
            return Ok(());
        }
        let range = self.our_fee_range()?;
        let fee = self.preferred_closing_fee()?.clamp(range.0, range.1);
        self.propose_closing_fee(fee, range, None)
    }

    fn sign_closing(&self, tx: &ClosingTransaction) -> Result<Signature, ChannelError> {
        self.signer
            .sign_closing_transaction(&self.state.params, tx, &self.secp)
            .or_else(|_| close("the signer refused to sign the closing transaction"))
    }

    /// Proposes `fee_sat` (built with our dust limit), released after update
    /// `after` if given.
    fn propose_closing_fee(
        &mut self,
        fee_sat: u64,
        range: (u64, u64),
        after: Option<u64>,
    ) -> Result<(), ChannelError> {
        let tx = self.closing_transaction(fee_sat, self.state.holder.dust_limit_sat, false)?;
        let signature = self.sign_closing(&tx)?;
        self.queue_closing_signed(fee_sat, range, signature, after);
        Ok(())
    }

    fn queue_closing_signed(
        &mut self,
        fee_sat: u64,
        range: (u64, u64),
        signature: Signature,
        after: Option<u64>,
    ) {
        self.state.shutdown.our_last_fee_sat = Some(fee_sat);
        self.state.shutdown.our_fee_range = Some(range);
        let msg = msgs::ClosingSigned {
            channel_id: self.state.channel_id,
            fee_satoshis: fee_sat,
            signature,
            fee_range: Some(msgs::ClosingSignedFeeRange {
                min_fee_satoshis: range.0,
                max_fee_satoshis: range.1,
            }),
        };
        self.queue_message(ChannelMessage::ClosingSigned(msg), after);
    }

    /// The variant of the closing transaction at `fee_sat` that `signature`
    /// signs: built with the peer's dust limit or with ours, with or without
    /// our output.
    fn signed_closing_variant(
        &self,
        fee_sat: u64,
        signature: &Signature,
    ) -> Result<ClosingTransaction, ChannelError> {
        let their_key =
            self.state.params.counterparty_parameters.as_ref().expect("funded").pubkeys.funding_pubkey;
        let funding_script = self.funding_script();
        let dusts = [self.state.counterparty.dust_limit_sat, self.state.holder.dust_limit_sat];
        for drop_ours in [false, true] {
            for dust in dusts {
                let tx = self.closing_transaction(fee_sat, dust, drop_ours)?;
                let sighash = tx.trust().get_sighash_all(&funding_script, self.state.value_sat());
                if self.secp.verify_ecdsa(&sighash, signature, &their_key).is_ok() {
                    return Ok(tx);
                }
            }
        }
        close("invalid signature for the closing transaction")
    }

    /// The peer's `closing_signed`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] before both `shutdown`s or with HTLCs left, for
    /// an invalid signature, or when no fee suits both sides.
    pub fn handle_closing_signed(&mut self, msg: &msgs::ClosingSigned) -> Result<(), ChannelError> {
        let result = self.closing_signed_inner(msg);
        self.outcome(result)
    }

    fn closing_signed_inner(&mut self, msg: &msgs::ClosingSigned) -> Result<(), ChannelError> {
        self.check_live()?;
        if !self.ready_to_close() {
            return close("closing_signed before both shutdowns or with updates pending");
        }
        let fee = msg.fee_satoshis;
        let tx = self.signed_closing_variant(fee, &msg.signature)?;
        let our_sig = self.sign_closing(&tx)?;
        if self.state.shutdown.our_last_fee_sat == Some(fee) {
            self.finish_cooperative_close(&tx, our_sig, msg.signature);
            return Ok(());
        }
        let ours = match self.state.shutdown.our_fee_range {
            Some(range) => range,
            None => self.our_fee_range()?,
        };
        if (ours.0..=ours.1).contains(&fee) {
            // Agree: the close is durable first, then our echo goes out.
            let id = self.finish_cooperative_close(&tx, our_sig, msg.signature);
            self.queue_closing_signed(fee, ours, our_sig, Some(id));
            return Ok(());
        }
        let counter = match &msg.fee_range {
            Some(r) => {
                let (low, high) = (ours.0.max(r.min_fee_satoshis), ours.1.min(r.max_fee_satoshis));
                if low > high {
                    return close(format!(
                        "no closing fee acceptable to both: ours {}..={}, theirs {}..={}",
                        ours.0, ours.1, r.min_fee_satoshis, r.max_fee_satoshis
                    ));
                }
                fee.clamp(low, high)
            }
            None => {
                // Legacy negotiation: move halfway towards the peer's fee.
                let last = match self.state.shutdown.our_last_fee_sat {
                    Some(f) => f,
                    None => self.preferred_closing_fee()?,
                };
                let halfway = (last / 2 + fee / 2).clamp(ours.0, ours.1);
                if Some(halfway) == self.state.shutdown.our_last_fee_sat {
                    return close(format!(
                        "the closing fee negotiation is stuck at {fee} sat, outside {}..={}",
                        ours.0, ours.1
                    ));
                }
                halfway
            }
        };
        self.propose_closing_fee(counter, ours, None)
    }

    /// Records the agreed close: a monitor update with the signed
    /// transaction, then the broadcast. Returns the update's id.
    fn finish_cooperative_close(
        &mut self,
        tx: &ClosingTransaction,
        our_sig: Signature,
        their_sig: Signature,
    ) -> u64 {
        let ours = self.state.params.holder_pubkeys.funding_pubkey;
        let theirs =
            self.state.params.counterparty_parameters.as_ref().expect("funded").pubkeys.funding_pubkey;
        let der = |s: &Signature| {
            let mut v = s.serialize_der().to_vec();
            v.push(bitcoin::sighash::EcdsaSighashType::All as u8);
            v
        };
        let (first, second) = if ours.serialize() < theirs.serialize() {
            (der(&our_sig), der(&their_sig))
        } else {
            (der(&their_sig), der(&our_sig))
        };
        let mut transaction: Transaction = tx.trust().built_transaction().clone();
        transaction.input[0].witness =
            Witness::from_slice(&[Vec::new(), first, second, self.funding_script().to_bytes()]);
        self.state.phase = Phase::Closed(CloseReason::Cooperative);
        let id = self.push_update(vec![UpdateStep::CooperativeClose { transaction: transaction.clone() }]);
        self.queue_event(ChannelEvent::BroadcastClosing { transaction }, Some(id));
        self.queue_event(ChannelEvent::Closed { reason: CloseReason::Cooperative }, Some(id));
        id
    }
}
