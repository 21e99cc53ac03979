//! The bitcoind-compatible JSON-RPC server, seen from the outside: raw HTTP
//! for the envelope, status codes and authentication, and
//! [`BitcoindRpcChain`] for the `ChainSource` over it.

// `&[coin.clone()]` reads better than `std::slice::from_ref(&coin)` in tests.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use base64::Engine;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint, TxOut};
use serde_json::{json, Value};
use vigil_chain::rpc::{read_cookie, BitcoindRpcChain, RpcAuth, RpcServer, RpcServerConfig};
use vigil_chain::testkit::{coin_of, coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{
    BroadcastError, ChainEvent, ChainFollower, ChainSource, ChainSourceError, ManualClock, RegtestChain,
};

struct Harness {
    rt: tokio::runtime::Runtime,
    server: Option<RpcServer>,
    chain: Arc<RegtestChain>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = Arc::new(RegtestChain::in_memory(Arc::new(ManualClock::new(1_700_000_000))));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = RpcServerConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            cookie_path: Some(dir.path().join(".cookie")),
            user_password: Some(("alice".into(), "wonderland".into())),
        };
        let server = rt.block_on(RpcServer::start(chain.clone(), config)).expect("start");
        Self { rt, server: Some(server), chain, dir }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").local_addr()
    }

    fn cookie(&self) -> (String, String) {
        read_cookie(&self.dir.path().join(".cookie")).expect("cookie")
    }

    fn client(&self) -> BitcoindRpcChain {
        BitcoindRpcChain::new(
            &format!("http://{}", self.addr()),
            RpcAuth::Cookie(self.dir.path().join(".cookie")),
        )
        .expect("client")
    }

    /// A JSON-RPC call over raw HTTP with the cookie; returns status and body.
    fn post(&self, body: &str) -> (u16, Value) {
        let (user, pass) = self.cookie();
        let (status, _, text) = http(self.addr(), "POST", Some((&user, &pass)), body);
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON reply") })
    }

    /// Calls `method` in JSON-RPC 1.0 and returns `(status, result, error)`.
    fn call(&self, method: &str, params: Value) -> (u16, Value, Value) {
        let (status, reply) = self.post(&json!({"method": method, "params": params, "id": 1}).to_string());
        (status, reply["result"].clone(), reply["error"].clone())
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        let (status, result, error) = self.call(method, params);
        assert_eq!((status, &error), (200, &Value::Null), "{method} failed");
        result
    }

    fn err(&self, method: &str, params: Value) -> (u16, i64, String) {
        let (status, _, error) = self.call(method, params);
        (
            status,
            error["code"].as_i64().expect("error code"),
            error["message"].as_str().expect("message").to_owned(),
        )
    }
}

/// A minimal HTTP/1.1 exchange; returns status, headers and body.
fn http(addr: SocketAddr, method: &str, auth: Option<(&str, &str)>, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut request = format!(
        "{method} / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    );
    if let Some((user, pass)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

fn funded(h: &Harness, key: &TestKey) {
    h.ok("generatetoaddress", json!([101, key.address().to_string()]));
}

#[test]
fn blockchain_info_and_mining_through_rpc() {
    let h = Harness::start();
    let info = h.ok("getblockchaininfo", json!([]));
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 0);
    assert_eq!(info["bestblockhash"], "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206");
    let key = TestKey::new(1);
    let hashes = h.ok("generatetoaddress", json!([3, key.address().to_string()]));
    assert_eq!(hashes.as_array().expect("array").len(), 3);
    assert_eq!(h.ok("getblockcount", json!([])), 3);
    assert_eq!(h.ok("getbestblockhash", json!([])), hashes[2]);
    assert_eq!(h.ok("getblockhash", json!([3])), hashes[2]);
    assert_eq!(h.ok("getblockhash", json!({"height": 1})), hashes[0], "named parameters");
    assert_eq!(h.ok("getblockchaininfo", json!([]))["chainwork"], format!("{:064x}", 8));
    let coinbase = coinbase_coin(h.chain.as_ref(), 1);
    assert_eq!(coinbase.txout.script_pubkey, key.p2wpkh(), "mined to the address given");
}

#[test]
fn authentication_and_http_rules() {
    let h = Harness::start();
    let body = r#"{"method":"getblockcount","params":[],"id":1}"#;
    let (status, head, _) = http(h.addr(), "POST", None, body);
    assert_eq!(status, 401);
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic realm=\"jsonrpc\""));
    let (status, _, _) = http(h.addr(), "POST", Some(("__cookie__", "wrong")), body);
    assert_eq!(status, 401, "a wrong cookie is refused");
    let (status, _, text) = http(h.addr(), "POST", Some(("alice", "wonderland")), body);
    assert_eq!(status, 200, "rpcuser/rpcpassword");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("json")["result"], 0);
    let (user, pass) = h.cookie();
    let (status, _, _) = http(h.addr(), "GET", Some((&user, &pass)), "");
    assert_eq!(status, 405);
}

#[test]
fn malformed_requests_get_core_error_codes() {
    let h = Harness::start();
    let (status, reply) = h.post("{not json");
    assert_eq!((status, reply["error"]["code"].as_i64()), (500, Some(-32700)));
    assert_eq!(h.err("nosuchmethod", json!([])), (404, -32601, "Method not found".into()));
    let (status, reply) = h.post(r#"{"jsonrpc":"2.0","method":"nosuchmethod","id":7}"#);
    assert_eq!(status, 200, "JSON-RPC 2.0 errors are HTTP 200");
    assert_eq!(reply["error"]["code"], -32601);
    assert_eq!(reply["id"], 7);
    assert!(reply.get("result").is_none(), "2.0 replies carry result xor error");
    let (status, reply) = h.post(r#"{"method":42,"id":1}"#);
    assert_eq!((status, reply["error"]["code"].as_i64()), (400, Some(-32600)));
    let (status, reply) = h.post(r#"{"method":"getblockcount","params":"x","id":1}"#);
    assert_eq!((status, reply["error"]["code"].as_i64()), (400, Some(-32600)));
    assert_eq!(h.err("getblockhash", json!(["one"])).1, -3, "a wrong type");
    assert_eq!(h.err("getblockhash", json!([5])), (500, -8, "Block height out of range".into()));
    assert_eq!(h.err("getblockhash", json!([])).1, -1, "a missing parameter");
    assert_eq!(h.err("getblockcount", json!([1])).1, -1, "too many parameters");
    assert_eq!(h.err("getblockhash", json!({"hieght": 1})).1, -8, "an unknown named parameter");
    let (_, code, message) = h.err("getblockheader", json!(["abc"]));
    assert_eq!((code, message.as_str()), (-8, "blockhash must be of length 64 (not 3, for 'abc')"));
    assert_eq!(h.err("getblock", json!(["00".repeat(32)])).1, -5);
    assert_eq!(h.err("generatetoaddress", json!([1, "not-an-address"])).1, -5);
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
    assert_eq!(h.err("generatetoaddress", json!([1, mainnet])).1, -5, "a mainnet address on regtest");
    assert_eq!(h.err("estimatesmartfee", json!([0])).1, -8);
    let address = TestKey::new(1).address().to_string();
    assert_eq!(h.err("generatetoaddress", json!([-1, address])).1, -8);
    assert_eq!(h.err("generatetoaddress", json!([1_000_000, address])).1, -8, "a runaway count");
    assert_eq!(h.ok("getblockcount", json!([])), 0, "nothing was mined by refused calls");
}

#[test]
fn batches_and_notifications() {
    let h = Harness::start();
    let (status, reply) = h.post(
        r#"[{"method":"getblockcount","id":1},{"jsonrpc":"2.0","method":"nosuch","id":2},{"jsonrpc":"2.0","method":"getblockcount"}]"#,
    );
    assert_eq!(status, 200);
    let replies = reply.as_array().expect("a batch reply");
    assert_eq!(replies.len(), 2, "the notification gets no reply");
    assert_eq!(replies[0]["result"], 0);
    assert_eq!(replies[1]["error"]["code"], -32601);
    let (status, reply) = h.post(r#"{"jsonrpc":"2.0","method":"getblockcount"}"#);
    assert_eq!((status, reply), (204, Value::Null));
}

#[test]
fn sendrawtransaction_accepts_valid_and_refuses_invalid_with_core_codes() {
    let h = Harness::start();
    let key = TestKey::new(1);
    funded(&h, &key);
    let coin = coinbase_coin(h.chain.as_ref(), 1);
    let pay = |v| TxOut { value: Amount::from_sat(v), script_pubkey: key.p2wpkh() };
    let tx = spend_p2wpkh(&key, &[coin.clone()], vec![pay(4_999_990_000)]);
    let accepted = h.ok("testmempoolaccept", json!([[serialize_hex(&tx)]]));
    assert_eq!(accepted[0]["allowed"], true);
    assert_eq!(accepted[0]["fees"]["base"], 0.0001);
    assert_eq!(h.ok("sendrawtransaction", json!([serialize_hex(&tx)])), tx.compute_txid().to_string());
    assert_eq!(
        h.ok("sendrawtransaction", json!([serialize_hex(&tx)])),
        tx.compute_txid().to_string(),
        "idempotent"
    );
    assert_eq!(h.ok("getrawmempool", json!([])), json!([tx.compute_txid().to_string()]));

    // A conflict paying less does not replace it (full RBF needs more).
    let double = spend_p2wpkh(&key, &[coin.clone()], vec![pay(4_999_995_000)]);
    let (_, code, message) = h.err("sendrawtransaction", json!([serialize_hex(&double)]));
    assert_eq!((code, message.as_str()), (-26, "insufficient fee"));
    let rejected = h.ok("testmempoolaccept", json!([[serialize_hex(&double)]]));
    assert_eq!(
        (rejected[0]["allowed"].clone(), rejected[0]["reject-reason"].clone()),
        (json!(false), json!("insufficient fee"))
    );

    let ghost = vigil_chain::testkit::Coin {
        outpoint: OutPoint { txid: tx.compute_txid(), vout: 9 },
        txout: pay(1000),
    };
    let missing = spend_p2wpkh(&key, &[ghost], vec![pay(500)]);
    let (_, code, message) = h.err("sendrawtransaction", json!([serialize_hex(&missing)]));
    assert_eq!((code, message.as_str()), (-25, "Inputs missing or spent"));

    let mut bad_sig = spend_p2wpkh(&key, &[coinbase_coin(h.chain.as_ref(), 2)], vec![pay(1000)]);
    bad_sig.output[0].value = Amount::from_sat(2000);
    let (status, reply) = h.post(
        &json!({"method": "sendrawtransaction", "params": [serialize_hex(&bad_sig)], "id": 1}).to_string(),
    );
    assert_eq!(status, 500);
    assert_eq!(reply["error"]["code"], -26);
    assert!(reply["error"]["message"]
        .as_str()
        .expect("message")
        .starts_with("mandatory-script-verify-flag-failed"));
    assert!(reply["error"]["data"]["detail"].as_str().expect("detail").contains("input 0"));

    let (_, code, _) = h.err("sendrawtransaction", json!(["00ff"]));
    assert_eq!(code, -22);
    let expensive = spend_p2wpkh(&key, &[coinbase_coin(h.chain.as_ref(), 2)], vec![pay(1_000_000)]);
    assert_eq!(
        h.err("sendrawtransaction", json!([serialize_hex(&expensive)])).1,
        -25,
        "fee above maxfeerate"
    );
    h.ok("sendrawtransaction", json!([serialize_hex(&expensive), 0]));

    h.ok("generatetoaddress", json!([1, key.address().to_string()]));
    let (_, code, _) = h.err("sendrawtransaction", json!([serialize_hex(&tx)]));
    assert_eq!(code, -27, "already in the chain");
}

#[test]
fn blocks_transactions_and_outputs_have_core_shapes() {
    let h = Harness::start();
    let key = TestKey::new(1);
    funded(&h, &key);
    let tx = spend_p2wpkh(
        &key,
        &[coinbase_coin(h.chain.as_ref(), 1)],
        vec![TxOut { value: Amount::from_sat(4_999_990_000), script_pubkey: key.p2wpkh() }],
    );
    let txid = tx.compute_txid().to_string();
    h.ok("sendrawtransaction", json!([serialize_hex(&tx)]));
    let out = h.ok("gettxout", json!([txid, 0]));
    assert_eq!((out["confirmations"].clone(), out["value"].clone()), (json!(0), json!(49.9999)));
    assert_eq!(h.ok("gettxout", json!([txid, 0, false])), Value::Null, "not in the chain yet");
    let child = spend_p2wpkh(
        &key,
        &[coin_of(&tx, 0)],
        vec![TxOut { value: Amount::from_sat(4_999_980_000), script_pubkey: key.p2wpkh() }],
    );
    h.ok("sendrawtransaction", json!([serialize_hex(&child)]));
    let verbose = h.ok("getrawmempool", json!([true]));
    let entry = &verbose[&txid];
    assert_eq!(entry["fees"]["base"], 0.0001);
    assert_eq!(entry["fees"]["descendant"], 0.0002);
    assert_eq!((entry["ancestorcount"].clone(), entry["descendantcount"].clone()), (json!(1), json!(2)));
    assert_eq!(entry["spentby"], json!([child.compute_txid().to_string()]));
    assert_eq!(entry["height"], 101);
    let child_entry = h.ok("getmempoolentry", json!([child.compute_txid().to_string()]));
    assert_eq!(child_entry["depends"], json!([txid]));
    assert_eq!(child_entry["ancestorsize"], json!(tx.vsize() + child.vsize()));
    assert_eq!(h.err("getmempoolentry", json!(["00".repeat(32)])).1, -5);
    assert_eq!(h.ok("getrawmempool", json!([false, true]))["txids"].as_array().map(Vec::len), Some(2));
    let hash = h.ok("generatetoaddress", json!([1, key.address().to_string()]))[0].clone();

    let block = h.ok("getblock", json!([hash]));
    assert_eq!(block["height"], 102);
    assert_eq!(block["confirmations"], 1);
    assert_eq!(block["tx"][1], txid);
    let full = h.ok("getblock", json!([hash, 2]));
    assert_eq!(full["tx"][1]["vout"][0]["scriptPubKey"]["type"], "witness_v0_keyhash");
    assert_eq!(full["tx"][1]["vout"][0]["scriptPubKey"]["address"], key.address().to_string());
    let raw = h.ok("getblock", json!([hash, 0]));
    let decoded: bitcoin::Block =
        bitcoin::consensus::encode::deserialize_hex(raw.as_str().expect("hex")).expect("block");
    assert_eq!(decoded.block_hash().to_string(), hash);
    let header = h.ok("getblockheader", json!([hash]));
    assert_eq!(header["bits"], "207fffff");
    assert_eq!(header["previousblockhash"], h.ok("getblockhash", json!([101])));
    assert!(header.get("nextblockhash").is_none());
    let raw_header = h.ok("getblockheader", json!([hash, false]));
    assert_eq!(raw_header.as_str().expect("hex").len(), 160);

    let rawtx = h.ok("getrawtransaction", json!([txid, true]));
    assert_eq!((rawtx["blockhash"].clone(), rawtx["confirmations"].clone()), (hash.clone(), json!(1)));
    assert_eq!(rawtx["hex"], serialize_hex(&tx));
    assert_eq!(h.ok("getrawtransaction", json!([txid])), serialize_hex(&tx));
    assert_eq!(h.err("getrawtransaction", json!(["00".repeat(32)])).1, -5);
    assert_eq!(
        h.ok("gettxout", json!([txid, 0])),
        Value::Null,
        "spent by the child, mined in the same block"
    );
    let out = h.ok("gettxout", json!([child.compute_txid().to_string(), 0, false]));
    assert_eq!((out["confirmations"].clone(), out["coinbase"].clone()), (json!(1), json!(false)));
    assert_eq!(out["bestblock"], hash);

    let fee = h.ok("estimatesmartfee", json!([6]));
    assert_eq!((fee["feerate"].clone(), fee["blocks"].clone()), (json!(0.00002), json!(6)));

    h.ok("invalidateblock", json!([hash]));
    assert_eq!(h.ok("getblockcount", json!([])), 101);
    assert_eq!(
        h.ok("getrawmempool", json!([])),
        json!([txid, child.compute_txid().to_string()]),
        "back in the mempool"
    );
    assert_eq!(h.ok("getblockheader", json!([hash]))["confirmations"], -1);
}

#[test]
fn generateblock_mines_a_conflicting_branch() {
    let h = Harness::start();
    let key = TestKey::new(1);
    funded(&h, &key);
    let coin = coinbase_coin(h.chain.as_ref(), 1);
    let pay = |sat| vec![TxOut { value: Amount::from_sat(sat), script_pubkey: key.p2wpkh() }];
    let a = spend_p2wpkh(&key, &[coin.clone()], pay(4_999_990_000));
    let b = spend_p2wpkh(&key, &[coin], pay(4_999_980_000));
    h.ok("sendrawtransaction", json!([serialize_hex(&a)]));
    let reply = h.ok("generateblock", json!([key.address().to_string(), [serialize_hex(&b)]]));
    let block = h.ok("getblock", json!([reply["hash"]]));
    assert_eq!(block["tx"][1], b.compute_txid().to_string());
    assert_eq!(h.ok("getrawmempool", json!([])), json!([]), "the conflicting mempool spend is evicted");
    let (_, code, _) = h.err("generateblock", json!([key.address().to_string(), [serialize_hex(&a)]]));
    assert_eq!(code, -25);
}

#[test]
fn bitcoind_rpc_chain_answers_like_the_embedded_chain() {
    let h = Harness::start();
    let key = TestKey::new(1);
    funded(&h, &key);
    let rpc = h.client();
    let embedded: &dyn ChainSource = h.chain.as_ref();
    let tx = spend_p2wpkh(
        &key,
        &[coinbase_coin(embedded, 1)],
        vec![TxOut { value: Amount::from_sat(4_999_990_000), script_pubkey: key.p2wpkh() }],
    );
    assert_eq!(rpc.broadcast(&tx), Ok(tx.compute_txid()));
    assert_eq!(rpc.mempool().expect("mempool"), vec![tx.clone()]);
    h.ok("generatetoaddress", json!([1, key.address().to_string()]));

    assert_eq!(rpc.tip().expect("tip"), embedded.tip().expect("tip"));
    for height in [0, 1, 102] {
        let hash = rpc.block_hash(height).expect("hash");
        assert_eq!(hash, embedded.block_hash(height).expect("hash"));
        let hash = hash.expect("exists");
        assert_eq!(rpc.header(&hash).expect("header"), embedded.header(&hash).expect("header"));
        assert_eq!(rpc.block(&hash).expect("block"), embedded.block(&hash).expect("block"));
    }
    assert_eq!(rpc.block_hash(103).expect("hash"), None);
    let unknown = bitcoin::BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros());
    assert_eq!(rpc.block(&unknown).expect("lookup"), None);
    let txid = tx.compute_txid();
    assert_eq!(rpc.transaction(&txid).expect("tx"), embedded.transaction(&txid).expect("tx"));
    let out = coin_of(&tx, 0).outpoint;
    assert_eq!(rpc.utxo(&out, true).expect("utxo"), embedded.utxo(&out, true).expect("utxo"));
    let cb = coinbase_coin(embedded, 5).outpoint;
    assert_eq!(rpc.utxo(&cb, false).expect("utxo"), embedded.utxo(&cb, false).expect("utxo"));
    assert_eq!(rpc.fee_rate(6).expect("fee"), embedded.fee_rate(6).expect("fee"));

    match rpc.broadcast(&tx) {
        Err(BroadcastError::Rejected(r)) => assert_eq!(r.code, -27),
        other => panic!("expected a -27 rejection, got {other:?}"),
    }

    // Pull sync over RPC sees a reorg the same way.
    let mut follower = ChainFollower::new(rpc.tip().expect("tip"));
    let tip = rpc.tip().expect("tip");
    h.ok("invalidateblock", json!([tip.hash.to_string()]));
    h.ok("generatetoaddress", json!([2, key.address().to_string()]));
    let mut kinds = Vec::new();
    while let Some(event) = follower.poll(&rpc).expect("poll") {
        kinds.push(matches!(event, ChainEvent::Connected { .. }));
    }
    assert_eq!(kinds, vec![false, true, true]);
    assert_eq!(follower.position(), embedded.tip().expect("tip"));
}

#[test]
fn client_rereads_a_rotated_cookie_and_reports_bad_credentials() {
    let mut h = Harness::start();
    let rpc = h.client();
    assert_eq!(rpc.tip().expect("tip").height, 0);
    // Restart the server: a new cookie is written.
    let server = h.server.take().expect("running");
    let addr = server.local_addr();
    h.rt.block_on(server.stop());
    assert!(!h.dir.path().join(".cookie").exists(), "the cookie is removed at shutdown");
    let config =
        RpcServerConfig { bind: addr, cookie_path: Some(h.dir.path().join(".cookie")), user_password: None };
    h.server = Some(h.rt.block_on(RpcServer::start(h.chain.clone(), config)).expect("restart"));
    assert_eq!(rpc.tip().expect("the client picks up the new cookie").height, 0);

    let wrong = BitcoindRpcChain::new(
        &format!("http://{addr}"),
        RpcAuth::UserPass { user: "mallory".into(), password: "guess".into() },
    )
    .expect("client");
    assert_eq!(wrong.tip(), Err(ChainSourceError::Unauthorized));
    let nobody = BitcoindRpcChain::new(
        "http://127.0.0.1:1",
        RpcAuth::UserPass { user: "a".into(), password: "b".into() },
    )
    .expect("client");
    assert!(matches!(nobody.tip(), Err(ChainSourceError::Unavailable(_))));
}
