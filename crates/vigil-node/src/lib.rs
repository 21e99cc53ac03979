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
//! - `bump`: anchor channels' claims funded by that wallet.
//!
//! Still to come (issue 8): the `Builder`, background tasks, the HTTP API.
#![deny(missing_docs)]

mod bump;
pub mod node;
pub mod runtime;
pub mod wire;

pub use node::{Node, NodeError, VigilPeerManager};
