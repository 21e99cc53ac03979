//! The `ChannelMonitor` fed by real channels: every step and event kind,
//! idempotent replay, refused updates, the event log and resolution
//! records, and its serialization (round trips, the even/odd rule, and a
//! golden file).

mod common;

use bitcoin::hashes::{sha256, Hash};
use common::{test_source, OpenOptions, Pair, Rng, Who};
use lightning::ln::types::ChannelId;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use vigil_core::channel::{
    ClaimPart, CloseReason, HtlcFailure, HtlcSource, InboundClaim, MonitorUpdate, UpdateStep,
};
use vigil_core::monitor::{
    ChannelMonitor, ClosedBy, MonitorEvent, MonitorEventId, ResolutionRecord, StoredEvent, UpdateError,
};
use vigil_core::ser::{read_bigsize, write_bigsize, DecodeError, Encode, Reader};

/// The monitor a node's durable updates build.
fn monitor_of(updates: &[MonitorUpdate]) -> ChannelMonitor {
    let mut monitor =
        ChannelMonitor::from_first_update(&updates[0]).expect("the first update funds the channel");
    for u in &updates[1..] {
        assert_eq!(monitor.apply(u), Ok(true), "update {} applies", u.update_id);
    }
    monitor
}

fn events(monitor: &ChannelMonitor) -> Vec<MonitorEvent> {
    monitor.events().iter().map(|e| e.event.clone()).collect()
}

fn hash_of(preimage: &PaymentPreimage) -> PaymentHash {
    PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array())
}

fn forwarded(htlc: u64) -> HtlcSource {
    HtlcSource::Forwarded {
        incoming_channel_id: ChannelId([9; 32]),
        incoming_htlc_id: htlc,
        incoming_amount_msat: 5_100_000,
    }
}

#[test]
fn a_claimed_payment_is_accepted_on_one_side_and_claimed_on_the_other() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    let b_mid = monitor_of(&pair.b.durable);
    let a_mid = monitor_of(&pair.a.durable);
    assert_eq!(a_mid.pending_outbound().map(|h| h.id).collect::<Vec<_>>(), vec![id]);
    pair.claim(Who::B, id, preimage);
    let a = monitor_of(&pair.a.durable);
    let b = monitor_of(&pair.b.durable);

    // The receiver's monitor reports the HTLC irrevocably committed, once.
    let accepted: Vec<_> = events(&b)
        .into_iter()
        .filter_map(|e| match e {
            MonitorEvent::HtlcAccepted { update_add, policy_violation } => {
                Some((update_add, policy_violation))
            }
            _ => None,
        })
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].0.htlc_id, id);
    assert_eq!(accepted[0].0.payment_hash, hash_of(&preimage));
    assert_eq!(accepted[0].0.amount_msat, 5_000_000);
    assert_eq!(accepted[0].1, None);
    assert_eq!(events(&b_mid).len(), 1, "accepted as soon as it is irrevocably committed");

    // The sender's monitor reports its path claimed, with the preimage and
    // the source it stored.
    assert_eq!(
        events(&a),
        vec![MonitorEvent::PaymentPathClaimed {
            htlc_id: id,
            amount_msat: 5_000_000,
            preimage,
            source: test_source(),
            on_chain: false,
        }]
    );
    assert_eq!(a.pending_outbound().count(), 0);
    for (who, m) in [(Who::A, &a), (Who::B, &b)] {
        assert_eq!(m.preimage(&hash_of(&preimage)), Some(preimage));
        assert!(m.holder_commitment().is_some());
        assert_eq!(m.counterparty_commitments().len(), 1, "older counterparty commitments are revoked");
        assert!(!m.is_closed());
        let last = &pair.node_ref(who).durable.last().expect("updates").snapshot;
        assert_eq!(m.channel_snapshot(), last, "{who:?}: the monitor holds what the channel resumes from");
    }
}

#[test]
fn failures_of_sent_and_forwarded_htlcs_carry_their_reason_and_source() {
    let mut pair = Pair::open(OpenOptions::default());
    let (sent, _) = pair.pay(Who::A, 3_000_000);
    let (fwd, _) = pair.add_with_source(Who::A, 4_000_000, forwarded(7)).expect("add");
    pair.commit(Who::A);
    pair.settle();
    pair.fail(Who::B, sent);
    pair.node(Who::B).channel.fail_malformed_htlc(fwd, 0x8000 | 0x4000 | 5, [6; 32]).expect("fail malformed");
    pair.pump(Who::B);
    pair.commit(Who::B);
    pair.settle();
    let a = monitor_of(&pair.a.durable);
    assert_eq!(
        events(&a),
        vec![
            MonitorEvent::PaymentPathFailed {
                htlc_id: sent,
                amount_msat: 3_000_000,
                failure: HtlcFailure::Onion(vec![0xfa; 32]),
                source: test_source(),
            },
            MonitorEvent::ForwardedHtlcFailed {
                htlc_id: fwd,
                amount_msat: 4_000_000,
                failure: HtlcFailure::Malformed { failure_code: 0xc005, sha256_of_onion: [6; 32] },
                source: forwarded(7),
            },
        ]
    );
    assert_eq!(a.pending_outbound().count(), 0);
}

#[test]
fn a_forwarded_htlc_claimed_downstream_reports_the_incoming_htlc() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.add_with_source(Who::A, 6_000_000, forwarded(3)).expect("add");
    pair.commit(Who::A);
    pair.settle();
    pair.claim(Who::B, id, preimage);
    assert_eq!(
        events(&monitor_of(&pair.a.durable)),
        vec![MonitorEvent::ForwardedHtlcClaimed {
            htlc_id: id,
            amount_msat: 6_000_000,
            preimage,
            source: forwarded(3),
            on_chain: false,
        }]
    );
}

#[test]
fn an_inbound_claim_is_deferred_until_restart() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 2_000_000);
    let claim = InboundClaim {
        payment_hash: hash_of(&preimage),
        parts: vec![
            ClaimPart { channel_id: pair.a.channel.channel_id(), htlc_id: id, amount_msat: 2_000_000 },
            ClaimPart { channel_id: ChannelId([5; 32]), htlc_id: 0, amount_msat: 1_000_000 },
        ],
    };
    pair.node(Who::B).channel.fulfill_htlc(id, preimage, Some(claim.clone())).expect("fulfill");
    pair.pump(Who::B);
    pair.commit(Who::B);
    pair.settle();
    let b = monitor_of(&pair.b.durable);
    assert!(
        !events(&b).iter().any(|e| matches!(e, MonitorEvent::InboundClaimPersisted { .. })),
        "a deferred event is not in the live log"
    );
    let deferred: Vec<_> = b.deferred_events().iter().map(|e| e.event.clone()).collect();
    assert_eq!(deferred, vec![MonitorEvent::InboundClaimPersisted { htlc_id: id, preimage, claim }]);
    assert_eq!(b.preimage(&hash_of(&preimage)), Some(preimage));
    // Event ids are shared by both logs and never reused.
    let ids: Vec<MonitorEventId> = b.events().iter().chain(b.deferred_events()).map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
}

/// `to` claims HTLC `id` as the single part of a received payment.
fn claim_received(pair: &mut Pair, to: Who, id: u64, preimage: PaymentPreimage, amount_msat: u64) {
    let channel_id = pair.node_ref(to).channel.channel_id();
    let claim = InboundClaim {
        payment_hash: hash_of(&preimage),
        parts: vec![ClaimPart { channel_id, htlc_id: id, amount_msat }],
    };
    pair.node(to).channel.fulfill_htlc(id, preimage, Some(claim)).expect("fulfill");
    pair.pump(to);
    pair.commit(to);
    pair.settle();
}

#[test]
fn replaying_an_update_changes_nothing() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    claim_received(&mut pair, Who::B, id, preimage, 5_000_000);
    assert_eq!(monitor_of(&pair.b.durable).deferred_events().len(), 1);
    let (id2, _) = pair.pay(Who::B, 1_000_000);
    pair.fail(Who::A, id2);
    for who in [Who::A, Who::B] {
        let updates = pair.node_ref(who).durable.clone();
        let once = monitor_of(&updates);
        let mut twice = ChannelMonitor::from_first_update(&updates[0]).expect("funded");
        for (i, u) in updates.iter().enumerate() {
            let before = twice.clone();
            assert_eq!(twice.apply(u), Ok(false), "update {} again", u.update_id);
            assert_eq!(twice, before);
            if i + 1 < updates.len() {
                assert_eq!(twice.apply(&updates[i + 1]), Ok(true));
            }
            // Every earlier update is a no-op too.
            for old in &updates[..=i] {
                assert_eq!(twice.apply(old), Ok(false));
            }
        }
        assert_eq!(twice, once, "{who:?}: replays leave no trace");
        // Steps repeated in a later update (a re-sent HtlcIrrevocablyCommitted
        // or claim) make no second event either.
        let mut monitor = once.clone();
        let mut repeat = updates.last().expect("updates").clone();
        repeat.update_id = monitor.latest_update_id() + 1;
        repeat.steps = updates
            .iter()
            .flat_map(|u| u.steps.clone())
            .filter(|s| {
                matches!(
                    s,
                    UpdateStep::HtlcIrrevocablyCommitted { .. }
                        | UpdateStep::PaymentPreimage { .. }
                        | UpdateStep::OutboundHtlcFailed { .. }
                )
            })
            .collect();
        let count = monitor.events().len() + monitor.deferred_events().len();
        assert_eq!(monitor.apply(&repeat), Ok(true));
        assert_eq!(
            monitor.events().len() + monitor.deferred_events().len(),
            count,
            "{who:?}: no duplicate event"
        );
        // Nor once the events are acknowledged.
        monitor.ack_up_to(MonitorEventId(u64::MAX));
        repeat.update_id += 1;
        assert_eq!(monitor.apply(&repeat), Ok(true));
        assert!(
            monitor.events().is_empty() && monitor.deferred_events().is_empty(),
            "{who:?}: acknowledged for good"
        );
    }
}

#[test]
fn updates_that_do_not_fit_are_refused_and_change_nothing() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    pair.claim(Who::B, id, preimage);
    let updates = pair.a.durable.clone();
    let mut monitor = monitor_of(&updates[..updates.len() - 2]);
    let before = monitor.clone();
    let next = updates[updates.len() - 2].clone();

    let mut other = next.clone();
    other.channel_id = ChannelId([0xee; 32]);
    assert_eq!(
        monitor.apply(&other),
        Err(UpdateError::WrongChannel { ours: monitor.channel_id(), update: other.channel_id })
    );
    let skipping = updates.last().expect("updates").clone();
    assert_eq!(
        monitor.apply(&skipping),
        Err(UpdateError::Gap { expected: next.update_id, got: skipping.update_id })
    );
    // A secret that does not derive the earlier ones.
    let with_secret = updates
        .iter()
        .skip(updates.len() - 2)
        .chain(updates.iter())
        .find(|u| {
            u.update_id >= next.update_id
                && u.steps.iter().any(|s| matches!(s, UpdateStep::CounterpartySecret { .. }))
        })
        .cloned();
    let mut bad = match with_secret {
        Some(u) if u.update_id == next.update_id => u,
        _ => {
            // Forge one on the next update.
            let mut u = next.clone();
            u.steps.push(UpdateStep::CounterpartySecret { number: 1, secret: [0x42; 32] });
            u
        }
    };
    for step in &mut bad.steps {
        if let UpdateStep::CounterpartySecret { secret, .. } = step {
            secret[0] ^= 1;
        }
    }
    assert!(
        matches!(monitor.apply(&bad), Err(UpdateError::InvalidSecret { .. })),
        "a wrong secret is refused"
    );
    assert_eq!(monitor, before, "refused updates leave the monitor unchanged");
    // The genuine next update still applies.
    assert_eq!(monitor.apply(&next), Ok(true));

    // A monitor starts only from update 1, which must fund the channel.
    assert_eq!(ChannelMonitor::from_first_update(&updates[1]).map(|_| ()), Err(UpdateError::NotFunded));
    let mut renumbered = updates[0].clone();
    renumbered.update_id = 2;
    assert_eq!(
        ChannelMonitor::from_first_update(&renumbered).map(|_| ()),
        Err(UpdateError::Gap { expected: 1, got: 2 })
    );
}

#[test]
fn acknowledged_events_are_gone_and_their_ids_never_come_back() {
    let mut pair = Pair::open(OpenOptions::default());
    let mut last_ids = Vec::new();
    let mut monitor = monitor_of(&pair.b.durable);
    let mut applied = pair.b.durable.len();
    for round in 0..3 {
        let (id, preimage) = pair.pay(Who::A, 1_000_000 + round);
        pair.claim(Who::B, id, preimage);
        for u in &pair.b.durable[applied..] {
            monitor.apply(u).expect("applies");
        }
        applied = pair.b.durable.len();
        let ids: Vec<MonitorEventId> = monitor.events().iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 1, "one HtlcAccepted per payment");
        assert!(last_ids.iter().all(|old| old < &ids[0]), "ids increase and are never reused");
        // Unknown ids are harmless.
        assert_eq!(monitor.ack(&[MonitorEventId(999)]), 0);
        assert_eq!(monitor.ack_up_to(MonitorEventId(0)), 0);
        assert_eq!(monitor.events().len(), 1);
        assert_eq!(monitor.ack(&ids), 1);
        assert_eq!(monitor.ack(&ids), 0, "acknowledging twice is harmless");
        assert!(monitor.events().is_empty());
        last_ids.extend(ids);
    }
}

#[test]
fn resolution_records_persist_with_the_monitor() {
    let pair = Pair::open(OpenOptions::default());
    let mut monitor = monitor_of(&pair.a.durable);
    let claim = ResolutionRecord::ClaimSeen(PaymentHash([3; 32]));
    let sent = ResolutionRecord::PaymentSeen([4; 32]);
    assert!(!monitor.has_record(&claim));
    assert!(monitor.record(claim));
    assert!(!monitor.record(claim), "recording twice is harmless");
    assert!(monitor.record(sent));
    let back = ChannelMonitor::deserialize(&monitor.serialize()).expect("decodes");
    assert!(back.has_record(&claim) && back.has_record(&sent));
    assert!(!back.has_record(&ResolutionRecord::PaymentSeen([5; 32])));
}

#[test]
fn closes_are_events_and_the_closing_transaction_is_kept() {
    let mut pair = Pair::open(OpenOptions::default());
    let tx = pair.close(Who::A);
    for who in [Who::A, Who::B] {
        let m = monitor_of(&pair.node_ref(who).durable);
        assert!(m.is_closed());
        assert_eq!(m.closing_transaction(), Some(&tx));
        assert!(!m.should_broadcast_holder_commitment());
        assert_eq!(
            events(&m),
            vec![MonitorEvent::ChannelClosed { closed_by: ClosedBy::Channel(CloseReason::Cooperative) }]
        );
    }

    let mut pair = Pair::open(OpenOptions::default());
    pair.node(Who::B).channel.force_close();
    pair.pump(Who::B);
    let m = monitor_of(&pair.b.durable);
    assert!(m.is_closed() && m.should_broadcast_holder_commitment());
    assert_eq!(
        events(&m),
        vec![MonitorEvent::ChannelClosed { closed_by: ClosedBy::Channel(CloseReason::ForceClosed) }]
    );
}

#[test]
fn the_monitor_round_trips_after_every_update() {
    let mut pair = Pair::open(OpenOptions { anchors: true, ..OpenOptions::default() });
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    let (back, back_preimage) = pair.pay(Who::B, 700_000);
    pair.claim(Who::B, id, preimage);
    pair.claim(Who::A, back, back_preimage);
    pair.close(Who::B);
    for who in [Who::A, Who::B] {
        let updates = pair.node_ref(who).durable.clone();
        let mut monitor = ChannelMonitor::from_first_update(&updates[0]).expect("funded");
        for u in &updates[1..] {
            monitor.apply(u).expect("applies");
            monitor.record(ResolutionRecord::PaymentSeen([u.update_id as u8; 32]));
            let back = ChannelMonitor::deserialize(&monitor.serialize()).expect("decodes");
            // The release gate is not stored: whatever was loaded is durable.
            let mut expected = monitor.clone();
            expected.stamp_events(0);
            assert_eq!(back, expected, "{who:?} after update {}", u.update_id);
        }
    }
}

#[test]
fn every_event_kind_round_trips() {
    let preimage = PaymentPreimage([8; 32]);
    let pair = Pair::open(OpenOptions::default());
    let update_add = lightning::ln::msgs::UpdateAddHTLC {
        channel_id: ChannelId([1; 32]),
        htlc_id: 4,
        amount_msat: 1000,
        payment_hash: hash_of(&preimage),
        cltv_expiry: 500,
        skimmed_fee_msat: Some(3),
        onion_routing_packet: common::dummy_onion(),
        blinding_point: None,
        hold_htlc: None,
    };
    let events = vec![
        MonitorEvent::HtlcAccepted { update_add: Box::new(update_add.clone()), policy_violation: None },
        MonitorEvent::HtlcAccepted {
            update_add: Box::new(update_add),
            policy_violation: Some("dust exposure".into()),
        },
        MonitorEvent::ForwardedHtlcClaimed {
            htlc_id: 1,
            amount_msat: 2,
            preimage,
            source: forwarded(1),
            on_chain: true,
        },
        MonitorEvent::ForwardedHtlcFailed {
            htlc_id: 1,
            amount_msat: 2,
            failure: HtlcFailure::OnChainTimeout,
            source: forwarded(2),
        },
        MonitorEvent::PaymentPathClaimed {
            htlc_id: 3,
            amount_msat: 4,
            preimage,
            source: test_source(),
            on_chain: false,
        },
        MonitorEvent::PaymentPathFailed {
            htlc_id: 3,
            amount_msat: 4,
            failure: HtlcFailure::Malformed { failure_code: 0x8005, sha256_of_onion: [1; 32] },
            source: test_source(),
        },
        MonitorEvent::PaymentPathFailed {
            htlc_id: 3,
            amount_msat: 4,
            failure: HtlcFailure::Onion(vec![1, 2, 3]),
            source: test_source(),
        },
        MonitorEvent::InboundClaimPersisted {
            htlc_id: 9,
            preimage,
            claim: InboundClaim {
                payment_hash: hash_of(&preimage),
                parts: vec![ClaimPart {
                    channel_id: pair.a.channel.channel_id(),
                    htlc_id: 9,
                    amount_msat: 10,
                }],
            },
        },
        MonitorEvent::ChannelClosed {
            closed_by: ClosedBy::Channel(CloseReason::LocalError("bad sig".into())),
        },
        MonitorEvent::ChannelClosed {
            closed_by: ClosedBy::Channel(CloseReason::CounterpartyError("x".into())),
        },
        MonitorEvent::ChannelClosed { closed_by: ClosedBy::Channel(CloseReason::StaleLocalState) },
        MonitorEvent::ChannelClosed {
            closed_by: ClosedBy::FundingSpent { txid: bitcoin::Txid::all_zeros() },
        },
    ];
    for (i, event) in events.into_iter().enumerate() {
        let stored = StoredEvent { id: MonitorEventId(i as u64 + 1), event, gate: Some(0) };
        let bytes = stored.to_bytes();
        assert_eq!(<StoredEvent as vigil_core::ser::Decode>::from_bytes(&bytes), Ok(stored.clone()));
        for cut in 0..bytes.len() {
            assert!(<StoredEvent as vigil_core::ser::Decode>::from_bytes(&bytes[..cut]).is_err());
        }
    }
    for record in [ResolutionRecord::ClaimSeen(PaymentHash([1; 32])), ResolutionRecord::PaymentSeen([2; 32])]
    {
        assert_eq!(<ResolutionRecord as vigil_core::ser::Decode>::from_bytes(&record.to_bytes()), Ok(record));
    }
}

/// `bytes` (a versioned monitor) with one more top-level record.
fn with_extra_record(bytes: &[u8], t: u64, value: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(&bytes[1..]);
    let len = read_bigsize(&mut r).expect("length") as usize;
    let mut stream = r.take(len).expect("stream").to_vec();
    write_bigsize(&mut stream, t);
    write_bigsize(&mut stream, value.len() as u64);
    stream.extend_from_slice(value);
    let mut out = vec![bytes[0]];
    write_bigsize(&mut out, stream.len() as u64);
    out.extend_from_slice(&stream);
    out
}

#[test]
fn bad_monitor_bytes_are_typed_errors() {
    let mut pair = Pair::open(OpenOptions::default());
    pair.pay(Who::A, 1_000_000);
    let monitor = monitor_of(&pair.a.durable);
    let bytes = monitor.serialize();
    // Newer fields: odd ones are skipped, even ones refused.
    let odd = with_extra_record(&bytes, 1001, b"later");
    assert!(ChannelMonitor::deserialize(&odd).is_ok());
    let even = with_extra_record(&bytes, 1000, b"later");
    assert_eq!(ChannelMonitor::deserialize(&even).map(|_| ()), Err(DecodeError::UnknownEvenType(1000)));
    let mut newer = bytes.clone();
    newer[0] += 1;
    assert_eq!(ChannelMonitor::deserialize(&newer).map(|_| ()), Err(DecodeError::UnknownVersion(newer[0])));
    for cut in (0..bytes.len()).step_by(7) {
        assert!(ChannelMonitor::deserialize(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(ChannelMonitor::deserialize(&trailing).map(|_| ()), Err(DecodeError::TrailingBytes));
}

/// The golden monitor: a channel with a claimed payment, a pending one each
/// way, a deferred claim, and records.
fn golden_monitor() -> ChannelMonitor {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    pair.claim(Who::B, id, preimage);
    pair.pay(Who::A, 2_000_000);
    let (id, preimage) = pair.pay(Who::A, 3_000_000);
    let claim = InboundClaim {
        payment_hash: hash_of(&preimage),
        parts: vec![ClaimPart {
            channel_id: pair.b.channel.channel_id(),
            htlc_id: id,
            amount_msat: 3_000_000,
        }],
    };
    pair.node(Who::B).channel.fulfill_htlc(id, preimage, Some(claim)).expect("fulfill");
    pair.pump(Who::B);
    pair.commit(Who::B);
    pair.settle();
    pair.pay(Who::B, 1_000_000);
    let mut monitor = monitor_of(&pair.b.durable);
    monitor.record(ResolutionRecord::ClaimSeen(hash_of(&preimage)));
    monitor.record(ResolutionRecord::PaymentSeen([7; 32]));
    monitor
}

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/monitor-v1.hex");

/// The stored format of a monitor changes only deliberately: the golden
/// file decodes, and encodes back to the same bytes. To write a new golden
/// file after a deliberate format change (with a new version number and a
/// migration): `VIGIL_BLESS=1 cargo test -p vigil-core --test monitor golden`.
#[test]
fn the_golden_monitor_decodes_and_encodes_to_the_same_bytes() {
    if std::env::var_os("VIGIL_BLESS").is_some() {
        let hex: String = golden_monitor().serialize().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(GOLDEN, hex + "\n").expect("write the golden file");
    }
    let hex = std::fs::read_to_string(GOLDEN).expect("the golden file exists");
    let hex = hex.trim();
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
    let monitor = ChannelMonitor::deserialize(&bytes).expect("the golden monitor decodes");
    assert_eq!(monitor.serialize(), bytes, "the golden monitor encodes to the same bytes");
    // What it holds, read through the public API.
    assert_eq!(bytes[0], vigil_core::monitor::MONITOR_VERSION);
    assert!(!monitor.is_closed());
    assert_eq!(monitor.counterparty_commitments().len(), 1);
    assert!(monitor.holder_commitment().is_some());
    let accepted =
        monitor.events().iter().filter(|e| matches!(e.event, MonitorEvent::HtlcAccepted { .. })).count();
    assert_eq!(accepted, 3);
    assert_eq!(monitor.deferred_events().len(), 1);
    assert_eq!(monitor.pending_outbound().count(), 1);
    assert!(monitor.has_record(&ResolutionRecord::PaymentSeen([7; 32])));
    // And it is what today's code produces from the same channel history:
    // a change in what a monitor holds shows up here too.
    assert_eq!(golden_monitor().serialize(), bytes, "the golden history builds the golden monitor");
}

/// `bytes` with a few random flips, cuts, insertions or deletions.
fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => out.truncate(at),
            3 => out.insert(at, rng.next() as u8),
            _ => {
                out.remove(at);
            }
        }
    }
    out
}

/// What the `monitor_decode` fuzz target does, on a deterministic sample of
/// mutations of real bytes, so every CI run checks the decoders never
/// panic and whatever decodes re-encodes to the same value.
#[test]
fn mutated_monitor_bytes_never_panic() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 5_000_000);
    claim_received(&mut pair, Who::B, id, preimage, 5_000_000);
    let monitor = monitor_of(&pair.b.durable).serialize();
    let updates: Vec<Vec<u8>> = pair.b.durable.iter().map(Encode::to_bytes).collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut decoded, mut refused) = (0, 0);
    for i in 0..3_000 {
        if i % 3 == 0 {
            match ChannelMonitor::deserialize(&mutate(&mut rng, &monitor)) {
                Ok(m) => {
                    let again =
                        ChannelMonitor::deserialize(&m.serialize()).expect("re-encoded monitors decode");
                    assert_eq!(again.serialize(), m.serialize());
                    decoded += 1;
                }
                Err(_) => refused += 1,
            }
        } else {
            let update = &updates[rng.below(updates.len())];
            match <MonitorUpdate as vigil_core::ser::Decode>::from_bytes(&mutate(&mut rng, update)) {
                Ok(u) => {
                    assert_eq!(<MonitorUpdate as vigil_core::ser::Decode>::from_bytes(&u.to_bytes()), Ok(u));
                    decoded += 1;
                }
                Err(_) => refused += 1,
            }
        }
    }
    assert!(refused > 0 && decoded + refused == 3_000, "{decoded} decoded, {refused} refused");
}

/// Every monitor ever blessed as golden still decodes, and encodes to the
/// same bytes: a format change must keep old files readable.
#[test]
fn every_golden_monitor_still_round_trips() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("the golden directory") {
        let path = entry.expect("an entry").path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("monitor-v")) {
            continue;
        }
        let hex = std::fs::read_to_string(&path).expect("readable");
        let hex = hex.trim();
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
        let monitor = ChannelMonitor::deserialize(&bytes).unwrap_or_else(|e| panic!("{path:?} decodes: {e}"));
        assert_eq!(monitor.serialize(), bytes, "{path:?} encodes to the same bytes");
        seen += 1;
    }
    assert!(seen >= 2, "both golden monitors were checked");
}
