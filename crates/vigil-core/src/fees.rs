//! BOLT 3 fee, anchor and dust arithmetic.
//!
//! LDK keeps these private, so Vigil writes its own, from BOLT 3 "Fee
//! Calculation" and "Commitment Transaction Construction". The official
//! vectors (Appendix C and F) check them through the commitment builder.
//!
//! Two formats exist: `option_static_remotekey` (HTLC transactions pay their
//! own fee) and `option_anchors_zero_fee_htlc_tx` (two 330-sat anchors, a
//! bigger commitment, and HTLC transactions with zero fee).

/// The weight of a commitment transaction without HTLC outputs (no anchors).
pub const COMMITMENT_BASE_WEIGHT: u64 = 724;
/// The weight of a commitment transaction without HTLC outputs, with anchors.
pub const COMMITMENT_ANCHORS_BASE_WEIGHT: u64 = 1124;
/// The weight each untrimmed HTLC output adds to a commitment transaction.
pub const HTLC_OUTPUT_WEIGHT: u64 = 172;
/// The weight of an HTLC-timeout transaction (no anchors).
pub const HTLC_TIMEOUT_WEIGHT: u64 = 663;
/// The weight of an HTLC-success transaction (no anchors).
pub const HTLC_SUCCESS_WEIGHT: u64 = 703;
/// The value of each anchor output, in satoshis.
pub const ANCHOR_OUTPUT_SAT: u64 = 330;

/// The fee of `weight` at `feerate_per_kw`, rounded down as BOLT 3 says.
pub fn fee_for_weight(feerate_per_kw: u32, weight: u64) -> u64 {
    u64::from(feerate_per_kw) * weight / 1000
}

/// The fee a commitment transaction with `untrimmed_htlcs` HTLC outputs pays.
pub fn commitment_fee_sat(feerate_per_kw: u32, untrimmed_htlcs: usize, anchors: bool) -> u64 {
    let base = if anchors { COMMITMENT_ANCHORS_BASE_WEIGHT } else { COMMITMENT_BASE_WEIGHT };
    fee_for_weight(feerate_per_kw, base + HTLC_OUTPUT_WEIGHT * untrimmed_htlcs as u64)
}

/// The fee of the HTLC-timeout transaction spending an offered HTLC; zero
/// with anchors (the fee is brought by another input).
pub fn htlc_timeout_fee_sat(feerate_per_kw: u32, anchors: bool) -> u64 {
    if anchors {
        0
    } else {
        fee_for_weight(feerate_per_kw, HTLC_TIMEOUT_WEIGHT)
    }
}

/// The fee of the HTLC-success transaction spending a received HTLC; zero
/// with anchors.
pub fn htlc_success_fee_sat(feerate_per_kw: u32, anchors: bool) -> u64 {
    if anchors {
        0
    } else {
        fee_for_weight(feerate_per_kw, HTLC_SUCCESS_WEIGHT)
    }
}

/// Whether an HTLC is trimmed from a commitment transaction: its output would
/// be worth less than the broadcaster's dust limit plus the fee of the
/// second-stage transaction that spends it. `offered` is from the
/// broadcaster's point of view.
pub fn is_trimmed(
    amount_msat: u64,
    offered: bool,
    feerate_per_kw: u32,
    dust_limit_sat: u64,
    anchors: bool,
) -> bool {
    let second_stage_fee = if offered {
        htlc_timeout_fee_sat(feerate_per_kw, anchors)
    } else {
        htlc_success_fee_sat(feerate_per_kw, anchors)
    };
    amount_msat / 1000 < dust_limit_sat.saturating_add(second_stage_fee)
}

/// What the funder pays on a commitment: the fee, plus the two anchors when
/// the channel has them.
pub fn funder_commitment_cost_sat(feerate_per_kw: u32, untrimmed_htlcs: usize, anchors: bool) -> u64 {
    commitment_fee_sat(feerate_per_kw, untrimmed_htlcs, anchors)
        + if anchors { 2 * ANCHOR_OUTPUT_SAT } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_down() {
        assert_eq!(commitment_fee_sat(15_000, 0, false), 10_860);
        assert_eq!(commitment_fee_sat(647, 5, false), (724 + 5 * 172) * 647 / 1000);
        assert_eq!(commitment_fee_sat(253, 0, true), 1124 * 253 / 1000);
        assert_eq!(htlc_timeout_fee_sat(1000, true), 0);
    }

    #[test]
    fn trimming_counts_the_second_stage_fee() {
        // 1000 sat received HTLC at 647 sat/kw: 546 + 647*703/1000 = 1000 (not below).
        assert!(!is_trimmed(1_000_000, false, 647, 546, false));
        assert!(is_trimmed(1_000_000, false, 648, 546, false));
        // With anchors only the dust limit counts.
        assert!(!is_trimmed(546_000, false, 100_000, 546, true));
        assert!(is_trimmed(545_999, true, 0, 546, true));
    }
}
