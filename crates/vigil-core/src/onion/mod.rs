//! BOLT 4 failure packets: built by the node that fails an HTLC, wrapped
//! once by every hop on the way back, and decrypted by the payment's origin.
//!
//! LDK keeps its implementation private, so this is our own. The packet
//! format is the classic one (a 32-byte HMAC over a 256-byte padded message,
//! encrypted with ChaCha20 under each hop's `ammag` key); attribution data is
//! not produced. [`codes`] lists the failure codes and [`FailureMessage`]
//! builds each failure's data.
//!
//! - [`build_failure_packet`]: at the failing node;
//! - [`wrap_failure_packet`]: at each hop back;
//! - [`decode_failure_packet`]: at the origin, with the session key and the
//!   path's node ids.

pub mod codes;

use bitcoin::hashes::hmac::{Hmac, HmacEngine};
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{ecdh::SharedSecret, PublicKey, Scalar, Secp256k1, SecretKey};
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;

/// The length BOLT 4 pads a failure message to (message and padding).
pub const PADDED_MESSAGE_LEN: usize = 256;

/// A failure message: its code and the data that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureMessage {
    /// The BOLT 4 failure code (flags included).
    pub code: u16,
    /// The code's data, encoded as BOLT 4 lists it.
    pub data: Vec<u8>,
}

impl FailureMessage {
    /// A failure with no data.
    pub fn simple(code: u16) -> Self {
        Self { code, data: Vec::new() }
    }

    /// An `UPDATE` failure: `prefix` then an empty `channel_update` (BOLT 4
    /// lets a node omit the update; ours are not announced).
    pub fn with_update(code: u16, prefix: &[u8]) -> Self {
        let mut data = prefix.to_vec();
        data.extend_from_slice(&0u16.to_be_bytes());
        Self { code, data }
    }

    /// `incorrect_or_unknown_payment_details`, with the HTLC's value and our
    /// height.
    pub fn unknown_payment_details(htlc_msat: u64, height: u32) -> Self {
        let mut data = htlc_msat.to_be_bytes().to_vec();
        data.extend_from_slice(&height.to_be_bytes());
        Self { code: codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, data }
    }

    /// The message as it goes in the packet: `code || data`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.code.to_be_bytes().to_vec();
        out.extend_from_slice(&self.data);
        out
    }
}

/// Why a failure packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureDecodeError {
    /// No hop of the path authenticated the packet.
    Unauthenticated,
    /// The authenticated message is shorter than its length fields say.
    Truncated {
        /// The hop that sent it.
        hop: usize,
    },
}

impl std::fmt::Display for FailureDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated => write!(f, "no hop of the path authenticated the failure packet"),
            Self::Truncated { hop } => write!(f, "hop {hop} sent a truncated failure message"),
        }
    }
}

impl std::error::Error for FailureDecodeError {}

/// A failure read at the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFailure {
    /// The index in the path of the hop that failed the HTLC.
    pub hop: usize,
    /// What it said.
    pub message: FailureMessage,
}

fn hmac_key(label: &[u8], shared_secret: &[u8; 32]) -> [u8; 32] {
    let mut engine = HmacEngine::<sha256::Hash>::new(label);
    engine.input(shared_secret);
    Hmac::from_engine(engine).to_byte_array()
}

fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut engine = HmacEngine::<sha256::Hash>::new(key);
    engine.input(data);
    Hmac::from_engine(engine).to_byte_array()
}

fn xor_stream(shared_secret: &[u8; 32], packet: &mut [u8]) {
    let key = hmac_key(b"ammag", shared_secret);
    let mut cipher = ChaCha20::new(&key.into(), &[0u8; 12].into());
    cipher.apply_keystream(packet);
}

/// Builds the failure packet the failing node returns, for the HTLC whose
/// onion gave `shared_secret`.
pub fn build_failure_packet(shared_secret: &[u8; 32], message: &FailureMessage) -> Vec<u8> {
    let failure = message.encode();
    let pad_len = PADDED_MESSAGE_LEN.saturating_sub(failure.len());
    let mut payload = Vec::with_capacity(4 + failure.len() + pad_len);
    payload.extend_from_slice(&(failure.len() as u16).to_be_bytes());
    payload.extend_from_slice(&failure);
    payload.extend_from_slice(&(pad_len as u16).to_be_bytes());
    payload.resize(payload.len() + pad_len, 0);
    let mac = hmac(&hmac_key(b"um", shared_secret), &payload);
    let mut packet = mac.to_vec();
    packet.extend_from_slice(&payload);
    xor_stream(shared_secret, &mut packet);
    packet
}

/// Wraps a failure packet from downstream with this hop's `shared_secret`.
pub fn wrap_failure_packet(shared_secret: &[u8; 32], packet: &[u8]) -> Vec<u8> {
    let mut out = packet.to_vec();
    xor_stream(shared_secret, &mut out);
    out
}

/// The shared secret of each hop of an onion built with `session_priv` over
/// the nodes `hops`, as the origin computes them.
pub fn path_shared_secrets(session_priv: &SecretKey, hops: &[PublicKey]) -> Vec<[u8; 32]> {
    let secp = Secp256k1::new();
    let mut ephemeral = *session_priv;
    let mut secrets = Vec::with_capacity(hops.len());
    for hop in hops {
        let secret = SharedSecret::new(hop, &ephemeral).secret_bytes();
        let mut engine = sha256::Hash::engine();
        engine.input(&PublicKey::from_secret_key(&secp, &ephemeral).serialize());
        engine.input(&secret);
        let blinding = sha256::Hash::from_engine(engine).to_byte_array();
        secrets.push(secret);
        // A blinding factor that is not a valid scalar has negligible
        // probability; the path then ends here and decoding reports
        // `Unauthenticated` for later hops.
        let Ok(scalar) = Scalar::from_be_bytes(blinding) else { break };
        match ephemeral.mul_tweak(&scalar) {
            Ok(next) => ephemeral = next,
            Err(_) => break,
        }
    }
    secrets
}

/// The shared secret of an incoming onion, as the hop that receives it
/// computes it (`node_secret` is that hop's node key).
pub fn hop_shared_secret(onion_public_key: &PublicKey, node_secret: &SecretKey) -> [u8; 32] {
    SharedSecret::new(onion_public_key, node_secret).secret_bytes()
}

/// Decrypts a failure packet at the origin: peels one layer per hop until
/// one authenticates it.
///
/// # Errors
///
/// [`FailureDecodeError::Unauthenticated`] when no hop's HMAC matches (a
/// hop corrupted it), or [`FailureDecodeError::Truncated`] for a message
/// whose length fields overrun the packet.
pub fn decode_failure_packet(
    session_priv: &SecretKey,
    hops: &[PublicKey],
    packet: &[u8],
) -> Result<DecodedFailure, FailureDecodeError> {
    let mut buf = packet.to_vec();
    for (hop, secret) in path_shared_secrets(session_priv, hops).iter().enumerate() {
        xor_stream(secret, &mut buf);
        if buf.len() < 32 + 2 {
            continue;
        }
        let (mac, payload) = buf.split_at(32);
        if hmac(&hmac_key(b"um", secret), payload) != mac {
            continue;
        }
        let len = u16::from_be_bytes([payload[0], payload[1]]) as usize;
        let Some(failure) = payload.get(2..2 + len) else {
            return Err(FailureDecodeError::Truncated { hop });
        };
        if failure.len() < 2 {
            return Err(FailureDecodeError::Truncated { hop });
        }
        let code = u16::from_be_bytes([failure[0], failure[1]]);
        return Ok(DecodedFailure { hop, message: FailureMessage { code, data: failure[2..].to_vec() } });
    }
    Err(FailureDecodeError::Unauthenticated)
}
