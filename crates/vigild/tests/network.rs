//! Three `vigild` processes, as `scripts/regtest-network.sh` runs them:
//! Alice runs the embedded chain, Bob and Carol follow it over its RPC
//! (`--chain rpc://…`). Channels are opened from the wallets through the
//! API, a stream of payments goes from Alice to Carol through Bob, and Bob
//! is killed with SIGKILL in the middle of it. After his restart every
//! payment resolves, no channel closes, and `listpayments` agrees on both
//! ends.

mod common;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{wait_for, Ports, Vigild};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// The tests that start processes run one at a time. The script takes its
/// ports before it starts `vigild`, and Bob restarts on the ports he had;
/// a process of another test binding port 0 in between could take one.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static PROCESSES: Mutex<()> = Mutex::new(());
    PROCESSES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn follower(dir: &std::path::Path, alice: &Vigild) -> Vigild {
    let extra = vec![
        "--chain".to_string(),
        format!("rpc://127.0.0.1:{}", alice.ports.rpc),
        "--chain-cookie".to_string(),
        alice.network_dir().join(".cookie").display().to_string(),
    ];
    Vigild::start_with(dir, Ports::any(), extra)
}

fn address(node: &Vigild) -> String {
    node.ok("POST", "/v1/wallet/address", None)["address"].as_str().expect("address").to_string()
}

fn usable(node: &Vigild) -> usize {
    let channels = node.ok("GET", "/v1/channels", None);
    channels.as_array().expect("list").iter().filter(|c| c["usable"] == true).count()
}

fn payments(node: &Vigild, direction: &str, status: &str) -> BTreeSet<String> {
    let list = node.ok("GET", "/v1/payments", None);
    list.as_array()
        .expect("list")
        .iter()
        .filter(|p| p["direction"] == direction && p["status"] == status)
        .map(|p| p["payment_hash"].as_str().expect("hash").to_string())
        .collect()
}

fn no_closes(node: &Vigild) {
    let events = node.ok("GET", "/v1/events", None);
    let closes: Vec<&Value> =
        events.as_array().expect("list").iter().filter(|e| e["type"] == "channel_closed").collect();
    assert!(closes.is_empty(), "no channel may close: {closes:?}");
}

#[test]
fn three_processes_pay_across_two_hops_through_a_kill_9_of_the_forwarder() {
    let _alone = one_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");
    let alice = Vigild::start(&tmp.path().join("alice"));
    let bob = follower(&tmp.path().join("bob"), &alice);
    let carol = follower(&tmp.path().join("carol"), &alice);
    let (bob_id, carol_id) = (bob.node_id(), carol.node_id());

    // Fund Alice and Bob (coinbases mature after 100 blocks).
    alice.ok("POST", "/v1/chain/mine", Some(json!({ "blocks": 1 })));
    alice.ok("POST", "/v1/chain/mine", Some(json!({ "blocks": 1, "address": address(&bob) })));
    alice.ok("POST", "/v1/chain/mine", Some(json!({ "blocks": 100, "address": address(&carol) })));
    wait_for("bob's wallet is funded", WAIT, || {
        bob.ok("GET", "/v1/wallet/balance", None)["onchain_confirmed_sat"].as_u64() > Some(0)
    });

    // Alice -> Bob -> Carol, from the wallets, with the CLI for one of them.
    let (ok, out, err) =
        alice.vigil(&["openchannel", &format!("{bob_id}@127.0.0.1:{}", bob.ports.listen), "2000000"]);
    assert!(ok, "{out}{err}");
    bob.ok(
        "POST",
        "/v1/channels",
        Some(json!({ "node_id": carol_id, "address": format!("127.0.0.1:{}", carol.ports.listen), "amount_sat": 2_000_000 })),
    );
    wait_for("both fundings in the mempool", WAIT, || {
        alice.ok("GET", "/v1/chain/info", None)["mempool"] == 2
    });
    alice.ok("POST", "/v1/chain/mine", Some(json!({ "blocks": 6 })));
    wait_for("every channel is usable", WAIT, || {
        usable(&alice) == 1 && usable(&bob) == 2 && usable(&carol) == 1
    });

    // A first payment through the CLI, waiting for its outcome.
    let invoice =
        carol.ok("POST", "/v1/invoices", Some(json!({ "amount_msat": 1_000_000, "description": "first" })));
    let (ok, out, err) = alice.vigil(&["pay", invoice["invoice"].as_str().expect("invoice")]);
    assert!(ok && out.contains("succeeded"), "{out}{err}");

    // A stream of payments; Bob is killed in the middle of it.
    let invoices: Vec<String> = (0..20)
        .map(|i| {
            let body = json!({ "amount_msat": 10_000_000 + i, "description": format!("stream {i}") });
            carol.ok("POST", "/v1/invoices", Some(body))["invoice"].as_str().expect("invoice").to_string()
        })
        .collect();
    let mut bob = Some(bob);
    let mut killed = None;
    let mut in_flight_at_kill = BTreeSet::new();
    let mut started = BTreeSet::new();
    for (i, invoice) in invoices.iter().enumerate() {
        let (status, answer) =
            alice.call("POST", "/v1/payments/pay", Some(json!({ "invoice": invoice, "wait_secs": 0 })));
        match status {
            200 => {
                started.insert(answer["payment_hash"].as_str().expect("hash").to_string());
            }
            // With Bob down there is no route: refused before anything is sent.
            409 => assert!(killed.is_some(), "refused while Bob runs: {answer}"),
            other => panic!("pay answered {other}: {answer}"),
        }
        if i == 9 {
            killed = Some(bob.take().expect("bob runs").kill9());
            in_flight_at_kill = payments(&alice, "outbound", "pending");
        }
    }
    let (dir, ports, extra) = killed.expect("bob was killed");
    let bob = Vigild::start_with(&dir, ports, extra);
    eprintln!(
        "{} payments started, {} in flight when Bob was killed",
        started.len(),
        in_flight_at_kill.len()
    );

    // Every payment resolves, none is lost, nothing closes.
    wait_for("every payment is decided", WAIT, || payments(&alice, "outbound", "pending").is_empty());
    let sent = payments(&alice, "outbound", "succeeded");
    let failed = payments(&alice, "outbound", "failed");
    assert!(!in_flight_at_kill.is_empty(), "the kill must catch payments in flight");
    wait_for("carol lists what alice paid", WAIT, || {
        payments(&carol, "inbound", "succeeded").len() >= sent.len()
    });
    let received = payments(&carol, "inbound", "succeeded");
    assert_eq!(sent, received, "listpayments agrees on both ends (the first payment included)");
    assert!(failed.is_disjoint(&received), "a payment carol claimed is never reported failed to alice");
    assert!(started.iter().all(|h| sent.contains(h) || failed.contains(h)), "every payment started resolved");
    assert!(
        in_flight_at_kill.iter().all(|h| sent.contains(h)),
        "the payments in flight at the kill all succeeded"
    );
    for node in [&alice, &bob, &carol] {
        no_closes(node);
    }
    wait_for("the channels are usable again and carry no HTLC", WAIT, || {
        let idle = |n: &Vigild| {
            let channels = n.ok("GET", "/v1/channels", None);
            channels.as_array().expect("list").iter().all(|c| c["usable"] == true && c["pending_htlcs"] == 0)
        };
        idle(&alice) && idle(&bob) && idle(&carol)
    });
    // After the restart Bob forwards again.
    let invoice = carol.ok("POST", "/v1/invoices", Some(json!({ "amount_msat": 5_000_000 })));
    let paid = alice.ok("POST", "/v1/payments/pay", Some(json!({ "invoice": invoice["invoice"] })));
    assert_eq!(paid["status"], "succeeded", "{paid}");

    events_stream_and_acknowledge(&alice, &carol, paid["payment_hash"].as_str().expect("hash"));
}

/// The server-sent event stream resumes after `Last-Event-ID`, and
/// `vigil events --follow --ack` prints each event once and acknowledges it.
fn events_stream_and_acknowledge(alice: &Vigild, carol: &Vigild, last_hash: &str) {
    use std::io::{BufRead, BufReader};

    let sent = alice.ok("GET", "/v1/events", None);
    let ids: Vec<u64> =
        sent.as_array().expect("list").iter().map(|e| e["id"].as_u64().expect("id")).collect();
    assert!(ids.len() >= 2, "alice has payment events: {sent}");
    let response = ureq::get(&format!("{}/v1/events/stream", alice.api_url()))
        .set("Authorization", &format!("Bearer {}", alice.token()))
        .set("Last-Event-ID", &ids[0].to_string())
        .timeout(Duration::from_secs(30))
        .call()
        .expect("the stream opens");
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let first_id = BufReader::new(response.into_reader())
        .lines()
        .map(|l| l.expect("read the stream"))
        .find_map(|l| l.strip_prefix("id:").map(|id| id.trim().parse::<u64>().expect("event id")))
        .expect("an event after the cursor");
    assert_eq!(first_id, ids[1], "the stream resumes right after Last-Event-ID");

    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--data-dir")
        .arg(&carol.data_dir)
        .args(["--api-url", &carol.api_url(), "--json", "events", "--follow", "--ack"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run vigil events --follow");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).expect("vigil events --follow prints carol's events");
        let event: Value = serde_json::from_str(&line).expect("one JSON event per line");
        let last = event["type"] == "payment_received" && event["payment_hash"] == last_hash;
        printed.push(event);
        if last {
            break;
        }
    }
    // The acknowledgement of the last printed event is sent right after it
    // is printed; give it the time to land.
    wait_for("carol's printed events are acknowledged", WAIT, || {
        let left = carol.ok("GET", "/v1/events", None);
        let left: BTreeSet<u64> =
            left.as_array().expect("list").iter().filter_map(|e| e["id"].as_u64()).collect();
        printed.iter().all(|e| !left.contains(&e["id"].as_u64().expect("id")))
    });
    follow.kill().expect("stop vigil events --follow");
    let _ = follow.wait();
    let received = printed.iter().filter(|e| e["type"] == "payment_received").count();
    assert!(received >= 2, "carol's received payments were printed: {printed:?}");
}

#[test]
fn the_regtest_network_script_pays_across_two_hops() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let _alone = one_at_a_time();
    let ports = |p: Ports| format!("{} {} {}", p.listen, p.api, p.rpc);
    // The script needs its ports up front; they are free now, and no other
    // test of this binary binds one until the script is done.
    let free = Ports::free(3);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/regtest-network.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("VIGILD", env!("CARGO_BIN_EXE_vigild"))
        .env("VIGIL", env!("CARGO_BIN_EXE_vigil"))
        .env("BASE_DIR", tmp.path())
        .env("ALICE_PORTS", ports(free[0]))
        .env("BOB_PORTS", ports(free[1]))
        .env("CAROL_PORTS", ports(free[2]))
        .env_remove("KEEP")
        .output()
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok: alice paid carol across two hops"), "{stdout}");
    assert!(stdout.contains("inbound  succeeded"), "carol lists the payment: {stdout}");
}

#[test]
fn the_demo_reports_nothing_lost() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--json", "demo"])
        .output()
        .expect("run vigil demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("killed with the HTLC in flight"), "{stdout}");
    assert!(stdout.contains("nothing lost                 yes"), "{stdout}");
    let report: Value =
        serde_json::from_str(&stdout[stdout.find("\n{").expect("the JSON report") + 1..]).expect("json");
    assert_eq!(report["nothing_lost"], true);
    assert_eq!(report["sent_msat"], 690_000_000u64);
    assert_eq!(report["received_by_carol_msat"], 70_000_000u64);
}
