//! Receiving: parts gather per payment hash, and a claim follows the
//! deferred-event protocol of DESIGN.md §3.
//!
//! 1. Each part arrives as an `HtlcAccepted` event (not acknowledged yet).
//!    When the parts reach the payment's total, the user gets
//!    [`Event::PaymentClaimable`].
//! 2. `claim_funds` fulfils every part with the whole claim attached; each
//!    part's monitor keeps the preimage and a deferred
//!    `InboundClaimPersisted`.
//! 3. A part's `HtlcAccepted` is acknowledged once its preimage is durable;
//!    when every part is, the user gets [`Event::PaymentClaimed`].
//!    Handling it records "claim seen" in each part's monitor and
//!    acknowledges the deferred events.
//! 4. After a crash the deferred events come back at start-up: the claim is
//!    rebuilt, parts without a durable preimage are claimed again, and
//!    `PaymentClaimed` is emitted unless the user had seen it.

use std::collections::{BTreeMap, BTreeSet};

use lightning::ln::types::ChannelId;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use super::events::{AckAction, Event, EventQueue, PaymentPurpose};
use crate::chain_monitor::ChainMonitor;
use crate::channel::{ClaimPart, InboundClaim};
use crate::monitor::ResolutionRecord;

/// One part of a payment to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) channel_id: ChannelId,
    pub(crate) htlc_id: u64,
    pub(crate) amount_msat: u64,
    pub(crate) cltv_expiry: u32,
    pub(crate) event_id: crate::monitor::MonitorEventId,
}

/// A payment whose parts are arriving.
#[derive(Debug, Clone)]
pub(crate) struct Claimable {
    pub(crate) parts: Vec<Part>,
    pub(crate) total_msat: u64,
    pub(crate) purpose: PaymentPurpose,
    pub(crate) first_tick: u64,
    pub(crate) announced: bool,
}

impl Claimable {
    pub(crate) fn received_msat(&self) -> u64 {
        self.parts.iter().map(|p| p.amount_msat).sum()
    }
}

/// A payment being claimed.
#[derive(Debug, Clone)]
pub(crate) struct Claiming {
    pub(crate) preimage: PaymentPreimage,
    pub(crate) parts: Vec<ClaimPart>,
    /// Parts whose preimage is durable.
    pub(crate) durable: BTreeSet<(ChannelId, u64)>,
    pub(crate) claimed_emitted: bool,
}

impl Claiming {
    pub(crate) fn claim(&self, payment_hash: PaymentHash) -> InboundClaim {
        InboundClaim { payment_hash, parts: self.parts.clone() }
    }
}

/// The receiving side of the manager.
#[derive(Debug, Default)]
pub struct Receiver {
    pub(crate) claimable: BTreeMap<PaymentHash, Claimable>,
    pub(crate) claiming: BTreeMap<PaymentHash, Claiming>,
    /// Payments whose claim completed in this run (so claiming again is a
    /// no-op).
    pub(crate) completed: BTreeSet<PaymentHash>,
}

/// What to do with a new part.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PartOutcome {
    /// Keep it; the payment is not complete (or already announced).
    Held,
    /// The payment is being claimed: claim this part too.
    Claim(PaymentPreimage, InboundClaim),
    /// Fail it back: its total disagrees with the other parts'.
    Reject,
}

impl Receiver {
    /// A part arrived. Announces the payment when its parts reach the total.
    pub(crate) fn add_part(
        &mut self,
        payment_hash: PaymentHash,
        part: Part,
        total_msat: u64,
        purpose: PaymentPurpose,
        tick: u64,
        events: &mut EventQueue,
    ) -> PartOutcome {
        if let Some(claiming) = self.claiming.get_mut(&payment_hash) {
            let key = ClaimPart {
                channel_id: part.channel_id,
                htlc_id: part.htlc_id,
                amount_msat: part.amount_msat,
            };
            if !claiming.parts.contains(&key) {
                claiming.parts.push(key);
            }
            return PartOutcome::Claim(claiming.preimage, claiming.claim(payment_hash));
        }
        let entry = self.claimable.entry(payment_hash).or_insert_with(|| Claimable {
            parts: Vec::new(),
            total_msat,
            purpose: purpose.clone(),
            first_tick: tick,
            announced: false,
        });
        if entry.total_msat != total_msat || entry.purpose != purpose {
            return PartOutcome::Reject;
        }
        if !entry.parts.iter().any(|p| p.channel_id == part.channel_id && p.htlc_id == part.htlc_id) {
            entry.parts.push(part);
        }
        if !entry.announced && entry.received_msat() >= entry.total_msat {
            entry.announced = true;
            events.push(
                Event::PaymentClaimable {
                    payment_hash,
                    amount_msat: entry.received_msat(),
                    purpose: entry.purpose.clone(),
                },
                Vec::new(),
            );
        }
        PartOutcome::Held
    }

    /// Starts claiming a complete payment. Returns its parts and the claim.
    pub(crate) fn start_claim(
        &mut self,
        payment_hash: PaymentHash,
        preimage: PaymentPreimage,
    ) -> Option<(Vec<Part>, InboundClaim)> {
        let claimable = self.claimable.get(&payment_hash)?;
        if claimable.received_msat() < claimable.total_msat {
            return None;
        }
        let claimable = self.claimable.remove(&payment_hash).expect("looked up above");
        let parts: Vec<ClaimPart> = claimable
            .parts
            .iter()
            .map(|p| ClaimPart { channel_id: p.channel_id, htlc_id: p.htlc_id, amount_msat: p.amount_msat })
            .collect();
        let claiming = Claiming { preimage, parts, durable: BTreeSet::new(), claimed_emitted: false };
        let claim = claiming.claim(payment_hash);
        self.claiming.insert(payment_hash, claiming);
        Some((claimable.parts, claim))
    }

    /// A claim found at start-up in a deferred event of `channel_id`: the
    /// part `htlc_id` there is durable.
    pub(crate) fn resume_claim(
        &mut self,
        channel_id: ChannelId,
        htlc_id: u64,
        preimage: PaymentPreimage,
        claim: &InboundClaim,
    ) {
        let claiming = self.claiming.entry(claim.payment_hash).or_insert_with(|| Claiming {
            preimage,
            parts: claim.parts.clone(),
            durable: BTreeSet::new(),
            claimed_emitted: false,
        });
        claiming.durable.insert((channel_id, htlc_id));
    }

    /// A part's preimage is durable. Emits `PaymentClaimed` once every part's
    /// is.
    pub(crate) fn part_durable(
        &mut self,
        channel_id: ChannelId,
        htlc_id: u64,
        events: &mut EventQueue,
        chain_monitor: &ChainMonitor,
    ) {
        let hashes: Vec<PaymentHash> = self
            .claiming
            .iter()
            .filter(|(_, c)| c.parts.iter().any(|p| p.channel_id == channel_id && p.htlc_id == htlc_id))
            .map(|(h, _)| *h)
            .collect();
        for hash in hashes {
            let claiming = self.claiming.get_mut(&hash).expect("listed above");
            claiming.durable.insert((channel_id, htlc_id));
            self.maybe_claimed(hash, events, chain_monitor);
        }
    }

    /// Emits `PaymentClaimed` if every part of `hash` is durable and the
    /// user has not seen it.
    pub(crate) fn maybe_claimed(
        &mut self,
        hash: PaymentHash,
        events: &mut EventQueue,
        chain_monitor: &ChainMonitor,
    ) {
        let Some(claiming) = self.claiming.get_mut(&hash) else { return };
        if claiming.claimed_emitted
            || !claiming.parts.iter().all(|p| claiming.durable.contains(&(p.channel_id, p.htlc_id)))
        {
            return;
        }
        claiming.claimed_emitted = true;
        let channels: BTreeSet<ChannelId> = claiming.parts.iter().map(|p| p.channel_id).collect();
        let seen = channels.iter().any(|c| {
            chain_monitor.monitor(c).is_some_and(|m| m.has_record(&ResolutionRecord::ClaimSeen(hash)))
        });
        let mut actions = Vec::new();
        for c in &channels {
            actions.push(AckAction::Record(*c, ResolutionRecord::ClaimSeen(hash)));
            actions.push(AckAction::AckDeferredClaims(*c, hash));
        }
        let amount_msat = claiming.parts.iter().map(|p| p.amount_msat).sum();
        let event = Event::PaymentClaimed { payment_hash: hash, amount_msat };
        // Every part is durable and acknowledged: nothing of this claim is
        // needed in memory any more (a restart rebuilds it from the
        // deferred events until the user has seen it).
        self.claiming.remove(&hash);
        self.completed.insert(hash);
        if seen {
            // The user saw it before a crash; finish the acknowledgement
            // silently.
            events.push_handled(actions);
        } else {
            events.push(event, actions);
        }
    }

    /// Incomplete payments older than `timeout_ticks`: removed, to be failed
    /// back with `mpp_timeout`.
    pub(crate) fn expire(&mut self, tick: u64, timeout_ticks: u32) -> Vec<Part> {
        let expired: Vec<PaymentHash> = self
            .claimable
            .iter()
            .filter(|(_, c)| {
                c.received_msat() < c.total_msat && tick >= c.first_tick + u64::from(timeout_ticks)
            })
            .map(|(h, _)| *h)
            .collect();
        expired.iter().flat_map(|h| self.claimable.remove(h).map(|c| c.parts).unwrap_or_default()).collect()
    }

    /// Payments not claimed yet with a part expiring at or before
    /// `deadline`: removed, to be failed back before the peer must go on
    /// chain.
    pub(crate) fn expiring(&mut self, deadline: u32) -> Vec<Part> {
        let due: Vec<PaymentHash> = self
            .claimable
            .iter()
            .filter(|(_, c)| c.parts.iter().any(|p| p.cltv_expiry <= deadline))
            .map(|(h, _)| *h)
            .collect();
        due.iter().flat_map(|h| self.claimable.remove(h).map(|c| c.parts).unwrap_or_default()).collect()
    }

    /// Forgets the parts received on a channel whose HTLCs were decided on
    /// chain; a payment left without parts is no longer claimable.
    pub(crate) fn forget_channel(&mut self, channel_id: &ChannelId) {
        for claimable in self.claimable.values_mut() {
            claimable.parts.retain(|p| p.channel_id != *channel_id);
        }
        self.claimable.retain(|_, c| !c.parts.is_empty());
    }

    /// Removes a payment the user refuses. Returns its parts, to fail back.
    pub(crate) fn abandon(&mut self, payment_hash: &PaymentHash) -> Vec<Part> {
        self.claimable.remove(payment_hash).map(|c| c.parts).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::MonitorEventId;

    fn part(htlc_id: u64, amount_msat: u64) -> Part {
        Part {
            channel_id: ChannelId([1; 32]),
            htlc_id,
            amount_msat,
            cltv_expiry: 1000 + htlc_id as u32,
            event_id: MonitorEventId(htlc_id),
        }
    }

    #[test]
    fn parts_gather_until_the_total_and_incomplete_sets_expire() {
        let mut r = Receiver::default();
        let mut events = EventQueue::default();
        let hash = PaymentHash([2; 32]);
        let purpose = PaymentPurpose::Invoice { preimage: PaymentPreimage([3; 32]) };
        assert_eq!(r.add_part(hash, part(0, 400), 1000, purpose.clone(), 0, &mut events), PartOutcome::Held);
        assert!(events.next().is_none(), "not complete yet");
        // A part that disagrees on the total is refused.
        assert_eq!(r.add_part(hash, part(1, 100), 999, purpose.clone(), 0, &mut events), PartOutcome::Reject);
        // Not expired before the timeout, expired at it.
        assert!(r.expire(2, 3).is_empty());
        let expired = r.expire(3, 3);
        assert_eq!(expired, vec![part(0, 400)]);
        assert!(r.claimable.is_empty());
        // A complete set is announced once and never expires.
        r.add_part(hash, part(2, 600), 1000, purpose.clone(), 5, &mut events);
        r.add_part(hash, part(3, 400), 1000, purpose.clone(), 5, &mut events);
        r.add_part(hash, part(3, 400), 1000, purpose, 5, &mut events);
        let (_, event) = events.next().expect("announced");
        assert_eq!(
            event,
            Event::PaymentClaimable {
                payment_hash: hash,
                amount_msat: 1000,
                purpose: PaymentPurpose::Invoice { preimage: PaymentPreimage([3; 32]) }
            }
        );
        assert!(events.next().is_none(), "announced once");
        assert!(r.expire(100, 3).is_empty());
        // Until it nears its expiry: parts 2 and 3 expire at 1002 and 1003.
        assert!(r.expiring(1001).is_empty());
        assert_eq!(r.expiring(1002).len(), 2, "the whole payment is failed back");
        assert!(r.claimable.is_empty());
    }
}
