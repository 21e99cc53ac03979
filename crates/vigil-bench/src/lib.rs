//! Vigil's benchmarks, run side by side with LDK 0.2.7 in one process.
//!
//! Each scenario builds the same network twice, once of Vigil nodes and
//! once of LDK nodes, on the same embedded chain code and the same store
//! engine, and runs the same payments through both, their runs
//! interleaved. The numbers are measured, never asserted: the tests here
//! only check that the harness works (every payment succeeds, counts add
//! up). `docs/PERFORMANCE.md` has the method and the results.
//!
//! - [`store`]: the shared store engines and what they count;
//! - [`net`]: nodes of one implementation wired together in one thread;
//! - [`vigil`], [`ldk`]: the two implementations behind [`net::BenchNode`];
//! - [`scenarios`]: the scenarios; [`limits`]: the physical ceilings;
//! - [`report`]: medians, ratios, JSON.
#![deny(missing_docs)]

pub mod ldk;
pub mod limits;
pub mod net;
pub mod report;
pub mod scenarios;
pub mod store;
pub mod vigil;
