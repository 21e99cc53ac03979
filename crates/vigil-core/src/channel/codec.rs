//! TLV encodings of the channel's durable types: the snapshot, its ledger,
//! and monitor updates with their steps.
//!
//! Each impl lists its field numbers. Even numbers are required, odd ones
//! optional. A number once used is never reused: retired numbers stay here
//! as comments. Enums carry their variant as field 0 (a `u8` tag) and the
//! variant's data in the following fields.

use crate::ser::{Decode, DecodeError, Encode, Reader, Records, Seq, SeqRef, TlvWriter};

use super::config::PartyParams;
use super::ledger::{FeeEntry, Heights, HtlcEntry, Ledger, Outcome, Removal};
use super::state::{ChannelSnapshot, LastSent, Phase, RevealedSecrets, ShutdownState};
use super::update::{
    ClaimPart, CloseReason, CommittedHtlc, HtlcFailure, HtlcSource, InboundClaim, MonitorUpdate, UpdateStep,
};

/// Implements [`Decode`] for a type from a function that reads its records.
macro_rules! decode_with {
    ($t:ty, $f:expr) => {
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let mut rec = Records::parse(r)?;
                let value = $f(&mut rec)?;
                rec.finish()?;
                Ok(value)
            }
        }
    };
}

fn tag(rec: &mut Records<'_>) -> Result<u8, DecodeError> {
    rec.req(0)
}

// PartyParams: 0 dust_limit_sat, 2 max_htlc_value_in_flight_msat,
// 4 channel_reserve_sat, 6 htlc_minimum_msat, 8 to_self_delay,
// 10 max_accepted_htlcs.
impl Encode for PartyParams {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.dust_limit_sat)
            .field(2, &self.max_htlc_value_in_flight_msat)
            .field(4, &self.channel_reserve_sat)
            .field(6, &self.htlc_minimum_msat)
            .field(8, &self.to_self_delay)
            .field(10, &self.max_accepted_htlcs);
        w.finish(out);
    }
}
decode_with!(PartyParams, |rec: &mut Records<'_>| -> Result<PartyParams, DecodeError> {
    Ok(PartyParams {
        dust_limit_sat: rec.req(0)?,
        max_htlc_value_in_flight_msat: rec.req(2)?,
        channel_reserve_sat: rec.req(4)?,
        htlc_minimum_msat: rec.req(6)?,
        to_self_delay: rec.req(8)?,
        max_accepted_htlcs: rec.req(10)?,
    })
});

// CloseReason: 0 tag (0 LocalError, 1 CounterpartyError, 2 ForceClosed,
// 3 StaleLocalState, 4 Cooperative), 2 message for the error variants.
impl Encode for CloseReason {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::LocalError(m) => w.field(0, &0u8).field(2, m),
            Self::CounterpartyError(m) => w.field(0, &1u8).field(2, m),
            Self::ForceClosed => w.field(0, &2u8),
            Self::StaleLocalState => w.field(0, &3u8),
            Self::Cooperative => w.field(0, &4u8),
        };
        w.finish(out);
    }
}
decode_with!(CloseReason, |rec: &mut Records<'_>| -> Result<CloseReason, DecodeError> {
    Ok(match tag(rec)? {
        0 => CloseReason::LocalError(rec.req(2)?),
        1 => CloseReason::CounterpartyError(rec.req(2)?),
        2 => CloseReason::ForceClosed,
        3 => CloseReason::StaleLocalState,
        4 => CloseReason::Cooperative,
        _ => return Err(DecodeError::InvalidValue("close reason")),
    })
});

// Phase: 0 tag (0 OpenSent, 1 Accepted, 2 AcceptSent, 3 FundingCreatedSent,
// 4 Funded, 5 Closed), 2 close reason.
impl Encode for Phase {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::OpenSent => w.field(0, &0u8),
            Self::Accepted => w.field(0, &1u8),
            Self::AcceptSent => w.field(0, &2u8),
            Self::FundingCreatedSent => w.field(0, &3u8),
            Self::Funded => w.field(0, &4u8),
            Self::Closed(reason) => w.field(0, &5u8).field(2, reason),
        };
        w.finish(out);
    }
}
decode_with!(Phase, |rec: &mut Records<'_>| -> Result<Phase, DecodeError> {
    Ok(match tag(rec)? {
        0 => Phase::OpenSent,
        1 => Phase::Accepted,
        2 => Phase::AcceptSent,
        3 => Phase::FundingCreatedSent,
        4 => Phase::Funded,
        5 => Phase::Closed(rec.req(2)?),
        _ => return Err(DecodeError::InvalidValue("phase")),
    })
});

// Heights: 1 local, 3 remote (both optional).
impl Encode for Heights {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.opt(1, &self.local).opt(3, &self.remote);
        w.finish(out);
    }
}
decode_with!(Heights, |rec: &mut Records<'_>| -> Result<Heights, DecodeError> {
    Ok(Heights { local: rec.opt(1)?, remote: rec.opt(3)? })
});

// Outcome: 0 tag (0 Fulfill, 1 Fail, 2 FailMalformed), 2 preimage or
// reason or failure code, 4 sha256 of the onion.
impl Encode for Outcome {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::Fulfill(p) => w.field(0, &0u8).field(2, p),
            Self::Fail(reason) => w.field(0, &1u8).field(2, reason),
            Self::FailMalformed { failure_code, sha256_of_onion } => {
                w.field(0, &2u8).field(2, failure_code).field(4, sha256_of_onion)
            }
        };
        w.finish(out);
    }
}
decode_with!(Outcome, |rec: &mut Records<'_>| -> Result<Outcome, DecodeError> {
    Ok(match tag(rec)? {
        0 => Outcome::Fulfill(rec.req(2)?),
        1 => Outcome::Fail(rec.req(2)?),
        2 => Outcome::FailMalformed { failure_code: rec.req(2)?, sha256_of_onion: rec.req(4)? },
        _ => return Err(DecodeError::InvalidValue("HTLC outcome")),
    })
});

// Removal: 0 outcome, 2 heights, 4 seq.
impl Encode for Removal {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.outcome).field(2, &self.heights).field(4, &self.seq);
        w.finish(out);
    }
}
decode_with!(Removal, |rec: &mut Records<'_>| -> Result<Removal, DecodeError> {
    Ok(Removal { outcome: rec.req(0)?, heights: rec.req(2)?, seq: rec.req(4)? })
});

// HtlcSource: 0 tag (0 Forwarded, 1 Sent); Forwarded: 2 channel id,
// 4 htlc id, 6 amount; Sent: 2 payment id, 4 session key, 6 path.
impl Encode for HtlcSource {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::Forwarded { incoming_channel_id, incoming_htlc_id, incoming_amount_msat } => w
                .field(0, &0u8)
                .field(2, incoming_channel_id)
                .field(4, incoming_htlc_id)
                .field(6, incoming_amount_msat),
            Self::Sent { payment_id, session_priv, path } => {
                w.field(0, &1u8).field(2, payment_id).field(4, session_priv).field(6, path)
            }
        };
        w.finish(out);
    }
}
decode_with!(HtlcSource, |rec: &mut Records<'_>| -> Result<HtlcSource, DecodeError> {
    Ok(match tag(rec)? {
        0 => HtlcSource::Forwarded {
            incoming_channel_id: rec.req(2)?,
            incoming_htlc_id: rec.req(4)?,
            incoming_amount_msat: rec.req(6)?,
        },
        1 => HtlcSource::Sent { payment_id: rec.req(2)?, session_priv: rec.req(4)?, path: rec.req(6)? },
        _ => return Err(DecodeError::InvalidValue("HTLC source")),
    })
});

// HtlcFailure: 0 tag (0 Onion, 1 Malformed, 2 OnChainTimeout), 2 reason or
// failure code, 4 sha256 of the onion.
impl Encode for HtlcFailure {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::Onion(reason) => w.field(0, &0u8).field(2, reason),
            Self::Malformed { failure_code, sha256_of_onion } => {
                w.field(0, &1u8).field(2, failure_code).field(4, sha256_of_onion)
            }
            Self::OnChainTimeout => w.field(0, &2u8),
        };
        w.finish(out);
    }
}
decode_with!(HtlcFailure, |rec: &mut Records<'_>| -> Result<HtlcFailure, DecodeError> {
    Ok(match tag(rec)? {
        0 => HtlcFailure::Onion(rec.req(2)?),
        1 => HtlcFailure::Malformed { failure_code: rec.req(2)?, sha256_of_onion: rec.req(4)? },
        2 => HtlcFailure::OnChainTimeout,
        _ => return Err(DecodeError::InvalidValue("HTLC failure")),
    })
});

// HtlcEntry: 0 id, 2 outbound, 4 update_add_htlc, 5 source, 6 heights,
// 8 seq, 9 removal, 10 irrevocable_reported, 11 policy_violation.
impl Encode for HtlcEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.id)
            .field(2, &self.outbound)
            .field(4, &self.update_add)
            .opt(5, &self.source)
            .field(6, &self.heights)
            .field(8, &self.seq)
            .opt(9, &self.removal)
            .field(10, &self.irrevocable_reported)
            .opt(11, &self.policy_violation);
        w.finish(out);
    }
}
decode_with!(HtlcEntry, |rec: &mut Records<'_>| -> Result<HtlcEntry, DecodeError> {
    Ok(HtlcEntry {
        id: rec.req(0)?,
        outbound: rec.req(2)?,
        update_add: rec.req(4)?,
        source: rec.opt(5)?,
        heights: rec.req(6)?,
        seq: rec.req(8)?,
        removal: rec.opt(9)?,
        irrevocable_reported: rec.req(10)?,
        policy_violation: rec.opt(11)?,
    })
});

// FeeEntry: 0 feerate, 2 heights, 4 seq.
impl Encode for FeeEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.feerate_per_kw).field(2, &self.heights).field(4, &self.seq);
        w.finish(out);
    }
}
decode_with!(FeeEntry, |rec: &mut Records<'_>| -> Result<FeeEntry, DecodeError> {
    Ok(FeeEntry { feerate_per_kw: rec.req(0)?, heights: rec.req(2)?, seq: rec.req(4)? })
});

// Ledger: 0 htlcs, 2 fees, 4 base feerate, 6 settled ours, 8 settled
// theirs, 10 next outbound id, 12 next inbound id, 14 next seq.
impl Encode for Ledger {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &SeqRef(&self.htlcs))
            .field(2, &SeqRef(&self.fees))
            .field(4, &self.base_feerate_per_kw)
            .field(6, &self.settled_ours_msat)
            .field(8, &self.settled_theirs_msat)
            .field(10, &self.next_outbound_id)
            .field(12, &self.next_inbound_id)
            .field(14, &self.next_seq);
        w.finish(out);
    }
}
decode_with!(Ledger, |rec: &mut Records<'_>| -> Result<Ledger, DecodeError> {
    Ok(Ledger {
        htlcs: rec.req::<Seq<HtlcEntry>>(0)?.0,
        fees: rec.req::<Seq<FeeEntry>>(2)?.0,
        base_feerate_per_kw: rec.req(4)?,
        settled_ours_msat: rec.req(6)?,
        settled_theirs_msat: rec.req(8)?,
        next_outbound_id: rec.req(10)?,
        next_inbound_id: rec.req(12)?,
        next_seq: rec.req(14)?,
    })
});

// ShutdownState: 1 ours, 2 ours_sent, 3 theirs, 4 scripts_recorded,
// 5 our last fee, 7 our fee range min, 9 our fee range max.
impl Encode for ShutdownState {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.opt(1, &self.ours)
            .field(2, &self.ours_sent)
            .opt(3, &self.theirs)
            .field(4, &self.scripts_recorded)
            .opt(5, &self.our_last_fee_sat)
            .opt(7, &self.our_fee_range.map(|r| r.0))
            .opt(9, &self.our_fee_range.map(|r| r.1));
        w.finish(out);
    }
}
decode_with!(ShutdownState, |rec: &mut Records<'_>| -> Result<ShutdownState, DecodeError> {
    let ours = rec.opt(1)?;
    let ours_sent = rec.req(2)?;
    let theirs = rec.opt(3)?;
    let scripts_recorded = rec.req(4)?;
    let our_last_fee_sat = rec.opt(5)?;
    let min: Option<u64> = rec.opt(7)?;
    let max: Option<u64> = rec.opt(9)?;
    Ok(ShutdownState {
        ours,
        ours_sent,
        theirs,
        scripts_recorded,
        our_last_fee_sat,
        our_fee_range: min.zip(max),
    })
});

impl Encode for LastSent {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Self::Nothing => 0,
            Self::RevokeAndAck => 1,
            Self::CommitmentSigned => 2,
        });
    }
}

impl Decode for LastSent {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.array::<1>()?[0] {
            0 => Ok(Self::Nothing),
            1 => Ok(Self::RevokeAndAck),
            2 => Ok(Self::CommitmentSigned),
            _ => Err(DecodeError::InvalidValue("last sent")),
        }
    }
}

impl Encode for RevealedSecrets {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

impl Decode for RevealedSecrets {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Decode::decode(r).map(RevealedSecrets)
    }
}

/// A counterparty per-commitment point with its number: 0 number, 2 point.
struct NumberedPoint(u64, bitcoin::secp256k1::PublicKey);

impl Encode for NumberedPoint {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.0).field(2, &self.1);
        w.finish(out);
    }
}
decode_with!(NumberedPoint, |rec: &mut Records<'_>| -> Result<NumberedPoint, DecodeError> {
    Ok(NumberedPoint(rec.req(0)?, rec.req(2)?))
});

// ChannelSnapshot: 0 temporary channel id, 2 channel id, 4 counterparty node
// id, 6 channel keys id, 8 phase, 10 params, 12 holder, 14 counterparty,
// 16 minimum depth, 18 announced, 19 our upfront shutdown, 21 their upfront
// shutdown, 23 funding confirmed height, 25 short channel id, 26 our scid
// alias, 27 their scid alias, 28 channel ready sent, 30 channel ready
// received, 32 local number, 34 remote number, 36 remote unrevoked,
// 38 counterparty points, 40 counterparty secrets, 42 ledger, 44 last sent,
// 46 shutdown, 48 next update id.
impl Encode for ChannelSnapshot {
    fn encode(&self, out: &mut Vec<u8>) {
        let points: Vec<NumberedPoint> =
            self.counterparty_points.iter().map(|(n, p)| NumberedPoint(*n, *p)).collect();
        let mut w = TlvWriter::new();
        w.field(0, &self.temporary_channel_id)
            .field(2, &self.channel_id)
            .field(4, &self.counterparty_node_id)
            .field(6, &self.channel_keys_id)
            .field(8, &self.phase)
            .field(10, &self.params)
            .field(12, &self.holder)
            .field(14, &self.counterparty)
            .field(16, &self.minimum_depth)
            .field(18, &self.announced)
            .opt(19, &self.our_upfront_shutdown)
            .opt(21, &self.their_upfront_shutdown)
            .opt(23, &self.funding_confirmed_height)
            .opt(25, &self.short_channel_id)
            .field(26, &self.our_scid_alias)
            .opt(27, &self.their_scid_alias)
            .field(28, &self.channel_ready_sent)
            .field(30, &self.channel_ready_received)
            .field(32, &self.local_number)
            .field(34, &self.remote_number)
            .field(36, &self.remote_unrevoked)
            .field(38, &SeqRef(&points))
            .field(40, &self.counterparty_secrets)
            .field(42, &self.ledger)
            .field(44, &self.last_sent)
            .field(46, &self.shutdown)
            .field(48, &self.next_update_id);
        w.finish(out);
    }
}
decode_with!(ChannelSnapshot, |rec: &mut Records<'_>| -> Result<ChannelSnapshot, DecodeError> {
    Ok(ChannelSnapshot {
        temporary_channel_id: rec.req(0)?,
        channel_id: rec.req(2)?,
        counterparty_node_id: rec.req(4)?,
        channel_keys_id: rec.req(6)?,
        phase: rec.req(8)?,
        params: rec.req(10)?,
        holder: rec.req(12)?,
        counterparty: rec.req(14)?,
        minimum_depth: rec.req(16)?,
        announced: rec.req(18)?,
        our_upfront_shutdown: rec.opt(19)?,
        their_upfront_shutdown: rec.opt(21)?,
        funding_confirmed_height: rec.opt(23)?,
        short_channel_id: rec.opt(25)?,
        our_scid_alias: rec.req(26)?,
        their_scid_alias: rec.opt(27)?,
        channel_ready_sent: rec.req(28)?,
        channel_ready_received: rec.req(30)?,
        local_number: rec.req(32)?,
        remote_number: rec.req(34)?,
        remote_unrevoked: rec.req(36)?,
        counterparty_points: rec.req::<Seq<NumberedPoint>>(38)?.0.into_iter().map(|p| (p.0, p.1)).collect(),
        counterparty_secrets: rec.req(40)?,
        ledger: rec.req(42)?,
        last_sent: rec.req(44)?,
        shutdown: rec.req(46)?,
        next_update_id: rec.req(48)?,
    })
});

// CommittedHtlc: 0 id, 2 outbound, 3 output index, 5 source.
impl Encode for CommittedHtlc {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.id).field(2, &self.outbound).opt(3, &self.output_index).opt(5, &self.source);
        w.finish(out);
    }
}
decode_with!(CommittedHtlc, |rec: &mut Records<'_>| -> Result<CommittedHtlc, DecodeError> {
    Ok(CommittedHtlc {
        id: rec.req(0)?,
        outbound: rec.req(2)?,
        output_index: rec.opt(3)?,
        source: rec.opt(5)?,
    })
});

// ClaimPart: 0 channel id, 2 htlc id, 4 amount.
impl Encode for ClaimPart {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.channel_id).field(2, &self.htlc_id).field(4, &self.amount_msat);
        w.finish(out);
    }
}
decode_with!(ClaimPart, |rec: &mut Records<'_>| -> Result<ClaimPart, DecodeError> {
    Ok(ClaimPart { channel_id: rec.req(0)?, htlc_id: rec.req(2)?, amount_msat: rec.req(4)? })
});

// InboundClaim: 0 payment hash, 2 parts.
impl Encode for InboundClaim {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.payment_hash).field(2, &SeqRef(&self.parts));
        w.finish(out);
    }
}
decode_with!(InboundClaim, |rec: &mut Records<'_>| -> Result<InboundClaim, DecodeError> {
    Ok(InboundClaim { payment_hash: rec.req(0)?, parts: rec.req::<Seq<ClaimPart>>(2)?.0 })
});

// UpdateStep: 0 tag, then per variant:
//  0 ChannelFunded: 2 params
//  1 HolderCommitment: 2 commitment, 4 htlcs
//  2 CounterpartyCommitment: 2 number, 4 txid, 6 commitment, 8 htlcs
//  3 CounterpartySecret: 2 number, 4 secret
//  4 HtlcIrrevocablyCommitted: 2 update_add_htlc, 3 policy violation
//  5 PaymentPreimage: 2 htlc id, 4 outbound, 6 preimage, 7 source, 9 claim
//  6 ShutdownScripts: 2 holder, 4 counterparty
//  7 CooperativeClose: 2 transaction
//  8 ChannelClosed: 2 reason, 4 broadcast holder commitment
//  9 OutboundHtlcFailed: 2 htlc id, 4 amount, 6 failure, 7 source
impl Encode for UpdateStep {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::ChannelFunded { params } => w.field(0, &0u8).field(2, params),
            Self::HolderCommitment { commitment, htlcs } => {
                w.field(0, &1u8).field(2, commitment).field(4, &SeqRef(htlcs))
            }
            Self::CounterpartyCommitment { number, txid, commitment, htlcs } => {
                w.field(0, &2u8).field(2, number).field(4, txid).field(6, commitment).field(8, &SeqRef(htlcs))
            }
            Self::CounterpartySecret { number, secret } => w.field(0, &3u8).field(2, number).field(4, secret),
            Self::HtlcIrrevocablyCommitted { update_add, policy_violation } => {
                w.field(0, &4u8).field(2, update_add).opt(3, policy_violation)
            }
            Self::PaymentPreimage { htlc_id, outbound, preimage, source, claim } => w
                .field(0, &5u8)
                .field(2, htlc_id)
                .field(4, outbound)
                .field(6, preimage)
                .opt(7, source)
                .opt(9, claim),
            Self::ShutdownScripts { holder, counterparty } => {
                w.field(0, &6u8).field(2, holder).field(4, counterparty)
            }
            Self::CooperativeClose { transaction } => w.field(0, &7u8).field(2, transaction),
            Self::ChannelClosed { reason, broadcast_holder_commitment } => {
                w.field(0, &8u8).field(2, reason).field(4, broadcast_holder_commitment)
            }
            Self::OutboundHtlcFailed { htlc_id, amount_msat, failure, source } => {
                w.field(0, &9u8).field(2, htlc_id).field(4, amount_msat).field(6, failure).opt(7, source)
            }
        };
        w.finish(out);
    }
}
decode_with!(UpdateStep, |rec: &mut Records<'_>| -> Result<UpdateStep, DecodeError> {
    Ok(match tag(rec)? {
        0 => UpdateStep::ChannelFunded { params: rec.req(2)? },
        1 => UpdateStep::HolderCommitment {
            commitment: rec.req(2)?,
            htlcs: rec.req::<Seq<CommittedHtlc>>(4)?.0,
        },
        2 => UpdateStep::CounterpartyCommitment {
            number: rec.req(2)?,
            txid: rec.req(4)?,
            commitment: rec.req(6)?,
            htlcs: rec.req::<Seq<CommittedHtlc>>(8)?.0,
        },
        3 => UpdateStep::CounterpartySecret { number: rec.req(2)?, secret: rec.req(4)? },
        4 => UpdateStep::HtlcIrrevocablyCommitted { update_add: rec.req(2)?, policy_violation: rec.opt(3)? },
        5 => UpdateStep::PaymentPreimage {
            htlc_id: rec.req(2)?,
            outbound: rec.req(4)?,
            preimage: rec.req(6)?,
            source: rec.opt(7)?,
            claim: rec.opt(9)?,
        },
        6 => UpdateStep::ShutdownScripts { holder: rec.req(2)?, counterparty: rec.req(4)? },
        7 => UpdateStep::CooperativeClose { transaction: rec.req(2)? },
        8 => UpdateStep::ChannelClosed { reason: rec.req(2)?, broadcast_holder_commitment: rec.req(4)? },
        9 => UpdateStep::OutboundHtlcFailed {
            htlc_id: rec.req(2)?,
            amount_msat: rec.req(4)?,
            failure: rec.req(6)?,
            source: rec.opt(7)?,
        },
        _ => return Err(DecodeError::InvalidValue("update step")),
    })
});

// MonitorUpdate: 0 channel id, 2 update id, 4 steps, 6 snapshot.
impl Encode for MonitorUpdate {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.channel_id)
            .field(2, &self.update_id)
            .field(4, &SeqRef(&self.steps))
            .field(6, &self.snapshot);
        w.finish(out);
    }
}
decode_with!(MonitorUpdate, |rec: &mut Records<'_>| -> Result<MonitorUpdate, DecodeError> {
    Ok(MonitorUpdate {
        channel_id: rec.req(0)?,
        update_id: rec.req(2)?,
        steps: rec.req::<Seq<UpdateStep>>(4)?.0,
        snapshot: rec.req(6)?,
    })
});
