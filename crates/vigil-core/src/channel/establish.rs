//! Channel establishment (BOLT 2, v1): `open_channel`, `accept_channel`,
//! `funding_created`, `funding_signed` and `channel_ready`, as funder and as
//! fundee, with `option_scid_alias` and zero-conf.

use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{ScriptBuf, Txid};
use lightning::chain::transaction::OutPoint;
use lightning::ln::chan_utils::{
    ChannelPublicKeys, ChannelTransactionParameters, CounterpartyChannelTransactionParameters,
    CounterpartyCommitmentSecrets, HolderCommitmentTransaction,
};
use lightning::ln::channel_keys::{DelayedPaymentBasepoint, HtlcBasepoint, RevocationBasepoint};
use lightning::ln::msgs;
use lightning::ln::types::ChannelId;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::types::features::ChannelTypeFeatures;

use super::commitment::verify_countersignatures;
use super::config::{PartyParams, MAX_HTLCS, MIN_DUST_LIMIT_SAT, MIN_FEERATE_PER_KW};
use super::error::{close, ignore};
use super::ledger::{Ledger, Side};
use super::limits::{check_shutdown_script, initial_balances_ok};
use super::state::{ChannelSnapshot, LastSent, Phase, ShutdownState};
use super::{Channel, ChannelConfig, ChannelError, ChannelEvent, ChannelMessage, UpdateStep};

/// What the funder decides when opening a channel.
#[derive(Debug, Clone)]
pub struct OutboundParams {
    /// The peer.
    pub counterparty_node_id: PublicKey,
    /// The chain the channel lives on.
    pub chain_hash: ChainHash,
    /// Random bytes for the temporary channel id.
    pub temporary_channel_id: [u8; 32],
    /// Derives the channel's signer.
    pub channel_keys_id: [u8; 32],
    /// The channel value.
    pub funding_sat: u64,
    /// Value given to the peer at opening.
    pub push_msat: u64,
    /// The initial commitment fee rate.
    pub feerate_per_kw: u32,
    /// The channel type to propose.
    pub channel_type: ChannelTypeFeatures,
    /// Our alias for the channel (random).
    pub scid_alias: u64,
    /// Whether to announce the channel.
    pub announce: bool,
    /// The current chain height.
    pub best_height: u32,
    /// The script a cooperative close pays us to.
    pub close_script: ScriptBuf,
}

/// What the fundee decides when accepting a channel.
#[derive(Debug, Clone)]
pub struct InboundParams {
    /// The peer.
    pub counterparty_node_id: PublicKey,
    /// The chain we are on; an `open_channel` for another is refused.
    pub chain_hash: ChainHash,
    /// Derives the channel's signer.
    pub channel_keys_id: [u8; 32],
    /// Our alias for the channel (random).
    pub scid_alias: u64,
    /// The current chain height.
    pub best_height: u32,
    /// The script a cooperative close pays us to.
    pub close_script: ScriptBuf,
    /// The current fee estimate, to judge the proposed commitment fee rate.
    pub fee_estimate: Option<u32>,
}

/// The channel types Vigil supports: `option_static_remotekey` or
/// `option_anchors_zero_fee_htlc_tx`, each optionally with
/// `option_scid_alias` and `option_zeroconf`.
pub fn supported_channel_type(channel_type: &ChannelTypeFeatures) -> bool {
    let mut supported = ChannelTypeFeatures::anchors_zero_htlc_fee_and_dependencies();
    supported.set_scid_privacy_required();
    supported.set_zero_conf_required();
    channel_type.supports_static_remote_key() && !channel_type.requires_unknown_bits_from(&supported)
}

fn counterparty_keys(c: &msgs::CommonOpenChannelFields) -> ChannelPublicKeys {
    ChannelPublicKeys {
        funding_pubkey: c.funding_pubkey,
        revocation_basepoint: RevocationBasepoint(c.revocation_basepoint),
        payment_point: c.payment_basepoint,
        delayed_payment_basepoint: DelayedPaymentBasepoint(c.delayed_payment_basepoint),
        htlc_basepoint: HtlcBasepoint(c.htlc_basepoint),
    }
}

/// An upfront shutdown script from a message: absent and empty both mean
/// "none".
fn upfront(script: &Option<ScriptBuf>) -> Result<Option<ScriptBuf>, ChannelError> {
    match script {
        Some(s) if !s.is_empty() => {
            check_shutdown_script(s)?;
            Ok(Some(s.clone()))
        }
        _ => Ok(None),
    }
}

/// Checks the parameters the peer announced, from our side (BOLT 2 rules for
/// `open_channel` and `accept_channel`).
fn check_counterparty_params(
    config: &ChannelConfig,
    funding_sat: u64,
    theirs: &PartyParams,
    ours: &PartyParams,
) -> Result<(), ChannelError> {
    if theirs.to_self_delay > config.max_to_self_delay {
        return close(format!(
            "to_self_delay {} is above our maximum of {}",
            theirs.to_self_delay, config.max_to_self_delay
        ));
    }
    if theirs.max_accepted_htlcs == 0 || theirs.max_accepted_htlcs > MAX_HTLCS {
        return close(format!("max_accepted_htlcs {} is not in 1..=483", theirs.max_accepted_htlcs));
    }
    if theirs.dust_limit_sat < MIN_DUST_LIMIT_SAT {
        return close(format!("dust_limit_satoshis {} is below 354", theirs.dust_limit_sat));
    }
    if theirs.dust_limit_sat > funding_sat / 10 {
        return close(format!("dust_limit_satoshis {} is unreasonably large", theirs.dust_limit_sat));
    }
    if theirs.channel_reserve_sat > funding_sat / 5 {
        return close(format!(
            "channel_reserve_satoshis {} is above 20% of the channel",
            theirs.channel_reserve_sat
        ));
    }
    if theirs.channel_reserve_sat < ours.dust_limit_sat {
        return close("the reserve required of us is below our dust limit");
    }
    if ours.channel_reserve_sat < theirs.dust_limit_sat {
        return close("their dust limit is above the reserve we require of them");
    }
    if theirs.htlc_minimum_msat >= funding_sat * 1000 {
        return close("htlc_minimum_msat is not below the channel value");
    }
    if theirs.max_htlc_value_in_flight_msat == 0 {
        return close("max_htlc_value_in_flight_msat is zero");
    }
    Ok(())
}

impl<S: EcdsaChannelSigner> Channel<S> {
    // A private constructor of the snapshot; its callers name every field.
    #[allow(clippy::too_many_arguments)]
    fn new_state(
        counterparty_node_id: PublicKey,
        temporary_channel_id: ChannelId,
        channel_keys_id: [u8; 32],
        params: ChannelTransactionParameters,
        holder: PartyParams,
        ledger: Ledger,
        scid_alias: u64,
        phase: Phase,
    ) -> ChannelSnapshot {
        ChannelSnapshot {
            temporary_channel_id,
            channel_id: temporary_channel_id,
            counterparty_node_id,
            channel_keys_id,
            phase,
            params,
            holder,
            counterparty: holder,
            minimum_depth: 0,
            announced: false,
            our_upfront_shutdown: None,
            their_upfront_shutdown: None,
            funding_confirmed_height: None,
            short_channel_id: None,
            our_scid_alias: scid_alias,
            their_scid_alias: None,
            channel_ready_sent: false,
            channel_ready_received: false,
            local_number: 0,
            remote_number: 0,
            remote_unrevoked: 0,
            counterparty_points: Vec::new(),
            counterparty_secrets: super::state::RevealedSecrets(CounterpartyCommitmentSecrets::new()),
            ledger,
            last_sent: LastSent::Nothing,
            shutdown: ShutdownState::default(),
            next_update_id: 1,
        }
    }

    fn our_common_keys(&self) -> Result<(ChannelPublicKeys, PublicKey), ChannelError> {
        Ok((self.state.params.holder_pubkeys.clone(), self.holder_point(0)?))
    }

    /// Opens a channel as funder and queues `open_channel`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] for an unsupported channel type, a value
    /// outside our limits, a push above the value, a fee rate below 253 or a
    /// balance that cannot pay the first commitment.
    pub fn new_outbound(config: ChannelConfig, signer: S, p: OutboundParams) -> Result<Self, ChannelError> {
        if !supported_channel_type(&p.channel_type) {
            return ignore("unsupported channel type");
        }
        if p.funding_sat < config.min_funding_sat || p.funding_sat > config.max_funding_sat {
            return ignore(format!("a channel of {} sat is outside our limits", p.funding_sat));
        }
        if p.push_msat > p.funding_sat * 1000 {
            return ignore("push_msat exceeds the channel value");
        }
        if p.feerate_per_kw < MIN_FEERATE_PER_KW {
            return ignore("the fee rate is below 253 sat/kw");
        }
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let holder = config.our_params(p.funding_sat);
        let params = ChannelTransactionParameters {
            holder_pubkeys: signer.pubkeys(&secp),
            holder_selected_contest_delay: holder.to_self_delay,
            is_outbound_from_holder: true,
            counterparty_parameters: None,
            funding_outpoint: None,
            splice_parent_funding_txid: None,
            channel_type_features: p.channel_type.clone(),
            channel_value_satoshis: p.funding_sat,
        };
        let ledger = Ledger::new(p.funding_sat * 1000 - p.push_msat, p.push_msat, p.feerate_per_kw);
        let tmp = ChannelId::from_bytes(p.temporary_channel_id);
        let mut state = Self::new_state(
            p.counterparty_node_id,
            tmp,
            p.channel_keys_id,
            params,
            holder,
            ledger,
            p.scid_alias,
            Phase::OpenSent,
        );
        state.announced = p.announce;
        if !initial_balances_ok(&state, p.feerate_per_kw) {
            return ignore("our balance cannot pay the first commitment's fee");
        }
        let mut channel = Self::with_state(state, signer, config, p.close_script, p.best_height);
        let (keys, first_point) = channel.our_common_keys()?;
        let open = msgs::OpenChannel {
            common_fields: msgs::CommonOpenChannelFields {
                chain_hash: p.chain_hash,
                temporary_channel_id: tmp,
                funding_satoshis: p.funding_sat,
                dust_limit_satoshis: holder.dust_limit_sat,
                max_htlc_value_in_flight_msat: holder.max_htlc_value_in_flight_msat,
                htlc_minimum_msat: holder.htlc_minimum_msat,
                commitment_feerate_sat_per_1000_weight: p.feerate_per_kw,
                to_self_delay: holder.to_self_delay,
                max_accepted_htlcs: holder.max_accepted_htlcs,
                funding_pubkey: keys.funding_pubkey,
                revocation_basepoint: keys.revocation_basepoint.to_public_key(),
                payment_basepoint: keys.payment_point,
                delayed_payment_basepoint: keys.delayed_payment_basepoint.to_public_key(),
                htlc_basepoint: keys.htlc_basepoint.to_public_key(),
                first_per_commitment_point: first_point,
                channel_flags: u8::from(p.announce),
                shutdown_scriptpubkey: Some(ScriptBuf::new()),
                channel_type: Some(p.channel_type),
            },
            push_msat: p.push_msat,
            channel_reserve_satoshis: holder.channel_reserve_sat,
        };
        channel.queue_message(ChannelMessage::OpenChannel(open), None);
        Ok(channel)
    }

    /// Accepts a peer's `open_channel` as fundee and queues `accept_channel`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] naming the rule the proposal breaks (the
    /// runtime answers it with an `error`).
    pub fn new_inbound(
        config: ChannelConfig,
        signer: S,
        p: InboundParams,
        open: &msgs::OpenChannel,
    ) -> Result<Self, ChannelError> {
        let c = &open.common_fields;
        if c.chain_hash != p.chain_hash {
            return close("open_channel is for another chain");
        }
        let Some(channel_type) = c.channel_type.clone() else {
            return close("open_channel without channel_type is not supported");
        };
        if !supported_channel_type(&channel_type) {
            return close("unsupported channel type");
        }
        if channel_type.requires_zero_conf() && !config.accept_zero_conf {
            return close("we do not accept zero-conf channels from this peer");
        }
        if c.funding_satoshis < config.min_funding_sat || c.funding_satoshis > config.max_funding_sat {
            return close(format!("a channel of {} sat is outside our limits", c.funding_satoshis));
        }
        if open.push_msat > c.funding_satoshis * 1000 {
            return close("push_msat exceeds the channel value");
        }
        let feerate = c.commitment_feerate_sat_per_1000_weight;
        if feerate < MIN_FEERATE_PER_KW {
            return close(format!("feerate {feerate} is below 253 sat/kw"));
        }
        if let Some(estimate) = p.fee_estimate {
            let factor = config.feerate_tolerance_factor.max(1);
            if feerate > estimate.saturating_mul(factor) {
                return close(format!("feerate {feerate} is unreasonably high (estimate {estimate})"));
            }
        }
        let holder = config.our_params(c.funding_satoshis);
        let theirs = PartyParams {
            dust_limit_sat: c.dust_limit_satoshis,
            max_htlc_value_in_flight_msat: c.max_htlc_value_in_flight_msat,
            channel_reserve_sat: open.channel_reserve_satoshis,
            htlc_minimum_msat: c.htlc_minimum_msat,
            to_self_delay: c.to_self_delay,
            max_accepted_htlcs: c.max_accepted_htlcs,
        };
        check_counterparty_params(&config, c.funding_satoshis, &theirs, &holder)?;
        let their_upfront = upfront(&c.shutdown_scriptpubkey)?;
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let params = ChannelTransactionParameters {
            holder_pubkeys: signer.pubkeys(&secp),
            holder_selected_contest_delay: holder.to_self_delay,
            is_outbound_from_holder: false,
            counterparty_parameters: Some(CounterpartyChannelTransactionParameters {
                pubkeys: counterparty_keys(c),
                selected_contest_delay: c.to_self_delay,
            }),
            funding_outpoint: None,
            splice_parent_funding_txid: None,
            channel_type_features: channel_type.clone(),
            channel_value_satoshis: c.funding_satoshis,
        };
        let ledger = Ledger::new(open.push_msat, c.funding_satoshis * 1000 - open.push_msat, feerate);
        let tmp = c.temporary_channel_id;
        let mut state = Self::new_state(
            p.counterparty_node_id,
            tmp,
            p.channel_keys_id,
            params,
            holder,
            ledger,
            p.scid_alias,
            Phase::AcceptSent,
        );
        state.counterparty = theirs;
        state.announced = c.channel_flags & 1 == 1;
        state.their_upfront_shutdown = their_upfront;
        state.minimum_depth = if channel_type.requires_zero_conf() { 0 } else { config.minimum_depth.max(1) };
        state.remember_counterparty_point(0, c.first_per_commitment_point);
        if !initial_balances_ok(&state, feerate) {
            return close("the funder's balance cannot pay the first commitment's fee and reserve");
        }
        let mut channel = Self::with_state(state, signer, config, p.close_script, p.best_height);
        channel.fee_estimate = p.fee_estimate;
        let (keys, first_point) = channel.our_common_keys()?;
        let accept = msgs::AcceptChannel {
            common_fields: msgs::CommonAcceptChannelFields {
                temporary_channel_id: tmp,
                dust_limit_satoshis: holder.dust_limit_sat,
                max_htlc_value_in_flight_msat: holder.max_htlc_value_in_flight_msat,
                htlc_minimum_msat: holder.htlc_minimum_msat,
                minimum_depth: channel.state.minimum_depth,
                to_self_delay: holder.to_self_delay,
                max_accepted_htlcs: holder.max_accepted_htlcs,
                funding_pubkey: keys.funding_pubkey,
                revocation_basepoint: keys.revocation_basepoint.to_public_key(),
                payment_basepoint: keys.payment_point,
                delayed_payment_basepoint: keys.delayed_payment_basepoint.to_public_key(),
                htlc_basepoint: keys.htlc_basepoint.to_public_key(),
                first_per_commitment_point: first_point,
                shutdown_scriptpubkey: Some(ScriptBuf::new()),
                channel_type: Some(channel_type),
            },
            channel_reserve_satoshis: holder.channel_reserve_sat,
        };
        channel.queue_message(ChannelMessage::AcceptChannel(accept), None);
        Ok(channel)
    }

    /// Funder: the peer accepted. Emits [`ChannelEvent::FundingNeeded`].
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] if the acceptance breaks a BOLT 2 rule or our
    /// limits.
    pub fn handle_accept_channel(&mut self, msg: &msgs::AcceptChannel) -> Result<(), ChannelError> {
        let result = self.accept_channel_inner(msg);
        self.outcome(result)
    }

    fn accept_channel_inner(&mut self, msg: &msgs::AcceptChannel) -> Result<(), ChannelError> {
        if self.state.phase != Phase::OpenSent {
            return ignore("accept_channel is only expected after open_channel");
        }
        let c = &msg.common_fields;
        if c.channel_type.as_ref() != Some(&self.state.params.channel_type_features) {
            return close("accept_channel changed the channel type");
        }
        if c.minimum_depth > self.config.max_minimum_depth {
            return close(format!("minimum_depth {} is above our maximum", c.minimum_depth));
        }
        let theirs = PartyParams {
            dust_limit_sat: c.dust_limit_satoshis,
            max_htlc_value_in_flight_msat: c.max_htlc_value_in_flight_msat,
            channel_reserve_sat: msg.channel_reserve_satoshis,
            htlc_minimum_msat: c.htlc_minimum_msat,
            to_self_delay: c.to_self_delay,
            max_accepted_htlcs: c.max_accepted_htlcs,
        };
        check_counterparty_params(&self.config, self.state.value_sat(), &theirs, &self.state.holder)?;
        let their_upfront = upfront(&c.shutdown_scriptpubkey)?;
        let zero_conf = self.state.params.channel_type_features.requires_zero_conf();
        self.state.counterparty = theirs;
        self.state.their_upfront_shutdown = their_upfront;
        self.state.minimum_depth = if zero_conf { 0 } else { c.minimum_depth };
        self.state.params.counterparty_parameters = Some(CounterpartyChannelTransactionParameters {
            pubkeys: ChannelPublicKeys {
                funding_pubkey: c.funding_pubkey,
                revocation_basepoint: RevocationBasepoint(c.revocation_basepoint),
                payment_point: c.payment_basepoint,
                delayed_payment_basepoint: DelayedPaymentBasepoint(c.delayed_payment_basepoint),
                htlc_basepoint: HtlcBasepoint(c.htlc_basepoint),
            },
            selected_contest_delay: c.to_self_delay,
        });
        self.state.remember_counterparty_point(0, c.first_per_commitment_point);
        self.state.phase = Phase::Accepted;
        let event = ChannelEvent::FundingNeeded {
            script_pubkey: self.funding_script().to_p2wsh(),
            value_sat: self.state.value_sat(),
        };
        self.queue_event(event, None);
        Ok(())
    }

    /// Funder: the funding transaction is built (not broadcast); its output
    /// `vout` of `txid` pays the funding script. Queues `funding_created`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Ignore`] outside the right phase or with an output
    /// index above 65535.
    pub fn funding_outpoint_ready(&mut self, txid: Txid, vout: u32) -> Result<(), ChannelError> {
        if self.state.phase != Phase::Accepted {
            return ignore("the funding outpoint is only expected after accept_channel");
        }
        let Ok(index) = u16::try_from(vout) else {
            return ignore("the funding output index does not fit in 16 bits");
        };
        let outpoint = OutPoint { txid, index };
        self.state.params.funding_outpoint = Some(outpoint);
        let built = self.build(&self.state.ledger, Side::Remote, 0)?;
        let (signature, _) = self
            .signer
            .sign_counterparty_commitment(&self.state.params, &built.tx, Vec::new(), Vec::new(), &self.secp)
            .or_else(|_| close("the signer refused to sign the first commitment"))?;
        self.state.channel_id = ChannelId::v1_from_funding_outpoint(outpoint);
        self.state.phase = Phase::FundingCreatedSent;
        let msg = msgs::FundingCreated {
            temporary_channel_id: self.state.temporary_channel_id,
            funding_txid: txid,
            funding_output_index: index,
            signature,
        };
        self.queue_message(ChannelMessage::FundingCreated(msg), None);
        Ok(())
    }

    /// Checks the counterparty's signature on our commitment 0 and returns it
    /// ready for the monitor.
    fn first_holder_commitment(
        &self,
        signature: &bitcoin::secp256k1::ecdsa::Signature,
    ) -> Result<(HolderCommitmentTransaction, Vec<super::CommittedHtlc>), ChannelError> {
        let built = self.build(&self.state.ledger, Side::Local, 0)?;
        let cp = self.state.params.counterparty_parameters.as_ref().expect("known after open/accept");
        verify_countersignatures(&self.state.params, &built.tx, signature, &[], &self.secp)
            .or_else(|_| close("invalid signature for our first commitment"))?;
        let htlcs = self.committed_htlcs(&built);
        let holder = HolderCommitmentTransaction::new(
            built.tx,
            *signature,
            Vec::new(),
            &self.state.params.holder_pubkeys.funding_pubkey,
            &cp.pubkeys.funding_pubkey,
        );
        self.signer
            .validate_holder_commitment(&holder, Vec::new())
            .or_else(|_| close("the signer refused our first commitment"))?;
        Ok((holder, htlcs))
    }

    /// Funder: the peer signed our first commitment. The opening becomes a
    /// monitor update; once durable, [`ChannelEvent::BroadcastFunding`].
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] for an invalid signature.
    pub fn handle_funding_signed(&mut self, msg: &msgs::FundingSigned) -> Result<(), ChannelError> {
        let result = self.funding_signed_inner(msg);
        self.outcome(result)
    }

    fn funding_signed_inner(&mut self, msg: &msgs::FundingSigned) -> Result<(), ChannelError> {
        if self.state.phase != Phase::FundingCreatedSent {
            return ignore("funding_signed is only expected after funding_created");
        }
        let (holder, htlcs) = self.first_holder_commitment(&msg.signature)?;
        let remote = self.build(&self.state.ledger, Side::Remote, 0)?;
        let txid = self.state.params.funding_outpoint.expect("set before funding_created").txid;
        self.state.phase = Phase::Funded;
        let steps = vec![
            UpdateStep::ChannelFunded { params: self.state.params.clone() },
            UpdateStep::CounterpartyCommitment {
                number: 0,
                txid: remote.tx.trust().txid(),
                htlcs: self.committed_htlcs(&remote),
                commitment: remote.tx,
            },
            UpdateStep::HolderCommitment { commitment: holder, htlcs },
        ];
        let id = self.push_update(steps);
        self.last_raa_update = id;
        self.last_cs_update = id;
        self.queue_event(ChannelEvent::BroadcastFunding { txid }, Some(id));
        self.check_funding_depth();
        Ok(())
    }

    /// Fundee: the funder created the funding transaction and signed our
    /// first commitment. The opening becomes a monitor update; once durable,
    /// `funding_signed` goes out.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] for an invalid signature.
    pub fn handle_funding_created(&mut self, msg: &msgs::FundingCreated) -> Result<(), ChannelError> {
        let result = self.funding_created_inner(msg);
        self.outcome(result)
    }

    fn funding_created_inner(&mut self, msg: &msgs::FundingCreated) -> Result<(), ChannelError> {
        if self.state.phase != Phase::AcceptSent {
            return ignore("funding_created is only expected after accept_channel");
        }
        let outpoint = OutPoint { txid: msg.funding_txid, index: msg.funding_output_index };
        self.state.params.funding_outpoint = Some(outpoint);
        let checked = self.first_holder_commitment(&msg.signature).and_then(|(holder, htlcs)| {
            let remote = self.build(&self.state.ledger, Side::Remote, 0)?;
            let (signature, _) = self
                .signer
                .sign_counterparty_commitment(
                    &self.state.params,
                    &remote.tx,
                    Vec::new(),
                    Vec::new(),
                    &self.secp,
                )
                .or_else(|_| close("the signer refused to sign the first commitment"))?;
            Ok((holder, htlcs, remote, signature))
        });
        let (holder, htlcs, remote, signature) = match checked {
            Ok(v) => v,
            Err(e) => {
                self.state.params.funding_outpoint = None;
                return Err(e);
            }
        };
        self.state.channel_id = ChannelId::v1_from_funding_outpoint(outpoint);
        self.state.phase = Phase::Funded;
        let steps = vec![
            UpdateStep::ChannelFunded { params: self.state.params.clone() },
            UpdateStep::HolderCommitment { commitment: holder, htlcs },
            UpdateStep::CounterpartyCommitment {
                number: 0,
                txid: remote.tx.trust().txid(),
                htlcs: self.committed_htlcs(&remote),
                commitment: remote.tx,
            },
        ];
        let id = self.push_update(steps);
        self.last_raa_update = id;
        self.last_cs_update = id;
        let signed = msgs::FundingSigned { channel_id: self.state.channel_id, signature };
        self.queue_message(ChannelMessage::FundingSigned(signed), Some(id));
        self.check_funding_depth();
        Ok(())
    }

    /// The funding outpoint, once known.
    pub fn funding_outpoint(&self) -> Option<bitcoin::OutPoint> {
        self.state.params.funding_outpoint.map(|o| o.into_bitcoin_outpoint())
    }

    /// The funding transaction confirmed in the block at `height`, at
    /// position `tx_index`. Sets the short channel id and, once deep enough,
    /// sends `channel_ready`.
    pub fn funding_confirmed(&mut self, height: u32, tx_index: u32) {
        let Some(outpoint) = self.state.params.funding_outpoint else { return };
        let scid = (u64::from(height) << 40) | (u64::from(tx_index) << 16) | u64::from(outpoint.index);
        if self.state.funding_confirmed_height == Some(height) && self.state.short_channel_id == Some(scid) {
            return self.check_funding_depth();
        }
        self.state.funding_confirmed_height = Some(height);
        self.state.short_channel_id = Some(scid);
        if self.state.phase == Phase::Funded {
            // Durable, so a restart knows the channel's depth and id.
            self.push_update(Vec::new());
        }
        self.check_funding_depth();
    }

    /// Sends `channel_ready` once the funding is deep enough (at once for
    /// zero-conf).
    pub(super) fn check_funding_depth(&mut self) {
        if self.state.phase != Phase::Funded || self.state.channel_ready_sent {
            return;
        }
        let deep_enough = self.state.minimum_depth == 0
            || self
                .state
                .funding_confirmed_height
                .is_some_and(|h| self.best_height + 1 >= h + self.state.minimum_depth);
        if !deep_enough {
            return;
        }
        let Ok(next) = self.holder_point(1) else { return };
        self.state.channel_ready_sent = true;
        self.push_update(Vec::new());
        if self.connected && !self.awaiting_reestablish {
            self.queue_channel_ready(next);
        }
        self.maybe_report_ready();
    }

    pub(super) fn queue_channel_ready(&mut self, next_per_commitment_point: PublicKey) {
        let msg = msgs::ChannelReady {
            channel_id: self.state.channel_id,
            next_per_commitment_point,
            short_channel_id_alias: Some(self.state.our_scid_alias),
        };
        self.queue_message(ChannelMessage::ChannelReady(msg), None);
    }

    pub(super) fn maybe_report_ready(&mut self) {
        if self.state.channel_ready_sent && self.state.channel_ready_received && !self.ready_reported {
            self.ready_reported = true;
            self.queue_event(ChannelEvent::ChannelReady, None);
        }
    }

    /// The peer's `channel_ready`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Close`] before the channel is funded.
    pub fn handle_channel_ready(&mut self, msg: &msgs::ChannelReady) -> Result<(), ChannelError> {
        let result = self.channel_ready_inner(msg);
        self.outcome(result)
    }

    fn channel_ready_inner(&mut self, msg: &msgs::ChannelReady) -> Result<(), ChannelError> {
        self.check_live()?;
        if self.state.phase != Phase::Funded {
            return close("channel_ready before the channel is funded");
        }
        if msg.short_channel_id_alias.is_some() {
            self.state.their_scid_alias = msg.short_channel_id_alias;
        }
        if self.state.channel_ready_received {
            // Redundant after a reconnection; only the alias may change.
            return Ok(());
        }
        if self.state.remote_number == 0 {
            self.state.remember_counterparty_point(1, msg.next_per_commitment_point);
        }
        self.state.channel_ready_received = true;
        self.push_update(Vec::new());
        self.maybe_report_ready();
        Ok(())
    }
}
