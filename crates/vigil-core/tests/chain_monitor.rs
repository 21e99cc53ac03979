//! The `ChainMonitor` over a disk with a live and a durable image:
//! synchronous and asynchronous completion, events released only once
//! durable, crashes between fetching, acknowledging and persisting the
//! acknowledgement, deferred restart events, compaction, torn and corrupt
//! stores, archiving, and a real SQLite store.

mod common;

use common::disk::Rig;
use common::{OpenOptions, Pair, Who};
use lightning::ln::types::ChannelId;
use lightning::types::payment::PaymentPreimage;
use vigil_chain::testkit::TestKey;
use vigil_chain::ChainSource;
use vigil_core::chain_monitor::store::{delta_key, snapshot_key, Delta, DELTA_VERSION};
use vigil_core::chain_monitor::{
    ApplyError, ChainMonitor, ChainMonitorConfig, CompletionError, LoadError, PersistKind, ARCHIVE_NAMESPACE,
    MONITORS_NAMESPACE,
};
use vigil_core::channel::{ClaimPart, InboundClaim, MonitorUpdate, UpdateStep};
use vigil_core::monitor::{MonitorEvent, MonitorEventId, ResolutionRecord, ANTI_REORG_DELAY};
use vigil_core::ser::DecodeError;

fn hash_of(preimage: &PaymentPreimage) -> lightning::types::payment::PaymentHash {
    use bitcoin::hashes::{sha256, Hash};
    lightning::types::payment::PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array())
}

/// A pair where A paid B `n` times (B claimed each one).
fn paid_pair(n: u64) -> Pair {
    let mut pair = Pair::open(OpenOptions::default());
    for i in 0..n {
        let (id, preimage) = pair.pay(Who::A, 1_000_000 + i);
        pair.claim(Who::B, id, preimage);
    }
    pair
}

fn accepted_ids(updates: &[MonitorUpdate]) -> Vec<u64> {
    updates
        .iter()
        .filter(|u| u.steps.iter().any(|s| matches!(s, UpdateStep::HtlcIrrevocablyCommitted { .. })))
        .map(|u| u.update_id)
        .collect()
}

#[test]
fn each_event_is_released_only_once_its_update_is_durable() {
    let pair = paid_pair(2);
    let updates = pair.b.durable.clone();
    let channel_id = updates[0].channel_id;
    let accepting = accepted_ids(&updates);
    assert_eq!(accepting.len(), 2);
    let mut rig = Rig::new(ChainMonitorConfig::default());
    rig.feed(&updates);
    assert_eq!(rig.in_flight.len(), updates.len(), "one write per update");
    let mut released = 0;
    for u in &updates {
        assert!(rig.events().is_empty(), "nothing beyond what is durable is released");
        rig.complete_next(channel_id).expect("in flight");
        assert_eq!(rig.cm.durable_update_id(&channel_id), Some(u.update_id));
        let events = rig.events();
        if accepting.contains(&u.update_id) {
            assert_eq!(events.len(), 1, "update {} made an event", u.update_id);
            assert!(matches!(events[0].event, MonitorEvent::HtlcAccepted { .. }));
            released += 1;
        } else {
            assert!(events.is_empty());
        }
    }
    assert_eq!(released, 2);
    assert_eq!(
        rig.durable_updates,
        updates.iter().map(|u| (channel_id, u.update_id)).collect::<Vec<_>>(),
        "each completion tells the channel its update is durable"
    );
}

#[test]
fn completions_in_any_order_across_channels_release_each_channel_separately() {
    let one = paid_pair(1);
    let two = {
        let mut pair = Pair::open(OpenOptions { funding_sat: 2_000_000, ..OpenOptions::default() });
        let (id, preimage) = pair.pay(Who::A, 3_000_000);
        pair.claim(Who::B, id, preimage);
        pair
    };
    let (c1, c2) = (one.b.durable[0].channel_id, two.b.durable[0].channel_id);
    assert_ne!(c1, c2);
    let mut rig = Rig::new(ChainMonitorConfig::default());
    // Interleaved updates of both channels, all in flight at once.
    for i in 0..one.b.durable.len().max(two.b.durable.len()) {
        for updates in [&one.b.durable, &two.b.durable] {
            if let Some(u) = updates.get(i) {
                rig.feed(std::slice::from_ref(u));
            }
        }
    }
    // Within a channel, completions must come in order: a later one is
    // refused and changes nothing.
    let second_of_c1 = rig.in_flight.iter().filter(|r| r.channel_id == c1).nth(1).expect("two in flight").seq;
    let first_of_c1 = rig.in_flight.iter().find(|r| r.channel_id == c1).expect("in flight").seq;
    assert_eq!(
        rig.cm.persist_completed(c1, second_of_c1),
        Err(CompletionError::OutOfOrder { channel_id: c1, expected: first_of_c1, got: second_of_c1 })
    );
    assert_eq!(
        rig.cm.persist_completed(c1, 9_999),
        Err(CompletionError::NotInFlight { channel_id: c1, seq: 9_999 })
    );
    let stranger = ChannelId([0x77; 32]);
    assert_eq!(
        rig.cm.persist_completed(stranger, first_of_c1),
        Err(CompletionError::UnknownChannel(stranger))
    );
    // Channel 2 completes entirely first: only its event is released.
    while rig.complete_next(c2).is_some() {}
    let events = rig.events();
    assert_eq!(events.iter().map(|e| e.channel_id).collect::<Vec<_>>(), vec![c2]);
    // Acknowledging events not durable yet does nothing.
    assert_eq!(rig.cm.ack(&c1, &[MonitorEventId(1), MonitorEventId(2)]), 0);
    while rig.complete_next(c1).is_some() {}
    let events = rig.events();
    assert_eq!(events.iter().map(|e| e.channel_id).collect::<Vec<_>>(), vec![c1]);
    assert!(rig.events().is_empty(), "an event is given out once per run");
}

/// Moves `who`'s pending updates through `rig` (persisted at once), and
/// tells the channel which are durable.
fn persist_through(pair: &mut Pair, who: Who, rig: &mut Rig) {
    let pending: Vec<MonitorUpdate> = pair.node(who).pending.drain(..).collect();
    rig.feed(&pending);
    rig.complete_all();
    for (_, id) in std::mem::take(&mut rig.durable_updates) {
        pair.node(who).channel.update_persisted(id);
    }
    pair.node(who).durable.extend(pending);
    pair.pump(who);
}

fn settle_through(pair: &mut Pair, rigs: &mut [Rig; 2]) {
    for _ in 0..10_000 {
        persist_through(pair, Who::A, &mut rigs[0]);
        persist_through(pair, Who::B, &mut rigs[1]);
        let delivered = pair.deliver(Who::A) | pair.deliver(Who::B);
        if !delivered && pair.a.pending.is_empty() && pair.b.pending.is_empty() {
            return;
        }
    }
    panic!("the pair did not settle");
}

#[test]
fn channels_run_on_the_chain_monitors_completions() {
    let mut pair = Pair::open(OpenOptions::default());
    let mut rigs = [Rig::new(ChainMonitorConfig::default()), Rig::new(ChainMonitorConfig::default())];
    for (rig, who) in rigs.iter_mut().zip([Who::A, Who::B]) {
        rig.feed(&pair.node_ref(who).durable.clone());
        rig.complete_all();
        rig.durable_updates.clear();
        pair.node(who).auto_persist = false;
    }
    let before = pair.balance(Who::A);
    let (id, preimage) = pair.add(Who::A, 4_000_000).expect("add");
    pair.commit(Who::A);
    settle_through(&mut pair, &mut rigs);
    let accepted = rigs[1].events();
    assert!(
        matches!(&accepted[..], [e] if matches!(&e.event, MonitorEvent::HtlcAccepted { update_add, .. } if update_add.htlc_id == id))
    );
    pair.node(Who::B).channel.fulfill_htlc(id, preimage, None).expect("fulfill");
    pair.pump(Who::B);
    pair.commit(Who::B);
    settle_through(&mut pair, &mut rigs);
    assert_eq!(pair.balance(Who::A), before - 4_000_000);
    let claimed = rigs[0].events();
    assert!(
        matches!(&claimed[..], [e] if matches!(&e.event, MonitorEvent::PaymentPathClaimed { preimage: p, .. } if *p == preimage))
    );
    // What each chain monitor holds is what the channel resumes from.
    for (rig, who) in rigs.iter().zip([Who::A, Who::B]) {
        let monitor = rig.cm.monitor(&pair.a.channel.channel_id()).expect("monitored");
        assert_eq!(monitor.channel_snapshot(), pair.node_ref(who).channel.snapshot());
    }
}

#[test]
fn a_crash_between_fetching_and_acknowledging_replays_the_events() {
    let pair = paid_pair(2);
    let mut rig = Rig::new(ChainMonitorConfig::default());
    rig.feed(&pair.b.durable.clone());
    rig.complete_all();
    let fetched = rig.events();
    assert_eq!(fetched.len(), 2);
    rig.crash();
    assert_eq!(rig.events(), fetched, "the same events, with the same ids");
}

#[test]
fn a_crash_before_an_acknowledgement_is_written_replays_once() {
    let pair = paid_pair(2);
    let channel_id = pair.b.durable[0].channel_id;
    let mut rig = Rig::new(ChainMonitorConfig::default());
    rig.feed(&pair.b.durable.clone());
    rig.complete_all();
    let fetched = rig.events();
    let ids: Vec<MonitorEventId> = fetched.iter().map(|e| e.id).collect();
    assert_eq!(rig.cm.ack(&channel_id, &ids[..1]), 1);
    assert_eq!(rig.cm.ack(&channel_id, &[MonitorEventId(12_345)]), 0, "unknown ids are harmless");
    // Acknowledged in memory, not yet written: a crash replays it.
    rig.crash();
    assert_eq!(rig.events(), fetched);
    // The manager acknowledges again (idempotent), and this time it is
    // written before the crash.
    assert_eq!(rig.cm.ack(&channel_id, &ids[..1]), 1);
    assert_eq!(rig.cm.flush(), 1);
    rig.take_requests();
    assert_eq!(rig.in_flight[0].kind, PersistKind::Delta);
    rig.complete_all();
    rig.crash();
    assert_eq!(rig.events(), fetched[1..].to_vec(), "an acknowledged event never comes back");
    // An acknowledgement also rides on the channel's next update for free.
    let mut pair = pair;
    let (id, preimage) = pair.pay(Who::A, 2_000_000);
    pair.claim(Who::B, id, preimage);
    let known = rig.cm.monitor(&channel_id).expect("monitored").latest_update_id() as usize;
    assert_eq!(rig.cm.ack(&channel_id, &ids[1..]), 1);
    rig.feed(&pair.b.durable[known..]);
    assert_eq!(rig.cm.flush(), 0, "nothing left to flush");
    rig.complete_all();
    rig.crash();
    let replayed = rig.events();
    assert_eq!(replayed.len(), 1, "only the new payment's event");
    assert!(replayed[0].id > ids[1]);
}

#[test]
fn deferred_claims_surface_only_at_start_up() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 2_000_000);
    let channel_id = pair.b.channel.channel_id();
    let claim = InboundClaim {
        payment_hash: hash_of(&preimage),
        parts: vec![ClaimPart { channel_id, htlc_id: id, amount_msat: 2_000_000 }],
    };
    pair.node(Who::B).channel.fulfill_htlc(id, preimage, Some(claim.clone())).expect("fulfill");
    pair.pump(Who::B);
    pair.commit(Who::B);
    pair.settle();
    let mut rig = Rig::new(ChainMonitorConfig::default());
    rig.feed(&pair.b.durable.clone());
    rig.complete_all();
    assert!(rig.events().iter().all(|e| !matches!(e.event, MonitorEvent::InboundClaimPersisted { .. })));
    assert!(rig.cm.take_startup_replay().is_empty(), "not while running");
    rig.crash();
    let replay = rig.cm.take_startup_replay();
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].event, MonitorEvent::InboundClaimPersisted { htlc_id: id, preimage, claim });
    assert!(rig.cm.take_startup_replay().is_empty(), "returned once");
    // The user saw PaymentClaimed: the manager records it and acknowledges.
    assert!(rig.cm.record(&channel_id, ResolutionRecord::ClaimSeen(hash_of(&preimage))));
    assert_eq!(rig.cm.ack(&channel_id, &[replay[0].id]), 1);
    rig.cm.flush();
    rig.take_requests();
    rig.complete_all();
    rig.crash();
    assert!(rig.cm.take_startup_replay().is_empty());
    let monitor = rig.cm.monitor(&channel_id).expect("monitored");
    assert!(monitor.has_record(&ResolutionRecord::ClaimSeen(hash_of(&preimage))));
}

#[test]
fn compaction_keeps_a_snapshot_and_few_deltas_and_loads_the_same_monitor() {
    let pair = paid_pair(4);
    let channel_id = pair.b.durable[0].channel_id;
    let config = ChainMonitorConfig { compaction_interval: 3, compact_by_size: false };
    let mut rig = Rig::new(config);
    rig.feed(&pair.b.durable.clone());
    let snapshots = rig.in_flight.iter().filter(|r| r.kind == PersistKind::Snapshot).count();
    assert!(snapshots >= pair.b.durable.len() / 3, "a snapshot every few updates ({snapshots})");
    rig.complete_all();
    let keys = rig.keys(MONITORS_NAMESPACE);
    assert!(keys.contains(&snapshot_key(&channel_id)));
    assert!(keys.len() <= 3, "a snapshot and fewer than K deltas: {keys:?}");
    let live = rig.cm.monitor(&channel_id).expect("monitored").serialize();
    rig.crash();
    assert_eq!(rig.cm.monitor(&channel_id).expect("loaded").serialize(), live);
}

#[test]
fn size_based_compaction_bounds_the_bytes_written_and_loads_the_same_monitor() {
    let pair = paid_pair(24);
    let channel_id = pair.b.durable[0].channel_id;
    let updates = pair.b.durable.clone();
    let delta_only = {
        let mut r = Rig::new(ChainMonitorConfig { compaction_interval: u64::MAX, compact_by_size: false });
        r.feed(&updates);
        r.complete_all();
        r.bytes_written
    };
    let mut rig = Rig::new(ChainMonitorConfig { compaction_interval: u64::MAX, compact_by_size: true });
    rig.feed(&updates);
    let snapshots = rig.in_flight.iter().filter(|r| r.kind == PersistKind::Snapshot).count();
    rig.complete_all();
    assert!(snapshots > 1, "the snapshot is rewritten as the deltas grow ({snapshots})");
    // Each rewrite is paid for by at least as many delta bytes before it,
    // so the total stays within twice the deltas alone (plus the last
    // snapshot).
    let snapshot_len = rig.durable[&(MONITORS_NAMESPACE.to_string(), snapshot_key(&channel_id))].len();
    assert!(
        rig.bytes_written <= 2 * delta_only + snapshot_len,
        "{} bytes written, {delta_only} by deltas alone, snapshot {snapshot_len}",
        rig.bytes_written
    );
    let stored_deltas: usize = rig
        .durable
        .iter()
        .filter(|((ns, k), _)| ns == MONITORS_NAMESPACE && *k != snapshot_key(&channel_id))
        .map(|(_, v)| v.len())
        .sum();
    assert!(stored_deltas <= snapshot_len + 4096, "the deltas never outweigh the snapshot by more than one");
    let live = rig.cm.monitor(&channel_id).expect("monitored").serialize();
    rig.crash();
    assert_eq!(rig.cm.monitor(&channel_id).expect("loaded").serialize(), live);
}

#[test]
fn a_torn_last_delta_is_ignored_and_repaired() {
    let pair = paid_pair(1);
    let channel_id = pair.b.durable[0].channel_id;
    let updates = pair.b.durable.clone();
    let mut rig = Rig::new(ChainMonitorConfig { compaction_interval: 1_000, compact_by_size: false });
    rig.feed(&updates);
    rig.complete_all();
    let before_last = {
        let mut r = Rig::new(ChainMonitorConfig { compaction_interval: 1_000, compact_by_size: false });
        r.feed(&updates[..updates.len() - 1]);
        r.complete_all();
        r.cm.monitor(&channel_id).expect("monitored").serialize()
    };
    let last = *rig
        .keys(MONITORS_NAMESPACE)
        .iter()
        .filter_map(|k| k.rsplit_once("delta-").map(|(_, n)| n.parse::<u64>().expect("number")))
        .collect::<Vec<_>>()
        .last()
        .expect("deltas");
    let key = (MONITORS_NAMESPACE.to_owned(), delta_key(&channel_id, last));
    let value = rig.durable.get_mut(&key).expect("stored");
    value.truncate(value.len() / 2);
    let torn = rig.crash();
    assert_eq!(torn.len(), 1);
    assert_eq!((torn[0].channel_id, torn[0].key.as_str()), (channel_id, key.1.as_str()));
    assert_eq!(torn[0].error, DecodeError::ShortRead);
    let monitor = rig.cm.monitor(&channel_id).expect("loaded");
    assert_eq!(monitor.serialize(), before_last, "the torn update is as if never written");
    assert_eq!(rig.cm.durable_update_id(&channel_id), Some(updates[updates.len() - 2].update_id));
    // A snapshot without the torn delta is written at once.
    assert_eq!(rig.in_flight.len(), 1);
    assert_eq!(rig.in_flight[0].kind, PersistKind::Snapshot);
    rig.complete_all();
    assert_eq!(rig.keys(MONITORS_NAMESPACE), vec![snapshot_key(&channel_id)]);
    // The lost update can be applied again.
    rig.feed(&updates[updates.len() - 1..]);
    rig.complete_all();
    assert!(rig.crash().is_empty());
}

/// A durable image with one channel and a few deltas, for corruption tests.
fn stored_channel() -> (Rig, ChannelId, Vec<u64>) {
    let pair = paid_pair(1);
    let channel_id = pair.b.durable[0].channel_id;
    let mut rig = Rig::new(ChainMonitorConfig { compaction_interval: 1_000, compact_by_size: false });
    rig.feed(&pair.b.durable.clone());
    rig.complete_all();
    let deltas: Vec<u64> = rig
        .keys(MONITORS_NAMESPACE)
        .iter()
        .filter_map(|k| k.rsplit_once("delta-").map(|(_, n)| n.parse().expect("number")))
        .collect();
    assert!(deltas.len() >= 3);
    (rig, channel_id, deltas)
}

fn load(rig: &Rig) -> Result<(), LoadError> {
    ChainMonitor::load(ChainMonitorConfig::default(), rig.monitor_entries()).map(|_| ())
}

#[test]
fn corrupt_or_too_new_stores_are_typed_errors_naming_the_channel() {
    let key = |k: String| (MONITORS_NAMESPACE.to_owned(), k);
    // A corrupt delta that is not the last.
    let (mut rig, channel_id, deltas) = stored_channel();
    let middle = delta_key(&channel_id, deltas[1]);
    rig.durable.get_mut(&key(middle.clone())).expect("stored").truncate(5);
    let err = load(&rig).expect_err("refused");
    assert!(
        matches!(&err, LoadError::Corrupt { channel_id: c, key, .. } if *c == channel_id && *key == middle),
        "{err:?}"
    );
    assert!(err.to_string().contains(&channel_id.to_string()), "{err}");

    // A corrupt snapshot.
    let (mut rig, channel_id, _) = stored_channel();
    rig.durable.get_mut(&key(snapshot_key(&channel_id))).expect("stored")[10] ^= 0xff;
    assert!(
        matches!(load(&rig), Err(LoadError::Corrupt { channel_id: c, .. } | LoadError::Inconsistent { channel_id: c, .. }) if c == channel_id)
    );

    // A snapshot written by a newer version.
    let (mut rig, channel_id, _) = stored_channel();
    rig.durable.get_mut(&key(snapshot_key(&channel_id))).expect("stored")[0] += 1;
    assert!(
        matches!(load(&rig), Err(LoadError::TooNew { channel_id: c, error: DecodeError::UnknownVersion(_), .. }) if c == channel_id)
    );

    // A newer last delta is not mistaken for a torn one.
    let (mut rig, channel_id, deltas) = stored_channel();
    let last = delta_key(&channel_id, *deltas.last().expect("deltas"));
    rig.durable.get_mut(&key(last.clone())).expect("stored")[0] = DELTA_VERSION + 1;
    assert!(matches!(load(&rig), Err(LoadError::TooNew { key: k, .. }) if k == last));

    // A missing delta.
    let (mut rig, channel_id, deltas) = stored_channel();
    rig.durable.remove(&key(delta_key(&channel_id, deltas[1])));
    assert!(matches!(load(&rig), Err(LoadError::Inconsistent { channel_id: c, .. }) if c == channel_id));

    // Deltas without their snapshot.
    let (mut rig, channel_id, _) = stored_channel();
    rig.durable.remove(&key(snapshot_key(&channel_id)));
    assert_eq!(load(&rig), Err(LoadError::MissingSnapshot { channel_id }));

    // A snapshot filed under another channel.
    let (mut rig, channel_id, _) = stored_channel();
    let other = ChannelId([0x42; 32]);
    let bytes = rig.durable.remove(&key(snapshot_key(&channel_id))).expect("stored");
    rig.durable.retain(|(_, k), _| !k.contains("delta"));
    rig.durable.insert(key(snapshot_key(&other)), bytes);
    assert!(matches!(load(&rig), Err(LoadError::Inconsistent { channel_id: c, .. }) if c == other));

    // A delta whose update does not fit the monitor.
    let (mut rig, channel_id, deltas) = stored_channel();
    let bytes = rig.durable[&key(delta_key(&channel_id, deltas[0]))].clone();
    let mut delta = Delta::deserialize(&bytes).expect("decodes");
    if let Some(u) = delta.update.as_mut() {
        u.update_id += 100;
    }
    rig.durable.insert(key(delta_key(&channel_id, deltas[0])), delta.serialize());
    assert!(matches!(load(&rig), Err(LoadError::Inconsistent { channel_id: c, .. }) if c == channel_id));

    // A key this layout never writes.
    let (mut rig, _, _) = stored_channel();
    rig.durable.insert(key("stray".to_owned()), vec![1]);
    assert_eq!(load(&rig), Err(LoadError::UnknownKey { key: "stray".to_owned() }));
}

#[test]
fn updates_that_do_not_fit_are_refused_by_the_chain_monitor() {
    let pair = paid_pair(1);
    let updates = pair.b.durable.clone();
    let mut rig = Rig::new(ChainMonitorConfig::default());
    assert_eq!(rig.cm.update_channel(&updates[2]), Err(ApplyError::UnknownChannel(updates[2].channel_id)));
    rig.feed(&updates[..2]);
    assert!(matches!(rig.cm.update_channel(&updates[3]), Err(ApplyError::Refused(_))));
    assert_eq!(rig.cm.update_channel(&updates[1]), Ok(false), "a replayed update is a no-op");
    rig.take_requests();
    assert_eq!(rig.in_flight.len(), 2, "refused and replayed updates write nothing");
}

#[test]
fn a_closed_and_settled_channel_is_archived() {
    let mut pair = paid_pair(1);
    let channel_id = pair.a.channel.channel_id();
    let closing = pair.close(Who::A);
    let mut rig = Rig::new(ChainMonitorConfig::default());
    rig.feed(&pair.a.durable.clone());
    rig.complete_all();
    let closed_at = pair.chain.height();
    assert!(pair
        .chain
        .block(&pair.chain.block_hash(closed_at).expect("chain").expect("hash"))
        .expect("chain")
        .expect("block")
        .txdata
        .contains(&closing));
    pair.chain.mine(ANTI_REORG_DELAY, &TestKey::new(99).address()).expect("mine");
    let block = |h: u32| {
        pair.chain
            .block(&pair.chain.block_hash(h).expect("chain").expect("hash"))
            .expect("chain")
            .expect("block")
            .txdata
    };
    for h in closed_at..closed_at + ANTI_REORG_DELAY {
        rig.cm.block_connected(h, &block(h));
    }
    rig.take_requests();
    rig.complete_all();
    // Final, but events are not acknowledged yet.
    assert!(rig.cm.monitor(&channel_id).is_some());
    let ids: Vec<MonitorEventId> = rig.events().iter().map(|e| e.id).collect();
    assert!(!ids.is_empty());
    rig.cm.ack(&channel_id, &ids);
    rig.take_requests();
    assert_eq!(rig.in_flight.iter().map(|r| r.kind).collect::<Vec<_>>(), vec![PersistKind::Archive]);
    rig.complete_all();
    assert!(rig.cm.monitor(&channel_id).is_none(), "archived monitors leave memory");
    assert!(rig.keys(MONITORS_NAMESPACE).is_empty(), "and the start-up namespace");
    assert_eq!(rig.keys(ARCHIVE_NAMESPACE).len(), 1);
    rig.crash();
    assert_eq!(rig.cm.monitors().count(), 0, "start-up does not read the archive");
    assert_eq!(rig.cm.update_channel(&pair.a.durable[1]), Err(ApplyError::UnknownChannel(channel_id)));
}

#[test]
fn requests_apply_to_a_real_sqlite_store_and_load_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = vigil_store::SqliteStore::open(dir.path().join("vigil.sqlite")).expect("open");
    let pair = paid_pair(3);
    let channel_id = pair.b.durable[0].channel_id;
    let mut cm = ChainMonitor::new(ChainMonitorConfig { compaction_interval: 4, compact_by_size: false });
    for u in &pair.b.durable {
        cm.update_channel(u).expect("applies");
    }
    let mut written = 0;
    while let Some(r) = cm.poll_persist() {
        let mut batch = vigil_store::Batch::new();
        for op in &r.ops {
            match op {
                vigil_core::chain_monitor::StoreOp::Write { namespace, key, value } => {
                    batch.write(namespace, key, value.clone())
                }
                vigil_core::chain_monitor::StoreOp::Remove { namespace, key } => batch.remove(namespace, key),
            };
        }
        vigil_store::KvStore::write_batch(&store, &batch).expect("a valid batch");
        cm.persist_completed(r.channel_id, r.seq).expect("in order");
        written += 1;
    }
    assert_eq!(written, pair.b.durable.len());
    let entries = vigil_store::KvStore::read_namespace(&store, MONITORS_NAMESPACE).expect("read");
    let (loaded, torn) = ChainMonitor::load(ChainMonitorConfig::default(), entries).expect("loads");
    assert!(torn.is_empty());
    assert_eq!(
        loaded.monitor(&channel_id).expect("loaded").serialize(),
        cm.monitor(&channel_id).expect("live").serialize()
    );
}
