//! The JSON shapes of the HTTP API's answers (described in
//! `openapi.json`): hashes, ids and keys as lowercase hex, amounts in
//! satoshis (`_sat`) or millisatoshis (`_msat`).

use serde_json::{json, Value};
use vigil_core::channel::Phase;
use vigil_core::manager::{ChannelDetails, Event};
use vigil_node::{Direction, PaymentInfo, PaymentState};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 32 bytes of hex.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn phase(p: &Phase) -> &'static str {
    match p {
        Phase::OpenSent | Phase::Accepted | Phase::AcceptSent | Phase::FundingCreatedSent => "opening",
        Phase::Funded => "funded",
        Phase::Closed(_) => "closed",
    }
}

/// A channel.
pub fn channel(c: &ChannelDetails) -> Value {
    let state = match (&c.phase, c.usable) {
        (Phase::Funded, true) => "usable",
        (Phase::Funded, false) => "awaiting_confirmation_or_peer",
        (p, _) => phase(p),
    };
    json!({
        "channel_id": hex(&c.channel_id.0),
        "peer": c.counterparty_node_id.to_string(),
        "state": state,
        "usable": c.usable,
        "value_sat": c.value_sat,
        "balance_msat": c.balance_msat,
        "pending_htlcs": c.pending_htlcs,
        "short_channel_id": c.short_channel_id,
        "scid_alias": c.scid_alias,
    })
}

/// A payment, either way.
pub fn payment(p: &PaymentInfo) -> Value {
    let (status, reason) = match &p.state {
        PaymentState::Pending => ("pending", None),
        PaymentState::Succeeded => ("succeeded", None),
        PaymentState::Failed(reason) => ("failed", Some(reason.clone())),
    };
    json!({
        "direction": match p.direction { Direction::Outbound => "outbound", Direction::Inbound => "inbound" },
        "payment_hash": hex(&p.payment_hash.0),
        "payment_id": p.payment_id.map(|id| hex(&id.0)),
        "amount_msat": p.amount_msat,
        "fee_msat": p.fee_msat,
        "preimage": p.preimage.map(|x| hex(&x.0)),
        "status": status,
        "failure_reason": reason,
        "created_at": p.created_at_secs,
    })
}

/// A user event, with its id.
pub fn event(id: u64, e: &Event) -> Value {
    let (kind, mut fields) = match e {
        Event::FundingGenerationReady { temporary_channel_id, counterparty_node_id, value_sat, .. } => (
            "funding_generation_ready",
            json!({ "temporary_channel_id": hex(&temporary_channel_id.0),
                    "peer": counterparty_node_id.to_string(), "value_sat": value_sat }),
        ),
        Event::ChannelReady { channel_id, counterparty_node_id } => (
            "channel_ready",
            json!({ "channel_id": hex(&channel_id.0), "peer": counterparty_node_id.to_string() }),
        ),
        Event::ChannelClosed { channel_id, reason } => {
            ("channel_closed", json!({ "channel_id": hex(&channel_id.0), "reason": reason }))
        }
        Event::PaymentClaimable { payment_hash, amount_msat, .. } => {
            ("payment_claimable", json!({ "payment_hash": hex(&payment_hash.0), "amount_msat": amount_msat }))
        }
        Event::PaymentClaimed { payment_hash, amount_msat } => {
            ("payment_received", json!({ "payment_hash": hex(&payment_hash.0), "amount_msat": amount_msat }))
        }
        Event::PaymentSent { payment_id, payment_hash, preimage, fee_paid_msat } => (
            "payment_sent",
            json!({ "payment_id": hex(&payment_id.0), "payment_hash": hex(&payment_hash.0),
                    "preimage": hex(&preimage.0), "fee_msat": fee_paid_msat }),
        ),
        Event::PaymentFailed { payment_id, payment_hash, reason } => (
            "payment_failed",
            json!({ "payment_id": hex(&payment_id.0), "payment_hash": hex(&payment_hash.0), "reason": reason }),
        ),
        Event::PaymentPathFailed { payment_id, failure_code, retrying } => (
            "payment_path_failed",
            json!({ "payment_id": hex(&payment_id.0), "failure_code": failure_code, "retrying": retrying }),
        ),
        Event::PaymentForwarded {
            prev_channel_id,
            next_channel_id,
            inbound_amount_msat,
            outbound_amount_msat,
            fee_earned_msat,
            ..
        } => (
            "payment_forwarded",
            json!({ "prev_channel_id": hex(&prev_channel_id.0), "next_channel_id": hex(&next_channel_id.0),
                    "inbound_amount_msat": inbound_amount_msat, "outbound_amount_msat": outbound_amount_msat,
                    "fee_earned_msat": fee_earned_msat }),
        ),
    };
    fields["id"] = json!(id);
    fields["type"] = json!(kind);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let bytes = [0xab; 32];
        assert_eq!(parse_hex32(&hex(&bytes)), Some(bytes));
        assert_eq!(parse_hex32("ab"), None);
        assert_eq!(parse_hex32(&"zz".repeat(32)), None);
        assert_eq!(parse_hex32(&"é".repeat(32)), None, "multi-byte characters are refused, not split");
    }
}
