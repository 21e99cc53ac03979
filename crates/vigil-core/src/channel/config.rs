//! Channel parameters: what each side announces, and our own policy.

/// The parameters one side announces in `open_channel` or `accept_channel`.
/// Each constrains the *other* side: the reserve, delay, dust limit, HTLC
/// count and in-flight value the announcing side requires or accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartyParams {
    /// Outputs below this are trimmed from this side's commitments.
    pub dust_limit_sat: u64,
    /// The most value of HTLCs this side accepts in flight towards it.
    pub max_htlc_value_in_flight_msat: u64,
    /// The reserve the other side must keep.
    pub channel_reserve_sat: u64,
    /// The smallest HTLC this side accepts.
    pub htlc_minimum_msat: u64,
    /// The delay the other side's `to_local` output waits.
    pub to_self_delay: u16,
    /// The most HTLCs this side accepts towards it.
    pub max_accepted_htlcs: u16,
}

/// The most HTLCs BOLT 2 allows in each direction.
pub const MAX_HTLCS: u16 = 483;
/// The smallest dust limit BOLT 2 allows.
pub const MIN_DUST_LIMIT_SAT: u64 = 354;
/// The smallest fee rate of any commitment (the relay floor).
pub const MIN_FEERATE_PER_KW: u32 = 253;
/// The largest CLTV delta ahead of the current height we offer.
pub const MAX_CLTV_EXPIRY_DELTA: u32 = 2016;
/// The factor of the fee spike buffer: the funder keeps room for this many
/// times the current feerate (BOLT 2 recommends 2).
pub const FEE_SPIKE_BUFFER_MULTIPLE: u32 = 2;

/// Our policy for opening and accepting channels, and for their operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Our dust limit.
    pub dust_limit_sat: u64,
    /// The largest in-flight value we accept, as a percentage of the channel.
    pub max_inbound_in_flight_percent: u8,
    /// The smallest HTLC we accept.
    pub htlc_minimum_msat: u64,
    /// The delay we require on the counterparty's `to_local`.
    pub to_self_delay: u16,
    /// The most HTLCs we accept towards us.
    pub max_accepted_htlcs: u16,
    /// The reserve we require of the counterparty, in millionths of the
    /// channel value (10,000 is 1%).
    pub reserve_ppm: u32,
    /// Confirmations we require of the funding transaction as fundee.
    pub minimum_depth: u32,
    /// Whether we accept channels with zero confirmations (`option_zeroconf`).
    pub accept_zero_conf: bool,
    /// The longest `to_self_delay` we accept on our own outputs.
    pub max_to_self_delay: u16,
    /// The most confirmations a fundee may ask of us.
    pub max_minimum_depth: u32,
    /// The most value in HTLCs trimmed as dust we allow on either commitment.
    pub max_dust_htlc_exposure_msat: u64,
    /// The largest channel we accept, in satoshis.
    pub max_funding_sat: u64,
    /// The smallest channel we accept, in satoshis.
    pub min_funding_sat: u64,
    /// Feerates of a peer's commitment outside
    /// [estimate / factor, estimate * factor] are refused.
    pub feerate_tolerance_factor: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            dust_limit_sat: MIN_DUST_LIMIT_SAT,
            max_inbound_in_flight_percent: 100,
            htlc_minimum_msat: 1,
            to_self_delay: 144,
            max_accepted_htlcs: MAX_HTLCS,
            reserve_ppm: 10_000,
            minimum_depth: 3,
            accept_zero_conf: false,
            max_to_self_delay: 2016,
            max_minimum_depth: 144,
            max_dust_htlc_exposure_msat: 5_000_000,
            max_funding_sat: (1 << 24) - 1,
            min_funding_sat: 1000,
            feerate_tolerance_factor: 10,
        }
    }
}

impl ChannelConfig {
    /// The parameters we announce for a channel of `channel_value_sat`.
    pub fn our_params(&self, channel_value_sat: u64) -> PartyParams {
        let reserve = (channel_value_sat * u64::from(self.reserve_ppm) / 1_000_000).max(self.dust_limit_sat);
        PartyParams {
            dust_limit_sat: self.dust_limit_sat,
            max_htlc_value_in_flight_msat: channel_value_sat
                * 10
                * u64::from(self.max_inbound_in_flight_percent),
            channel_reserve_sat: reserve,
            htlc_minimum_msat: self.htlc_minimum_msat.max(1),
            to_self_delay: self.to_self_delay,
            max_accepted_htlcs: self.max_accepted_htlcs.min(MAX_HTLCS),
        }
    }
}
