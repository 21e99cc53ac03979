//! Restart is replay: a node is killed at every point of a payment (after
//! each of its writes, and with writes still in flight), rebuilt from its
//! durable image alone, and the payment still completes, with no
//! force-close and every user event handled exactly once.
//!
//! The driver runs the payment once to count the crashing node's writes,
//! then once per write, crashing right before that write completes (so the
//! write and everything after it are lost).

mod common;

use common::net::Net;
use lightning::ln::types::ChannelId;
use vigil_core::manager::{Event, PaymentId};
use vigil_core::monitor::ResolutionRecord;

const SAT: u64 = 1000;
const AMOUNT: u64 = 100_000 * SAT;

/// A payment under test: the network, who pays whom, and through whom.
struct Scenario {
    net: Net,
    payer: usize,
    payee: usize,
    forwarder: Option<usize>,
    amount: u64,
    payment_id: Option<PaymentId>,
    invoice: Option<lightning::bolt11_invoice::Bolt11Invoice>,
    /// Value the payee's channels should hold at the end, and the
    /// forwarder's inbound channel.
    checks: Vec<(usize, ChannelId, u64)>,
}

impl Scenario {
    /// The forward A→B→C of `AMOUNT`.
    fn forward() -> Self {
        let mut net = Net::new(3);
        net.connect(0, 1);
        net.connect(1, 2);
        let ab = net.open_channel(0, 1, 1_000_000, 0);
        let bc = net.open_channel(1, 2, 1_000_000, 0);
        let fee = net.nodes[1].config.forwarding.fee_msat(AMOUNT);
        let checks = vec![(1, ab, AMOUNT + fee), (2, bc, AMOUNT)];
        Scenario {
            net,
            payer: 0,
            payee: 2,
            forwarder: Some(1),
            amount: AMOUNT,
            payment_id: None,
            invoice: None,
            checks,
        }
    }

    /// A pays B over two channels at once (neither could carry it alone).
    fn multi_part() -> Self {
        let mut net = Net::new(2);
        net.connect(0, 1);
        let c1 = net.open_channel(0, 1, 200_000, 0);
        let c2 = net.open_channel(0, 1, 200_000, 0);
        let amount = 300_000 * SAT;
        let mut s = Scenario {
            net,
            payer: 0,
            payee: 1,
            forwarder: None,
            amount,
            payment_id: None,
            invoice: None,
            checks: vec![],
        };
        s.checks = vec![(1, c1, u64::MAX), (1, c2, u64::MAX)];
        s
    }

    fn start(&mut self) {
        let invoice = self.net.invoice(self.payee, Some(self.amount));
        let id = self.net.payment_id();
        self.net.nodes[self.payer].manager.pay_invoice(&invoice, None, id).expect("pay");
        self.payment_id = Some(id);
        self.invoice = Some(invoice);
    }

    /// One round: move messages, let the payee claim and every user
    /// handle its events.
    fn round(&mut self) {
        self.net.pump();
        for i in 0..self.net.nodes.len() {
            let events = self.net.take_events(i);
            self.net.claim_all(i, &events);
        }
    }

    /// Runs with `crasher`'s writes held, completing them one by one;
    /// crashes it before write number `crash_at` completes. Returns how
    /// many writes it made.
    fn run(&mut self, crasher: usize, crash_at: Option<usize>) -> usize {
        self.net.hold_persistence(crasher, true);
        self.start();
        let mut done = 0;
        for _ in 0..10_000 {
            self.round();
            if self.net.nodes[crasher].in_flight.is_empty()
                && self.net.nodes[crasher].record_writes.is_empty()
            {
                break;
            }
            if Some(done) == crash_at {
                self.net.crash(crasher);
                self.net.hold_persistence(crasher, false);
                self.net.reconnect(crasher);
                let id = self.payment_id.expect("started");
                if !self.net.nodes[self.payer].manager.list_payments().iter().any(|r| r.payment_id == id) {
                    // The payer's record never became durable: to its user
                    // the payment call never returned, so it pays again.
                    let invoice = self.invoice.clone().expect("started");
                    self.net.nodes[self.payer].manager.pay_invoice(&invoice, None, id).expect("pay again");
                }
                // Time passes: stalled retries and waiting forwards go on.
                self.net.tick();
            } else if !self.net.nodes[crasher].complete_record() {
                self.net.nodes[crasher].complete_one();
            }
            done += 1;
        }
        self.net.hold_persistence(crasher, false);
        for _ in 0..5 {
            self.round();
            self.net.tick();
        }
        self.round();
        done
    }

    fn check(&self, label: &str) {
        let net = &self.net;
        // Each outcome is handled at least once, and its acknowledgement
        // becomes durable at most once (a user's handling whose writes were
        // lost in a crash may be asked again; the harness also checks that
        // nothing comes back after a durable acknowledgement).
        let once = |i: usize, what: &str, f: &dyn Fn(&Event) -> bool| {
            let delivered = net.nodes[i].delivered.iter().filter(|e| f(e)).count();
            let acked = net.nodes[i].handled.iter().filter(|e| f(e)).count();
            assert!(
                delivered >= 1 && acked <= 1,
                "{label}: node {i} {what}: delivered {delivered}, acknowledged {acked}: {:?}",
                net.nodes[i].delivered
            );
        };
        for (i, node) in net.nodes.iter().enumerate() {
            assert!(
                !node.delivered.iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
                "{label}: node {i} saw a channel close: {:?}",
                node.delivered
            );
        }
        let id = self.payment_id.expect("started");
        once(
            self.payer,
            "PaymentSent",
            &|e| matches!(e, Event::PaymentSent { payment_id, .. } if *payment_id == id),
        );
        assert!(
            !net.nodes[self.payer].delivered.iter().any(|e| matches!(e, Event::PaymentFailed { .. })),
            "{label}: the payer never hears a failure: {:?}",
            net.nodes[self.payer].delivered
        );
        let amount = self.amount;
        once(
            self.payee,
            "PaymentClaimed",
            &|e| matches!(e, Event::PaymentClaimed { amount_msat, .. } if *amount_msat == amount),
        );
        if let Some(b) = self.forwarder {
            once(b, "PaymentForwarded", &|e| matches!(e, Event::PaymentForwarded { .. }));
        }
        let mut payee_total = 0;
        for &(node, channel, expected) in &self.checks {
            let balance = net.balance(node, channel);
            if expected != u64::MAX {
                assert_eq!(balance, expected, "{label}: node {node}'s balance on {channel}");
            }
            if node == self.payee {
                payee_total += balance;
            }
        }
        assert_eq!(payee_total, self.amount, "{label}: the payee holds exactly the amount");
        for (i, node) in net.nodes.iter().enumerate() {
            for monitor in node.manager.chain_monitor().monitors() {
                assert!(monitor.events().is_empty(), "{label}: node {i} left events: {:?}", monitor.events());
                assert!(
                    monitor.deferred_events().is_empty(),
                    "{label}: node {i} left deferred claims: {:?}",
                    monitor.deferred_events()
                );
            }
        }
        // The users' acknowledgements are durable: the records say so.
        let hash = lightning::types::payment::PaymentHash(bitcoin::hashes::Hash::to_byte_array(
            *self.invoice.as_ref().expect("started").payment_hash(),
        ));
        let recorded = |i: usize, record: ResolutionRecord| {
            net.nodes[i].manager.chain_monitor().monitors().any(|m| m.has_record(&record))
        };
        assert!(
            recorded(self.payee, ResolutionRecord::ClaimSeen(hash)),
            "{label}: the claim is recorded as seen"
        );
        assert!(
            recorded(self.payer, ResolutionRecord::PaymentSeen(id.0)),
            "{label}: the payment is recorded as seen"
        );
    }
}

fn crash_everywhere(make: fn() -> Scenario, crasher: usize) {
    let writes = {
        let mut s = make();
        let n = s.run(crasher, None);
        s.check("no crash");
        n
    };
    assert!(writes > 3, "the payment makes several writes at node {crasher}: {writes}");
    for crash_at in 0..writes {
        let mut s = make();
        s.run(crasher, Some(crash_at));
        s.check(&format!("node {crasher} crashed before write {crash_at} of {writes}"));
    }
}

#[test]
fn forward_survives_the_forwarder_crashing_at_every_write() {
    crash_everywhere(Scenario::forward, 1);
}

#[test]
fn forward_survives_the_payee_crashing_at_every_write() {
    crash_everywhere(Scenario::forward, 2);
}

#[test]
fn forward_survives_the_payer_crashing_at_every_write() {
    crash_everywhere(Scenario::forward, 0);
}

#[test]
fn multi_part_claim_survives_the_payee_crashing_at_every_write() {
    crash_everywhere(Scenario::multi_part, 1);
}

#[test]
fn multi_part_payment_survives_the_payer_crashing_at_every_write() {
    crash_everywhere(Scenario::multi_part, 0);
}

/// `PaymentSent` and `PaymentClaimed` seen but not handled come back after
/// a restart; once their acknowledgement is durable they never do, however
/// many restarts follow.
#[test]
fn outcome_events_reappear_until_acknowledged_and_never_after() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.open_channel(0, 1, 1_000_000, 0);
    let invoice = net.invoice(1, Some(AMOUNT));
    net.pay(0, &invoice);
    let claimable = net.take_events(1);
    net.claim_all(1, &claimable);
    for node in [0, 1] {
        let seen = net.peek_events(node);
        assert_eq!(seen.len(), 1, "node {node}: {seen:?}");
        net.crash(node);
        net.reconnect(node);
        let again = net.take_events(node);
        assert_eq!(again, seen, "node {node}: the unhandled outcome comes back after a restart");
        for _ in 0..3 {
            net.crash(node);
            net.reconnect(node);
            assert!(net.take_events(node).is_empty(), "node {node}: an acknowledged outcome never returns");
        }
    }
}

#[test]
fn nothing_of_the_manager_is_written() {
    let mut s = Scenario::forward();
    s.run(1, None);
    for (i, node) in s.net.nodes.iter().enumerate() {
        let namespaces: std::collections::BTreeSet<&str> =
            node.durable.keys().map(|(n, _)| n.as_str()).collect();
        let allowed =
            [vigil_core::chain_monitor::MONITORS_NAMESPACE, vigil_core::manager::records::PAYMENTS_NAMESPACE];
        assert!(
            namespaces.iter().all(|n| allowed.contains(n)),
            "node {i} wrote only monitors and payment records: {namespaces:?}"
        );
    }
    // The payer's only record is the payment's intent and outcome.
    assert_eq!(s.net.nodes[0].durable_keys(vigil_core::manager::records::PAYMENTS_NAMESPACE).len(), 1);
    assert!(s.net.nodes[1].durable_keys(vigil_core::manager::records::PAYMENTS_NAMESPACE).is_empty());
}
