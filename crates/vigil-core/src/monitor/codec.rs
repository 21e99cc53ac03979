//! The monitor's versioned TLV encoding.
//!
//! Version history: `1`: the first layout (issue 4).

use lightning::types::payment::PaymentHash;

use super::{
    ChannelMonitor, CounterpartyState, MonitorEventId, OutboundHtlc, ResolutionRecord, RevokedCommitment,
    StoredEvent,
};
use crate::ser::{
    from_versioned, versioned, Decode, DecodeError, Encode, Reader, Records, Seq, SeqRef, TlvWriter,
};

/// The version byte of a serialized monitor.
pub const MONITOR_VERSION: u8 = 1;

// CounterpartyState: 0 number, 2 txid, 4 commitment, 6 htlcs.
impl Encode for CounterpartyState {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.number)
            .field(2, &self.txid)
            .field(4, &self.commitment)
            .field(6, &SeqRef(&self.htlcs));
        w.finish(out);
    }
}

impl Decode for CounterpartyState {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = CounterpartyState {
            number: rec.req(0)?,
            txid: rec.req(2)?,
            commitment: rec.req(4)?,
            htlcs: rec.req::<Seq<_>>(6)?.0,
        };
        rec.finish()?;
        Ok(value)
    }
}

// OutboundHtlc: 0 id, 2 payment hash, 4 amount, 6 cltv expiry, 7 source.
impl Encode for OutboundHtlc {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.id)
            .field(2, &self.payment_hash)
            .field(4, &self.amount_msat)
            .field(6, &self.cltv_expiry)
            .opt(7, &self.source);
        w.finish(out);
    }
}

impl Decode for OutboundHtlc {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = OutboundHtlc {
            id: rec.req(0)?,
            payment_hash: rec.req(2)?,
            amount_msat: rec.req(4)?,
            cltv_expiry: rec.req(6)?,
            source: rec.opt(7)?,
        };
        rec.finish()?;
        Ok(value)
    }
}

// RevokedCommitment: 0 txid, 2 number, 3 HTLC outputs (written only when
// there are some, so monitors from before on-chain enforcement keep their
// bytes).
impl Encode for RevokedCommitment {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.txid).field(2, &self.number);
        if !self.htlcs.is_empty() {
            w.field(3, &SeqRef(&self.htlcs));
        }
        w.finish(out);
    }
}

impl Decode for RevokedCommitment {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = RevokedCommitment {
            txid: rec.req(0)?,
            number: rec.req(2)?,
            htlcs: rec.opt::<Seq<_>>(3)?.map(|s| s.0).unwrap_or_default(),
        };
        rec.finish()?;
        Ok(value)
    }
}

/// Two scripts: 0 holder, 2 counterparty.
struct Scripts(bitcoin::ScriptBuf, bitcoin::ScriptBuf);

impl Encode for Scripts {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        w.field(0, &self.0).field(2, &self.1);
        w.finish(out);
    }
}

impl Decode for Scripts {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let value = Scripts(rec.req(0)?, rec.req(2)?);
        rec.finish()?;
        Ok(value)
    }
}

// ChannelMonitor: 0 channel id, 2 latest update id, 4 params, 6 snapshot,
// 7 holder commitment, 9 holder HTLCs, 8 counterparty commitments,
// 10 revoked counterparty txids, 12 secrets, 14 preimages, 16 outbound
// HTLCs, 18 resolved outbound ids, 20 events, 22 deferred events, 24 next
// event id, 26 resolution records, 27 shutdown scripts, 29 closing
// transaction, 30 closed, 32 broadcast holder commitment, 33 funding spend,
// 34 on-chain resolutions, 36 best height, 38 accepted inbound ids,
// 40 claimed inbound ids, 41 confirmed spends of the funding spend's outputs
// (written only when there are some), 43 stale (written only when true).
impl Encode for ChannelMonitor {
    fn encode(&self, out: &mut Vec<u8>) {
        let preimages: Vec<_> = self.preimages.values().copied().collect();
        let outbound: Vec<&OutboundHtlc> = self.outbound.values().collect();
        let resolved: Vec<u64> = self.resolved.iter().copied().collect();
        let accepted: Vec<u64> = self.accepted.iter().copied().collect();
        let claimed: Vec<u64> = self.claimed.iter().copied().collect();
        let records: Vec<ResolutionRecord> = self.records.iter().copied().collect();
        let scripts = self.shutdown_scripts.clone().map(|(h, c)| Scripts(h, c));
        let mut w = TlvWriter::new();
        w.field(0, &self.channel_id)
            .field(2, &self.latest_update_id)
            .field(4, &self.params)
            .field(6, &self.snapshot)
            .opt(7, &self.holder.as_ref().map(|(c, _)| c.clone()))
            .field(8, &SeqRef(&self.counterparty))
            .opt(9, &self.holder.as_ref().map(|(_, h)| Seq(h.clone())))
            .field(10, &SeqRef(&self.revoked))
            .field(12, &self.secrets)
            .field(14, &SeqRef(&preimages))
            .field(16, &SeqRef(&outbound.into_iter().cloned().collect::<Vec<_>>()))
            .field(18, &SeqRef(&resolved))
            .field(20, &SeqRef(&self.events))
            .field(22, &SeqRef(&self.deferred))
            .field(24, &self.next_event_id)
            .field(26, &SeqRef(&records))
            .opt(27, &scripts)
            .opt(29, &self.closing_tx)
            .field(30, &self.closed)
            .field(32, &self.broadcast_holder)
            .opt(33, &self.funding_spend)
            .field(34, &SeqRef(&self.onchain))
            .field(36, &self.best_height)
            .field(38, &SeqRef(&accepted))
            .field(40, &SeqRef(&claimed));
        if !self.spends.is_empty() {
            w.field(41, &SeqRef(&self.spends));
        }
        if self.stale {
            w.field(43, &true);
        }
        w.finish(out);
    }
}

impl Decode for ChannelMonitor {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let holder_commitment = rec.opt(7)?;
        let holder_htlcs: Option<Seq<_>> = rec.opt(9)?;
        let holder = match (holder_commitment, holder_htlcs) {
            (Some(c), Some(h)) => Some((c, h.0)),
            (None, None) => None,
            _ => return Err(DecodeError::InvalidValue("holder commitment without its HTLCs")),
        };
        let preimages: Seq<lightning::types::payment::PaymentPreimage> = rec.req(14)?;
        let monitor = ChannelMonitor {
            channel_id: rec.req(0)?,
            latest_update_id: rec.req(2)?,
            params: rec.req(4)?,
            snapshot: rec.req(6)?,
            holder,
            counterparty: rec.req::<Seq<_>>(8)?.0,
            revoked: rec.req::<Seq<RevokedCommitment>>(10)?.0,
            secrets: rec.req(12)?,
            preimages: preimages
                .0
                .into_iter()
                .map(|p| (PaymentHash(bitcoin::hashes::sha256::Hash::hash(&p.0).to_byte_array()), p))
                .collect(),
            outbound: rec.req::<Seq<OutboundHtlc>>(16)?.0.into_iter().map(|h| (h.id, h)).collect(),
            resolved: rec.req::<Seq<u64>>(18)?.0.into_iter().collect(),
            events: rec.req::<Seq<StoredEvent>>(20)?.0,
            deferred: rec.req::<Seq<StoredEvent>>(22)?.0,
            next_event_id: rec.req(24)?,
            records: rec.req::<Seq<ResolutionRecord>>(26)?.0.into_iter().collect(),
            shutdown_scripts: rec.opt::<Scripts>(27)?.map(|s| (s.0, s.1)),
            closing_tx: rec.opt(29)?,
            closed: rec.req(30)?,
            broadcast_holder: rec.req(32)?,
            funding_spend: rec.opt(33)?,
            onchain: rec.req::<Seq<_>>(34)?.0,
            best_height: rec.req(36)?,
            accepted: rec.req::<Seq<u64>>(38)?.0.into_iter().collect(),
            claimed: rec.req::<Seq<u64>>(40)?.0.into_iter().collect(),
            spends: rec.opt::<Seq<_>>(41)?.map(|s| s.0).unwrap_or_default(),
            stale: rec.opt(43)?.unwrap_or(false),
        };
        rec.finish()?;
        if monitor
            .events
            .iter()
            .chain(&monitor.deferred)
            .any(|e| e.id >= MonitorEventId(monitor.next_event_id))
        {
            return Err(DecodeError::InvalidValue("event id at or above the next event id"));
        }
        Ok(monitor)
    }
}

impl ChannelMonitor {
    /// The monitor's versioned encoding.
    pub fn serialize(&self) -> Vec<u8> {
        versioned(MONITOR_VERSION, self)
    }

    /// Reads what [`ChannelMonitor::serialize`] wrote.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for corrupt, truncated or too-new bytes.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, DecodeError> {
        from_versioned(bytes, MONITOR_VERSION)
    }
}

use bitcoin::hashes::Hash as _;
