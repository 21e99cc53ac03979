//! BOLT 11 invoices whose secrets and preimages are derived from the node's
//! keys, so an invoice needs no storage.
//!
//! The payment secret is 16 random bytes, the minimum amount (8 bytes) and
//! the expiry time (8 bytes). The preimage is `HMAC-SHA256(k, secret)` with
//! `k` derived from the node key, and the hash is its SHA256. A part that
//! arrives is checked by recomputing the preimage from the secret in its
//! onion: it matches the hash only for a secret we issued, unaltered.

use std::time::Duration;

use bitcoin::hashes::hmac::{Hmac, HmacEngine};
use bitcoin::hashes::{sha256, Hash, HashEngine};
use lightning::bolt11_invoice::{
    Bolt11Invoice, Currency, InvoiceBuilder, RouteHint, RouteHintHop, RoutingFees,
};
use lightning::sign::EntropySource;
use lightning::types::payment::{PaymentHash, PaymentPreimage, PaymentSecret};

use lightning::ln::types::ChannelId;
use lightning::sign::InMemorySigner;

use super::ChannelManager;
use crate::channel::Channel;

/// The most route hints an invoice carries (LDK's choice too).
pub const MAX_ROUTE_HINTS: usize = 3;

/// Why an invoice could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceError {
    /// The invoice builder refused (too many hints, bad description).
    Creation(String),
}

impl std::fmt::Display for InvoiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Creation(e) => write!(f, "the invoice could not be built: {e}"),
        }
    }
}

impl std::error::Error for InvoiceError {}

impl ChannelManager {
    fn inbound_key(&self) -> [u8; 32] {
        let mut engine = HmacEngine::<sha256::Hash>::new(b"vigil/inbound-payment-key/v1");
        engine.input(&self.node_secret.secret_bytes());
        Hmac::from_engine(engine).to_byte_array()
    }

    fn preimage_for_secret(&self, secret: &[u8; 32]) -> PaymentPreimage {
        let mut engine = HmacEngine::<sha256::Hash>::new(&self.inbound_key());
        engine.input(secret);
        PaymentPreimage(Hmac::from_engine(engine).to_byte_array())
    }

    /// The preimage of a payment to one of our invoices, if `secret` is one
    /// we issued for `hash`, still valid, and `total_msat` pays at least its
    /// amount.
    pub(super) fn invoice_preimage(
        &self,
        hash: &PaymentHash,
        secret: &[u8; 32],
        _part_msat: u64,
        total_msat: u64,
    ) -> Option<PaymentPreimage> {
        let preimage = self.preimage_for_secret(secret);
        if sha256::Hash::hash(&preimage.0).to_byte_array() != hash.0 {
            return None;
        }
        let min_msat = u64::from_be_bytes(secret[16..24].try_into().expect("8 bytes"));
        let expires_at = u64::from_be_bytes(secret[24..32].try_into().expect("8 bytes"));
        // An HTLC replayed at start-up passed the expiry check when it
        // arrived; the invoice may have expired since.
        let in_time = self.replaying || self.now_secs <= expires_at;
        (total_msat >= min_msat && in_time).then_some(preimage)
    }

    /// A BOLT 11 invoice for `amount_msat` (any amount if `None`), valid for
    /// `expiry_secs`, with route hints for our channels (they are private).
    ///
    /// # Errors
    ///
    /// [`InvoiceError::Creation`] if the builder refuses the description or
    /// the hints.
    pub fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Bolt11Invoice, InvoiceError> {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(&self.keys.get_secure_random_bytes()[..16]);
        secret[16..24].copy_from_slice(&amount_msat.unwrap_or(0).to_be_bytes());
        secret[24..32].copy_from_slice(&(self.now_secs + u64::from(expiry_secs)).to_be_bytes());
        let preimage = self.preimage_for_secret(&secret);
        let hash = sha256::Hash::hash(&preimage.0);
        let mut builder = InvoiceBuilder::new(Currency::from(self.config.network))
            .description(description.to_string())
            .payment_hash(hash)
            .payment_secret(PaymentSecret(secret))
            .basic_mpp()
            .duration_since_epoch(Duration::from_secs(self.now_secs))
            .min_final_cltv_expiry_delta(u64::from(self.config.min_final_cltv_expiry_delta))
            .expiry_time(Duration::from_secs(u64::from(expiry_secs)));
        if let Some(amount) = amount_msat {
            builder = builder.amount_milli_satoshis(amount);
        }
        let policy = &self.config.forwarding;
        for channel in self.hint_channels() {
            let Some(alias) = channel.snapshot().their_scid_alias else { continue };
            // The peer's terms from its channel_update; until it sent one,
            // our own (a guess: a peer charging more fails the payment with
            // fee_insufficient).
            let hop = match self.peer_terms(&channel.channel_id()) {
                Some(t) => RouteHintHop {
                    src_node_id: channel.counterparty_node_id(),
                    short_channel_id: alias,
                    fees: RoutingFees {
                        base_msat: t.fee_base_msat,
                        proportional_millionths: t.fee_proportional_millionths,
                    },
                    cltv_expiry_delta: t.cltv_expiry_delta,
                    htlc_minimum_msat: Some(t.htlc_minimum_msat),
                    htlc_maximum_msat: Some(t.htlc_maximum_msat),
                },
                None => RouteHintHop {
                    src_node_id: channel.counterparty_node_id(),
                    short_channel_id: alias,
                    fees: RoutingFees {
                        base_msat: policy.fee_base_msat,
                        proportional_millionths: policy.fee_proportional_millionths,
                    },
                    cltv_expiry_delta: policy.cltv_expiry_delta,
                    htlc_minimum_msat: None,
                    htlc_maximum_msat: None,
                },
            };
            builder = builder.private_route(RouteHint(vec![hop]));
        }
        let secp = &self.secp;
        let key = self.node_secret;
        builder
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key))
            .map_err(|e| InvoiceError::Creation(e.to_string()))
    }

    /// The channels an invoice hints at: usable ones with an alias, the one
    /// with the most inbound capacity of each peer first, at most
    /// [`MAX_ROUTE_HINTS`] (every hint lengthens the invoice, and a bech32
    /// invoice has a length limit that hundreds of hints exceed).
    fn hint_channels(&self) -> Vec<&Channel<InMemorySigner>> {
        let inbound: std::collections::HashMap<ChannelId, u64> = self
            .list_channels()
            .iter()
            .map(|d| (d.channel_id, (d.value_sat * 1000).saturating_sub(d.balance_msat)))
            .collect();
        let mut usable: Vec<_> = self
            .channels
            .values()
            .filter(|c| c.is_usable() && c.snapshot().their_scid_alias.is_some())
            .collect();
        usable.sort_by_key(|c| std::cmp::Reverse(inbound.get(&c.channel_id()).copied().unwrap_or(0)));
        let mut peers = std::collections::HashSet::new();
        let (firsts, others): (Vec<_>, Vec<_>) =
            usable.into_iter().partition(|c| peers.insert(c.counterparty_node_id()));
        firsts.into_iter().chain(others).take(MAX_ROUTE_HINTS).collect()
    }

    /// The preimage of one of our invoices, from its payment secret (for
    /// the user who wants to claim without waiting for the event).
    pub fn invoice_payment_preimage(&self, secret: &PaymentSecret) -> PaymentPreimage {
        self.preimage_for_secret(&secret.0)
    }
}
