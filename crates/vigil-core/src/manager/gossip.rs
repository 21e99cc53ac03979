//! `channel_update` between the two ends of a private channel (BOLT 7).
//!
//! Each side tells the other its forwarding terms for the channel, so that
//! invoices can hint the peer's hop with the peer's real fees and CLTV
//! delta. We send ours whenever a channel becomes usable (ready, or
//! reestablished after a reconnection), and keep the peer's in memory: the
//! peer sends it again after every reconnection, so nothing is persisted.

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::secp256k1::{Message, PublicKey};
use lightning::ln::msgs::{ChannelUpdate, UnsignedChannelUpdate};
use lightning::ln::types::ChannelId;
use lightning::util::ser::Writeable;

use super::ChannelManager;
use crate::channel::ChannelMessage;

/// A peer's forwarding terms for the hop from it to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTerms {
    /// Its base fee.
    pub fee_base_msat: u32,
    /// Its proportional fee.
    pub fee_proportional_millionths: u32,
    /// Its CLTV delta.
    pub cltv_expiry_delta: u16,
    /// Its smallest HTLC.
    pub htlc_minimum_msat: u64,
    /// Its largest HTLC.
    pub htlc_maximum_msat: u64,
}

/// Why a peer's `channel_update` was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefused {
    /// It names no channel of ours with this peer.
    UnknownChannel(u64),
    /// Its direction bit says it is ours, not the peer's.
    WrongDirection,
    /// The peer's signature does not verify.
    BadSignature,
    /// It is for another chain.
    WrongChain,
}

impl std::fmt::Display for UpdateRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownChannel(scid) => {
                write!(f, "channel_update for {scid}, which is not a channel with this peer")
            }
            Self::WrongDirection => write!(f, "channel_update with our direction bit"),
            Self::BadSignature => write!(f, "channel_update with a bad signature"),
            Self::WrongChain => write!(f, "channel_update for another chain"),
        }
    }
}

impl std::error::Error for UpdateRefused {}

/// The direction bit of updates signed by `from` on a channel with `to`.
fn direction(from: &PublicKey, to: &PublicKey) -> u8 {
    u8::from(from.serialize() > to.serialize())
}

fn digest(contents: &UnsignedChannelUpdate) -> Message {
    Message::from_digest(sha256d::Hash::hash(&contents.encode()).to_byte_array())
}

impl ChannelManager {
    /// Sends our terms to the peer of every usable channel that has not had
    /// them since it became usable.
    pub(super) fn send_channel_updates(&mut self) -> bool {
        let due: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(id, c)| c.is_usable() && !self.updates_sent.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.updates_sent.insert(*id);
            let channel = &self.channels[id];
            let s = channel.snapshot();
            let Some(scid) = s.short_channel_id.or(s.their_scid_alias) else { continue };
            let peer = channel.counterparty_node_id();
            self.update_timestamp = self.update_timestamp.max(self.now_secs as u32).saturating_add(1);
            let policy = &self.config.forwarding;
            let contents = UnsignedChannelUpdate {
                chain_hash: self.chain_hash,
                short_channel_id: scid,
                timestamp: self.update_timestamp,
                // Bit 0: htlc_maximum_msat is present (always, today).
                message_flags: 1,
                channel_flags: direction(&self.node_id, &peer),
                cltv_expiry_delta: policy.cltv_expiry_delta,
                htlc_minimum_msat: policy.htlc_minimum_msat,
                htlc_maximum_msat: policy.htlc_maximum_msat.min(s.value_sat() * 1000),
                fee_base_msat: policy.fee_base_msat,
                fee_proportional_millionths: policy.fee_proportional_millionths,
                excess_data: Vec::new(),
            };
            let signature = self.secp.sign_ecdsa(&digest(&contents), &self.node_secret);
            self.outbox
                .push_back((peer, ChannelMessage::ChannelUpdate(ChannelUpdate { signature, contents })));
        }
        !due.is_empty()
    }

    /// A peer's `channel_update` for one of our channels with it: its terms
    /// for the hop towards us.
    pub(super) fn handle_channel_update(
        &mut self,
        from: PublicKey,
        update: &ChannelUpdate,
    ) -> Result<(), UpdateRefused> {
        let c = &update.contents;
        if c.chain_hash != self.chain_hash {
            return Err(UpdateRefused::WrongChain);
        }
        let Some(id) = self
            .channels
            .iter()
            .find(|(_, ch)| {
                let s = ch.snapshot();
                ch.counterparty_node_id() == from
                    && (s.short_channel_id == Some(c.short_channel_id)
                        || s.our_scid_alias == c.short_channel_id
                        || s.their_scid_alias == Some(c.short_channel_id))
            })
            .map(|(id, _)| *id)
        else {
            return Err(UpdateRefused::UnknownChannel(c.short_channel_id));
        };
        if c.channel_flags & 1 != direction(&from, &self.node_id) {
            return Err(UpdateRefused::WrongDirection);
        }
        if self.secp.verify_ecdsa(&digest(c), &update.signature, &from).is_err() {
            return Err(UpdateRefused::BadSignature);
        }
        self.peer_terms.insert(
            id,
            PeerTerms {
                fee_base_msat: c.fee_base_msat,
                fee_proportional_millionths: c.fee_proportional_millionths,
                cltv_expiry_delta: c.cltv_expiry_delta,
                htlc_minimum_msat: c.htlc_minimum_msat,
                htlc_maximum_msat: c.htlc_maximum_msat,
            },
        );
        Ok(())
    }

    /// The peer's terms for the hop towards us on `channel_id`, if it sent
    /// them.
    pub fn peer_terms(&self, channel_id: &ChannelId) -> Option<PeerTerms> {
        self.peer_terms.get(channel_id).copied()
    }
}
