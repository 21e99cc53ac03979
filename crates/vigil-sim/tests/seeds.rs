//! CI's seed range: every seed's program runs, the world settles, and
//! every invariant holds. (More: `cargo run --release -p vigil-sim --
//! --seeds A..B`.)

#[test]
fn ci_seed_range_keeps_every_invariant() {
    let mut crashes = 0;
    for seed in 0..80 {
        let outcome = vigil_sim::run_seed(seed, 300, 3);
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:#?}\nreplay: cargo run --release -p vigil-sim -- --seeds {seed}..{} --ops 300",
            outcome.violations,
            seed + 1
        );
        crashes += outcome.stats.crashes;
    }
    assert!(crashes > 200, "the programs crash nodes often enough to matter: {crashes}");
}

#[test]
fn a_four_node_line_keeps_every_invariant() {
    for seed in 100..106 {
        let outcome = vigil_sim::run_seed(seed, 300, 4);
        assert!(outcome.violations.is_empty(), "seed {seed}: {:#?}", outcome.violations);
    }
}

/// The same seed gives the same program and the same run.
#[test]
fn runs_are_deterministic() {
    let a = vigil_sim::run_seed(7, 150, 3);
    let b = vigil_sim::run_seed(7, 150, 3);
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
    ] {
        let program = vigil_sim::program::parse(text, 3).expect("a valid program");
        let (_, violations) = vigil_sim::run_program(&program, 3);
        assert!(violations.is_empty(), "{text}: {violations:?}");
    }
}
