//! The official BOLT 4 failure-packet vector (`onion-error-test.json`): the
//! failing hop builds the packet, every earlier hop wraps it, and the origin
//! decrypts it, byte for byte against the vector. Run with
//! `cargo test -p vigil-core bolt4`.

use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use serde_json::Value;
use vigil_core::onion::{
    build_failure_packet, codes, decode_failure_packet, path_shared_secrets, wrap_failure_packet,
    FailureDecodeError, FailureMessage,
};

const VECTOR: &str = include_str!("../../../vectors/bolt04/onion-error-test.json");

struct Vector {
    session_key: SecretKey,
    hops: Vec<PublicKey>,
    secrets: Vec<[u8; 32]>,
    failure: Vec<u8>,
    error_packet: Vec<u8>,
}

fn bytes(v: &Value) -> Vec<u8> {
    Vec::from_hex(v.as_str().expect("a hex string")).expect("valid hex")
}

fn vector() -> Vector {
    let json: Value = serde_json::from_str(VECTOR).expect("the vector parses");
    let generate = &json["generate"];
    let hops = generate["hops"].as_array().expect("hops");
    Vector {
        session_key: SecretKey::from_slice(&bytes(&generate["session_key"])).expect("session key"),
        hops: hops.iter().map(|h| PublicKey::from_slice(&bytes(&h["pubkey"])).expect("pubkey")).collect(),
        secrets: hops.iter().map(|h| bytes(&h["hop_shared_secret"]).try_into().expect("32 bytes")).collect(),
        failure: bytes(&generate["failure_message"]),
        error_packet: bytes(&json["errorpacket"]),
    }
}

#[test]
fn bolt4_origin_derives_every_hops_shared_secret() {
    let v = vector();
    assert_eq!(path_shared_secrets(&v.session_key, &v.hops), v.secrets);
}

#[test]
fn bolt4_failure_packet_is_built_and_wrapped_byte_for_byte() {
    let v = vector();
    let code = u16::from_be_bytes([v.failure[0], v.failure[1]]);
    assert_eq!(code, codes::TEMPORARY_NODE_FAILURE);
    let message = FailureMessage { code, data: v.failure[2..].to_vec() };
    let last = v.secrets.len() - 1;
    let mut packet = build_failure_packet(&v.secrets[last], &message);
    for secret in v.secrets[..last].iter().rev() {
        packet = wrap_failure_packet(secret, &packet);
    }
    assert_eq!(packet.to_lower_hex_string(), v.error_packet.to_lower_hex_string());
}

#[test]
fn bolt4_origin_decodes_the_vector_packet() {
    let v = vector();
    let decoded = decode_failure_packet(&v.session_key, &v.hops, &v.error_packet).expect("decodes");
    assert_eq!(decoded.hop, 4, "the failure came from hops[4]");
    assert_eq!(decoded.message, FailureMessage::simple(codes::TEMPORARY_NODE_FAILURE));
}

#[test]
fn bolt4_failure_from_a_middle_hop_is_attributed_to_it() {
    let v = vector();
    let message = FailureMessage::with_update(codes::FEE_INSUFFICIENT, &5_000u64.to_be_bytes());
    let mut packet = build_failure_packet(&v.secrets[2], &message);
    for secret in v.secrets[..2].iter().rev() {
        packet = wrap_failure_packet(secret, &packet);
    }
    let decoded = decode_failure_packet(&v.session_key, &v.hops, &packet).expect("decodes");
    assert_eq!(decoded.hop, 2);
    assert_eq!(decoded.message, message);
}

#[test]
fn bolt4_corrupted_packets_are_typed_errors() {
    let v = vector();
    for i in [0, 40, 200, v.error_packet.len() - 1] {
        let mut bad = v.error_packet.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            decode_failure_packet(&v.session_key, &v.hops, &bad),
            Err(FailureDecodeError::Unauthenticated),
            "byte {i} flipped"
        );
    }
    for len in [0, 1, 33, 100] {
        assert_eq!(
            decode_failure_packet(&v.session_key, &v.hops, &v.error_packet[..len]),
            Err(FailureDecodeError::Unauthenticated)
        );
    }
}
