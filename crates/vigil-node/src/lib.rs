//! The Vigil node runtime.
//!
//! This crate runs a `vigil-core` node in a real process (`DESIGN.md` §2 and
//! §6):
//!
//! - [`runtime`]: carries out what the sans-IO `ChannelManager` asks for
//!   (store writes, broadcasts, messages) and reports back;
//! - [`wire`]: LDK's `ChannelMessageHandler` as a thin adapter over the
//!   core, behind LDK's `PeerManager`;
//! - [`node`]: `Node`, the manager on a store and a chain, over TCP with
//!   `lightning-net-tokio`, restarted by replay from the store, with its
//!   on-chain wallet (claims sweep to it);
//! - `bump`: anchor channels' claims funded by that wallet;
//! - [`builder`]: [`Builder`], a node on embedded defaults (regtest chain,
//!   SQLite in a locked [`datadir`]) or on the chain source and store given;
//! - `service`: a started node's background work (chain, events, ticks,
//!   reconnections with backoff);
//! - [`ops`]: what a user asks for (channels funded from the wallet,
//!   invoices, payments and their list, the wallet, events).
#![deny(missing_docs)]

pub mod builder;
mod bump;
pub mod datadir;
pub mod node;
pub mod ops;
pub mod runtime;
mod service;
pub mod wire;

pub use builder::{BuildError, Builder, ChainChoice, StoreChoice};
pub use node::{Node, NodeError, VigilPeerManager};
pub use ops::{Balances, Direction, OpError, PaymentInfo, PaymentState};
pub use service::{MAX_BACKOFF, MIN_BACKOFF};
