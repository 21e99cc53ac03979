//! `vigil-sim --seeds A..B [--ops N] [--nodes N] [--pending P]`: runs each
//! seed's program and checks the invariants. `--pending P` (0 to 100, 100
//! by default) is the share of the writes in flight at a crash that is
//! lost, the newest of each channel; the rest completes first.
//!
//! The last line is `sim: <seeds> seeds, <ops> ops, <crashes> crashes, <violations> violations`;
//! the exit code is non-zero if any invariant failed. A violation prints the
//! seed, its program minimised, and the command that replays it:
//! `vigil-sim --nodes N --replay '<program>'`.
//!
//! Built with the `bug-injection` feature, `--bug NAME` switches one of
//! vigil-core's deliberate bugs on (`early-release`, `early-forward-ack`,
//! `drop-deferred`, `reemit-acknowledged`): the run then shows how many
//! seeds catch it (their programs are not minimised).

use std::process::ExitCode;

fn parse_range(s: &str) -> Option<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..")?;
    Some(a.parse().ok()?..b.parse().ok()?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 0..100;
    let mut ops = 500;
    let mut nodes = 3;
    let mut pending: u8 = 100;
    let mut replay: Option<String> = None;
    #[cfg_attr(not(feature = "bug-injection"), allow(unused_mut))]
    let mut minimise = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next();
        let ok = match (arg.as_str(), value) {
            ("--seeds", Some(v)) => parse_range(v).map(|r| seeds = r).is_some(),
            ("--ops", Some(v)) => v.parse().map(|n| ops = n).is_ok(),
            ("--nodes", Some(v)) => v.parse().map(|n| nodes = n).is_ok(),
            ("--pending", Some(v)) => v.parse().ok().filter(|p| *p <= 100).map(|p| pending = p).is_some(),
            #[cfg(feature = "bug-injection")]
            ("--bug", Some(v)) => {
                // Every seed may fail: minimising each would take long.
                minimise = false;
                bug(v).map(|b| vigil_core::bugs::set(Some(b))).is_some()
            }
            ("--replay", Some(v)) => {
                replay = Some(v.clone());
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!(
                "usage: vigil-sim --seeds A..B [--ops N] [--nodes N] [--pending P] | --replay '<program>' [--nodes N] [--pending P] (got {arg:?} {value:?})"
            );
            return ExitCode::from(2);
        }
    }
    let config = vigil_sim::Config { pending_percent: pending, ..vigil_sim::Config::nodes(nodes) };
    if let Some(text) = replay {
        return replay_program(&text, config);
    }
    let flags = match pending {
        100 => format!("--nodes {nodes}"),
        p => format!("--nodes {nodes} --pending {p}"),
    };
    let (mut total_ops, mut crashes, mut violations) = (0, 0, 0);
    let count = seeds.end.saturating_sub(seeds.start);
    for seed in seeds {
        let outcome = vigil_sim::run_seed(seed, ops, config);
        total_ops += outcome.stats.ops;
        crashes += outcome.stats.crashes;
        if !outcome.violations.is_empty() {
            violations += outcome.violations.len();
            println!("seed {seed}: {} violations", outcome.violations.len());
            for v in &outcome.violations {
                println!("  {v}");
            }
            println!("  the seed again: cargo run --release -p vigil-sim -- --seeds {seed}..{} --ops {ops} {flags}", seed + 1);
            if !minimise {
                continue;
            }
            let short = vigil_sim::minimize(&outcome.program, config, 400);
            println!(
                "  minimised from {} to {} operations; replay: cargo run --release -p vigil-sim -- {flags} --replay '{}'",
                outcome.program.len(),
                short.len(),
                vigil_sim::program::to_text(&short)
            );
        }
    }
    println!("sim: {count} seeds, {total_ops} ops, {crashes} crashes, {violations} violations");
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The deliberate bug called `name`.
#[cfg(feature = "bug-injection")]
fn bug(name: &str) -> Option<vigil_core::bugs::Bug> {
    use vigil_core::bugs::Bug;
    Some(match name {
        "early-release" => Bug::EarlyRelease,
        "early-forward-ack" => Bug::EarlyForwardAck,
        "drop-deferred" => Bug::DropDeferred,
        "reemit-acknowledged" => Bug::ReemitAcknowledged,
        _ => return None,
    })
}

/// Runs one program given as text and prints what it broke.
fn replay_program(text: &str, config: vigil_sim::Config) -> ExitCode {
    let program = match vigil_sim::program::parse(text, config.nodes) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vigil-sim: cannot read the program: {e}");
            return ExitCode::from(2);
        }
    };
    let (stats, violations) = vigil_sim::run_program(&program, config);
    for v in &violations {
        println!("  {v}");
    }
    println!("sim: 1 seeds, {} ops, {} crashes, {} violations", stats.ops, stats.crashes, violations.len());
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
