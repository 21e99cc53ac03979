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
    let rate = scenarios::sequential(&mut s.net, 4, &[(0, 1), (1, 0)]).expect("every payment succeeds");
    assert!(rate > 0.0);
    let after = s.net.counts();
    for (b, a) in before.iter().zip(&after) {
        let d = a.since(b);
        assert!(d.transactions > 0 && d.bytes > 0, "each node made its payments durable: {d:?}");
    }
    // The restarted node replaces the running one, reconnects, and pays
    // again: "ready" means ready.
    let (restarted, took) = s.net.nodes[0].restart();
    assert!(took.as_nanos() > 0);
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
    let mem = scenarios::payments(StoreKind::Memory, &sizes).expect("payments-mem");
    assert!(mem.vigil > 0.0 && mem.ldk.is_some_and(|l| l > 0.0));
    assert_eq!(mem.to_json()["unit"], "payments/s");
    let fwd = scenarios::forward(&sizes).expect("forward");
    assert!(fwd.vigil > 0.0 && fwd.ldk.is_some());
    let bytes = scenarios::bytes(&sizes).expect("bytes");
    assert_eq!(bytes.len(), 3);
    assert!(bytes.iter().all(|r| r.vigil > 0.0 && r.ldk.is_some_and(|l| l > 0.0)), "{bytes:?}");
    let restart = scenarios::restart(&sizes).expect("restart");
    let backlog = restart.iter().find(|r| r.scenario.contains("unacked")).expect("a backlog row");
    assert!(
        backlog.extra["unacknowledged_events"].as_u64() >= Some(3),
        "the unacknowledged outcome events come back after a restart: {}",
        backlog.extra
    );
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
