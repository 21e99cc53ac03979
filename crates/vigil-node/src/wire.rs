//! LDK's `ChannelMessageHandler` as a thin adapter over the core: each
//! message goes to the `ChannelManager`, the runtime carries out what it
//! asks for, and the messages it produces go back to LDK's `PeerManager`
//! (BOLT 8 transport, framing, pings).
//!
//! Messages Vigil does not speak (dual funding, splicing, quiescence, peer
//! storage) are answered with a warning or ignored, as BOLT 1 allows for
//! odd features we did not advertise.

use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{self, BaseMessageHandler, ChannelMessageHandler, MessageSendEvent};
use lightning::ln::types::ChannelId;
use lightning::types::features::{InitFeatures, NodeFeatures};
use vigil_core::channel::ChannelMessage;
use vigil_core::manager::gossip::UpdateRefused;
use vigil_core::manager::MessageError;

use crate::runtime::Runtime;

/// The features Vigil speaks, for `init` (BOLT 9).
pub fn init_features() -> InitFeatures {
    let mut f = InitFeatures::empty();
    f.set_data_loss_protect_required();
    f.set_upfront_shutdown_script_optional();
    f.set_variable_length_onion_required();
    f.set_static_remote_key_required();
    f.set_payment_secret_required();
    f.set_basic_mpp_optional();
    f.set_anchors_zero_fee_htlc_tx_optional();
    f.set_channel_type_required();
    f.set_scid_privacy_optional();
    f.set_zero_conf_optional();
    f
}

/// The adapter.
pub struct WireHandler {
    runtime: Arc<Mutex<Runtime>>,
    chain_hash: ChainHash,
}

impl std::fmt::Debug for WireHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireHandler").finish_non_exhaustive()
    }
}

impl WireHandler {
    /// An adapter over `runtime`, for a node on `chain_hash`.
    pub fn new(runtime: Arc<Mutex<Runtime>>, chain_hash: ChainHash) -> Self {
        Self { runtime, chain_hash }
    }

    fn runtime(&self) -> MutexGuard<'_, Runtime> {
        // A panic while holding the lock leaves the manager as it was
        // before the call that panicked; keep serving.
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver(&self, from: PublicKey, message: ChannelMessage) {
        let mut rt = self.runtime();
        if let Err(e) = rt.manager.handle_message(from, message) {
            rt.last_error = Some(format!("message from {from}: {e}"));
        }
        rt.drive();
    }

    /// A message of a protocol we did not advertise: warn the peer.
    fn unsupported(&self, from: PublicKey, channel_id: ChannelId, what: &str) {
        let mut rt = self.runtime();
        rt.last_error = Some(format!("peer {from} sent {what}, which we do not support"));
        let msg = msgs::WarningMessage { channel_id, data: format!("{what} is not supported") };
        rt.push_outbound(MessageSendEvent::HandleError {
            node_id: from,
            action: msgs::ErrorAction::SendWarningMessage {
                msg,
                log_level: lightning::util::logger::Level::Warn,
            },
        });
    }
}

impl BaseMessageHandler for WireHandler {
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        let mut rt = self.runtime();
        rt.drive();
        rt.take_outbound()
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        let mut rt = self.runtime();
        rt.manager.peer_disconnected(their_node_id);
        rt.drive();
    }

    fn provided_node_features(&self) -> NodeFeatures {
        // The same bits, in the node context.
        NodeFeatures::from_le_bytes(init_features().le_flags().to_vec())
    }

    fn provided_init_features(&self, _their_node_id: PublicKey) -> InitFeatures {
        init_features()
    }

    fn peer_connected(&self, their_node_id: PublicKey, msg: &msgs::Init, _inbound: bool) -> Result<(), ()> {
        // BOLT 9: refuse a peer that requires what we do not know.
        if msg.features.requires_unknown_bits_from(&init_features()) {
            return Err(());
        }
        if let Some(networks) = &msg.networks {
            if !networks.contains(&self.chain_hash) {
                return Err(());
            }
        }
        let mut rt = self.runtime();
        rt.manager.peer_connected(their_node_id);
        rt.drive();
        Ok(())
    }
}

impl ChannelMessageHandler for WireHandler {
    fn handle_open_channel(&self, their_node_id: PublicKey, msg: &msgs::OpenChannel) {
        self.deliver(their_node_id, ChannelMessage::OpenChannel(msg.clone()));
    }
    fn handle_open_channel_v2(&self, their_node_id: PublicKey, msg: &msgs::OpenChannelV2) {
        self.unsupported(their_node_id, msg.common_fields.temporary_channel_id, "open_channel2");
    }
    fn handle_accept_channel(&self, their_node_id: PublicKey, msg: &msgs::AcceptChannel) {
        self.deliver(their_node_id, ChannelMessage::AcceptChannel(msg.clone()));
    }
    fn handle_accept_channel_v2(&self, their_node_id: PublicKey, msg: &msgs::AcceptChannelV2) {
        self.unsupported(their_node_id, msg.common_fields.temporary_channel_id, "accept_channel2");
    }
    fn handle_funding_created(&self, their_node_id: PublicKey, msg: &msgs::FundingCreated) {
        self.deliver(their_node_id, ChannelMessage::FundingCreated(msg.clone()));
    }
    fn handle_funding_signed(&self, their_node_id: PublicKey, msg: &msgs::FundingSigned) {
        self.deliver(their_node_id, ChannelMessage::FundingSigned(msg.clone()));
    }
    fn handle_channel_ready(&self, their_node_id: PublicKey, msg: &msgs::ChannelReady) {
        self.deliver(their_node_id, ChannelMessage::ChannelReady(msg.clone()));
    }
    fn handle_peer_storage(&self, _their_node_id: PublicKey, _msg: msgs::PeerStorage) {}
    fn handle_peer_storage_retrieval(&self, _their_node_id: PublicKey, _msg: msgs::PeerStorageRetrieval) {}
    fn handle_shutdown(&self, their_node_id: PublicKey, msg: &msgs::Shutdown) {
        self.deliver(their_node_id, ChannelMessage::Shutdown(msg.clone()));
    }
    fn handle_closing_signed(&self, their_node_id: PublicKey, msg: &msgs::ClosingSigned) {
        self.deliver(their_node_id, ChannelMessage::ClosingSigned(msg.clone()));
    }
    fn handle_stfu(&self, their_node_id: PublicKey, msg: &msgs::Stfu) {
        self.unsupported(their_node_id, msg.channel_id, "stfu");
    }
    fn handle_splice_init(&self, their_node_id: PublicKey, msg: &msgs::SpliceInit) {
        self.unsupported(their_node_id, msg.channel_id, "splice_init");
    }
    fn handle_splice_ack(&self, their_node_id: PublicKey, msg: &msgs::SpliceAck) {
        self.unsupported(their_node_id, msg.channel_id, "splice_ack");
    }
    fn handle_splice_locked(&self, their_node_id: PublicKey, msg: &msgs::SpliceLocked) {
        self.unsupported(their_node_id, msg.channel_id, "splice_locked");
    }
    fn handle_tx_add_input(&self, their_node_id: PublicKey, msg: &msgs::TxAddInput) {
        self.unsupported(their_node_id, msg.channel_id, "tx_add_input");
    }
    fn handle_tx_add_output(&self, their_node_id: PublicKey, msg: &msgs::TxAddOutput) {
        self.unsupported(their_node_id, msg.channel_id, "tx_add_output");
    }
    fn handle_tx_remove_input(&self, their_node_id: PublicKey, msg: &msgs::TxRemoveInput) {
        self.unsupported(their_node_id, msg.channel_id, "tx_remove_input");
    }
    fn handle_tx_remove_output(&self, their_node_id: PublicKey, msg: &msgs::TxRemoveOutput) {
        self.unsupported(their_node_id, msg.channel_id, "tx_remove_output");
    }
    fn handle_tx_complete(&self, their_node_id: PublicKey, msg: &msgs::TxComplete) {
        self.unsupported(their_node_id, msg.channel_id, "tx_complete");
    }
    fn handle_tx_signatures(&self, their_node_id: PublicKey, msg: &msgs::TxSignatures) {
        self.unsupported(their_node_id, msg.channel_id, "tx_signatures");
    }
    fn handle_tx_init_rbf(&self, their_node_id: PublicKey, msg: &msgs::TxInitRbf) {
        self.unsupported(their_node_id, msg.channel_id, "tx_init_rbf");
    }
    fn handle_tx_ack_rbf(&self, their_node_id: PublicKey, msg: &msgs::TxAckRbf) {
        self.unsupported(their_node_id, msg.channel_id, "tx_ack_rbf");
    }
    fn handle_tx_abort(&self, _their_node_id: PublicKey, _msg: &msgs::TxAbort) {}
    fn handle_update_add_htlc(&self, their_node_id: PublicKey, msg: &msgs::UpdateAddHTLC) {
        self.deliver(their_node_id, ChannelMessage::UpdateAddHtlc(msg.clone()));
    }
    fn handle_update_fulfill_htlc(&self, their_node_id: PublicKey, msg: msgs::UpdateFulfillHTLC) {
        self.deliver(their_node_id, ChannelMessage::UpdateFulfillHtlc(msg));
    }
    fn handle_update_fail_htlc(&self, their_node_id: PublicKey, msg: &msgs::UpdateFailHTLC) {
        self.deliver(their_node_id, ChannelMessage::UpdateFailHtlc(msg.clone()));
    }
    fn handle_update_fail_malformed_htlc(
        &self,
        their_node_id: PublicKey,
        msg: &msgs::UpdateFailMalformedHTLC,
    ) {
        self.deliver(their_node_id, ChannelMessage::UpdateFailMalformedHtlc(msg.clone()));
    }
    fn handle_commitment_signed(&self, their_node_id: PublicKey, msg: &msgs::CommitmentSigned) {
        self.deliver(their_node_id, ChannelMessage::CommitmentSigned(msg.clone()));
    }
    fn handle_commitment_signed_batch(
        &self,
        their_node_id: PublicKey,
        channel_id: ChannelId,
        batch: Vec<msgs::CommitmentSigned>,
    ) {
        // Batches only come with splicing, which we do not advertise.
        self.unsupported(their_node_id, channel_id, &format!("a batch of {} commitment_signed", batch.len()));
    }
    fn handle_revoke_and_ack(&self, their_node_id: PublicKey, msg: &msgs::RevokeAndACK) {
        self.deliver(their_node_id, ChannelMessage::RevokeAndAck(msg.clone()));
    }
    fn handle_update_fee(&self, their_node_id: PublicKey, msg: &msgs::UpdateFee) {
        self.deliver(their_node_id, ChannelMessage::UpdateFee(msg.clone()));
    }
    fn handle_announcement_signatures(&self, _their_node_id: PublicKey, _msg: &msgs::AnnouncementSignatures) {
        // Our channels are not announced (a later issue).
    }
    fn handle_channel_reestablish(&self, their_node_id: PublicKey, msg: &msgs::ChannelReestablish) {
        self.deliver(their_node_id, ChannelMessage::ChannelReestablish(msg.clone()));
    }
    fn handle_channel_update(&self, their_node_id: PublicKey, msg: &msgs::ChannelUpdate) {
        // A private channel's update from the peer: its forwarding terms,
        // for our invoices' route hints. Updates of other channels are
        // gossip (the graph takes them); not an error here.
        let mut rt = self.runtime();
        match rt.manager.handle_message(their_node_id, ChannelMessage::ChannelUpdate(msg.clone())) {
            Ok(()) | Err(MessageError::ChannelUpdate(UpdateRefused::UnknownChannel(_))) => {}
            Err(e) => rt.last_error = Some(format!("channel_update from {their_node_id}: {e}")),
        }
        rt.drive();
    }
    fn handle_error(&self, their_node_id: PublicKey, msg: &msgs::ErrorMessage) {
        self.deliver(their_node_id, ChannelMessage::Error(msg.clone()));
    }
    fn get_chain_hashes(&self) -> Option<Vec<ChainHash>> {
        Some(vec![self.chain_hash])
    }
    fn message_received(&self) {}
}
