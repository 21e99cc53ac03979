//! Vigil's deterministic multi-node crash simulator.
//!
//! This crate will own the simulator of `DESIGN.md` §5: several `vigil-core`
//! nodes in one thread, driven from a seed or from fuzzer bytes, over an
//! in-memory network, a store with a live and a durable image, and the embedded
//! regtest chain. It crashes nodes anywhere, settles, and checks the invariants
//! I1 to I8.
//!
//! Nothing is implemented here yet; it arrives with issue 7.
#![deny(missing_docs)]
