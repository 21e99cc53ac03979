//! The harness works: every scenario runs at tiny sizes for both
//! implementations, every payment succeeds, and the counts add up. These
//! tests check correctness only; they time nothing (the numbers come from
//! `vigil-bench` in release, see docs/PERFORMANCE.md).

use vigil_bench::ldk::LdkNode;
use vigil_bench::net::BenchNode;
use vigil_bench::scenarios::{self, setup, Sizes};
use vigil_bench::store::StoreKind;
use vigil_bench::vigil::VigilNode;

fn pays_both_ways_and_restarts<N: BenchNode>(kind: StoreKind) {
    let mut s = setup::<N>(2, 1, kind);
    let before = s.net.counts();
    scenarios::sequential(&mut s.net, 4, &[(0, 1), (1, 0)]).expect("every payment succeeds");
    let after = s.net.counts();
    for (b, a) in before.iter().zip(&after) {
        let d = a.since(b);
        // Every payment changes two commitments on each node, and each
        // must be durable before it is revoked.
        assert!(d.transactions >= 4 * 2, "each node made its payments durable: {d:?}");
        assert!(d.bytes >= d.writes, "every value written has bytes: {d:?}");
    }
    // The restarted node replaces the running one, reconnects, and pays
    // again: "ready" means ready.
    let (restarted, _) = s.net.nodes[0].restart();
    assert_eq!(restarted.node_id(), s.net.nodes[0].node_id(), "the same node comes back");
    s.net.disconnect(0);
    s.net.nodes[0] = restarted;
    s.net.connect(0, 1);
    s.net.run(true);
    assert_eq!(s.net.nodes[0].usable_channels(), 1, "the channel is usable again after reestablish");
    scenarios::sequential(&mut s.net, 2, &[(0, 1), (1, 0)]).expect("payments after the restart succeed");
    let (_, latencies) = scenarios::concurrent(&mut s.net, 12, 5).expect("concurrent payments succeed");
    assert_eq!(latencies.len(), 12, "one latency per payment");
}

#[test]
fn vigil_nodes_pay_persist_and_restart() {
    pays_both_ways_and_restarts::<VigilNode>(StoreKind::Sqlite);
}

#[test]
fn ldk_nodes_pay_persist_and_restart() {
    pays_both_ways_and_restarts::<LdkNode>(StoreKind::Sqlite);
}

#[test]
fn every_scenario_runs_at_tiny_sizes() {
    let sizes = Sizes::quick();
    for kind in [StoreKind::Memory, StoreKind::Sqlite] {
        let row = scenarios::payments(kind, &sizes).expect("payments");
        assert_eq!(row.runs.0.len(), sizes.runs, "one measurement per run and side");
        assert_eq!(row.runs.1.len(), sizes.runs);
        assert_eq!(row.to_json()["unit"], "payments/s");
    }
    let concurrent = scenarios::payments_concurrent(&sizes).expect("payments-concurrent");
    let latency = &concurrent.extra["latency"];
    for side in ["vigil", "ldk"] {
        let (p50, p99) = (latency[side]["p50_ms"].as_f64(), latency[side]["p99_ms"].as_f64());
        assert!(p50.is_some() && p50 <= p99, "{side}: {latency}");
    }
    scenarios::forward(&sizes).expect("forward: every payment crosses two hops");
    let bytes = scenarios::bytes(&sizes).expect("bytes");
    assert_eq!(bytes.len(), 3);
    assert!(bytes.iter().all(|r| r.vigil > 0.0 && r.ldk.is_some_and(|l| l > 0.0)), "{bytes:?}");
    let restart = scenarios::restart(&sizes).expect("restart");
    let backlog = restart.iter().find(|r| r.scenario.contains("unacked")).expect("a backlog row");
    assert_eq!(
        backlog.extra["unacknowledged_events"].as_u64(),
        Some(3),
        "exactly the unacknowledged outcome events come back after a restart: {}",
        backlog.extra
    );
    let limits = vigil_bench::limits::rows(&vigil_bench::limits::measure(20), 100.0, 50.0, 25.0);
    assert_eq!(limits.len(), 3);
    for row in &limits {
        let ceiling = row.extra["ceiling_payments_per_s"].as_f64().expect("a ceiling");
        assert!(
            (row.vigil * ceiling - row.extra["vigil_payments_per_s"].as_f64().expect("a rate")).abs() < 1e-6
        );
    }
}

#[test]
fn invoices_of_a_node_with_many_channels_stay_short_and_payable() {
    let mut s = setup::<VigilNode>(2, 6, StoreKind::Memory);
    let invoice = s.net.nodes[1].invoice(scenarios::AMOUNT_MSAT);
    assert!(
        invoice.private_routes().len() <= vigil_core::manager::MAX_ROUTE_HINTS,
        "{} route hints",
        invoice.private_routes().len()
    );
    scenarios::pay_once(&mut s.net, 0, &invoice, true).expect("the invoice is payable");
}
