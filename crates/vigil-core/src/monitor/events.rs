//! Monitor events, their ids, and the records that stop a replay from
//! surfacing an outcome the user has already seen.

use bitcoin::Txid;
use lightning::ln::msgs::UpdateAddHTLC;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use crate::channel::{CloseReason, HtlcFailure, HtlcSource, InboundClaim};
use crate::ser::{Decode, DecodeError, Encode, Reader, Records, TlvWriter};

/// The id of a monitor event: strictly increasing per monitor, never
/// reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonitorEventId(pub u64);

/// Why a monitor considers its channel closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedBy {
    /// The channel closed (cooperatively, by an error, or by a force-close).
    Channel(CloseReason),
    /// A transaction spending the funding output confirmed.
    FundingSpent {
        /// The spending transaction.
        txid: Txid,
    },
}

/// Something the manager must act on. Kept by the monitor until the manager
/// acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorEvent {
    /// An HTLC offered to us is irrevocably committed: forward it, receive it
    /// or fail it back.
    HtlcAccepted {
        /// The HTLC as received (boxed: its onion is 1,366 bytes).
        update_add: Box<UpdateAddHTLC>,
        /// A policy it breaks (the manager fails it back).
        policy_violation: Option<String>,
    },
    /// An HTLC we forwarded was claimed: claim the inbound one.
    ForwardedHtlcClaimed {
        /// The outbound HTLC's id.
        htlc_id: u64,
        /// Its value.
        amount_msat: u64,
        /// The preimage.
        preimage: PaymentPreimage,
        /// The inbound HTLC.
        source: HtlcSource,
        /// Whether the preimage was learned on chain.
        on_chain: bool,
    },
    /// An HTLC we forwarded failed: fail the inbound one.
    ForwardedHtlcFailed {
        /// The outbound HTLC's id.
        htlc_id: u64,
        /// Its value.
        amount_msat: u64,
        /// How it failed.
        failure: HtlcFailure,
        /// The inbound HTLC.
        source: HtlcSource,
    },
    /// A path of our own payment was claimed.
    PaymentPathClaimed {
        /// The HTLC's id.
        htlc_id: u64,
        /// Its value.
        amount_msat: u64,
        /// The preimage.
        preimage: PaymentPreimage,
        /// The payment and path.
        source: HtlcSource,
        /// Whether the preimage was learned on chain.
        on_chain: bool,
    },
    /// A path of our own payment failed.
    PaymentPathFailed {
        /// The HTLC's id.
        htlc_id: u64,
        /// Its value.
        amount_msat: u64,
        /// How it failed.
        failure: HtlcFailure,
        /// The payment and path.
        source: HtlcSource,
    },
    /// A part of a payment we receive is durably claimed here. Deferred: only
    /// the start-up replay surfaces it, so a crash mid-claim re-claims every
    /// part.
    InboundClaimPersisted {
        /// The HTLC's id on this channel.
        htlc_id: u64,
        /// The preimage.
        preimage: PaymentPreimage,
        /// The whole claim.
        claim: InboundClaim,
    },
    /// The channel closed.
    ChannelClosed {
        /// How.
        closed_by: ClosedBy,
    },
}

/// A record that the user has seen an outcome, so a replay never surfaces it
/// again. Kept until the monitor is archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResolutionRecord {
    /// The user acknowledged `PaymentClaimed` for this payment.
    ClaimSeen(PaymentHash),
    /// The user acknowledged `PaymentSent` or `PaymentFailed` for this
    /// payment id.
    PaymentSeen([u8; 32]),
}

/// An event with its id and release state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id.
    pub id: MonitorEventId,
    /// The event.
    pub event: MonitorEvent,
    /// The persistence that first holds it (`None` until one is started).
    pub gate: Option<u64>,
}

// ClosedBy: 0 tag (0 Channel, 1 FundingSpent), 2 reason or txid.
impl Encode for ClosedBy {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::Channel(reason) => w.field(0, &0u8).field(2, reason),
            Self::FundingSpent { txid } => w.field(0, &1u8).field(2, txid),
        };
        w.finish(out);
    }
}

impl Decode for ClosedBy {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = match rec.req::<u8>(0)? {
            0 => Self::Channel(rec.req(2)?),
            1 => Self::FundingSpent { txid: rec.req(2)? },
            _ => return Err(DecodeError::InvalidValue("closed by")),
        };
        rec.finish()?;
        Ok(value)
    }
}

// MonitorEvent: 0 tag, then per variant:
//  0 HtlcAccepted: 2 update_add_htlc, 3 policy violation
//  1 ForwardedHtlcClaimed / 3 PaymentPathClaimed: 2 htlc id, 4 amount,
//    6 preimage, 8 source, 10 on chain
//  2 ForwardedHtlcFailed / 4 PaymentPathFailed: 2 htlc id, 4 amount,
//    6 failure, 8 source
//  5 InboundClaimPersisted: 2 htlc id, 4 preimage, 6 claim
//  6 ChannelClosed: 2 closed by
impl Encode for MonitorEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::HtlcAccepted { update_add, policy_violation } => {
                w.field(0, &0u8).field(2, &**update_add).opt(3, policy_violation)
            }
            Self::ForwardedHtlcClaimed { htlc_id, amount_msat, preimage, source, on_chain }
            | Self::PaymentPathClaimed { htlc_id, amount_msat, preimage, source, on_chain } => {
                let tag: u8 = if matches!(self, Self::ForwardedHtlcClaimed { .. }) { 1 } else { 3 };
                w.field(0, &tag)
                    .field(2, htlc_id)
                    .field(4, amount_msat)
                    .field(6, preimage)
                    .field(8, source)
                    .field(10, on_chain)
            }
            Self::ForwardedHtlcFailed { htlc_id, amount_msat, failure, source }
            | Self::PaymentPathFailed { htlc_id, amount_msat, failure, source } => {
                let tag: u8 = if matches!(self, Self::ForwardedHtlcFailed { .. }) { 2 } else { 4 };
                w.field(0, &tag).field(2, htlc_id).field(4, amount_msat).field(6, failure).field(8, source)
            }
            Self::InboundClaimPersisted { htlc_id, preimage, claim } => {
                w.field(0, &5u8).field(2, htlc_id).field(4, preimage).field(6, claim)
            }
            Self::ChannelClosed { closed_by } => w.field(0, &6u8).field(2, closed_by),
        };
        w.finish(out);
    }
}

impl Decode for MonitorEvent {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = match rec.req::<u8>(0)? {
            0 => Self::HtlcAccepted { update_add: Box::new(rec.req(2)?), policy_violation: rec.opt(3)? },
            tag @ (1 | 3) => {
                let (htlc_id, amount_msat, preimage, source, on_chain) =
                    (rec.req(2)?, rec.req(4)?, rec.req(6)?, rec.req(8)?, rec.req(10)?);
                if tag == 1 {
                    Self::ForwardedHtlcClaimed { htlc_id, amount_msat, preimage, source, on_chain }
                } else {
                    Self::PaymentPathClaimed { htlc_id, amount_msat, preimage, source, on_chain }
                }
            }
            tag @ (2 | 4) => {
                let (htlc_id, amount_msat, failure, source) =
                    (rec.req(2)?, rec.req(4)?, rec.req(6)?, rec.req(8)?);
                if tag == 2 {
                    Self::ForwardedHtlcFailed { htlc_id, amount_msat, failure, source }
                } else {
                    Self::PaymentPathFailed { htlc_id, amount_msat, failure, source }
                }
            }
            5 => Self::InboundClaimPersisted {
                htlc_id: rec.req(2)?,
                preimage: rec.req(4)?,
                claim: rec.req(6)?,
            },
            6 => Self::ChannelClosed { closed_by: rec.req(2)? },
            _ => return Err(DecodeError::InvalidValue("monitor event")),
        };
        rec.finish()?;
        Ok(value)
    }
}

// ResolutionRecord: 0 tag (0 ClaimSeen, 1 PaymentSeen), 2 hash or id.
impl Encode for ResolutionRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::ClaimSeen(hash) => w.field(0, &0u8).field(2, hash),
            Self::PaymentSeen(id) => w.field(0, &1u8).field(2, id),
        };
        w.finish(out);
    }
}

impl Decode for ResolutionRecord {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = match rec.req::<u8>(0)? {
            0 => Self::ClaimSeen(rec.req(2)?),
            1 => Self::PaymentSeen(rec.req(2)?),
            _ => return Err(DecodeError::InvalidValue("resolution record")),
        };
        rec.finish()?;
        Ok(value)
    }
}

// StoredEvent: 0 id, 2 event. The gate is not stored: whatever is on disk
// is durable, so a loaded event is released.
impl Encode for StoredEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.id.0).field(2, &self.event);
        w.finish(out);
    }
}

impl Decode for StoredEvent {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = StoredEvent { id: MonitorEventId(rec.req(0)?), event: rec.req(2)?, gate: Some(0) };
        rec.finish()?;
        Ok(value)
    }
}
