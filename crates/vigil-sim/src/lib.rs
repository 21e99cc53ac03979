//! Vigil's deterministic multi-node crash simulator (DESIGN.md §5).
//!
//! Several `vigil-core` nodes run in one thread, without tokio or sockets,
//! from a seed: an in-memory network per link (deliver one, deliver all,
//! disconnect, reconnect), a store per node with a live and a durable image
//! (writes complete in any order across channels, in order within one, and
//! may stay pending), the embedded regtest chain, and a clock the
//! simulation advances. Programs pay, deliver, complete writes, handle or
//! only look at events, crash nodes, drop links, tick and mine; then the
//! world settles and the invariants are checked.
//!
//! - [`world`]: the world and its moves;
//! - [`onchain`]: force-closes, reorgs, fee changes, fee wallets, and
//!   settling closed channels on chain;
//! - [`program`]: operations, seeded programs, running them;
//! - [`accounts`]: closing transaction trees, and what each node holds on
//!   chain and paid in fees after closes;
//! - [`check`]: the invariants.
//!
//! A violation is reported with its program minimised ([`minimize`]) and in
//! text ([`program::to_text`]) that `vigil-sim --replay` runs again.
#![deny(missing_docs)]

pub mod accounts;
pub mod check;
pub mod onchain;
pub mod program;
pub mod world;

/// The outcome of one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// What ran.
    pub stats: program::Stats,
    /// The invariants it broke.
    pub violations: Vec<String>,
    /// The program, to replay.
    pub program: Vec<program::Op>,
}

/// How a simulation is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Nodes in a line (at least 2).
    pub nodes: usize,
    /// Of the writes in flight when a node crashes, the share (in percent,
    /// the newest of each channel, rounded up or down in proportion) that
    /// stays pending and is lost; the rest completes first, except in a
    /// channel held back (`stall`, `lag`), which loses all. 100, the
    /// default, loses everything in flight.
    pub pending_percent: u8,
}

impl Config {
    /// `nodes` nodes (at least 2), losing every write in flight at a crash.
    pub fn nodes(nodes: usize) -> Config {
        Config { nodes: nodes.max(2), pending_percent: 100 }
    }
}

/// Runs the program of `seed` (`ops` operations), settles, and checks
/// every invariant.
pub fn run_seed(seed: u64, ops: usize, config: Config) -> SeedOutcome {
    let program = program::generate(seed, ops, config.nodes.max(2));
    let (stats, violations) = run_program(&program, config);
    SeedOutcome { seed, stats, violations, program }
}

/// Runs `program` on a fresh world, settles, and checks every invariant.
pub fn run_program(program: &[program::Op], config: Config) -> (program::Stats, Vec<String>) {
    let mut world = world::World::new(config.nodes.max(2));
    world.pending_percent = config.pending_percent.min(100);
    world.trace = std::env::var_os("VIGIL_SIM_TRACE").is_some();
    let stats = program::run(&mut world, program);
    world.settle();
    if world.enforcing() {
        world.settle_onchain();
        world.settle();
    }
    (stats, check::check(&world))
}

/// A shorter program that still breaks an invariant, found by removing
/// ever smaller chunks of `program` while some violation remains (delta
/// debugging), at most `budget` runs. A program with no violation is
/// returned as it is.
pub fn minimize(program: &[program::Op], config: Config, budget: usize) -> Vec<program::Op> {
    let fails = |p: &[program::Op]| !run_program(p, config).1.is_empty();
    let mut best = program.to_vec();
    let mut runs = 0;
    let mut chunk = best.len().div_ceil(2);
    while chunk >= 1 && runs < budget {
        let mut removed_any = false;
        let mut start = 0;
        while start < best.len() && runs < budget {
            let end = (start + chunk).min(best.len());
            let candidate: Vec<program::Op> = best[..start].iter().chain(&best[end..]).cloned().collect();
            runs += 1;
            if fails(&candidate) {
                best = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if !removed_any {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    best
}
