//! The Vigil daemon and its command-line client.
//!
//! - `vigild` ([`daemon`]) runs a node environment on embedded defaults: the
//!   embedded regtest chain with its bitcoind-compatible RPC server, and the
//!   on-chain wallet, all stored in SQLite under the data directory
//!   ([`datadir`]). Peers, channels and the node's HTTP API arrive with later
//!   issues.
//! - `vigil` talks to a running `vigild`; today it drives the embedded chain
//!   over its RPC (`vigil chain info`, `vigil chain mine`).
#![deny(missing_docs)]

pub mod daemon;
pub mod datadir;
