//! `vigild` as a user runs it: a real process on a data directory, answering
//! a bitcoind JSON-RPC client, funding its wallet, stopping on SIGTERM, and
//! coming back with its chain, seed and wallet.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, TxOut};
use serde_json::{json, Value};
use vigil_chain::rpc::{BitcoindRpcChain, RpcAuth};
use vigil_chain::testkit::{coinbase_coin, spend_p2wpkh, TestKey};
use vigil_chain::{ChainSource, ChainSourceError};

struct Vigild {
    child: Child,
    log: PathBuf,
    port: u16,
    data_dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Vigild {
    fn command(data_dir: &Path, port: u16, log: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigild"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--rpc-port")
            .arg(port.to_string())
            .arg("--sync-interval-ms")
            .arg("100")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).expect("log file"));
        cmd
    }

    /// Starts vigild and waits until it is ready.
    fn start(data_dir: &Path) -> Self {
        let port = free_port();
        let log = data_dir.with_extension(format!("{port}.log"));
        let child = Self::command(data_dir, port, &log).spawn().expect("spawn vigild");
        let mut me = Self { child, log, port, data_dir: data_dir.to_path_buf() };
        wait_for("vigild ready", Duration::from_secs(60), || {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("vigild exited early with {status}: {}", me.logs());
            }
            me.logs().contains("vigild ready")
        });
        me
    }

    fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn cookie(&self) -> PathBuf {
        self.data_dir.join("regtest").join(".cookie")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn rpc(&self) -> BitcoindRpcChain {
        BitcoindRpcChain::new(&self.url(), RpcAuth::Cookie(self.cookie())).expect("client")
    }

    fn wallet_address(&self) -> String {
        let logs = self.logs();
        let line = logs.lines().find(|l| l.contains("wallet receive address")).expect("address logged");
        let start = line.find("address=").expect("address field") + "address=".len();
        line[start..].split_whitespace().next().expect("an address").to_owned()
    }

    fn vigil(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--rpc-url")
            .arg(self.url())
            .args(args)
            .output()
            .expect("run vigil");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.logs());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "vigild did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Vigild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs vigild expecting it to refuse to start; returns its stderr.
fn start_fails(data_dir: &Path, port: u16) -> String {
    let log = data_dir.with_extension("failed.log");
    let status = Vigild::command(data_dir, port, &log).status().expect("run vigild");
    assert!(!status.success(), "vigild must refuse to start");
    fs::read_to_string(&log).expect("log")
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

    let rpc = daemon.rpc();
    let info: Value = rpc.call("getblockchaininfo", &[]).expect("getblockchaininfo");
    assert_eq!(info["chain"], "regtest");

    // Fund the wallet with the CLI, as the README shows.
    let address = daemon.wallet_address();
    let (ok, out, err) = daemon.vigil(&["chain", "mine", "101", &address]);
    assert!(ok, "vigil chain mine failed: {err}");
    assert!(out.contains("height 101"), "{out}");
    wait_for("the wallet to see its mature coins", Duration::from_secs(30), || {
        daemon.logs().contains("confirmed=100 BTC")
    });
    let (ok, out, _) = daemon.vigil(&["--json", "chain", "info"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["blocks"], 101);

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
        &daemon.url(),
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
    let rpc = daemon.rpc();
    assert_eq!(rpc.tip().expect("tip"), tip);
    assert_eq!(rpc.mempool().expect("mempool"), vec![tx]);
    assert_eq!(fs::read(&seed_path).expect("seed"), seed, "the seed is kept");
    assert!(daemon.logs().contains("confirmed=5050 BTC"), "the wallet is restored and synced at start");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn a_data_dir_serves_one_daemon() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("node");
    let daemon = Vigild::start(&data_dir);
    let err = start_fails(&data_dir, free_port());
    assert!(err.contains("in use by another vigild"), "{err}");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let other = tmp.path().join("other");
    let err = start_fails(&other, taken.local_addr().expect("addr").port());
    assert!(err.contains("cannot listen for RPC"), "{err}");
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
    let err = start_fails(&data_dir, free_port());
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(fs::read(&chain_file).expect("read"), damaged, "never replaced");

    fs::write(&chain_file, &bytes).expect("restore");
    let seed_file = data_dir.join("regtest").join("seed");
    fs::write(&seed_file, b"not a seed").expect("damage the seed");
    let err = start_fails(&data_dir, free_port());
    assert!(err.contains("seed file") && err.contains("corrupt"), "{err}");
    assert_eq!(fs::read(&seed_file).expect("read"), b"not a seed");
}
