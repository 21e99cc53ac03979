//! User events, and what handling each one acknowledges in the monitors.
//!
//! An event is delivered once per run by [`ChannelManager::next_event`] and
//! stays listed by `unhandled_events` until the user calls
//! [`ChannelManager::event_handled`]; one not handled comes back after a
//! restart. Handling it runs its
//! [`AckAction`]s: monitor events are acknowledged and resolution records
//! written, so a restart never surfaces the event again (I5). Events whose
//! monitor events are still unacknowledged are rebuilt by the start-up
//! replay, through the same code that made them the first time.
//!
//! [`ChannelManager::next_event`]: super::ChannelManager::next_event
//! [`ChannelManager::event_handled`]: super::ChannelManager::event_handled

use std::collections::VecDeque;

use bitcoin::secp256k1::PublicKey;
use bitcoin::ScriptBuf;
use lightning::ln::types::ChannelId;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use crate::monitor::{MonitorEventId, ResolutionRecord};

/// The id of a user event, for [`super::ChannelManager::event_handled`].
/// Ids are per run: after a restart, replayed events get new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

/// The id of a payment we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PaymentId(pub [u8; 32]);

/// How a payment we receive is paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentPurpose {
    /// A payment to one of our invoices.
    Invoice {
        /// Its preimage, derived from our keys.
        preimage: PaymentPreimage,
    },
    /// A spontaneous payment that carried its preimage.
    Keysend {
        /// The preimage the sender chose.
        preimage: PaymentPreimage,
    },
}

impl PaymentPurpose {
    /// The preimage that claims the payment.
    pub fn preimage(&self) -> PaymentPreimage {
        match self {
            Self::Invoice { preimage } | Self::Keysend { preimage } => *preimage,
        }
    }
}

/// Something the user should know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Our channel open needs its funding transaction: build one paying
    /// `value_sat` to `script_pubkey` and pass it to
    /// [`super::ChannelManager::funding_transaction_generated`].
    FundingGenerationReady {
        /// The channel (its temporary id).
        temporary_channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
        /// The funding output's script.
        script_pubkey: ScriptBuf,
        /// The funding output's value.
        value_sat: u64,
    },
    /// A channel can carry payments.
    ChannelReady {
        /// The channel.
        channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
    },
    /// A channel closed.
    ChannelClosed {
        /// The channel.
        channel_id: ChannelId,
        /// Why, in words.
        reason: String,
    },
    /// A payment to us has arrived in full: call
    /// [`super::ChannelManager::claim_funds`] to take it. Emitted again
    /// after a restart until it is claimed or failed.
    PaymentClaimable {
        /// The payment hash.
        payment_hash: PaymentHash,
        /// The sum of its parts.
        amount_msat: u64,
        /// How it is paid for.
        purpose: PaymentPurpose,
    },
    /// Every part of a payment to us is durably claimed.
    PaymentClaimed {
        /// The payment hash.
        payment_hash: PaymentHash,
        /// The sum of its parts.
        amount_msat: u64,
    },
    /// A payment we sent succeeded.
    PaymentSent {
        /// The payment.
        payment_id: PaymentId,
        /// Its hash.
        payment_hash: PaymentHash,
        /// The proof of payment.
        preimage: PaymentPreimage,
        /// The routing fees paid, over the paths claimed so far.
        fee_paid_msat: u64,
    },
    /// A payment we sent failed for good: no HTLC of it is pending.
    PaymentFailed {
        /// The payment.
        payment_id: PaymentId,
        /// Its hash.
        payment_hash: PaymentHash,
        /// Why, in words.
        reason: String,
    },
    /// One path of a payment we sent failed (the payment may still
    /// succeed over others).
    PaymentPathFailed {
        /// The payment.
        payment_id: PaymentId,
        /// The BOLT 4 failure code, when the failure could be read.
        failure_code: Option<u16>,
        /// Whether the payment will be retried.
        retrying: bool,
    },
    /// We forwarded a payment and were paid for it.
    PaymentForwarded {
        /// The inbound channel.
        prev_channel_id: ChannelId,
        /// The inbound HTLC's id there.
        prev_htlc_id: u64,
        /// The outbound channel.
        next_channel_id: ChannelId,
        /// The outbound HTLC's id there.
        next_htlc_id: u64,
        /// What came in.
        inbound_amount_msat: u64,
        /// What went out.
        outbound_amount_msat: u64,
        /// The difference: what we earned.
        fee_earned_msat: u64,
    },
}

/// What handling a user event makes durable in the monitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckAction {
    /// Acknowledge a monitor event.
    Ack(ChannelId, MonitorEventId),
    /// Write a resolution record.
    Record(ChannelId, ResolutionRecord),
    /// Acknowledge the deferred claim events of a payment in a monitor.
    AckDeferredClaims(ChannelId, PaymentHash),
    /// Record "payment seen" in every monitor involved in a payment we
    /// sent, and acknowledge its path events (worked out when run).
    PaymentSeen(PaymentId),
}

#[derive(Debug)]
struct Pending {
    id: EventId,
    event: Event,
    on_handled: Vec<AckAction>,
    delivered: bool,
}

/// The queue of user events of this run.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    next_id: u64,
    /// In id order; the first `delivered` ones were delivered (events are
    /// delivered oldest first, so the delivered ones are a prefix).
    pending: VecDeque<Pending>,
    delivered: usize,
    /// Actions of events the user had already handled before a restart:
    /// run without asking again.
    silent: Vec<AckAction>,
}

impl EventQueue {
    /// Queues an event. Returns its id.
    pub(crate) fn push(&mut self, event: Event, on_handled: Vec<AckAction>) -> EventId {
        self.next_id += 1;
        let id = EventId(self.next_id);
        self.pending.push_back(Pending { id, event, on_handled, delivered: false });
        id
    }

    /// Runs `actions` as if the user had handled an event again (it had,
    /// before a restart).
    pub(crate) fn push_handled(&mut self, actions: Vec<AckAction>) {
        self.silent.extend(actions);
    }

    /// The actions queued by [`EventQueue::push_handled`].
    pub(crate) fn take_silent(&mut self) -> Vec<AckAction> {
        std::mem::take(&mut self.silent)
    }

    /// The oldest event not delivered yet in this run. An event delivered
    /// and not handled stays in [`EventQueue::unhandled`], and comes back
    /// after a restart.
    pub(crate) fn next(&mut self) -> Option<(EventId, Event)> {
        let p = self.pending.get_mut(self.delivered)?;
        debug_assert!(!p.delivered, "the delivered events are a prefix");
        p.delivered = true;
        self.delivered += 1;
        Some((p.id, p.event.clone()))
    }

    /// Every unhandled event, oldest first.
    pub(crate) fn unhandled(&self) -> impl Iterator<Item = (EventId, &Event)> {
        self.pending.iter().map(|p| (p.id, &p.event))
    }

    /// Removes a handled event. Returns its actions, or `None` if unknown.
    pub(crate) fn handled(&mut self, id: EventId) -> Option<(Event, Vec<AckAction>)> {
        let at = self.pending.binary_search_by_key(&id, |p| p.id).ok()?;
        let p = self.pending.remove(at).expect("the position was just found");
        if p.delivered {
            self.delivered -= 1;
        }
        Some((p.event, p.on_handled))
    }
}
