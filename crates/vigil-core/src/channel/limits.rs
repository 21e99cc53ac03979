//! BOLT 2 limits, checked on both sides: reserves, fees and the fee spike
//! buffer, HTLC counts and value in flight, dust exposure, and the forms of
//! shutdown scripts.

use bitcoin::Script;

use super::config::{ChannelConfig, FEE_SPIKE_BUFFER_MULTIPLE};
use super::error::{close, warn};
use super::ledger::{HtlcStatus, Ledger, Side};
use super::state::ChannelSnapshot;
use super::ChannelError;
use crate::fees;

/// Checks a `shutdown_scriptpubkey` against BOLT 2's allowed forms: P2PKH,
/// P2SH, P2WPKH, P2WSH, a segwit v1+ program of 2 to 40 bytes
/// (`option_shutdown_anysegwit`), or a short `OP_RETURN`.
///
/// # Errors
///
/// [`ChannelError::Warn`] for any other script.
pub fn check_shutdown_script(script: &Script) -> Result<(), ChannelError> {
    let ok = script.is_p2pkh()
        || script.is_p2sh()
        || script.is_p2wpkh()
        || script.is_p2wsh()
        || (script.witness_version().is_some_and(|v| v.to_num() >= 1) && (4..=42).contains(&script.len()))
        || (script.is_op_return() && script.len() <= 83);
    if ok {
        Ok(())
    } else {
        warn("shutdown_scriptpubkey is not a standard form BOLT 2 allows")
    }
}

/// The funder can pay the first commitment's fee (and anchors), and one side
/// at least is above the reserve the other requires.
pub fn initial_balances_ok(state: &ChannelSnapshot, feerate_per_kw: u32) -> bool {
    let anchors = state.params.channel_type_features.supports_anchors_zero_fee_htlc_tx();
    let cost_msat = fees::funder_commitment_cost_sat(feerate_per_kw, 0, anchors) * 1000;
    let (funder, fundee) = if state.is_funder() {
        (state.ledger.settled_ours_msat, state.ledger.settled_theirs_msat)
    } else {
        (state.ledger.settled_theirs_msat, state.ledger.settled_ours_msat)
    };
    let (reserve_of_funder, reserve_of_fundee) = if state.is_funder() {
        (state.counterparty.channel_reserve_sat, state.holder.channel_reserve_sat)
    } else {
        (state.holder.channel_reserve_sat, state.counterparty.channel_reserve_sat)
    };
    // BOLT 2: refused when both balances are at or below the reserves.
    funder >= cost_msat
        && (funder - cost_msat > reserve_of_funder * 1000 || fundee > reserve_of_fundee * 1000)
}

/// A commitment as it will be once every pending proposal is committed
/// (removals only once already committed: a conservative view).
struct Projection {
    ours_msat: u64,
    theirs_msat: u64,
    /// (offered by us, amount) of each HTLC output before trimming.
    htlcs: Vec<(bool, u64)>,
    feerate_per_kw: u32,
}

fn project(ledger: &Ledger, side: Side) -> Projection {
    let (mut ours, mut theirs) = (ledger.settled_ours_msat, ledger.settled_theirs_msat);
    let mut htlcs = Vec::new();
    for h in &ledger.htlcs {
        let removed = h.removal.as_ref().filter(|r| r.heights.at(side).is_some());
        let status = match removed {
            Some(r) => {
                HtlcStatus::Removed { fulfilled: matches!(r.outcome, super::ledger::Outcome::Fulfill(_)) }
            }
            None => HtlcStatus::Pending,
        };
        // Settled balances count tracked HTLCs as their offerer's.
        let (offerer, receiver) =
            if h.outbound { (&mut ours, &mut theirs) } else { (&mut theirs, &mut ours) };
        *offerer -= h.amount_msat();
        match status {
            HtlcStatus::Pending => htlcs.push((h.outbound, h.amount_msat())),
            HtlcStatus::Removed { fulfilled: true } => *receiver += h.amount_msat(),
            HtlcStatus::Removed { fulfilled: false } | HtlcStatus::NotAdded => *offerer += h.amount_msat(),
        }
    }
    let feerate_per_kw =
        ledger.fees.iter().max_by_key(|f| f.seq).map_or(ledger.base_feerate_per_kw, |f| f.feerate_per_kw);
    Projection { ours_msat: ours, theirs_msat: theirs, htlcs, feerate_per_kw }
}

/// What the funder pays on `side`'s commitment holding `htlcs`, at `feerate`.
fn funder_cost_msat(state: &ChannelSnapshot, side: Side, htlcs: &[(bool, u64)], feerate: u32) -> u64 {
    let anchors = state.params.channel_type_features.supports_anchors_zero_fee_htlc_tx();
    let dust = match side {
        Side::Local => state.holder.dust_limit_sat,
        Side::Remote => state.counterparty.dust_limit_sat,
    };
    let untrimmed = htlcs
        .iter()
        .filter(|(outbound, amount)| {
            let offered_by_broadcaster = *outbound == (side == Side::Local);
            !fees::is_trimmed(*amount, offered_by_broadcaster, feerate, dust, anchors)
        })
        .count();
    fees::funder_commitment_cost_sat(feerate, untrimmed, anchors) * 1000
}

/// The value of HTLCs trimmed as dust on `side`'s commitment.
fn dust_exposure_msat(state: &ChannelSnapshot, side: Side, htlcs: &[(bool, u64)], feerate: u32) -> u64 {
    let anchors = state.params.channel_type_features.supports_anchors_zero_fee_htlc_tx();
    let dust = match side {
        Side::Local => state.holder.dust_limit_sat,
        Side::Remote => state.counterparty.dust_limit_sat,
    };
    htlcs
        .iter()
        .filter(|(outbound, amount)| {
            fees::is_trimmed(*amount, *outbound == (side == Side::Local), feerate, dust, anchors)
        })
        .map(|(_, amount)| amount)
        .sum()
}

/// Checks an HTLC of `amount_msat` about to be added by us (`outbound`) or by
/// the peer. Returns a policy the HTLC breaks although BOLT 2 admits it (the
/// manager fails it back).
///
/// # Errors
///
/// For our own HTLC, [`ChannelError::Ignore`] naming the limit (nothing is
/// sent). For the peer's, [`ChannelError::Close`] for a BOLT 2 violation.
pub fn check_new_htlc(
    state: &ChannelSnapshot,
    config: &ChannelConfig,
    outbound: bool,
    amount_msat: u64,
) -> Result<Option<String>, ChannelError> {
    // The side that must accept it sets the limits.
    let limits = if outbound { &state.counterparty } else { &state.holder };
    let fail = |msg: String| -> Result<Option<String>, ChannelError> {
        if outbound {
            Err(ChannelError::Ignore(msg))
        } else {
            close(msg)
        }
    };
    if amount_msat == 0 || amount_msat < limits.htlc_minimum_msat {
        return fail(format!(
            "HTLC of {amount_msat} msat is below the minimum of {} msat",
            limits.htlc_minimum_msat
        ));
    }
    if amount_msat > state.value_sat() * 1000 {
        return fail(format!(
            "HTLC of {amount_msat} msat is above the channel value (the offerer cannot afford it)"
        ));
    }
    // The limits bind the commitment of the side that accepts the HTLC: an
    // HTLC counts until its removal is in that commitment.
    let side = if outbound { Side::Remote } else { Side::Local };
    let pending: Vec<u64> = state
        .ledger
        .htlcs
        .iter()
        .filter(|h| h.outbound == outbound && h.removal.as_ref().is_none_or(|r| r.heights.at(side).is_none()))
        .map(|h| h.amount_msat())
        .collect();
    if pending.len() + 1 > usize::from(limits.max_accepted_htlcs) {
        return fail(format!("more than {} HTLCs would be in flight", limits.max_accepted_htlcs));
    }
    // Amounts are bounded by the channel value, so the sum cannot overflow.
    let in_flight: u64 = pending.iter().sum::<u64>() + amount_msat;
    if in_flight > limits.max_htlc_value_in_flight_msat {
        return fail(format!(
            "{in_flight} msat would be in flight, above the limit of {} msat",
            limits.max_htlc_value_in_flight_msat
        ));
    }
    // Affordability: the offerer keeps the reserve the other side requires,
    // and the funder can pay every commitment's fee.
    let mut violation = None;
    for side in [Side::Local, Side::Remote] {
        let mut p = project(&state.ledger, side);
        p.htlcs.push((outbound, amount_msat));
        let (offerer_msat, other_msat) =
            if outbound { (p.ours_msat, p.theirs_msat) } else { (p.theirs_msat, p.ours_msat) };
        let Some(offerer_after) = offerer_msat.checked_sub(amount_msat) else {
            return fail(format!("the offerer cannot afford an HTLC of {amount_msat} msat"));
        };
        let offerer_reserve = limits_reserve(state, outbound);
        let offerer_is_funder = outbound == state.is_funder();
        let cost = funder_cost_msat(state, side, &p.htlcs, p.feerate_per_kw);
        if offerer_is_funder {
            if offerer_after < cost + offerer_reserve {
                return fail(format!(
                    "the HTLC leaves the offerer unable to pay the commitment fee and keep its reserve on the {side:?} commitment"
                ));
            }
            // Fee spike buffer: room for a higher fee and one more HTLC.
            if outbound {
                let mut spiked = p.htlcs.clone();
                spiked.push((true, u64::MAX / 2));
                let buffer =
                    funder_cost_msat(state, side, &spiked, p.feerate_per_kw * FEE_SPIKE_BUFFER_MULTIPLE);
                if offerer_after < buffer + offerer_reserve {
                    return fail("the HTLC would eat into the fee spike buffer".into());
                }
            }
        } else {
            if offerer_after < offerer_reserve {
                return fail(format!(
                    "the HTLC takes the offerer below its reserve on the {side:?} commitment"
                ));
            }
            if other_msat < cost {
                // The funder could no longer pay for the extra output.
                let msg = "the funder cannot pay the fee of the extra HTLC output".to_owned();
                if outbound {
                    return fail(msg);
                }
                violation.get_or_insert(msg);
            } else if !outbound {
                // We are the funder: keep our fee spike buffer (BOLT 2 lets
                // the HTLC in, so it is failed back rather than refused).
                let mut spiked = p.htlcs.clone();
                spiked.push((false, u64::MAX / 2));
                let buffer =
                    funder_cost_msat(state, side, &spiked, p.feerate_per_kw * FEE_SPIKE_BUFFER_MULTIPLE);
                if other_msat < buffer + limits_reserve(state, true) {
                    violation.get_or_insert("the HTLC would eat into our fee spike buffer".to_owned());
                }
            }
        }
        let exposure = dust_exposure_msat(state, side, &p.htlcs, p.feerate_per_kw);
        if exposure > config.max_dust_htlc_exposure_msat {
            let msg = format!("dust exposure of {exposure} msat is above our limit");
            if outbound {
                return fail(msg);
            }
            violation.get_or_insert(msg);
        }
    }
    Ok(violation)
}

/// The reserve (in msat) the offerer of an HTLC must keep: the one the other
/// side announced.
fn limits_reserve(state: &ChannelSnapshot, outbound: bool) -> u64 {
    if outbound {
        state.counterparty.channel_reserve_sat * 1000
    } else {
        state.holder.channel_reserve_sat * 1000
    }
}

/// Checks a fee update to `feerate_per_kw` against the HTLCs pending now:
/// the funder can pay every commitment, and the value a higher fee trims
/// into dust stays within our exposure limit.
///
/// # Errors
///
/// [`ChannelError::Close`] (for the peer's update) naming the problem; the
/// caller turns it into `Ignore` for our own.
pub fn check_fee_update(
    state: &ChannelSnapshot,
    config: &ChannelConfig,
    feerate_per_kw: u32,
) -> Result<(), ChannelError> {
    for side in [Side::Local, Side::Remote] {
        let p = project(&state.ledger, side);
        let funder = if state.is_funder() { p.ours_msat } else { p.theirs_msat };
        let reserve = limits_reserve(state, state.is_funder());
        if funder < funder_cost_msat(state, side, &p.htlcs, feerate_per_kw) + reserve {
            return close(format!("the funder cannot pay a feerate of {feerate_per_kw} sat/kw"));
        }
        let exposure = dust_exposure_msat(state, side, &p.htlcs, feerate_per_kw);
        if exposure > config.max_dust_htlc_exposure_msat {
            return close(format!(
                "a feerate of {feerate_per_kw} sat/kw trims {exposure} msat of HTLCs into dust, above our limit"
            ));
        }
    }
    Ok(())
}

/// The largest HTLC we could offer now under every limit (0 if none fits).
/// A bisection over [`check_new_htlc`]; near the dust limit the answer is
/// conservative.
pub fn max_outbound_htlc_msat(state: &ChannelSnapshot, config: &ChannelConfig) -> u64 {
    let ok = |amount: u64| check_new_htlc(state, config, true, amount).is_ok();
    let mut hi = project(&state.ledger, Side::Local).ours_msat;
    if ok(hi) {
        return hi;
    }
    let mut lo = 0;
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if ok(lo) {
        lo
    } else {
        0
    }
}
