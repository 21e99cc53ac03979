//! The channel's ledger: every HTLC and fee update, and the commitments that
//! include them.
//!
//! Each change (an HTLC added or removed, a fee update) records the number of
//! the first local and the first remote commitment that includes it. A
//! commitment is then a pure function of the ledger: change `c` is in
//! commitment `n` of side `s` when `c` was first included at a number `<= n`.
//! The rules for assigning those numbers follow BOLT 2: a change proposed by
//! one side enters the other side's commitment with the proposer's
//! `commitment_signed`, and the proposer's own commitment once the receiver
//! has revoked the commitment before it.

use lightning::ln::msgs::UpdateAddHTLC;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use super::update::HtlcSource;

/// One of the two commitments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Ours: the commitment we would broadcast.
    Local,
    /// The counterparty's.
    Remote,
}

/// The first local and remote commitment numbers that include a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heights {
    /// First local commitment including it.
    pub local: Option<u64>,
    /// First remote commitment including it.
    pub remote: Option<u64>,
}

impl Heights {
    /// The first commitment of `side` including the change.
    pub fn at(&self, side: Side) -> Option<u64> {
        match side {
            Side::Local => self.local,
            Side::Remote => self.remote,
        }
    }

    /// Whether commitment `number` of `side` includes the change.
    pub fn included(&self, side: Side, number: u64) -> bool {
        self.at(side).is_some_and(|first| first <= number)
    }
}

/// How an HTLC was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Claimed with its preimage: the value goes to the receiver.
    Fulfill(PaymentPreimage),
    /// Failed with an encrypted onion error: the value returns to the offerer.
    Fail(Vec<u8>),
    /// Failed because the onion was malformed.
    FailMalformed {
        /// The BOLT 4 failure code (with the BADONION bit).
        failure_code: u16,
        /// SHA256 of the onion the receiver could not parse.
        sha256_of_onion: [u8; 32],
    },
}

/// The removal of an HTLC, proposed by the side that received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// How.
    pub outcome: Outcome,
    /// Where it is committed.
    pub heights: Heights,
    /// Order among our own proposals (for retransmission).
    pub seq: u64,
}

/// An HTLC in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtlcEntry {
    /// Its id, per direction.
    pub id: u64,
    /// Whether we offered it.
    pub outbound: bool,
    /// The `update_add_htlc` as sent or received.
    pub update_add: UpdateAddHTLC,
    /// For an HTLC we offered: where it came from.
    pub source: Option<HtlcSource>,
    /// Where the add is committed.
    pub heights: Heights,
    /// Order among our own proposals (for retransmission).
    pub seq: u64,
    /// Its removal, once proposed.
    pub removal: Option<Removal>,
    /// Whether `HtlcIrrevocablyCommitted` was emitted for it (inbound only).
    pub irrevocable_reported: bool,
    /// A policy the inbound HTLC breaks although BOLT 2 admits it.
    pub policy_violation: Option<String>,
}

impl HtlcEntry {
    /// Its value.
    pub fn amount_msat(&self) -> u64 {
        self.update_add.amount_msat
    }

    /// Its payment hash.
    pub fn payment_hash(&self) -> PaymentHash {
        self.update_add.payment_hash
    }

    /// Its expiry.
    pub fn cltv_expiry(&self) -> u32 {
        self.update_add.cltv_expiry
    }
}

/// A fee update, always proposed by the funder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeEntry {
    /// The new rate.
    pub feerate_per_kw: u32,
    /// Where it is committed.
    pub heights: Heights,
    /// Order among our own proposals (for retransmission).
    pub seq: u64,
}

/// What an HTLC is in one commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtlcStatus {
    /// Not added yet: the value is still the offerer's.
    NotAdded,
    /// An output of the commitment.
    Pending,
    /// Removed: the value went to the receiver (fulfilled) or back.
    Removed {
        /// Whether it was fulfilled.
        fulfilled: bool,
    },
}

/// One commitment's balances and HTLCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentView<'a> {
    /// Our balance, HTLCs excluded, before the fee.
    pub ours_msat: u64,
    /// Theirs, likewise.
    pub theirs_msat: u64,
    /// The HTLCs that are outputs (before trimming).
    pub htlcs: Vec<&'a HtlcEntry>,
    /// The fee rate.
    pub feerate_per_kw: u32,
}

/// Every HTLC and fee change of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// HTLCs in either direction, until their removal is irrevocable.
    pub htlcs: Vec<HtlcEntry>,
    /// Fee updates, until irrevocable.
    pub fees: Vec<FeeEntry>,
    /// The fee rate every commitment uses unless a fee update applies.
    pub base_feerate_per_kw: u32,
    /// Our balance with every tracked HTLC returned to its offerer.
    pub settled_ours_msat: u64,
    /// Theirs, likewise.
    pub settled_theirs_msat: u64,
    /// The id our next HTLC gets.
    pub next_outbound_id: u64,
    /// The id we expect for their next HTLC.
    pub next_inbound_id: u64,
    /// The sequence number of our next proposal.
    pub next_seq: u64,
}

impl Ledger {
    /// A ledger with initial balances and fee rate.
    pub fn new(ours_msat: u64, theirs_msat: u64, feerate_per_kw: u32) -> Self {
        Self {
            htlcs: Vec::new(),
            fees: Vec::new(),
            base_feerate_per_kw: feerate_per_kw,
            settled_ours_msat: ours_msat,
            settled_theirs_msat: theirs_msat,
            next_outbound_id: 0,
            next_inbound_id: 0,
            next_seq: 0,
        }
    }

    /// A fresh sequence number for one of our proposals.
    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The HTLC with this id and direction.
    pub fn htlc(&self, outbound: bool, id: u64) -> Option<&HtlcEntry> {
        self.htlcs.iter().find(|h| h.outbound == outbound && h.id == id)
    }

    /// The HTLC with this id and direction, mutably.
    pub fn htlc_mut(&mut self, outbound: bool, id: u64) -> Option<&mut HtlcEntry> {
        self.htlcs.iter_mut().find(|h| h.outbound == outbound && h.id == id)
    }

    /// What `htlc` is in commitment `number` of `side`.
    pub fn status(htlc: &HtlcEntry, side: Side, number: u64) -> HtlcStatus {
        if !htlc.heights.included(side, number) {
            return HtlcStatus::NotAdded;
        }
        match &htlc.removal {
            Some(r) if r.heights.included(side, number) => {
                HtlcStatus::Removed { fulfilled: matches!(r.outcome, Outcome::Fulfill(_)) }
            }
            _ => HtlcStatus::Pending,
        }
    }

    /// The fee rate of commitment `number` of `side`.
    pub fn feerate(&self, side: Side, number: u64) -> u32 {
        self.fees
            .iter()
            .filter(|f| f.heights.included(side, number))
            .max_by_key(|f| f.heights.at(side))
            .map_or(self.base_feerate_per_kw, |f| f.feerate_per_kw)
    }

    /// Commitment `number` of `side`.
    pub fn view(&self, side: Side, number: u64) -> CommitmentView<'_> {
        let mut ours = self.settled_ours_msat;
        let mut theirs = self.settled_theirs_msat;
        let mut htlcs = Vec::new();
        for h in &self.htlcs {
            let (offerer, receiver) =
                if h.outbound { (&mut ours, &mut theirs) } else { (&mut theirs, &mut ours) };
            match Self::status(h, side, number) {
                HtlcStatus::NotAdded | HtlcStatus::Removed { fulfilled: false } => {
                    *offerer += h.amount_msat()
                }
                HtlcStatus::Removed { fulfilled: true } => *receiver += h.amount_msat(),
                HtlcStatus::Pending => htlcs.push(h),
            }
        }
        // Settled balances count every tracked HTLC as its offerer's; the
        // loop above added back what is not an output, so take the tracked
        // total out once.
        let (tracked_ours, tracked_theirs) = self.tracked_totals();
        CommitmentView {
            ours_msat: ours - tracked_ours,
            theirs_msat: theirs - tracked_theirs,
            htlcs,
            feerate_per_kw: self.feerate(side, number),
        }
    }

    /// The value of tracked HTLCs each side offered: (ours, theirs). The
    /// settled balances include them.
    fn tracked_totals(&self) -> (u64, u64) {
        self.htlcs.iter().fold((0, 0), |(o, t), h| {
            if h.outbound {
                (o + h.amount_msat(), t)
            } else {
                (o, t + h.amount_msat())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    use lightning::ln::msgs::OnionPacket;
    use lightning::ln::types::ChannelId;

    fn add(id: u64, outbound: bool, amount_msat: u64) -> HtlcEntry {
        let key =
            PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[1; 32]).expect("key"));
        HtlcEntry {
            id,
            outbound,
            update_add: UpdateAddHTLC {
                channel_id: ChannelId::new_zero(),
                htlc_id: id,
                amount_msat,
                payment_hash: PaymentHash([id as u8; 32]),
                cltv_expiry: 100,
                skimmed_fee_msat: None,
                onion_routing_packet: OnionPacket {
                    version: 0,
                    public_key: Ok(key),
                    hop_data: [0; 1300],
                    hmac: [0; 32],
                },
                blinding_point: None,
                hold_htlc: None,
            },
            source: None,
            heights: Heights::default(),
            seq: 0,
            removal: None,
            irrevocable_reported: false,
            policy_violation: None,
        }
    }

    #[test]
    fn views_follow_the_heights() {
        // Settled balances include tracked HTLCs as their offerer's.
        let mut ledger = Ledger::new(7_000_000, 3_000_000, 1000);
        let mut ours = add(0, true, 1_000_000);
        ours.heights = Heights { local: Some(2), remote: Some(1) };
        ours.removal = Some(Removal {
            outcome: Outcome::Fulfill(PaymentPreimage([0; 32])),
            heights: Heights { local: Some(3), remote: Some(4) },
            seq: 2,
        });
        ledger.htlcs.push(ours);
        ledger.fees.push(FeeEntry {
            feerate_per_kw: 2000,
            heights: Heights { local: None, remote: Some(2) },
            seq: 3,
        });

        let v = ledger.view(Side::Remote, 0);
        assert_eq!(
            (v.ours_msat, v.theirs_msat, v.htlcs.len(), v.feerate_per_kw),
            (7_000_000, 3_000_000, 0, 1000)
        );
        let v = ledger.view(Side::Remote, 1);
        assert_eq!((v.ours_msat, v.theirs_msat, v.htlcs.len()), (6_000_000, 3_000_000, 1));
        assert_eq!(ledger.view(Side::Remote, 2).feerate_per_kw, 2000);
        let v = ledger.view(Side::Remote, 4);
        assert_eq!((v.ours_msat, v.theirs_msat, v.htlcs.len()), (6_000_000, 4_000_000, 0));
        let v = ledger.view(Side::Local, 1);
        assert_eq!((v.ours_msat, v.htlcs.len(), v.feerate_per_kw), (7_000_000, 0, 1000));
        let v = ledger.view(Side::Local, 2);
        assert_eq!((v.ours_msat, v.theirs_msat, v.htlcs.len()), (6_000_000, 3_000_000, 1));
        let v = ledger.view(Side::Local, 3);
        assert_eq!((v.ours_msat, v.theirs_msat), (6_000_000, 4_000_000));
    }
}
