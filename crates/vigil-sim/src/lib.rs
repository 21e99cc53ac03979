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
//! - [`program`]: operations, seeded programs, running them;
//! - [`check`]: the invariants.
#![deny(missing_docs)]

pub mod check;
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

/// Runs the program of `seed` (`ops` operations, `nodes` nodes in a line),
/// settles, and checks every invariant.
pub fn run_seed(seed: u64, ops: usize, nodes: usize) -> SeedOutcome {
    let program = program::generate(seed, ops, nodes.max(2));
    let mut world = world::World::new(nodes.max(2));
    world.trace = std::env::var_os("VIGIL_SIM_TRACE").is_some();
    let stats = program::run(&mut world, &program);
    world.settle();
    let violations = check::check(&world);
    SeedOutcome { seed, stats, violations, program }
}
