//! Monitor updates: everything about a channel that must survive a crash
//! leaves the channel as one of these.
//!
//! Each update has an `update_id` that strictly increases per channel, typed
//! steps for the monitor (new commitments, revealed secrets, preimages, the
//! HTLCs that became irrevocable), and a full [`ChannelSnapshot`] from which
//! the channel resumes after a crash (ADR 0007 explains the choice of a
//! snapshot over deltas). A message whose sending depends on an update is
//! released only after the runtime reports that update durable.

use bitcoin::{ScriptBuf, Transaction, Txid};
use lightning::ln::chan_utils::{
    ChannelTransactionParameters, CommitmentTransaction, HolderCommitmentTransaction,
};
use lightning::ln::msgs::UpdateAddHTLC;
use lightning::ln::types::ChannelId;
use lightning::types::payment::PaymentPreimage;

use super::state::ChannelSnapshot;

/// Where an HTLC we offered came from. The channel stores it and hands it to
/// the monitor, which returns it in the HTLC's resolution event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HtlcSource {
    /// We forward it on behalf of an inbound HTLC.
    Forwarded {
        /// The inbound channel.
        incoming_channel_id: ChannelId,
        /// The inbound HTLC's id.
        incoming_htlc_id: u64,
        /// The inbound HTLC's value.
        incoming_amount_msat: u64,
    },
    /// One path of our own payment.
    Sent {
        /// The payment.
        payment_id: [u8; 32],
        /// The onion's session key, to decrypt failures.
        session_priv: [u8; 32],
        /// The route of this path, in the manager's encoding.
        path: Vec<u8>,
    },
}

/// How an HTLC we offered failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HtlcFailure {
    /// The peer failed it with an encrypted BOLT 4 error.
    Onion(Vec<u8>),
    /// The peer could not parse the onion.
    Malformed {
        /// The BOLT 4 failure code.
        failure_code: u16,
        /// SHA256 of the onion.
        sha256_of_onion: [u8; 32],
    },
    /// It timed out on chain.
    OnChainTimeout,
}

/// One part of a payment we receive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimPart {
    /// The channel it arrived on.
    pub channel_id: ChannelId,
    /// The HTLC id there.
    pub htlc_id: u64,
    /// Its value.
    pub amount_msat: u64,
}

/// A claim of a payment we receive: every part, so that any one monitor can
/// re-drive the whole claim after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InboundClaim {
    /// The payment.
    pub payment_hash: lightning::types::payment::PaymentHash,
    /// All its parts, across channels.
    pub parts: Vec<ClaimPart>,
}

/// An HTLC as a commitment's output, with the channel's handle for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedHtlc {
    /// The HTLC id (per direction).
    pub id: u64,
    /// Whether we offered it.
    pub outbound: bool,
    /// Its output index in the commitment, or `None` if it was trimmed.
    pub output_index: Option<u32>,
    /// For an HTLC we offered: where it came from.
    pub source: Option<HtlcSource>,
}

/// Why a channel closed, as the channel saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// We failed the channel for this reason.
    LocalError(String),
    /// The peer sent an `error`.
    CounterpartyError(String),
    /// The user or manager asked for a force-close.
    ForceClosed,
    /// The peer proved that our state is stale: broadcasting our commitment
    /// would lose funds, so we must not.
    StaleLocalState,
    /// A cooperative close was agreed.
    Cooperative,
}

/// One typed change for the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum UpdateStep {
    /// The channel's funding is agreed: its parameters and funding outpoint.
    /// The first update of every channel.
    ChannelFunded {
        /// The transaction parameters (keys, delays, funding outpoint).
        params: ChannelTransactionParameters,
    },
    /// A new holder (our) commitment, with the counterparty's signatures.
    HolderCommitment {
        /// The commitment, signed by the counterparty.
        commitment: HolderCommitmentTransaction,
        /// Its HTLCs, trimmed ones included.
        htlcs: Vec<CommittedHtlc>,
    },
    /// A new counterparty commitment we signed.
    CounterpartyCommitment {
        /// Its BOLT 3 commitment number.
        number: u64,
        /// Its txid.
        txid: Txid,
        /// The commitment.
        commitment: CommitmentTransaction,
        /// Its HTLCs, trimmed ones included.
        htlcs: Vec<CommittedHtlc>,
    },
    /// The counterparty revoked its commitment `number`.
    CounterpartySecret {
        /// The number of the revoked commitment.
        number: u64,
        /// Its per-commitment secret.
        secret: [u8; 32],
    },
    /// An HTLC offered to us is now irrevocably committed. Emitted exactly
    /// once per inbound HTLC.
    HtlcIrrevocablyCommitted {
        /// The HTLC as received.
        update_add: UpdateAddHTLC,
        /// A policy the HTLC breaks although BOLT 2 lets it in (such as dust
        /// exposure): the manager must fail it back.
        policy_violation: Option<String>,
    },
    /// A preimage for an HTLC: one we offered (learned from the peer) or one
    /// we received (our claim).
    PaymentPreimage {
        /// The HTLC id.
        htlc_id: u64,
        /// Whether we offered the HTLC.
        outbound: bool,
        /// The preimage.
        preimage: PaymentPreimage,
        /// For an HTLC we offered: where it came from.
        source: Option<HtlcSource>,
        /// For an HTLC we received as the payee: the whole claim, kept by the
        /// monitor as a deferred restart event.
        claim: Option<InboundClaim>,
    },
    /// An HTLC we offered was failed and its removal is irrevocably
    /// committed: it can be failed back upstream.
    OutboundHtlcFailed {
        /// The HTLC id.
        htlc_id: u64,
        /// Its value.
        amount_msat: u64,
        /// How it failed.
        failure: HtlcFailure,
        /// Where it came from.
        source: Option<HtlcSource>,
    },
    /// Both sides sent `shutdown`: the scripts a cooperative close pays to.
    ShutdownScripts {
        /// Ours.
        holder: ScriptBuf,
        /// The counterparty's.
        counterparty: ScriptBuf,
    },
    /// A fully signed cooperative closing transaction.
    CooperativeClose {
        /// The transaction, ready to broadcast.
        transaction: Transaction,
    },
    /// The channel closed without agreement.
    ChannelClosed {
        /// Why.
        reason: CloseReason,
        /// Whether the latest holder commitment should go on chain.
        broadcast_holder_commitment: bool,
    },
}

/// One monitor update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorUpdate {
    /// The channel.
    pub channel_id: ChannelId,
    /// Strictly increasing per channel, from 1.
    pub update_id: u64,
    /// What changed, for the monitor.
    pub steps: Vec<UpdateStep>,
    /// The whole channel state after this update.
    pub snapshot: ChannelSnapshot,
}
