//! The Vigil daemon and its command-line client.
//!
//! - `vigild` ([`daemon`]) runs a `vigil-node` [`vigil_node::Node`] on its
//!   data directory ([`datadir`]), configured by a TOML file and flags
//!   ([`config`]), with the embedded regtest chain's bitcoind-compatible RPC
//!   and the HTTP JSON API ([`api`], shapes in [`json`], Prometheus
//!   [`metrics`]).
//! - `vigil` talks to that API (`vigil getinfo`, `vigil pay`, …), and
//!   `vigil demo` ([`demo`]) shows three nodes paying each other through a
//!   crash.
#![deny(missing_docs)]

pub mod api;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod json;
pub mod metrics;

pub use vigil_node::datadir;
