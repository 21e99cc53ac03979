//! Vigil's sans-IO Lightning core.
//!
//! This crate will own the system itself, as laid out in `DESIGN.md` §2 and §7:
//!
//! - `channel/`: the BOLT 2/3 channel state machine. Every state change that must
//!   survive a crash leaves it as a monitor update.
//! - `monitor/`: the `ChannelMonitor`, the single durable authority over every HTLC,
//!   with its acknowledged event log.
//! - `chain_monitor/`: the set of monitors, chain processing and persistence
//!   completions.
//! - `manager/`: the `ChannelManager`, a routing and forwarding engine driven by
//!   monitor events and never persisted.
//! - `onion/`: BOLT 4 failure packets.
//! - `onchain/`: on-chain enforcement, the claims of closed channels.
//!
//! It is sans-IO: no tokio, no filesystem, no clock and no threads. Inputs are
//! calls (`handle_*`) and outputs are returned or polled (`poll_*`), with time
//! passed in, so that `vigil-sim` can run it deterministically.
//!
//! Implemented so far: [`fees`] (BOLT 3 fee, anchor and dust arithmetic),
//! [`channel`] (the BOLT 2 channel state machine, whose durable changes leave
//! it as monitor updates), [`ser`] (the versioned TLV encoding of everything
//! persisted), [`monitor`] and [`chain_monitor`], [`manager`] (the
//! `ChannelManager`, driven by monitor events and never persisted),
//! [`onion`] (BOLT 4 failure packets) and [`onchain`] (the claims a closed
//! channel's monitor makes, recomputed from its durable state). With the
//! feature `bug-injection`, `bugs` holds deliberate bugs for the
//! simulator's own tests.
#![deny(missing_docs)]

#[cfg(feature = "bug-injection")]
pub mod bugs;
pub mod chain_monitor;
pub mod channel;
pub mod fees;
pub mod manager;
pub mod monitor;
pub mod onchain;
pub mod onion;
pub mod ser;
