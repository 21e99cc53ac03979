//! CI's seed range: every seed's program runs, the world settles, and
//! every invariant holds. (More: `cargo run --release -p vigil-sim --
//! --seeds A..B`.)

use vigil_sim::Config;

#[test]
fn ci_seed_range_keeps_every_invariant() {
    let (mut crashes, mut failed_fsyncs) = (0, 0);
    for seed in 0..200 {
        let outcome = vigil_sim::run_seed(seed, 300, Config::nodes(3));
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:#?}\nreplay: cargo run --release -p vigil-sim -- --seeds {seed}..{} --ops 300",
            outcome.violations,
            seed + 1
        );
        crashes += outcome.stats.crashes;
        failed_fsyncs += outcome.stats.failed_fsyncs;
    }
    assert!(crashes > 500, "the programs crash nodes often enough to matter: {crashes}");
    assert!(failed_fsyncs > 250, "and fail fsyncs often enough: {failed_fsyncs}");
}

#[test]
fn a_four_node_line_keeps_every_invariant() {
    for seed in 100..106 {
        let outcome = vigil_sim::run_seed(seed, 300, Config::nodes(4));
        assert!(outcome.violations.is_empty(), "seed {seed}: {:#?}", outcome.violations);
    }
    // A small MPP part trimmed from a force-closed commitment as dust: the
    // value went to the miners, and the accounts allow for it.
    let program = vigil_sim::program::parse("pay:1>0:581964 pay:2>0:490394 lag:0:2:13 force-close:2:0", 4)
        .expect("a valid program");
    let (_, violations) = vigil_sim::run_program(&program, Config::nodes(4));
    assert!(violations.is_empty(), "{violations:?}");
}

/// The same seed gives the same program and the same run.
#[test]
fn runs_are_deterministic() {
    let a = vigil_sim::run_seed(7, 150, Config::nodes(3));
    let b = vigil_sim::run_seed(7, 150, Config::nodes(3));
    assert_eq!(a, b);
    assert_ne!(vigil_sim::program::generate(7, 150, 3), vigil_sim::program::generate(8, 150, 3));
}

/// Every generated program reads back from its text, and bad text is a
/// typed error naming the operation.
#[test]
fn programs_round_trip_through_text_and_bad_text_is_refused() {
    use vigil_sim::program::{generate, parse, to_text};
    for seed in 0..20 {
        let program = generate(seed, 300, 4);
        assert_eq!(parse(&to_text(&program), 4).expect("reads back"), program, "seed {seed}");
    }
    for (text, index, reason) in [
        ("tick jump:1", 1, "unknown operation"),
        ("crash:7", 0, "no such node"),
        ("disconnect:0-2", 0, "links join neighbours: a-(a+1)"),
        ("pay:0>2:x", 0, "a number is malformed"),
        ("complete:1", 0, "a node and a pick are expected"),
    ] {
        let e = parse(text, 3).expect_err(text);
        assert_eq!((e.index, e.reason), (index, reason), "{text}");
    }
}

/// Programs the simulator minimised from violations it found, kept as
/// regressions (each broke an invariant before its fix).
#[test]
fn programs_that_once_broke_an_invariant_keep_them_all() {
    for text in [
        // A peer's commitment confirmed while our channel still ran: the
        // channel kept running, unusable (fixed: the manager fails it).
        "crash:2 force-close:1:7",
        "force-close:0:5 deliver-all crash:0",
        // An HTLC the monitor learnt of after the funding spend was never
        // decided (fixed: every update reconciles with the chain).
        "pay:1>2:32753 force-close:2:7 mine complete:1:3",
        // A crash lost the effects of a block: the restarted node must
        // follow the chain again from its last durable block.
        "force-close:0:0 mine crash:0",
        "mine force-close:2:3 reorg:1 crash:1",
        // A commitment broadcast before the close was durable: the
        // restarted monitor did not know it and left its to_local
        // unclaimed (fixed: our commitment waits for durability).
        "pay:1>2:32753 complete-all:1 deliver-all force-close:2:7 crash:2 mine",
        // A downstream failure for an upstream channel that had closed was
        // never acknowledged (fixed: nothing is owed upstream; it is).
        "pay:0>2:22842 pay:0>2:568529 complete-all:0 deliver-all complete:1:7 complete:1:1 deliver-all \
         complete-all:0 deliver:0>1 force-close:0:0",
        // A payment's retry already queued was sent again by the restart's
        // top-up: the payee was paid 147% (fixed: queued retries count).
        "pay:0>1:26146 complete:0:5 complete:0:2 deliver-all pay:1>0:572777 complete-all:1 crash:1 \
         reconnect:0-1 deliver-all pay:1>0:306198 complete-all:1 tick complete:0:6 deliver-all \
         complete:1:0 crash:1 tick tick",
        // One channel's write of the user's acknowledgement of an MPP claim
        // lagged and was lost in a crash: its deferred claim came back and
        // waited for parts whose deferred events were gone (fixed: the
        // claim was seen if any part's monitor says so).
        "pay:1>2:501840 lag:0:3:4 complete:2:2 lag:2:2:3",
        // A reorg dropped an anchor HTLC claim and the fee transaction
        // that funded it; the fee wallet kept offering the change of the
        // dropped transaction, so the claim never came back (fixed in the
        // simulator: the wallet asks the chain what is spendable).
        "pay:1>2:3251 lag:1:0:3 lag:0:6:5 mine force-close:2:5 complete-all:2 mine reorg:2",
        // An HTLC-timeout output worth less than its sweep, given up by
        // design: neither a loss to report nor an output left owed.
        "pay:0>2:5674 pay:2>0:1127 pay:0>2:372838 complete-all:0 lag:0:4:6 reconnect:0-1 lag:0:7:4 \
         force-close:1:5",
        // A monitor write that landed despite a failed fsync was ahead of
        // the node's durable height; a reorg then moved the closing
        // commitment one block down, the restart showed it again at its new
        // height, and the monitor kept the old one. A second reorg of that
        // old height made it forget the close: it broadcast its own
        // commitment forever and never finished (fixed: a block seen again
        // replaces what the monitor learnt from its height on).
        "force-close:0:2 mine lag:1:4:3 mine fsync-fail-landed:1:6 reorg:2 crash:1 reorg:2",
    ] {
        let program = vigil_sim::program::parse(text, 3).expect("a valid program");
        let (_, violations) = vigil_sim::run_program(&program, Config::nodes(3));
        assert!(violations.is_empty(), "{text}: {violations:?}");
    }
}

/// A write whose fsync failed is not complete: the node writes it again.
/// When its data reached the disk all the same, a crash finds it there,
/// ahead of what the node knew was durable, and nothing breaks.
#[test]
fn a_failed_fsync_that_landed_is_found_by_the_restart() {
    use vigil_core::manager::PaymentId;
    let mut world = vigil_sim::world::World::new(3);
    let invoice = world.nodes[1].manager.create_invoice(Some(20_000_000), "t", 3600).expect("invoice");
    world.nodes[0].manager.pay_invoice(&invoice, None, PaymentId([3; 32])).expect("pay");
    world.collect();
    let before = world.nodes[0].durable.clone();
    let in_flight = world.nodes[0].in_flight.len() + world.nodes[0].record_writes.len();
    assert!(world.nodes[0].fail_fsync(0, true), "a write to fail");
    assert_ne!(world.nodes[0].durable, before, "its data landed");
    assert_eq!(
        world.nodes[0].in_flight.len() + world.nodes[0].record_writes.len(),
        in_flight,
        "the node was not told it completed"
    );
    // Not landed: nothing changes on disk.
    let landed = world.nodes[0].durable.clone();
    assert!(world.nodes[0].fail_fsync(0, false));
    assert_eq!(world.nodes[0].durable, landed);
    world.crash(0);
    world.settle();
    let violations = vigil_sim::check::check(&world);
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(world.nodes[0].manager.list_payments().len(), 1, "the payment survived the crash");
}

/// `--pending P`: at a crash, the oldest writes of each channel complete
/// first and only the newest P% are lost; programs keep every invariant so.
#[test]
fn crashes_that_lose_only_the_newest_writes_keep_every_invariant() {
    use std::collections::BTreeMap;
    let mut world = vigil_sim::world::World::new(3);
    let per_channel = |n: &vigil_sim::world::SimNode| {
        let mut m: BTreeMap<_, usize> = BTreeMap::new();
        for r in &n.in_flight {
            *m.entry(r.channel_id).or_default() += 1;
        }
        m
    };
    // A seeded program runs until some node has several writes of one
    // channel in flight.
    let program = vigil_sim::program::generate(1, 300, 3);
    let mut node = None;
    for op in &program {
        vigil_sim::program::run(&mut world, std::slice::from_ref(op));
        node = (0..3).find(|i| per_channel(&world.nodes[*i]).values().any(|c| *c >= 2));
        if node.is_some() {
            break;
        }
    }
    let node = &mut world.nodes[node.expect("a channel with writes queued")];
    let before = per_channel(node);
    node.complete_all_but_newest(50);
    let after = per_channel(node);
    for (channel, count) in &before {
        let left = after.get(channel).copied().unwrap_or(0);
        assert!(left == count / 2 || left == count.div_ceil(2), "{channel}: {left} of {count} left");
    }
    assert!(after.values().sum::<usize>() < before.values().sum::<usize>(), "the oldest completed");

    for seed in 0..10 {
        let config = Config { pending_percent: 30, ..Config::nodes(3) };
        let outcome = vigil_sim::run_seed(seed, 300, config);
        assert!(outcome.violations.is_empty(), "seed {seed}: {:#?}", outcome.violations);
    }
}
