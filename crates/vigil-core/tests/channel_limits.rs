//! Limits and bad input: our own HTLCs that break a limit are refused with
//! `Ignore` and change nothing; a peer that breaks a BOLT 2 rule gets the
//! typed error BOLT 2 prescribes (`Close` with an `error` message, or `Warn`).

mod common;

use bitcoin::secp256k1::ecdsa::Signature;
use common::{dummy_onion, OpenOptions, Pair, Who};
use lightning::ln::msgs;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use vigil_core::channel::{ChannelConfig, ChannelError, ChannelMessage, CloseReason, Phase};

fn ignored(r: Result<(u64, PaymentPreimage), ChannelError>, expect: &str) {
    match r {
        Err(ChannelError::Ignore(m)) => assert!(m.contains(expect), "{m} should mention {expect}"),
        other => panic!("expected Ignore({expect}), got {other:?}"),
    }
}

/// The peer's message was refused with `Close`, the channel is failed and an
/// `error` went out.
fn assert_closed(pair: &mut Pair, who: Who, expect: &str) {
    let err = pair.node_ref(who).errors.last().cloned();
    match err {
        Some(ChannelError::Close(m)) => assert!(m.contains(expect), "`{m}` should mention `{expect}`"),
        other => panic!("expected Close({expect}), got {other:?}"),
    }
    assert!(matches!(pair.phase(who), Phase::Closed(CloseReason::LocalError(_))));
    pair.pump(who);
    let sent_error = pair.node_ref(who).to_peer.iter().any(|m| matches!(m, ChannelMessage::Error(_)));
    assert!(sent_error, "an error message goes to the peer");
}

#[test]
fn our_htlcs_respect_the_peers_limits() {
    let config_b = ChannelConfig {
        htlc_minimum_msat: 10_000,
        max_accepted_htlcs: 3,
        max_inbound_in_flight_percent: 5,
        ..ChannelConfig::default()
    };
    let mut pair = Pair::open(OpenOptions { config_b, ..OpenOptions::default() });
    ignored(pair.add(Who::A, 9_999), "minimum");
    ignored(pair.add(Who::A, 0), "minimum");
    for _ in 0..3 {
        pair.add(Who::A, 1_000_000).expect("within limits");
    }
    ignored(pair.add(Who::A, 1_000_000), "more than 3 HTLCs");
    let mut pair = Pair::open(OpenOptions {
        config_b: ChannelConfig { max_inbound_in_flight_percent: 5, ..ChannelConfig::default() },
        ..OpenOptions::default()
    });
    // 5% of 1,000,000 sat is 50,000,000 msat.
    pair.add(Who::A, 30_000_000).expect("within limits");
    ignored(pair.add(Who::A, 30_000_000), "in flight");
    let before = pair.a.channel.snapshot().clone();
    ignored(pair.add(Who::A, 25_000_000), "in flight");
    assert_eq!(*pair.a.channel.snapshot(), before, "a refused add changes nothing");
}

#[test]
fn reserves_and_fees_bound_what_each_side_can_send() {
    let mut pair = Pair::open(OpenOptions::default());
    // B holds 200,000 sat and must keep A's reserve (1%: 10,000 sat).
    ignored(pair.add(Who::B, 195_000_000), "reserve");
    pair.add(Who::B, 185_000_000).expect("B keeps its reserve");
    // A holds 800,000 sat, pays the fees and keeps B's reserve.
    ignored(pair.add(Who::A, 795_000_000), "fee");
    let mut pair = Pair::open(OpenOptions { push_msat: 0, ..OpenOptions::default() });
    ignored(pair.add(Who::B, 1_000), "afford");
}

#[test]
fn expiries_and_dust_exposure_are_checked_on_our_htlcs() {
    let mut pair = Pair::open(OpenOptions {
        config_a: ChannelConfig { max_dust_htlc_exposure_msat: 700_000, ..ChannelConfig::default() },
        ..OpenOptions::default()
    });
    let height = pair.chain.height();
    let (_, hash) = pair.new_preimage();
    let add = |pair: &mut Pair, cltv| {
        pair.a.channel.add_htlc(1_000_000, hash, cltv, dummy_onion(), common::test_source())
    };
    assert!(matches!(add(&mut pair, height), Err(ChannelError::Ignore(m)) if m.contains("passed")));
    assert!(matches!(add(&mut pair, height + 5000), Err(ChannelError::Ignore(m)) if m.contains("too far")));
    // 300-sat HTLCs are trimmed (dust limit 354): the exposure limit is 700 sat.
    pair.add(Who::A, 300_000).expect("first dust HTLC");
    pair.add(Who::A, 300_000).expect("second dust HTLC");
    ignored(pair.add(Who::A, 300_000), "dust exposure");
}

/// A's next message to B, taken out of the queue for tampering.
fn take(pair: &mut Pair, from: Who) -> ChannelMessage {
    pair.pump(from);
    pair.node(from).to_peer.pop_front().expect("a message")
}

fn inject(pair: &mut Pair, to: Who, msg: ChannelMessage) {
    let node = pair.node(to);
    if let Err(e) = node.channel.handle_message(msg) {
        node.errors.push(e);
    }
}

#[test]
fn peer_htlc_violations_fail_the_channel() {
    // An unexpected HTLC id.
    let mut pair = Pair::open(OpenOptions::default());
    pair.add(Who::A, 1_000_000).expect("add");
    let ChannelMessage::UpdateAddHtlc(mut add) = take(&mut pair, Who::A) else { panic!("update_add_htlc") };
    add.htlc_id = 5;
    inject(&mut pair, Who::B, ChannelMessage::UpdateAddHtlc(add.clone()));
    assert_closed(&mut pair, Who::B, "id 5");

    // Below B's minimum, a timestamp expiry, more than B accepts, or more than
    // A can afford.
    type Tamper = Box<dyn Fn(&mut msgs::UpdateAddHTLC)>;
    let cases: Vec<(Tamper, &str)> = vec![
        (Box::new(|m| m.amount_msat = 0), "minimum"),
        (Box::new(|m| m.cltv_expiry = 500_000_000), "timestamp"),
        (Box::new(|m| m.amount_msat = 900_000_000), "afford"),
    ];
    for (tamper, expect) in cases {
        let mut pair = Pair::open(OpenOptions::default());
        pair.add(Who::A, 1_000_000).expect("add");
        let ChannelMessage::UpdateAddHtlc(mut add) = take(&mut pair, Who::A) else {
            panic!("update_add_htlc")
        };
        tamper(&mut add);
        inject(&mut pair, Who::B, ChannelMessage::UpdateAddHtlc(add));
        assert_closed(&mut pair, Who::B, expect);
    }

    let mut pair = Pair::open(OpenOptions {
        config_b: ChannelConfig { max_accepted_htlcs: 2, ..ChannelConfig::default() },
        ..OpenOptions::default()
    });
    pair.add(Who::A, 1_000_000).expect("add");
    let ChannelMessage::UpdateAddHtlc(add) = take(&mut pair, Who::A) else { panic!("update_add_htlc") };
    for id in 0..3 {
        let mut m = add.clone();
        m.htlc_id = id;
        inject(&mut pair, Who::B, ChannelMessage::UpdateAddHtlc(m));
    }
    assert_closed(&mut pair, Who::B, "more than 2 HTLCs");
}

/// A valid signature, by an unrelated key over an unrelated message.
fn foreign_signature() -> Signature {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = bitcoin::secp256k1::SecretKey::from_slice(&[5; 32]).expect("key");
    secp.sign_ecdsa(&bitcoin::secp256k1::Message::from_digest([1; 32]), &key)
}

#[test]
fn bad_signatures_fail_the_channel() {
    // A commitment signature that does not sign our commitment.
    let mut pair = Pair::open(OpenOptions::default());
    pair.add(Who::A, 1_000_000).expect("add");
    pair.commit(Who::A);
    pair.deliver(Who::A);
    let ChannelMessage::CommitmentSigned(mut cs) = take(&mut pair, Who::A) else {
        panic!("commitment_signed")
    };
    cs.signature = foreign_signature();
    inject(&mut pair, Who::B, ChannelMessage::CommitmentSigned(cs));
    assert_closed(&mut pair, Who::B, "invalid signature for our commitment");

    // A bad HTLC signature (an HTLC large enough not to be trimmed).
    let mut pair = Pair::open(OpenOptions::default());
    pair.add(Who::A, 5_000_000).expect("add");
    pair.commit(Who::A);
    pair.deliver(Who::A);
    let ChannelMessage::CommitmentSigned(mut cs) = take(&mut pair, Who::A) else {
        panic!("commitment_signed")
    };
    cs.htlc_signatures[0] = foreign_signature();
    inject(&mut pair, Who::B, ChannelMessage::CommitmentSigned(cs));
    assert_closed(&mut pair, Who::B, "HTLC output 0");

    // A wrong number of HTLC signatures.
    let mut pair = Pair::open(OpenOptions::default());
    pair.add(Who::A, 5_000_000).expect("add");
    pair.commit(Who::A);
    pair.deliver(Who::A);
    let ChannelMessage::CommitmentSigned(mut cs) = take(&mut pair, Who::A) else {
        panic!("commitment_signed")
    };
    cs.htlc_signatures.clear();
    inject(&mut pair, Who::B, ChannelMessage::CommitmentSigned(cs));
    assert_closed(&mut pair, Who::B, "HTLC signatures");
}

#[test]
fn bad_revocations_fail_the_channel() {
    let mut pair = Pair::open(OpenOptions::default());
    pair.add(Who::A, 1_000_000).expect("add");
    pair.commit(Who::A);
    pair.deliver(Who::A);
    pair.deliver(Who::A);
    let ChannelMessage::RevokeAndAck(mut raa) = take(&mut pair, Who::B) else { panic!("revoke_and_ack") };
    raa.per_commitment_secret[0] ^= 1;
    inject(&mut pair, Who::A, ChannelMessage::RevokeAndAck(raa.clone()));
    assert_closed(&mut pair, Who::A, "revocation secret");

    // A revocation nobody asked for.
    let mut pair = Pair::open(OpenOptions::default());
    inject(&mut pair, Who::A, ChannelMessage::RevokeAndAck(raa));
    assert_closed(&mut pair, Who::A, "without a commitment_signed");
}

#[test]
fn bad_removals_fail_the_channel() {
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.pay(Who::A, 1_000_000);
    let channel_id = pair.a.channel.channel_id();
    let fulfill = |htlc_id, preimage| {
        ChannelMessage::UpdateFulfillHtlc(msgs::UpdateFulfillHTLC {
            channel_id,
            htlc_id,
            payment_preimage: preimage,
            attribution_data: None,
        })
    };
    inject(&mut pair, Who::A, fulfill(id, PaymentPreimage([0xee; 32])));
    assert_closed(&mut pair, Who::A, "does not match");

    let mut pair = Pair::open(OpenOptions::default());
    pair.pay(Who::A, 1_000_000);
    inject(&mut pair, Who::A, fulfill(7, preimage));
    assert_closed(&mut pair, Who::A, "unknown HTLC 7");

    // Removing an HTLC before it is committed.
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.add(Who::A, 1_000_000).expect("add");
    inject(&mut pair, Who::A, fulfill(id, preimage));
    assert_closed(&mut pair, Who::A, "before it is committed");

    // A malformed-onion failure without the BADONION bit.
    let mut pair = Pair::open(OpenOptions::default());
    let (id, _) = pair.pay(Who::A, 1_000_000);
    pair.b.channel.fail_malformed_htlc(id, 0x8000 | 5, [1; 32]).expect("fail malformed");
    let ChannelMessage::UpdateFailMalformedHtlc(mut m) = take(&mut pair, Who::B) else { panic!("malformed") };
    m.failure_code = 5;
    inject(&mut pair, Who::A, ChannelMessage::UpdateFailMalformedHtlc(m));
    assert_closed(&mut pair, Who::A, "BADONION");

    // Our own removal commands refuse what cannot be removed.
    let mut pair = Pair::open(OpenOptions::default());
    let (id, preimage) = pair.add(Who::A, 1_000_000).expect("add");
    pair.settle();
    assert!(
        matches!(pair.b.channel.fulfill_htlc(id, preimage, None), Err(ChannelError::Ignore(_))),
        "not committed"
    );
    assert!(
        matches!(pair.b.channel.fail_malformed_htlc(id, 5, [0; 32]), Err(ChannelError::Ignore(m)) if m.contains("BADONION"))
    );
    assert!(
        matches!(pair.b.channel.fail_malformed_htlc(9, 0x8000 | 5, [0; 32]), Err(ChannelError::Ignore(m)) if m.contains("no inbound HTLC 9"))
    );
    let _ = PaymentHash([0; 32]);
}

#[test]
fn fee_updates_are_checked() {
    // From the fundee.
    let mut pair = Pair::open(OpenOptions::default());
    let channel_id = pair.a.channel.channel_id();
    inject(
        &mut pair,
        Who::A,
        ChannelMessage::UpdateFee(msgs::UpdateFee { channel_id, feerate_per_kw: 2000 }),
    );
    assert_closed(&mut pair, Who::A, "fundee");
    // Unreasonable against the estimate, or below the floor.
    for rate in [1_000_000, 100] {
        let mut pair = Pair::open(OpenOptions::default());
        pair.b.channel.update_fee_estimate(1000);
        inject(
            &mut pair,
            Who::B,
            ChannelMessage::UpdateFee(msgs::UpdateFee { channel_id, feerate_per_kw: rate }),
        );
        assert_closed(&mut pair, Who::B, "sat/kw");
    }
    // Unaffordable for the funder.
    let mut pair = Pair::open(OpenOptions { push_msat: 990_000_000, ..OpenOptions::default() });
    assert!(
        matches!(pair.a.channel.update_fee(100_000), Err(ChannelError::Ignore(m)) if m.contains("cannot pay"))
    );
    assert!(matches!(pair.b.channel.update_fee(2000), Err(ChannelError::Ignore(m)) if m.contains("funder")));
}

#[test]
fn shutdown_scripts_follow_bolt2() {
    let mut pair = Pair::open(OpenOptions::default());
    let channel_id = pair.a.channel.channel_id();
    let bad = bitcoin::ScriptBuf::from_bytes(vec![0x51, 0x51, 0x93]);
    inject(
        &mut pair,
        Who::B,
        ChannelMessage::Shutdown(msgs::Shutdown { channel_id, scriptpubkey: bad.clone() }),
    );
    assert!(matches!(pair.b.errors.last(), Some(ChannelError::Warn(_))), "{:?}", pair.b.errors);
    assert_eq!(pair.phase(Who::B), Phase::Funded, "a warning leaves the channel open");
    pair.pump(Who::B);
    assert!(pair.b.to_peer.iter().any(|m| matches!(m, ChannelMessage::Warning(_))));
    assert!(matches!(pair.a.channel.shutdown(Some(bad)), Err(ChannelError::Ignore(_))));
    // No new HTLC after a shutdown; pending ones still resolve, then the close.
    let (id, preimage) = pair.pay(Who::A, 2_000_000);
    pair.a.channel.shutdown(None).expect("shutdown");
    pair.pump(Who::A);
    pair.settle();
    assert!(matches!(pair.add(Who::B, 1_000_000), Err(ChannelError::Ignore(_))));
    pair.claim(Who::B, id, preimage);
    assert_eq!(pair.phase(Who::A), Phase::Closed(CloseReason::Cooperative));
    assert_eq!(pair.phase(Who::B), Phase::Closed(CloseReason::Cooperative));
}

#[test]
fn errors_from_the_peer_close_the_channel() {
    let mut pair = Pair::open(OpenOptions::default());
    let channel_id = pair.a.channel.channel_id();
    inject(&mut pair, Who::A, ChannelMessage::Error(msgs::ErrorMessage { channel_id, data: "boom".into() }));
    pair.pump(Who::A);
    assert_eq!(pair.phase(Who::A), Phase::Closed(CloseReason::CounterpartyError("boom".into())));
    assert!(pair
        .a
        .channel
        .add_htlc(1, PaymentHash([0; 32]), 200, dummy_onion(), common::test_source())
        .is_err());
    let closed = pair.a.durable_steps().find_map(|s| match s {
        vigil_core::channel::UpdateStep::ChannelClosed { reason, broadcast_holder_commitment } => {
            Some((reason.clone(), *broadcast_holder_commitment))
        }
        _ => None,
    });
    assert_eq!(closed, Some((CloseReason::CounterpartyError("boom".into()), true)));

    let mut pair = Pair::open(OpenOptions::default());
    pair.a.channel.force_close();
    pair.pump(Who::A);
    assert_eq!(pair.phase(Who::A), Phase::Closed(CloseReason::ForceClosed));
    let closed = pair.a.durable_steps().find_map(|s| match s {
        vigil_core::channel::UpdateStep::ChannelClosed { broadcast_holder_commitment, .. } => {
            Some(*broadcast_holder_commitment)
        }
        _ => None,
    });
    assert_eq!(closed, Some(true), "a force-close puts our commitment on chain");
    assert!(pair.a.to_peer.iter().any(|m| matches!(m, ChannelMessage::Error(_))), "the peer is told");
}

#[test]
fn zero_conf_channels_with_aliases_are_ready_at_once() {
    for anchors in [false, true] {
        let mut pair = Pair::open(OpenOptions { zero_conf: true, anchors, ..OpenOptions::default() });
        assert_eq!(pair.a.channel.snapshot().their_scid_alias, Some(0xb11b5));
        assert_eq!(pair.b.channel.snapshot().their_scid_alias, Some(0xa11a5));
        assert_eq!(pair.a.channel.snapshot().short_channel_id, None, "not confirmed yet");
        let (id, preimage) = pair.pay(Who::A, 3_000_000);
        pair.claim(Who::B, id, preimage);
    }
}

#[test]
fn open_channel_proposals_that_break_the_rules_are_refused() {
    type Tamper = Box<dyn Fn(&mut msgs::OpenChannel, &mut ChannelConfig)>;
    let cases: Vec<(Tamper, &str)> = vec![
        (
            Box::new(|o, _| o.common_fields.chain_hash = bitcoin::constants::ChainHash::BITCOIN),
            "another chain",
        ),
        (Box::new(|o, _| o.common_fields.channel_type = None), "channel_type"),
        (
            Box::new(|o, _| {
                let mut t = lightning::types::features::ChannelTypeFeatures::only_static_remote_key();
                t.set_zero_conf_required();
                o.common_fields.channel_type = Some(t);
            }),
            "zero-conf",
        ),
        (Box::new(|o, _| o.push_msat = o.common_fields.funding_satoshis * 1000 + 1), "push_msat"),
        (Box::new(|o, _| o.common_fields.dust_limit_satoshis = 353), "below 354"),
        (Box::new(|o, _| o.common_fields.to_self_delay = 5000), "to_self_delay"),
        (Box::new(|o, _| o.common_fields.max_accepted_htlcs = 484), "max_accepted_htlcs"),
        (Box::new(|o, _| o.common_fields.commitment_feerate_sat_per_1000_weight = 100), "below 253"),
        (
            Box::new(|o, _| o.common_fields.commitment_feerate_sat_per_1000_weight = 1_000_000),
            "unreasonably high",
        ),
        (Box::new(|o, c| c.max_funding_sat = o.common_fields.funding_satoshis - 1), "outside our limits"),
        (Box::new(|o, _| o.channel_reserve_satoshis = o.common_fields.funding_satoshis / 2), "20%"),
    ];
    for (tamper, expect) in cases {
        let mut open = common::open_message(&OpenOptions::default());
        let mut config = ChannelConfig::default();
        tamper(&mut open, &mut config);
        match common::try_inbound(config, &open) {
            Err(ChannelError::Close(m)) => assert!(m.contains(expect), "`{m}` should mention `{expect}`"),
            other => panic!("expected Close({expect}), got {other:?}"),
        }
    }
    // And the untampered proposal is accepted.
    let open = common::open_message(&OpenOptions::default());
    assert!(common::try_inbound(ChannelConfig::default(), &open).is_ok());
}

#[test]
fn inbound_htlcs_over_our_dust_exposure_are_admitted_but_flagged() {
    let mut pair = Pair::open(OpenOptions {
        config_b: ChannelConfig { max_dust_htlc_exposure_msat: 500_000, ..ChannelConfig::default() },
        ..OpenOptions::default()
    });
    pair.pay(Who::A, 300_000);
    pair.pay(Who::A, 300_000);
    let flags: Vec<Option<String>> = pair
        .b
        .durable_steps()
        .filter_map(|s| match s {
            vigil_core::channel::UpdateStep::HtlcIrrevocablyCommitted { policy_violation, .. } => {
                Some(policy_violation.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(flags.len(), 2);
    assert_eq!(flags[0], None, "300 sat of dust is within 500 sat");
    assert!(flags[1].as_deref().is_some_and(|m| m.contains("dust exposure")), "{flags:?}");
    assert!(pair.a.errors.is_empty() && pair.b.errors.is_empty(), "BOLT 2 admits it: no error");
}

#[test]
fn limits_count_htlcs_until_their_removal_is_in_the_peers_commitment() {
    let mut pair = Pair::open(OpenOptions {
        config_b: ChannelConfig { max_accepted_htlcs: 2, ..ChannelConfig::default() },
        ..OpenOptions::default()
    });
    let (first, _) = pair.pay(Who::A, 2_000_000);
    pair.pay(Who::A, 2_000_000);
    // B fails one; A has the update_fail but B has not signed it yet.
    pair.b.channel.fail_htlc(first, vec![1; 32]).expect("fail");
    pair.deliver(Who::B);
    ignored(pair.add(Who::A, 1_000_000), "more than 2 HTLCs");
    pair.commit(Who::B);
    pair.settle();
    pair.commit(Who::A);
    pair.settle();
    pair.add(Who::A, 1_000_000).expect("the failed HTLC left B's commitment");
}

#[test]
fn absurd_values_from_the_peer_fail_the_channel_without_panicking() {
    let mut pair = Pair::open(OpenOptions::default());
    pair.pay(Who::A, 1_000_000);
    pair.add(Who::A, 1_000_000).expect("add");
    let ChannelMessage::UpdateAddHtlc(mut add) = take(&mut pair, Who::A) else { panic!("update_add_htlc") };
    add.amount_msat = u64::MAX;
    inject(&mut pair, Who::B, ChannelMessage::UpdateAddHtlc(add));
    assert_closed(&mut pair, Who::B, "afford");

    let mut pair = Pair::open(OpenOptions::default());
    pair.disconnect();
    for who in [Who::A, Who::B] {
        pair.node(who).channel.peer_connected();
    }
    let ChannelMessage::ChannelReestablish(mut re) = take(&mut pair, Who::A) else {
        panic!("channel_reestablish")
    };
    re.next_remote_commitment_number = (1 << 48) + 5;
    inject(&mut pair, Who::B, ChannelMessage::ChannelReestablish(re));
    assert_closed(&mut pair, Who::B, "beyond 2^48");
}
