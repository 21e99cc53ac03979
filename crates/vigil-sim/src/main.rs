//! `vigil-sim --seeds A..B [--ops N] [--nodes N]`: runs each seed's program
//! and checks the invariants. The last line is
//! `sim: <seeds> seeds, <ops> ops, <crashes> crashes, <violations> violations`;
//! the exit code is non-zero if any invariant failed.

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
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next();
        let ok = match (arg.as_str(), value) {
            ("--seeds", Some(v)) => parse_range(v).map(|r| seeds = r).is_some(),
            ("--ops", Some(v)) => v.parse().map(|n| ops = n).is_ok(),
            ("--nodes", Some(v)) => v.parse().map(|n| nodes = n).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("usage: vigil-sim --seeds A..B [--ops N] [--nodes N] (got {arg:?} {value:?})");
            return ExitCode::from(2);
        }
    }
    let (mut total_ops, mut crashes, mut violations) = (0, 0, 0);
    let count = seeds.end.saturating_sub(seeds.start);
    for seed in seeds {
        let outcome = vigil_sim::run_seed(seed, ops, nodes);
        total_ops += outcome.stats.ops;
        crashes += outcome.stats.crashes;
        if !outcome.violations.is_empty() {
            violations += outcome.violations.len();
            println!("seed {seed}: {} violations", outcome.violations.len());
            for v in &outcome.violations {
                println!("  {v}");
            }
            println!("  replay: cargo run --release -p vigil-sim -- --seeds {seed}..{} --ops {ops} --nodes {nodes}", seed + 1);
            println!("  program: {:?}", outcome.program);
        }
    }
    println!("sim: {count} seeds, {total_ops} ops, {crashes} crashes, {violations} violations");
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
