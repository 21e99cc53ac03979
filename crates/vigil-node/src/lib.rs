//! The Vigil node runtime.
//!
//! This crate will own everything that runs a `vigil-core` node in a real
//! process (`DESIGN.md` §2 and §6): the `Builder` and `Node` API (start, stop,
//! channels, payments, events), tokio and the `PeerManager` wiring, background
//! tasks (chain sync, timer ticks, reconnection, persistence completions), the
//! payment store and, later, the LSPS2 glue and durable splice intents.
//!
//! Nothing is implemented here yet. Today `vigild` wires the embedded chain and
//! the on-chain wallet itself; that wiring moves here with issue 8.
#![deny(missing_docs)]
