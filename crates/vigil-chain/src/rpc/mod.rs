//! Bitcoin Core's JSON-RPC interface, both ways.
//!
//! - [`RpcServer`] serves a [`crate::RegtestChain`] the way `bitcoind -regtest`
//!   does: port 18443 on 127.0.0.1 by default, cookie authentication in
//!   `<data-dir>/regtest/.cookie` and optionally a fixed user and password,
//!   JSON-RPC 1.0 and 2.0 envelopes and batches, and Bitcoin Core's error
//!   codes and response shapes.
//! - [`BitcoindRpcChain`] implements [`crate::ChainSource`] over any bitcoind's
//!   JSON-RPC, the embedded server included.
//!
//! ADR 0004 records the choice of crates: axum for the server, rust-bitcoin's
//! `jsonrpc` for the client.

mod client;
mod cookie;
mod json;
mod methods;
mod server;

pub use client::{BitcoindRpcChain, RpcAuth};
pub use cookie::{read_cookie, CookieError, CookieFile, COOKIE_USER};
pub use server::{RpcServer, RpcServerConfig, RpcServerError, DEFAULT_RPC_PORT};

/// Bitcoin Core's JSON-RPC error codes used by the embedded server.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The method does not exist.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// An internal error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// `RPC_MISC_ERROR`: wrong number of parameters, and other errors.
    pub const MISC_ERROR: i32 = -1;
    /// `RPC_TYPE_ERROR`: a parameter has the wrong JSON type.
    pub const TYPE_ERROR: i32 = -3;
    /// `RPC_INVALID_ADDRESS_OR_KEY`: unknown block, transaction or address.
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// `RPC_INVALID_PARAMETER`: a parameter is out of range or malformed.
    pub const INVALID_PARAMETER: i32 = -8;
    /// `RPC_DESERIALIZATION_ERROR`: a transaction or block does not decode.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// `RPC_VERIFY_ERROR`: missing inputs, fee above the maximum.
    pub const VERIFY_ERROR: i32 = -25;
    /// `RPC_VERIFY_REJECTED`: the transaction breaks a rule.
    pub const VERIFY_REJECTED: i32 = -26;
    /// `RPC_VERIFY_ALREADY_IN_CHAIN`: the transaction is already confirmed.
    pub const VERIFY_ALREADY_IN_CHAIN: i32 = -27;
}

/// A JSON-RPC error: Bitcoin Core's code and message, and optionally details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The error code (see [`codes`]).
    pub code: i32,
    /// The message, as Bitcoin Core words it where it has one.
    pub message: String,
    /// Extra details Vigil adds (Bitcoin Core sends none), such as which rule
    /// a transaction breaks and on which input.
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// An error with a code and a message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }
}
