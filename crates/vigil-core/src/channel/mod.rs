//! The BOLT 2 channel state machine.
//!
//! [`commitment`] builds commitment transactions from a channel's balances and
//! HTLCs.

pub mod commitment;
