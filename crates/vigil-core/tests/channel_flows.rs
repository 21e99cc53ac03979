//! Channel flows through the pairwise harness: open, payments both ways,
//! fulfil, fail, fee updates, cooperative close, for both channel types.

mod common;

use common::{OpenOptions, Pair, Who};
use vigil_core::channel::{ChannelEvent, CloseReason, Phase};

fn both_types() -> [OpenOptions; 2] {
    [OpenOptions::default(), OpenOptions { anchors: true, ..OpenOptions::default() }]
}

#[test]
fn open_pay_claim_and_close() {
    for opts in both_types() {
        let anchors = opts.anchors;
        let mut pair = Pair::open(opts);
        let a0 = pair.balance(Who::A);
        let b0 = pair.balance(Who::B);
        let (id, preimage) = pair.pay(Who::A, 50_000_000);
        assert_eq!(pair.b.irrevocable().len(), 1, "B's monitor learned the HTLC");
        pair.claim(Who::B, id, preimage);
        assert_eq!(pair.balance(Who::A), a0 - 50_000_000, "anchors={anchors}");
        assert_eq!(pair.balance(Who::B), b0 + 50_000_000);
        assert!(pair.a.preimages().iter().any(|(i, outbound, p)| *i == id && *outbound && *p == preimage));
        let tx = pair.close(Who::B);
        assert_eq!(tx.output.len(), 2);
        assert_eq!(pair.phase(Who::A), Phase::Closed(CloseReason::Cooperative));
        assert!(pair.a.has_event(|e| matches!(e, ChannelEvent::Closed { reason: CloseReason::Cooperative })));
        assert!(pair.checked > 5, "transactions were checked against consensus");
    }
}
