//! `vigild` processes for the integration tests: started on free ports
//! with a data directory, driven through the HTTP API (a real HTTP client)
//! and the `vigil` binary, stopped with SIGTERM or killed with SIGKILL.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ports of one vigild.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listen: u16,
    pub api: u16,
    pub rpc: u16,
}

impl Ports {
    /// Ports for `n` processes that need them up front, all distinct: every
    /// port is held until all are picked, so none is handed out twice.
    pub fn free(n: usize) -> Vec<Self> {
        let hold: Vec<TcpListener> =
            (0..3 * n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
        let port = |i: usize| hold[i].local_addr().expect("addr").port();
        (0..n).map(|i| Self { listen: port(3 * i), api: port(3 * i + 1), rpc: port(3 * i + 2) }).collect()
    }

    /// Port 0 everywhere: vigild picks, and the harness reads them from its log.
    pub fn any() -> Self {
        Self { listen: 0, api: 0, rpc: 0 }
    }
}

/// The port in the last `key=127.0.0.1:PORT` of `logs`.
fn logged_port(logs: &str, key: &str) -> Option<u16> {
    let at = logs.rfind(key)? + key.len();
    let rest = logs[at..].trim_start_matches("Some(");
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != ')').collect();
    addr.rsplit(':').next()?.parse().ok()
}

pub struct Vigild {
    pub child: Child,
    pub log: PathBuf,
    pub ports: Ports,
    pub data_dir: PathBuf,
    pub extra: Vec<String>,
}

impl Vigild {
    pub fn command(data_dir: &Path, ports: Ports, extra: &[String], log: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigild"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", ports.listen))
            .arg("--api-bind")
            .arg(format!("127.0.0.1:{}", ports.api))
            .arg("--rpc-bind")
            .arg(format!("127.0.0.1:{}", ports.rpc))
            .arg("--poll-interval-ms")
            .arg("20")
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::OpenOptions::new().create(true).append(true).open(log).expect("log file"));
        cmd
    }

    /// Starts vigild on embedded defaults and waits until it is ready.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, Ports::any(), Vec::new())
    }

    pub fn start_with(data_dir: &Path, ports: Ports, extra: Vec<String>) -> Self {
        let log = data_dir.with_extension("log");
        let ready_before = fs::read_to_string(&log).unwrap_or_default().matches("vigild ready").count();
        let child = Self::command(data_dir, ports, &extra, &log).spawn().expect("spawn vigild");
        let mut me = Self { child, log, ports, data_dir: data_dir.to_path_buf(), extra };
        wait_for("vigild ready", Duration::from_secs(60), || {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("vigild exited early with {status}: {}", me.logs());
            }
            me.logs().matches("vigild ready").count() > ready_before
        });
        // Ports given as 0 were picked by vigild: it logs them.
        let logs = me.logs();
        let logged = |given: u16, key: &str| {
            if given != 0 {
                return given;
            }
            logged_port(&logs, key).unwrap_or_else(|| panic!("vigild logs its {key}: {logs}"))
        };
        me.ports = Ports {
            listen: logged(ports.listen, "peers="),
            api: logged(ports.api, "api="),
            rpc: if me.extra.is_empty() { logged(ports.rpc, "local_addr=") } else { ports.rpc },
        };
        me
    }

    /// Starts this vigild again, on the same ports and options.
    pub fn restart(self) -> Self {
        let (dir, ports, extra) = (self.data_dir.clone(), self.ports, self.extra.clone());
        drop(self);
        Self::start_with(&dir, ports, extra)
    }

    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn network_dir(&self) -> PathBuf {
        self.data_dir.join("regtest")
    }

    pub fn token(&self) -> String {
        fs::read_to_string(self.network_dir().join("api.token")).expect("the token").trim().to_string()
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.api)
    }

    /// An API call with the token: the status and the JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(Some(&self.token()), method, path, body)
    }

    pub fn call_with(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = ureq::request(method, &format!("{}{path}", self.api_url()));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// A successful API call's body.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }

    pub fn node_id(&self) -> String {
        self.ok("GET", "/v1/info", None)["node_id"].as_str().expect("node id").to_string()
    }

    /// Runs `vigil` against this vigild: success, stdout, stderr.
    pub fn vigil(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--api-url")
            .arg(self.api_url())
            .args(args)
            .output()
            .expect("run vigil");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    pub fn terminate(mut self) -> (ExitStatus, String) {
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

    /// SIGKILL: nothing is flushed or closed.
    pub fn kill9(mut self) -> (PathBuf, Ports, Vec<String>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.data_dir.clone(), self.ports, std::mem::take(&mut self.extra))
    }
}

impl Drop for Vigild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs vigild expecting it to refuse to start; returns its stderr.
pub fn start_fails(data_dir: &Path, ports: Ports) -> String {
    let log = data_dir.with_extension("failed.log");
    let status = Vigild::command(data_dir, ports, &[], &log).status().expect("run vigild");
    assert!(!status.success(), "vigild must refuse to start");
    fs::read_to_string(&log).expect("log")
}
