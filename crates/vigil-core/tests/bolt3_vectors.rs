//! The official BOLT 3 test vectors (Appendices C, D, E and F), byte for byte.
//!
//! The commitment cases drive Vigil's own fee, anchor and trimming code
//! (`vigil_core::fees`, `vigil_core::channel::commitment`) from the vectors'
//! inputs, then compare the signed transactions with the vectors' hex. Every
//! test here is named `bolt3_*`, so `cargo test -p vigil-core bolt3` runs
//! exactly these.

use std::str::FromStr;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, PublicKey, Secp256k1, SecretKey};
use bitcoin::{Transaction, Txid, Witness};
use lightning::chain::transaction::OutPoint as LdkOutPoint;
use lightning::ln::chan_utils::{
    self, build_htlc_input_witness, make_funding_redeemscript, ChannelPublicKeys,
    ChannelTransactionParameters, CounterpartyChannelTransactionParameters, CounterpartyCommitmentSecrets,
};
use lightning::ln::channel_keys::{
    DelayedPaymentBasepoint, DelayedPaymentKey, HtlcBasepoint, RevocationBasepoint, RevocationKey,
};
use lightning::types::features::ChannelTypeFeatures;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use vigil_core::channel::commitment::{
    build_commitment, countersignatory_htlc_sighash_type, htlc_sighash, htlc_transaction, CommitmentHtlc,
    CommitmentSpec,
};

const APPENDIX_C: &str =
    include_str!("../../../vectors/bolt03/bolt03-appendix-c-commitment-and-htlc-tx-vectors.md");
const APPENDIX_D: &str =
    include_str!("../../../vectors/bolt03/bolt03-appendix-d-per-commitment-secret-shachain-vectors.md");
const APPENDIX_E: &str = include_str!("../../../vectors/bolt03/bolt03-appendix-e-key-derivation-vectors.md");
const APPENDIX_F: &str =
    include_str!("../../../vectors/bolt03/bolt03-appendix-f-anchors-commitment-and-htlc-tx-vectors.json");

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim().trim_start_matches("0x");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A secret key written the vectors' way: 32 bytes, maybe with a trailing
/// `01` compressed-key marker.
fn secret(s: &str) -> SecretKey {
    let bytes = hex(s);
    SecretKey::from_slice(&bytes[..32]).expect("a valid secret key")
}

fn point(s: &str) -> PublicKey {
    PublicKey::from_slice(&hex(s)).expect("a valid point")
}

/// The value after `key:` on the first line of `text` that has it.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix(key)?;
            rest.starts_with([':', '=', ' ']).then(|| rest.trim_start_matches([':', '=', ' ']))
        })
        .unwrap_or_else(|| panic!("no `{key}` in the vector text"))
        .trim()
}

/// The keys, basepoints and HTLCs shared by Appendices C and F.
struct Fixture {
    params: ChannelTransactionParameters,
    per_commitment_point: PublicKey,
    local_funding: SecretKey,
    remote_funding: SecretKey,
    local_htlc: SecretKey,
    remote_htlc: SecretKey,
    /// (offered by local, amount_msat, expiry, preimage)
    htlcs: Vec<(bool, u64, u32, [u8; 32])>,
}

fn fixture(channel_type: ChannelTypeFeatures) -> Fixture {
    let c = APPENDIX_C;
    let funding_txid = Txid::from_str(field(c, "funding_tx_id")).expect("txid");
    let secp = Secp256k1::new();
    let any_point = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[9; 32]).expect("key"));
    let local_payment = point(field(c, "local_payment_basepoint"));
    let remote_payment = point(field(c, "remote_payment_basepoint"));
    let holder = ChannelPublicKeys {
        funding_pubkey: point(field(c, "local_funding_pubkey")),
        // Only the counterparty's revocation basepoint enters the local
        // commitment; the holder's is never used here.
        revocation_basepoint: RevocationBasepoint(any_point),
        payment_point: local_payment,
        delayed_payment_basepoint: DelayedPaymentBasepoint(point(field(
            c,
            "INTERNAL: local_delayed_payment_basepoint",
        ))),
        htlc_basepoint: HtlcBasepoint(point(field(c, "local_htlc_basepoint"))),
    };
    let counterparty = ChannelPublicKeys {
        funding_pubkey: point(field(c, "remote_funding_pubkey")),
        revocation_basepoint: RevocationBasepoint(point(field(c, "INTERNAL: remote_revocation_basepoint"))),
        payment_point: remote_payment,
        delayed_payment_basepoint: DelayedPaymentBasepoint(any_point),
        htlc_basepoint: HtlcBasepoint(point(field(c, "remote_htlc_basepoint"))),
    };
    let params = ChannelTransactionParameters {
        holder_pubkeys: holder,
        holder_selected_contest_delay: 144,
        is_outbound_from_holder: true,
        counterparty_parameters: Some(CounterpartyChannelTransactionParameters {
            pubkeys: counterparty,
            selected_contest_delay: field(c, "local_delay").parse().expect("delay"),
        }),
        funding_outpoint: Some(LdkOutPoint {
            txid: funding_txid,
            index: field(c, "funding_output_index").parse().expect("index"),
        }),
        splice_parent_funding_txid: None,
        channel_type_features: channel_type,
        channel_value_satoshis: field(c, "funding_amount_satoshi").parse().expect("amount"),
    };
    let htlcs = (0..7)
        .map(|i| {
            let get = |what: &str| field(c, &format!("htlc {i} {what}")).to_owned();
            let offered = get("direction") == "local->remote";
            let preimage: [u8; 32] = hex(&get("payment_preimage")).try_into().expect("32 bytes");
            (
                offered,
                get("amount_msat").parse().expect("amount"),
                get("expiry").parse().expect("expiry"),
                preimage,
            )
        })
        .collect();
    Fixture {
        params,
        per_commitment_point: point(field(c, "INTERNAL: local_per_commitment_point")),
        local_funding: secret(field(c, "local_funding_privkey")),
        remote_funding: secret(field(c, "INTERNAL: remote_funding_privkey")),
        local_htlc: secret(field(c, "local_privkey")),
        remote_htlc: secret(field(c, "INTERNAL: remote_privkey")),
        htlcs,
    }
}

/// A case's inputs, in the vectors' terms.
struct Case {
    name: String,
    to_local_msat: u64,
    to_remote_msat: u64,
    feerate_per_kw: u32,
    dust_limit_sat: u64,
    htlc_indexes: Vec<usize>,
}

/// What Vigil produced for a case.
struct Produced {
    commitment_hex: String,
    remote_sig: Signature,
    local_sig: Signature,
    /// (remote signature, local signature, signed HTLC transaction hex), in
    /// output order.
    htlcs: Vec<(Signature, Signature, String)>,
    htlc_order: Vec<usize>,
}

fn produce(f: &Fixture, case: &Case) -> Produced {
    let secp = Secp256k1::new();
    let htlcs = case
        .htlc_indexes
        .iter()
        .map(|&i| {
            let (offered, amount_msat, cltv_expiry, preimage) = f.htlcs[i];
            CommitmentHtlc {
                tag: i,
                offered,
                amount_msat,
                cltv_expiry,
                payment_hash: PaymentHash(sha256::Hash::hash(&preimage).to_byte_array()),
            }
        })
        .collect();
    let spec = CommitmentSpec {
        number: field(APPENDIX_C, "commitment_number").parse().expect("number"),
        per_commitment_point: f.per_commitment_point,
        to_broadcaster_msat: case.to_local_msat,
        to_countersignatory_msat: case.to_remote_msat,
        feerate_per_kw: case.feerate_per_kw,
        dust_limit_sat: case.dust_limit_sat,
        htlcs,
    };
    let built = build_commitment(&f.params, true, spec, &secp);
    let holder = &f.params.holder_pubkeys;
    let counterparty = &f.params.counterparty_parameters.as_ref().expect("populated").pubkeys;
    let funding_script = make_funding_redeemscript(&holder.funding_pubkey, &counterparty.funding_pubkey);
    let trusted = built.tx.trust();
    let sighash =
        trusted.built_transaction().get_sighash_all(&funding_script, f.params.channel_value_satoshis);
    let remote_sig = secp.sign_ecdsa(&sighash, &f.remote_funding);
    let local_sig = secp.sign_ecdsa(&sighash, &f.local_funding);
    let mut tx: Transaction = trusted.built_transaction().transaction.clone();
    let sig_bytes = |s: &Signature| {
        let mut v = s.serialize_der().to_vec();
        v.push(0x01);
        v
    };
    let (first, second) = if holder.funding_pubkey.serialize() < counterparty.funding_pubkey.serialize() {
        (sig_bytes(&local_sig), sig_bytes(&remote_sig))
    } else {
        (sig_bytes(&remote_sig), sig_bytes(&local_sig))
    };
    tx.input[0].witness = Witness::from_slice(&[Vec::new(), first, second, funding_script.to_bytes()]);
    let contest_delay = f.params.counterparty_parameters.as_ref().expect("populated").selected_contest_delay;
    let remote_type = countersignatory_htlc_sighash_type(&built.tx);
    let htlcs = built
        .htlcs
        .iter()
        .map(|(index, htlc)| {
            let (mut htlc_tx, script) = htlc_transaction(&built.tx, htlc, contest_delay);
            let remote = secp.sign_ecdsa(&htlc_sighash(&htlc_tx, &script, htlc, remote_type), &f.remote_htlc);
            let local = secp.sign_ecdsa(
                &htlc_sighash(&htlc_tx, &script, htlc, bitcoin::sighash::EcdsaSighashType::All),
                &f.local_htlc,
            );
            let preimage = (!htlc.offered).then(|| PaymentPreimage(f.htlcs[*index].3));
            htlc_tx.input[0].witness = build_htlc_input_witness(
                &local,
                &remote,
                &preimage,
                &script,
                &f.params.channel_type_features,
            );
            (remote, local, serialize_hex(&htlc_tx))
        })
        .collect();
    Produced {
        commitment_hex: serialize_hex(&tx),
        remote_sig,
        local_sig,
        htlcs,
        htlc_order: built.htlcs.iter().map(|(i, _)| *i).collect(),
    }
}

fn der(sig: &Signature) -> String {
    to_hex(&sig.serialize_der())
}

/// Splits Appendix C into the text of each named case.
fn appendix_c_cases() -> Vec<&'static str> {
    let start = APPENDIX_C.find("    name:").expect("cases");
    APPENDIX_C[start..].split("\n    name:").map(str::trim).filter(|s| !s.is_empty()).collect()
}

fn appendix_c_htlcs(name: &str) -> Vec<usize> {
    // From the appendix's prose: no HTLC in the first case, HTLCs 1, 5 and 6
    // in the "same amount and preimage" case, HTLCs 0 to 4 elsewhere.
    if name.contains("no HTLCs") {
        vec![]
    } else if name.contains("same amount and preimage") {
        vec![1, 5, 6]
    } else {
        (0..5).collect()
    }
}

#[test]
fn bolt3_appendix_c_commitment_and_htlc_transactions() {
    let f = fixture(ChannelTypeFeatures::only_static_remote_key());
    let cases = appendix_c_cases();
    assert_eq!(cases.len(), 16, "Appendix C has 16 cases");
    for text in cases {
        let name = text.lines().next().expect("name").trim_start_matches("name:").trim().to_owned();
        let case = Case {
            to_local_msat: field(text, "to_local_msat").parse().expect("to_local"),
            to_remote_msat: field(text, "to_remote_msat").parse().expect("to_remote"),
            feerate_per_kw: field(text, "local_feerate_per_kw").parse().expect("feerate"),
            dust_limit_sat: field(APPENDIX_C, "local_dust_limit_satoshi").parse().expect("dust"),
            htlc_indexes: appendix_c_htlcs(&name),
            name,
        };
        let out = produce(&f, &case);
        let name = &case.name;
        assert_eq!(der(&out.remote_sig), field(text, "remote_signature"), "{name}: remote signature");
        assert_eq!(der(&out.local_sig), field(text, "# local_signature"), "{name}: local signature");
        assert_eq!(out.commitment_hex, field(text, "output commit_tx"), "{name}: commitment transaction");
        let num: usize = field(text, "num_htlcs").parse().expect("num_htlcs");
        assert_eq!(out.htlcs.len(), num, "{name}: untrimmed HTLCs");
        let remote_sigs: Vec<&str> =
            text.lines().filter_map(|l| l.trim().strip_prefix("remote_htlc_signature = ")).collect();
        let local_sigs: Vec<&str> =
            text.lines().filter_map(|l| l.trim().strip_prefix("# local_htlc_signature = ")).collect();
        let txs: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                (l.starts_with("htlc_success_tx") || l.starts_with("htlc_timeout_tx"))
                    .then(|| l.split_once("): ").expect("an HTLC transaction line"))
            })
            .collect();
        for (k, (remote, local, tx_hex)) in out.htlcs.iter().enumerate() {
            let index = out.htlc_order[k];
            assert!(txs[k].0.ends_with(&format!("#{index}")), "{name}: output {k} is HTLC #{index}");
            assert_eq!(der(remote), remote_sigs[k], "{name}: remote HTLC signature {k}");
            assert_eq!(der(local), local_sigs[k], "{name}: local HTLC signature {k}");
            assert_eq!(tx_hex, txs[k].1, "{name}: HTLC transaction {k}");
        }
    }
}

#[test]
fn bolt3_appendix_f_anchors_commitment_and_htlc_transactions() {
    let f = fixture(ChannelTypeFeatures::anchors_zero_htlc_fee_and_dependencies());
    let cases: Vec<serde_json::Value> = serde_json::from_str(APPENDIX_F).expect("JSON");
    assert_eq!(cases.len(), 9, "Appendix F has 9 cases");
    for c in cases {
        let name = c["Name"].as_str().expect("name").to_owned();
        let uses_htlcs = c["UseTestHtlcs"].as_bool().expect("UseTestHtlcs");
        let case = Case {
            to_local_msat: c["LocalBalance"].as_u64().expect("LocalBalance"),
            to_remote_msat: c["RemoteBalance"].as_u64().expect("RemoteBalance"),
            feerate_per_kw: c["FeePerKw"].as_u64().expect("FeePerKw") as u32,
            dust_limit_sat: c["DustLimitSatoshis"].as_u64().expect("DustLimitSatoshis"),
            htlc_indexes: if uses_htlcs { appendix_c_htlcs(&name) } else { vec![] },
            name,
        };
        let out = produce(&f, &case);
        let name = &case.name;
        assert_eq!(
            der(&out.remote_sig),
            c["RemoteSigHex"].as_str().expect("sig"),
            "{name}: remote signature"
        );
        assert_eq!(
            out.commitment_hex,
            c["ExpectedCommitmentTxHex"].as_str().expect("hex"),
            "{name}: commitment"
        );
        let descs = c["HtlcDescs"].as_array().cloned().unwrap_or_default();
        assert_eq!(out.htlcs.len(), descs.len(), "{name}: untrimmed HTLCs");
        for (k, ((remote, _, tx_hex), desc)) in out.htlcs.iter().zip(&descs).enumerate() {
            assert_eq!(
                der(remote),
                desc["RemoteSigHex"].as_str().expect("sig"),
                "{name}: HTLC signature {k}"
            );
            assert_eq!(
                tx_hex,
                desc["ResolutionTxHex"].as_str().expect("hex"),
                "{name}: HTLC transaction {k}"
            );
        }
    }
}

/// Appendix D as (name, body) pairs.
fn appendix_d_cases() -> Vec<(String, Vec<(String, String)>)> {
    let mut cases = Vec::new();
    for line in APPENDIX_D.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("name:") {
            cases.push((name.trim().to_owned(), Vec::new()));
        } else if let (Some((key, value)), Some(case)) = (line.split_once(':'), cases.last_mut()) {
            if ["seed", "I", "output", "secret"].contains(&key) {
                case.1.push((key.to_owned(), value.trim().to_owned()));
            }
        }
    }
    cases
}

fn index(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).expect("hex index"),
        None => s.parse().expect("decimal index"),
    }
}

#[test]
fn bolt3_appendix_d_per_commitment_secret_generation() {
    let cases: Vec<_> =
        appendix_d_cases().into_iter().filter(|(n, _)| n.starts_with("generate_from_seed")).collect();
    assert_eq!(cases.len(), 5);
    for (name, body) in cases {
        let get = |k: &str| &body.iter().find(|(key, _)| key == k).expect("field").1;
        let seed: [u8; 32] = hex(get("seed")).try_into().expect("32 bytes");
        let secret = chan_utils::build_commitment_secret(&seed, index(get("I")));
        assert_eq!(to_hex(&secret), get("output").trim_start_matches("0x"), "{name}");
    }
}

#[test]
fn bolt3_appendix_d_shachain_storage() {
    let cases: Vec<_> =
        appendix_d_cases().into_iter().filter(|(n, _)| n.starts_with("insert_secret")).collect();
    assert_eq!(cases.len(), 9);
    let mut failures_seen = 0;
    for (name, body) in cases {
        let mut store = CounterpartyCommitmentSecrets::new();
        let mut inserted = Vec::new();
        for step in body.chunks(3) {
            let idx = index(&step[0].1);
            let secret: [u8; 32] = hex(&step[1].1).try_into().expect("32 bytes");
            let result = store.provide_secret(idx, secret);
            match step[2].1.as_str() {
                "OK" => {
                    assert_eq!(result, Ok(()), "{name}: insert {idx}");
                    inserted.push((idx, secret));
                }
                "ERROR" => {
                    assert_eq!(result, Err(()), "{name}: insert {idx} must fail");
                    failures_seen += 1;
                }
                other => panic!("{name}: unexpected output {other}"),
            }
        }
        for (idx, secret) in inserted {
            assert_eq!(store.get_secret(idx), Some(secret), "{name}: secret {idx} is derivable");
        }
    }
    assert_eq!(failures_seen, 8, "every failing case failed");
}

#[test]
fn bolt3_appendix_e_key_derivation() {
    let secp = Secp256k1::new();
    let e = APPENDIX_E;
    let base_secret = secret(field(e, "base_secret"));
    let per_commitment_secret = secret(field(e, "per_commitment_secret"));
    let base_point = point(field(e, "base_point"));
    let per_commitment_point = point(field(e, "per_commitment_point"));
    assert_eq!(PublicKey::from_secret_key(&secp, &base_secret), base_point);
    assert_eq!(PublicKey::from_secret_key(&secp, &per_commitment_secret), per_commitment_point);

    let localpubkey =
        DelayedPaymentKey::from_basepoint(&secp, &DelayedPaymentBasepoint(base_point), &per_commitment_point);
    assert_eq!(localpubkey.to_public_key(), point(field(e, "localpubkey")));
    let localprivkey = chan_utils::derive_private_key(&secp, &per_commitment_point, &base_secret);
    assert_eq!(to_hex(&localprivkey.secret_bytes()), field(e, "localprivkey").trim_start_matches("0x"));
    assert_eq!(PublicKey::from_secret_key(&secp, &localprivkey), localpubkey.to_public_key());

    let revocationpubkey =
        RevocationKey::from_basepoint(&secp, &RevocationBasepoint(base_point), &per_commitment_point);
    assert_eq!(revocationpubkey.to_public_key(), point(field(e, "revocationpubkey")));
    let revocationprivkey =
        chan_utils::derive_private_revocation_key(&secp, &per_commitment_secret, &base_secret);
    assert_eq!(
        to_hex(&revocationprivkey.secret_bytes()),
        field(e, "revocationprivkey").trim_start_matches("0x")
    );
    assert_eq!(PublicKey::from_secret_key(&secp, &revocationprivkey), revocationpubkey.to_public_key());
}
