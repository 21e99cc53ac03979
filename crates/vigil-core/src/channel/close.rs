//! Cooperative close (BOLT 2): `shutdown`, then `closing_signed` fee
//! negotiation with `fee_range`.
//!
//! Once both sides sent `shutdown` and no HTLC or fee update is left, the
//! funder proposes a fee and a range; the fundee accepts it when it is in its
//! own range, or answers with a fee in the overlap; a node that receives the
//! fee it last proposed holds both signatures and the close is agreed. The
//! agreed transaction becomes a monitor update before it is broadcast.

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
    /// channel's close script). No new HTLCs are accepted after it.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] before funding, for a script of a form BOLT 2
    /// does not allow, one that differs from our upfront script, or while
    /// our own updates still wait for a commitment.
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
        self.send_commitment_inner()?;
        if self.own_changes_uncommitted() {
            return ignore("our updates wait for a commitment; shut down after the next revoke_and_ack");
        }
        self.send_shutdown(script);
        let result = self.maybe_negotiate_close();
        self.outcome(result)
    }

    fn own_changes_uncommitted(&self) -> bool {
        let l = &self.state.ledger;
        let funder = self.state.is_funder();
        l.htlcs.iter().any(|h| {
            (h.outbound && h.heights.remote.is_none())
                || (!h.outbound && h.removal.as_ref().is_some_and(|r| r.heights.remote.is_none()))
        }) || (funder && l.fees.iter().any(|f| f.heights.remote.is_none()))
    }

    fn their_changes_uncommitted(&self) -> bool {
        let l = &self.state.ledger;
        let funder = self.state.is_funder();
        l.htlcs.iter().any(|h| {
            (!h.outbound && h.heights.local.is_none())
                || (h.outbound && h.removal.as_ref().is_some_and(|r| r.heights.local.is_none()))
        }) || (!funder && l.fees.iter().any(|f| f.heights.local.is_none()))
    }

    fn send_shutdown(&mut self, script: ScriptBuf) {
        self.state.shutdown.ours = Some(script.clone());
        if self.connected && !self.awaiting_reestablish {
            let msg = msgs::Shutdown { channel_id: self.state.channel_id, scriptpubkey: script };
            self.queue_message(ChannelMessage::Shutdown(msg), None);
        }
        self.record_shutdown_scripts();
    }

    /// Once both scripts are known, the monitor learns them (to recognise the
    /// closing transaction on chain).
    fn record_shutdown_scripts(&mut self) {
        if let (Some(holder), Some(counterparty)) = (&self.state.shutdown.ours, &self.state.shutdown.theirs) {
            let step =
                UpdateStep::ShutdownScripts { holder: holder.clone(), counterparty: counterparty.clone() };
            self.push_update(vec![step]);
        }
    }

    /// The peer's `shutdown`: we answer with ours and, once nothing is
    /// pending, negotiate the close.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Warn`] for a script of a form BOLT 2 does not allow;
    /// [`ChannelError::Close`] for a script that breaks the upfront script or
    /// changes, or a `shutdown` sent with uncommitted updates.
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
            Some(s) if *s == msg.scriptpubkey => return Ok(()),
            Some(_) => return close("shutdown script changed"),
            None => {}
        }
        if self.their_changes_uncommitted() {
            return close("shutdown while updates of the sender are not committed");
        }
        self.state.shutdown.theirs = Some(msg.scriptpubkey.clone());
        if self.state.shutdown.ours.is_none() {
            self.send_commitment_inner()?;
            let script = self.close_script.clone();
            self.send_shutdown(script);
        } else {
            self.record_shutdown_scripts();
        }
        self.maybe_negotiate_close()
    }

    /// Our and their balances (sat) with no HTLC left.
    fn closing_balances(&self) -> (u64, u64) {
        let view = self.state.ledger.view(Side::Local, self.state.local_number);
        (view.ours_msat / 1000, view.theirs_msat / 1000)
    }

    /// The closing transaction at `fee_sat`, paid by the funder; outputs
    /// below the larger dust limit are left out.
    fn closing_transaction(&self, fee_sat: u64) -> Result<ClosingTransaction, ChannelError> {
        let (mut ours, mut theirs) = self.closing_balances();
        let funder = if self.state.is_funder() { &mut ours } else { &mut theirs };
        let Some(rest) = funder.checked_sub(fee_sat) else {
            return close(format!("the funder cannot pay a closing fee of {fee_sat} sat"));
        };
        *funder = rest;
        let dust = self.state.holder.dust_limit_sat.max(self.state.counterparty.dust_limit_sat);
        if ours < dust {
            ours = 0;
        }
        if theirs < dust {
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
        let tx = self.closing_transaction(0)?;
        let weight = tx.trust().built_transaction().weight().to_wu() + CLOSING_WITNESS_WEIGHT;
        Ok(fee_for_weight(feerate_per_kw, weight))
    }

    /// The fee range we accept: from the relay floor to what the funder can
    /// pay (as fundee, any fee the funder pays is fine with us).
    fn our_fee_range(&self) -> Result<(u64, u64), ChannelError> {
        let (ours, theirs) = self.closing_balances();
        let funder_balance = if self.state.is_funder() { ours } else { theirs };
        let min = self.closing_fee(MIN_FEERATE_PER_KW)?;
        let max = if self.state.is_funder() {
            let preferred =
                self.closing_fee(self.fee_estimate.unwrap_or(self.state.ledger.base_feerate_per_kw))?;
            (preferred * 3).min(funder_balance)
        } else {
            funder_balance
        };
        Ok((min.min(max), max))
    }

    fn ready_to_close(&self) -> bool {
        self.state.phase == Phase::Funded
            && self.state.shutdown.ours.is_some()
            && self.state.shutdown.theirs.is_some()
            && self.state.ledger.htlcs.is_empty()
            && self.state.ledger.fees.is_empty()
            && !self.state.awaiting_revoke()
            && self.connected
            && !self.awaiting_reestablish
    }

    /// The funder opens the fee negotiation once nothing is pending.
    pub(super) fn maybe_negotiate_close(&mut self) -> Result<(), ChannelError> {
        if !self.ready_to_close() || !self.state.is_funder() || self.state.shutdown.our_last_fee_sat.is_some()
        {
            return Ok(());
        }
        let (min, max) = self.our_fee_range()?;
        let preferred =
            self.closing_fee(self.fee_estimate.unwrap_or(self.state.ledger.base_feerate_per_kw))?;
        let fee = preferred.clamp(min, max);
        self.propose_closing_fee(fee, (min, max))
    }

    fn sign_closing(&self, fee_sat: u64) -> Result<(ClosingTransaction, Signature), ChannelError> {
        let tx = self.closing_transaction(fee_sat)?;
        let sig = self
            .signer
            .sign_closing_transaction(&self.state.params, &tx, &self.secp)
            .or_else(|_| close("the signer refused to sign the closing transaction"))?;
        Ok((tx, sig))
    }

    fn propose_closing_fee(&mut self, fee_sat: u64, range: (u64, u64)) -> Result<(), ChannelError> {
        let (_, signature) = self.sign_closing(fee_sat)?;
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
        self.queue_message(ChannelMessage::ClosingSigned(msg), None);
        Ok(())
    }

    /// The peer's `closing_signed`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] before both `shutdown`s or with HTLCs left, for
    /// an invalid signature, or when the fee ranges do not overlap.
    pub fn handle_closing_signed(&mut self, msg: &msgs::ClosingSigned) -> Result<(), ChannelError> {
        let result = self.closing_signed_inner(msg);
        self.outcome(result)
    }

    fn closing_signed_inner(&mut self, msg: &msgs::ClosingSigned) -> Result<(), ChannelError> {
        self.check_live()?;
        if !self.ready_to_close() {
            return close("closing_signed before both shutdowns or with updates pending");
        }
        let (tx, our_sig) = self.sign_closing(msg.fee_satoshis)?;
        let cp = self.state.params.counterparty_parameters.as_ref().expect("funded");
        let sighash = tx.trust().get_sighash_all(&self.funding_script(), self.state.value_sat());
        if self.secp.verify_ecdsa(&sighash, &msg.signature, &cp.pubkeys.funding_pubkey).is_err() {
            return close("invalid signature for the closing transaction");
        }
        if self.state.shutdown.our_last_fee_sat == Some(msg.fee_satoshis) {
            return self.finish_cooperative_close(&tx, our_sig, msg.signature);
        }
        let ours = match self.state.shutdown.our_fee_range {
            Some(range) => range,
            None => self.our_fee_range()?,
        };
        let theirs = msg
            .fee_range
            .as_ref()
            .map_or((msg.fee_satoshis, msg.fee_satoshis), |r| (r.min_fee_satoshis, r.max_fee_satoshis));
        let (low, high) = (ours.0.max(theirs.0), ours.1.min(theirs.1));
        if low > high {
            return close(format!(
                "no closing fee acceptable to both: ours {}..={}, theirs {}..={}",
                ours.0, ours.1, theirs.0, theirs.1
            ));
        }
        if (ours.0..=ours.1).contains(&msg.fee_satoshis) {
            // Agree: echo the fee; we now hold both signatures.
            self.propose_closing_fee(msg.fee_satoshis, ours)?;
            return self.finish_cooperative_close(&tx, our_sig, msg.signature);
        }
        self.propose_closing_fee(msg.fee_satoshis.clamp(low, high), ours)
    }

    fn finish_cooperative_close(
        &mut self,
        tx: &ClosingTransaction,
        our_sig: Signature,
        their_sig: Signature,
    ) -> Result<(), ChannelError> {
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
        Ok(())
    }
}
