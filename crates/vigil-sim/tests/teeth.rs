//! The simulator has teeth: each deliberate bug (vigil-core feature
//! `bug-injection`, on for this test's thread only) is caught by random
//! programs within 200 seeds of 300 operations. The seeds and time each one
//! took are printed (`cargo test -p vigil-sim --test teeth -- --nocapture`).
//!
//! Measured in release on one core, the first catch (the time includes a
//! run of the same seed without the bug, which must keep every invariant),
//! and how many of the seeds 0..200 catch it (`vigil-sim --features
//! bug-injection --bug NAME --seeds 0..200 --ops 300`, about 29 s per bug):
//!
//! | bug | first caught | seeds catching it |
//! |---|---|---|
//! | an acknowledged event re-emitted | seed 1, 0.23 s | 200 of 200 |
//! | a forward acknowledged before the upstream claim is durable | seed 1, 0.23 s | 32 of 200 |
//! | deferred restart events dropped | seed 4, 0.74 s | 81 of 200 |
//! | an event released before its update is durable | seed 8, 1.10 s | 62 of 200 |
//!
//! The forward's window needs the forwarder's upstream claim to lag while
//! its downstream writes, and the user's acknowledgement, go on completing
//! for several rounds, then a crash: the `lag` operation opens it (a busy
//! channel's writes held back while everything else moves), and restarted
//! nodes reconnect, so that payments get that far.
//! `early_forward_ack_window_by_hand` drives the same window step by step.

use std::time::Instant;
use vigil_sim::Config;

use vigil_core::bugs::{self, Bug};

/// Runs seeds until one breaks an invariant; returns the seed count and
/// the first violation.
fn caught(bug: Bug) -> (u64, String) {
    bugs::set(Some(bug));
    let start = Instant::now();
    let mut result = None;
    let limit: u64 = std::env::var("VIGIL_SIM_TEETH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    for seed in 0..limit {
        let outcome = vigil_sim::run_seed(seed, 300, Config::nodes(3));
        if let Some(v) = outcome.violations.first() {
            result = Some((seed + 1, v.clone()));
            break;
        }
    }
    bugs::set(None);
    let (seeds, violation) = result.unwrap_or_else(|| panic!("{bug:?} was not caught in {limit} seeds"));
    // The bug, not the program, broke the invariant: without it, the same
    // seed keeps them all.
    let clean = vigil_sim::run_seed(seeds - 1, 300, Config::nodes(3));
    assert!(clean.violations.is_empty(), "seed {} fails without {bug:?}: {:#?}", seeds - 1, clean.violations);
    println!("{bug:?}: caught after {seeds} seeds in {:?}: {violation}", start.elapsed());
    (seeds, violation)
}

#[test]
fn releasing_an_event_before_its_update_is_durable_is_caught() {
    caught(Bug::EarlyRelease);
}

#[test]
fn acknowledging_a_forward_before_the_upstream_claim_is_durable_is_caught() {
    caught(Bug::EarlyForwardAck);
}

#[test]
fn dropping_deferred_restart_events_is_caught() {
    caught(Bug::DropDeferred);
}

#[test]
fn re_emitting_an_acknowledged_event_is_caught() {
    caught(Bug::ReemitAcknowledged);
}

/// A failing program is minimised to one that still fails, and the text
/// the CLI prints replays it.
#[test]
fn a_failing_program_is_minimised_and_replays_from_its_text() {
    bugs::set(Some(Bug::ReemitAcknowledged));
    let seed = (0..50)
        .find(|s| !vigil_sim::run_seed(*s, 300, Config::nodes(3)).violations.is_empty())
        .expect("a failing seed");
    let program = vigil_sim::program::generate(seed, 300, 3);
    let short = vigil_sim::minimize(&program, Config::nodes(3), 400);
    let text = vigil_sim::program::to_text(&short);
    let replayed = vigil_sim::program::parse(&text, 3).expect("the printed program reads back");
    let (_, violations) = vigil_sim::run_program(&replayed, Config::nodes(3));
    bugs::set(None);
    println!("seed {seed}: {} operations minimised to {}: {text}", program.len(), short.len());
    assert!(short.len() * 5 < program.len(), "much shorter: {} of {}", short.len(), program.len());
    assert_eq!(replayed, short);
    assert!(!violations.is_empty(), "the minimised program still fails");
    // Without the bug, the same program is fine.
    assert!(vigil_sim::run_program(&short, Config::nodes(3)).1.is_empty());
}

/// The exact window of `EarlyForwardAck`, driven by hand: the forwarder's
/// user handles `PaymentForwarded`, the downstream acknowledgement becomes
/// durable, the upstream claim does not, and the forwarder crashes.
#[test]
fn early_forward_ack_window_by_hand() {
    use vigil_core::manager::{Event, PaymentId};
    bugs::set(Some(Bug::EarlyForwardAck));
    let mut world = vigil_sim::world::World::new(3);
    let invoice = world.nodes[2].manager.create_invoice(Some(50_000_000), "t", 3600).expect("invoice");
    world.nodes[0].manager.pay_invoice(&invoice, None, PaymentId([1; 32])).expect("pay");
    let upstream: Vec<_> = world.nodes[1]
        .manager
        .list_channels()
        .into_iter()
        .filter(|c| c.counterparty_node_id == world.nodes[0].id())
        .map(|c| c.channel_id)
        .collect();
    // Everything moves until the payee claims; from then on, everything
    // except the forwarder's upstream writes (the upstream claim), until the
    // forwarder reports the forward.
    let mut forwarded = false;
    let mut claimed = false;
    for _ in 0..500 {
        world.collect();
        for i in [0, 2] {
            world.nodes[i].complete_all();
        }
        if !claimed {
            world.nodes[1].complete_all();
        }
        loop {
            let n = &mut world.nodes[1];
            let pick = n.in_flight.iter().position(|r| !upstream.contains(&r.channel_id));
            let Some(k) = pick else { break };
            let r = n.in_flight[k].clone();
            let before = n.in_flight.len();
            // Complete exactly that one (the oldest of its channel).
            let ready: Vec<usize> = {
                let mut seen = std::collections::BTreeSet::new();
                n.in_flight
                    .iter()
                    .enumerate()
                    .filter(|(_, q)| seen.insert(q.channel_id))
                    .map(|(i, _)| i)
                    .collect()
            };
            let choice = ready.iter().position(|&i| i == k);
            match choice {
                Some(c) => {
                    n.complete(c);
                }
                None => break,
            }
            if n.in_flight.len() >= before && n.in_flight.iter().any(|q| q.seq == r.seq) {
                break;
            }
        }
        world.deliver_all();
        world.user(2, true, false);
        claimed |= world.nodes[2].user.delivered.iter().any(|e| matches!(e, Event::PaymentClaimable { .. }));
        world.user(1, true, false);
        if world.nodes[1].user.delivered.iter().any(|e| matches!(e, Event::PaymentForwarded { .. })) {
            forwarded = true;
            break;
        }
    }
    assert!(forwarded, "the forward was reported");
    // Complete the forwarder's non-upstream writes (the acknowledgement),
    // then crash it with the upstream claim still in flight.
    world.collect();
    loop {
        let n = &mut world.nodes[1];
        let mut seen = std::collections::BTreeSet::new();
        let ready: Vec<usize> = n
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, q)| seen.insert(q.channel_id))
            .map(|(i, _)| i)
            .collect();
        let Some(c) = ready.iter().position(|&i| !upstream.contains(&n.in_flight[i].channel_id)) else {
            break;
        };
        n.complete(c);
    }
    let pending_upstream =
        world.nodes[1].in_flight.iter().filter(|r| upstream.contains(&r.channel_id)).count();
    println!("upstream writes in flight at the crash: {pending_upstream}");
    world.crash(1);
    world.settle();
    let violations = vigil_sim::check::check(&world);
    bugs::set(None);
    println!("violations: {violations:#?}");
    assert!(
        violations.iter().any(|v| v.starts_with("node 0: payment") && v.contains("never resolved")),
        "the lost upstream claim leaves the payer's payment unresolved: {violations:#?}"
    );
}
