//! Vigil's view of the chain.
//!
//! - [`ChainSource`] is the node's whole view of the chain: the tip, blocks by
//!   height and hash, pull sync ([`ChainFollower`]), broadcast, fee estimates,
//!   and transaction and UTXO lookup. Everything above this crate (the wallet,
//!   later the chain monitor) talks to the chain only through it.
//! - [`RegtestChain`] is an embedded regtest chain. Its mempool validates every
//!   transaction fully (scripts through libbitcoinconsensus, absolute and
//!   relative locktimes, values, coinbase maturity, weight), it mines on
//!   demand, reorganises on request, and persists in a [`vigil_store::KvStore`].
//! - [`rpc`] serves a [`RegtestChain`] over a bitcoind-compatible JSON-RPC
//!   interface ([`rpc::RpcServer`]), and implements [`ChainSource`] over any
//!   bitcoind's JSON-RPC ([`rpc::BitcoindRpcChain`]).
#![deny(missing_docs)]

mod clock;
mod follow;
pub mod regtest;
pub mod rpc;
mod source;
#[cfg(any(test, feature = "test-utils"))]
pub mod testkit;

pub use clock::{Clock, ManualClock, SystemClock};
pub use follow::{ChainEvent, ChainFollower};
pub use regtest::RegtestChain;
pub use source::{
    BlockRef, BroadcastError, ChainSource, ChainSourceError, HeaderInfo, Rejection, TxInfo, UtxoInfo,
};
