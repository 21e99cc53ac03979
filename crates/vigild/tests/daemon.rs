//! `vigild` as a user runs it: a real process on a data directory, answering
//! a bitcoind JSON-RPC client and its HTTP API (with a token), driven by the
//! `vigil` binary, stopping on SIGTERM, and coming back with its chain, seed
//! and wallet.

mod common;

use std::fs;
use std::net::TcpListener;
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, TxOut};
use common::{start_fails, wait_for, Ports, Vigild};
use serde_json::{json, Value};
use vigil_chain::rpc::{BitcoindRpcChain, RpcAuth};
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{ChainSource, ChainSourceError};

fn rpc_client(daemon: &Vigild) -> BitcoindRpcChain {
    let cookie = daemon.network_dir().join(".cookie");
    BitcoindRpcChain::new(&format!("http://127.0.0.1:{}", daemon.ports.rpc), RpcAuth::Cookie(cookie))
        .expect("client")
}

#[test]
fn embedded_defaults_serve_bitcoind_rpc_fund_the_wallet_and_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("node");
    let daemon = Vigild::start(&data_dir);

    let seed_path = data_dir.join("regtest").join("seed");
    let seed = fs::read(&seed_path).expect("seed");
    assert_eq!(seed.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&seed_path).expect("stat").permissions().mode() & 0o777, 0o600);
    }

    let rpc = rpc_client(&daemon);
    let info: Value = rpc.call("getblockchaininfo", &[]).expect("getblockchaininfo");
    assert_eq!(info["chain"], "regtest");

    // Fund the wallet with the CLI, as the README shows.
    let (ok, out, err) = daemon.vigil(&["getinfo"]);
    assert!(ok && out.contains("node id") && out.contains("regtest"), "{out}{err}");
    let (ok, address, err) = daemon.vigil(&["newaddr"]);
    assert!(ok && address.trim().starts_with("bcrt1"), "{address}{err}");
    let (ok, out, err) = daemon.vigil(&["chain", "mine", "101", address.trim()]);
    assert!(ok, "vigil chain mine failed: {err}");
    assert!(out.contains("height 101"), "{out}");
    wait_for("the wallet to see its mature coins", Duration::from_secs(30), || {
        // Of the 101 coinbases, the first two are mature: 100 BTC.
        daemon.ok("GET", "/v1/wallet/balance", None)["onchain_confirmed_sat"] == 10_000_000_000u64
    });
    let (ok, out, _) = daemon.vigil(&["--json", "chain", "info"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["height"], 101);
    let (ok, out, _) = daemon.vigil(&["balance"]);
    assert!(ok && out.contains("10000000000 sat confirmed"), "{out}");

    // A transaction signed outside Vigil is accepted; invalid ones are refused
    // with Bitcoin Core's codes.
    let key = TestKey::new(1);
    let _: Value =
        rpc.call("generatetoaddress", &[json!(101), json!(key.address().to_string())]).expect("mine");
    let pay = |sat| vec![TxOut { value: Amount::from_sat(sat), script_pubkey: key.p2wpkh() }];
    let tx = spend_p2wpkh(&key, &[coinbase_coin(&rpc, 102)], pay(4_999_990_000));
    let txid: String =
        rpc.call("sendrawtransaction", &[json!(serialize_hex(&tx))]).expect("valid transaction");
    assert_eq!(txid, tx.compute_txid().to_string());
    let mut bad = spend_p2wpkh(&key, &[coinbase_coin(&rpc, 103)], pay(4_999_990_000));
    bad.output[0].value = Amount::from_sat(4_999_000_000);
    match rpc.call::<Value>("sendrawtransaction", &[json!(serialize_hex(&bad))]) {
        Err(ChainSourceError::Rpc { code: -26, message }) => {
            assert!(message.starts_with("mandatory-script-verify-flag-failed"), "{message}")
        }
        other => panic!("expected -26, got {other:?}"),
    }
    // A conflict paying less cannot replace it.
    let double = spend_p2wpkh(&key, &[coinbase_coin(&rpc, 102)], pay(4_999_995_000));
    assert!(matches!(
        rpc.call::<Value>("sendrawtransaction", &[json!(serialize_hex(&double))]),
        Err(ChainSourceError::Rpc { code: -26, .. })
    ));
    let stranger = BitcoindRpcChain::new(
        &format!("http://127.0.0.1:{}", daemon.ports.rpc),
        RpcAuth::UserPass { user: "__cookie__".into(), password: "guess".into() },
    )
    .expect("client");
    assert_eq!(stranger.tip(), Err(ChainSourceError::Unauthorized));
    let tip = rpc.tip().expect("tip");

    let (status, logs) = daemon.terminate();
    assert!(status.success(), "vigild exits cleanly on SIGTERM: {logs}");
    assert!(logs.contains("received SIGTERM") && logs.contains("vigild stopped"), "{logs}");
    assert!(!data_dir.join("regtest").join(".cookie").exists(), "the cookie is removed");

    // A restart keeps the chain (and its mempool), the seed and the wallet.
    let daemon = Vigild::start(&data_dir);
    let rpc = rpc_client(&daemon);
    assert_eq!(rpc.tip().expect("tip"), tip);
    assert_eq!(rpc.mempool().expect("mempool"), vec![tx]);
    assert_eq!(fs::read(&seed_path).expect("seed"), seed, "the seed is kept");
    wait_for("the wallet is restored and synced", Duration::from_secs(30), || {
        daemon.ok("GET", "/v1/wallet/balance", None)["onchain_confirmed_sat"] == 505_000_000_000u64
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn a_data_dir_serves_one_daemon() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("node");
    let daemon = Vigild::start(&data_dir);
    let err = start_fails(&data_dir, Ports::any());
    assert!(err.contains("in use by another vigild"), "{err}");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let other = tmp.path().join("other");
    let port = taken.local_addr().expect("addr").port();
    let err = start_fails(&other, Ports { rpc: port, ..Ports::any() });
    assert!(err.contains("cannot listen for RPC"), "{err}");
    let err = start_fails(&other, Ports { api: port, ..Ports::any() });
    assert!(err.contains("the HTTP API cannot listen"), "{err}");
    drop(daemon);
}

#[test]
fn a_corrupt_store_or_seed_stops_the_start_and_is_left_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("node");
    let (status, _) = Vigild::start(&data_dir).terminate();
    assert!(status.success());

    let chain_file = data_dir.join("regtest").join("chain.sqlite");
    let bytes = fs::read(&chain_file).expect("read");
    fs::write(&chain_file, &bytes[..bytes.len() / 2]).expect("truncate");
    let damaged = fs::read(&chain_file).expect("read");
    let err = start_fails(&data_dir, Ports::any());
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(fs::read(&chain_file).expect("read"), damaged, "never replaced");

    fs::write(&chain_file, &bytes).expect("restore");
    let seed_file = data_dir.join("regtest").join("seed");
    fs::write(&seed_file, b"not a seed").expect("damage the seed");
    let err = start_fails(&data_dir, Ports::any());
    assert!(err.contains("seed file") && err.contains("corrupt"), "{err}");
    assert_eq!(fs::read(&seed_file).expect("read"), b"not a seed");
}

#[test]
fn the_api_wants_its_token_and_names_bad_fields() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let daemon = Vigild::start(&tmp.path().join("node"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(daemon.network_dir().join("api.token")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token is private");
    }
    for token in [None, Some("wrong"), Some("")] {
        for (method, path) in [("GET", "/v1/info"), ("GET", "/metrics"), ("POST", "/v1/chain/mine")] {
            let (status, body) = daemon.call_with(token, method, path, Some(json!({ "blocks": 1 })));
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    let (status, info) = daemon.call("GET", "/v1/info", None);
    assert_eq!((status, info["network"].as_str()), (200, Some("regtest")));

    let bad = |path: &str, body: Value, field: &str| {
        let (status, answer) = daemon.call("POST", path, Some(body.clone()));
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap_or("").is_empty());
    };
    bad("/v1/chain/mine", json!({ "blocks": "ten" }), "blocks");
    bad("/v1/chain/mine", json!({ "blocks": 1, "color": "red" }), "color");
    bad("/v1/chain/mine", json!({}), "blocks");
    bad("/v1/chain/mine", json!({ "blocks": 0 }), "blocks");
    bad("/v1/channels", json!({ "node_id": "02ab", "amount_sat": 1000 }), "node_id");
    let id = daemon.node_id();
    bad("/v1/channels", json!({ "node_id": id, "amount_sat": 0 }), "amount_sat");
    bad("/v1/invoices", json!({ "amount_msat": 0 }), "amount_msat");
    bad("/v1/payments/pay", json!({ "invoice": "lnbc1junk" }), "invoice");
    bad("/v1/payments/keysend", json!({ "node_id": id, "amount_msat": 0 }), "amount_msat");
    bad("/v1/wallet/send", json!({ "address": "not-an-address", "amount_sat": 1 }), "address");
    bad("/v1/channels/close", json!({ "channel_id": "zz" }), "channel_id");
    bad("/v1/payments/pay", json!({ "invoice": "x", "wait_secs": 100000 }), "wait_secs");
    let (status, answer) = ureq::post(&format!("{}/v1/chain/mine", daemon.api_url()))
        .set("Authorization", &format!("Bearer {}", daemon.token()))
        .send_string("{not json")
        .map_or_else(
            |e| match e {
                ureq::Error::Status(c, r) => (c, r.into_json::<Value>().expect("json")),
                e => panic!("{e}"),
            },
            |r| (r.status(), Value::Null),
        );
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("body")));
    let (status, answer) = ureq::post(&format!("{}/v1/chain/mine", daemon.api_url()))
        .set("Authorization", &format!("Bearer {}", daemon.token()))
        .send_string(r#"{"blocks": 1} and more"#)
        .map_or_else(
            |e| match e {
                ureq::Error::Status(c, r) => (c, r.into_json::<Value>().expect("json")),
                e => panic!("{e}"),
            },
            |r| (r.status(), Value::Null),
        );
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("body")),
        "trailing bytes are refused"
    );
    // Event ids never repeat across runs: a small id is from no run of
    // this vigild, and acknowledges nothing.
    let (status, answer) = daemon.call("POST", "/v1/events/ack", Some(json!({ "id": 1 })));
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")), "{answer}");

    // Operations the node refuses say why, with the right status.
    // Another valid key: the same x coordinate with the other parity (a
    // blind replace inside the hex could leave the curve).
    let other = format!("{}{}", if id.starts_with("02") { "03" } else { "02" }, &id[2..]);
    let (status, answer) =
        daemon.call("POST", "/v1/channels", Some(json!({ "node_id": other, "amount_sat": 100_000 })));
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("insufficient_funds")), "{answer}");
    let (status, answer) =
        daemon.call("POST", "/v1/channels/close", Some(json!({ "channel_id": "00".repeat(32) })));
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = daemon.call("POST", "/v1/peers", Some(json!({
        "node_id": "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "address": format!("127.0.0.1:{}", common::free_port())
    })));
    assert_eq!((status, answer["error"]["code"].as_str()), (502, Some("peer_unreachable")), "{answer}");
    let (status, _) = daemon.call("GET", "/v1/nothing", None);
    assert_eq!(status, 404);

    // The OpenAPI description and the metrics are served.
    let openapi = daemon.ok("GET", "/v1/openapi.json", None);
    assert!(openapi["paths"]["/v1/payments/pay"]["post"].is_object());
    let metrics = ureq::get(&format!("{}/metrics", daemon.api_url()))
        .set("Authorization", &format!("Bearer {}", daemon.token()))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    for name in [
        "vigil_channels",
        "vigil_htlcs_in_flight",
        "vigil_payments",
        "vigil_unacknowledged_monitor_events",
        "vigil_persist_latency_seconds_count",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }

    // The CLI says what to do when it cannot talk to vigild.
    let (ok, _, err) = daemon.vigil(&["--token-file", "/nonexistent", "getinfo"]);
    assert!(!ok && err.contains("cannot read the API token"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--data-dir")
        .arg(&daemon.data_dir)
        .args(["--api-url", &format!("http://127.0.0.1:{}", common::free_port()), "getinfo"])
        .output()
        .expect("run vigil");
    let (ok, err) = (out.status.success(), String::from_utf8_lossy(&out.stderr));
    assert!(!ok && err.contains("is it running?"), "{err}");
    let (ok, _, err) = daemon.vigil(&["invoice", "0"]);
    assert!(!ok && err.contains("amount_msat"), "{err}");
}
