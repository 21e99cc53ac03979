//! BOLT 4 failure codes, flags included.

/// The onion could not be parsed (sent in `update_fail_malformed_htlc`).
pub const BADONION: u16 = 0x8000;
/// Permanent: retrying will not help.
pub const PERM: u16 = 0x4000;
/// A node failure (not a channel failure).
pub const NODE: u16 = 0x2000;
/// A channel update is attached.
pub const UPDATE: u16 = 0x1000;

/// `invalid_realm`.
pub const INVALID_REALM: u16 = PERM | 1;
/// `temporary_node_failure`.
pub const TEMPORARY_NODE_FAILURE: u16 = NODE | 2;
/// `permanent_node_failure`.
pub const PERMANENT_NODE_FAILURE: u16 = PERM | NODE | 2;
/// `required_node_feature_missing`.
pub const REQUIRED_NODE_FEATURE_MISSING: u16 = PERM | NODE | 3;
/// `invalid_onion_version`.
pub const INVALID_ONION_VERSION: u16 = BADONION | PERM | 4;
/// `invalid_onion_hmac`.
pub const INVALID_ONION_HMAC: u16 = BADONION | PERM | 5;
/// `invalid_onion_key`.
pub const INVALID_ONION_KEY: u16 = BADONION | PERM | 6;
/// `temporary_channel_failure`.
pub const TEMPORARY_CHANNEL_FAILURE: u16 = UPDATE | 7;
/// `permanent_channel_failure`.
pub const PERMANENT_CHANNEL_FAILURE: u16 = PERM | 8;
/// `required_channel_feature_missing`.
pub const REQUIRED_CHANNEL_FEATURE_MISSING: u16 = PERM | 9;
/// `unknown_next_peer`.
pub const UNKNOWN_NEXT_PEER: u16 = PERM | 10;
/// `amount_below_minimum`.
pub const AMOUNT_BELOW_MINIMUM: u16 = UPDATE | 11;
/// `fee_insufficient`.
pub const FEE_INSUFFICIENT: u16 = UPDATE | 12;
/// `incorrect_cltv_expiry`.
pub const INCORRECT_CLTV_EXPIRY: u16 = UPDATE | 13;
/// `expiry_too_soon`.
pub const EXPIRY_TOO_SOON: u16 = UPDATE | 14;
/// `incorrect_or_unknown_payment_details`.
pub const INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: u16 = PERM | 15;
/// `final_incorrect_cltv_expiry`.
pub const FINAL_INCORRECT_CLTV_EXPIRY: u16 = 18;
/// `final_incorrect_htlc_amount`.
pub const FINAL_INCORRECT_HTLC_AMOUNT: u16 = 19;
/// `channel_disabled`.
pub const CHANNEL_DISABLED: u16 = UPDATE | 20;
/// `expiry_too_far`.
pub const EXPIRY_TOO_FAR: u16 = 21;
/// `invalid_onion_payload`.
pub const INVALID_ONION_PAYLOAD: u16 = PERM | 22;
/// `mpp_timeout`.
pub const MPP_TIMEOUT: u16 = 23;

/// The BOLT 4 name of a failure code, for logs and errors.
pub fn name(code: u16) -> &'static str {
    match code {
        INVALID_REALM => "invalid_realm",
        TEMPORARY_NODE_FAILURE => "temporary_node_failure",
        PERMANENT_NODE_FAILURE => "permanent_node_failure",
        REQUIRED_NODE_FEATURE_MISSING => "required_node_feature_missing",
        INVALID_ONION_VERSION => "invalid_onion_version",
        INVALID_ONION_HMAC => "invalid_onion_hmac",
        INVALID_ONION_KEY => "invalid_onion_key",
        TEMPORARY_CHANNEL_FAILURE => "temporary_channel_failure",
        PERMANENT_CHANNEL_FAILURE => "permanent_channel_failure",
        REQUIRED_CHANNEL_FEATURE_MISSING => "required_channel_feature_missing",
        UNKNOWN_NEXT_PEER => "unknown_next_peer",
        AMOUNT_BELOW_MINIMUM => "amount_below_minimum",
        FEE_INSUFFICIENT => "fee_insufficient",
        INCORRECT_CLTV_EXPIRY => "incorrect_cltv_expiry",
        EXPIRY_TOO_SOON => "expiry_too_soon",
        INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS => "incorrect_or_unknown_payment_details",
        FINAL_INCORRECT_CLTV_EXPIRY => "final_incorrect_cltv_expiry",
        FINAL_INCORRECT_HTLC_AMOUNT => "final_incorrect_htlc_amount",
        CHANNEL_DISABLED => "channel_disabled",
        EXPIRY_TOO_FAR => "expiry_too_far",
        INVALID_ONION_PAYLOAD => "invalid_onion_payload",
        MPP_TIMEOUT => "mpp_timeout",
        _ => "unknown failure code",
    }
}
