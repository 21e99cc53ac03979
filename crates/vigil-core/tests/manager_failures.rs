//! Every rejection carries its exact BOLT 4 code back to the payer, who
//! decodes it from our own failure packets: unknown next peer, CLTV delta
//! too small, amount below the minimum, unknown payment details, and a
//! corrupted onion (`update_fail_malformed_htlc`). Routes are built by hand
//! so each rule can be broken on purpose.

mod common;

use bitcoin::hashes::{sha256, Hash};
use common::net::Net;
use lightning::routing::router::{Path, Route, RouteHop};
use lightning::types::features::{ChannelFeatures, NodeFeatures};
use lightning::types::payment::{PaymentHash, PaymentSecret};
use vigil_core::manager::{Event, ManagerConfig, PaymentId};
use vigil_core::onion::codes;

const SAT: u64 = 1000;

fn hop(pubkey: bitcoin::secp256k1::PublicKey, scid: u64, fee_msat: u64, cltv: u32) -> RouteHop {
    RouteHop {
        pubkey,
        node_features: NodeFeatures::empty(),
        short_channel_id: scid,
        channel_features: ChannelFeatures::empty(),
        fee_msat,
        cltv_expiry_delta: cltv,
        maybe_announced_channel: false,
    }
}

/// A–B–C, and the aliases: A's for A–B, B's for B–C.
fn line(configs: Vec<ManagerConfig>) -> (Net, u64, u64) {
    let mut net = Net::with_configs(configs);
    net.connect(0, 1);
    net.connect(1, 2);
    let ab = net.open_channel(0, 1, 1_000_000, 0);
    let bc = net.open_channel(1, 2, 1_000_000, 0);
    let alias = |net: &Net, i: usize, c| {
        net.nodes[i]
            .manager
            .list_channels()
            .into_iter()
            .find(|d| d.channel_id == c)
            .expect("channel")
            .scid_alias
    };
    let (a_ab, b_bc) = (alias(&net, 0, ab), alias(&net, 1, bc));
    (net, a_ab, b_bc)
}

/// Sends over `hops` and returns the first path failure's code, after
/// checking that the payment then fails for good.
fn fail_code(
    net: &mut Net,
    hops: Vec<RouteHop>,
    hash: PaymentHash,
    secret: Option<PaymentSecret>,
) -> Option<u16> {
    let route = Route { paths: vec![Path { hops, blinded_tail: None }], route_params: None };
    let id = net.payment_id();
    net.nodes[0].manager.send_payment_with_route(route, hash, secret, id).expect("the route is accepted");
    net.pump();
    for _ in 0..3 {
        net.tick();
    }
    let events = net.take_events(0);
    let code = events.iter().find_map(|e| match e {
        Event::PaymentPathFailed { failure_code, .. } => Some(*failure_code),
        _ => None,
    });
    assert!(
        events.iter().any(|e| matches!(e, Event::PaymentFailed { payment_id, .. } if *payment_id == id)),
        "the payment fails for good: {events:?}"
    );
    code.expect("a path failed")
}

fn invoice_secret(net: &mut Net, payee: usize, amount: u64) -> (PaymentHash, PaymentSecret) {
    let invoice = net.invoice(payee, Some(amount));
    (PaymentHash(invoice.payment_hash().to_byte_array()), *invoice.payment_secret())
}

#[test]
fn unknown_next_peer() {
    let (mut net, a_ab, _) = line(vec![ManagerConfig::default(); 3]);
    let (hash, secret) = invoice_secret(&mut net, 2, 10_000 * SAT);
    let (b, c) = (net.id(1), net.id(2));
    let hops = vec![hop(b, a_ab, 2_000, 72), hop(c, 0xdead_beef, 10_000 * SAT, 48)];
    assert_eq!(fail_code(&mut net, hops, hash, Some(secret)), Some(codes::UNKNOWN_NEXT_PEER));
}

#[test]
fn cltv_delta_below_policy() {
    let (mut net, a_ab, b_bc) = line(vec![ManagerConfig::default(); 3]);
    let (hash, secret) = invoice_secret(&mut net, 2, 10_000 * SAT);
    let (b, c) = (net.id(1), net.id(2));
    // 50 blocks: enough for LDK's peel (48), below B's policy (72).
    let hops = vec![hop(b, a_ab, 2_000, 50), hop(c, b_bc, 10_000 * SAT, 48)];
    assert_eq!(fail_code(&mut net, hops, hash, Some(secret)), Some(codes::INCORRECT_CLTV_EXPIRY));
}

#[test]
fn amount_below_minimum() {
    let mut configs = vec![ManagerConfig::default(); 3];
    configs[1].forwarding.htlc_minimum_msat = 50_000 * SAT;
    let (mut net, a_ab, b_bc) = line(configs);
    let (hash, secret) = invoice_secret(&mut net, 2, 10_000 * SAT);
    let (b, c) = (net.id(1), net.id(2));
    let hops = vec![hop(b, a_ab, 2_000, 72), hop(c, b_bc, 10_000 * SAT, 48)];
    assert_eq!(fail_code(&mut net, hops, hash, Some(secret)), Some(codes::AMOUNT_BELOW_MINIMUM));
}

#[test]
fn fee_below_policy() {
    let (mut net, a_ab, b_bc) = line(vec![ManagerConfig::default(); 3]);
    let (hash, secret) = invoice_secret(&mut net, 2, 10_000 * SAT);
    let (b, c) = (net.id(1), net.id(2));
    let hops = vec![hop(b, a_ab, 1, 72), hop(c, b_bc, 10_000 * SAT, 48)];
    assert_eq!(fail_code(&mut net, hops, hash, Some(secret)), Some(codes::FEE_INSUFFICIENT));
}

#[test]
fn unknown_payment_secret() {
    let (mut net, a_ab, _) = line(vec![ManagerConfig::default(); 3]);
    let (hash, _) = invoice_secret(&mut net, 1, 10_000 * SAT);
    let b = net.id(1);
    let forged = PaymentSecret([9; 32]);
    let hops = vec![hop(b, a_ab, 10_000 * SAT, 48)];
    assert_eq!(
        fail_code(&mut net, hops, hash, Some(forged)),
        Some(codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
    );
    // And a hash nobody issued.
    let unknown = PaymentHash(sha256::Hash::hash(b"nobody's preimage").to_byte_array());
    let hops = vec![hop(b, a_ab, 10_000 * SAT, 48)];
    assert_eq!(
        fail_code(&mut net, hops, unknown, Some(PaymentSecret([3; 32]))),
        Some(codes::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
    );
}

#[test]
fn corrupted_onion_is_failed_as_malformed() {
    let (mut net, a_ab, _) = line(vec![ManagerConfig::default(); 3]);
    let (hash, secret) = invoice_secret(&mut net, 1, 10_000 * SAT);
    let b = net.id(1);
    net.corrupt_next_onion_to = Some(1);
    let hops = vec![hop(b, a_ab, 10_000 * SAT, 48)];
    assert_eq!(fail_code(&mut net, hops, hash, Some(secret)), Some(codes::INVALID_ONION_HMAC));
    assert!(net.nodes.iter().all(|n| n.errors.is_empty()), "no protocol error on either side");
    // The channel still works.
    let invoice = net.invoice(1, Some(1_000 * SAT));
    net.pay(0, &invoice);
    let claimable = net.take_events(1);
    net.claim_all(1, &claimable);
    assert!(net.take_events(0).iter().any(|e| matches!(e, Event::PaymentSent { .. })));
}

#[test]
fn bad_payment_commands_are_typed_errors() {
    let (mut net, _, _) = line(vec![ManagerConfig::default(); 3]);
    let invoice = net.invoice(2, Some(10_000 * SAT));
    let id = net.pay(0, &invoice);
    // The same id again.
    assert!(matches!(
        net.nodes[0].manager.pay_invoice(&invoice, None, id),
        Err(vigil_core::manager::PayError::DuplicatePayment(p)) if p == id
    ));
    // More than any channel holds.
    let big = net.invoice(2, Some(5_000_000 * SAT));
    let fresh = PaymentId([0xbb; 32]);
    assert!(matches!(
        net.nodes[0].manager.pay_invoice(&big, None, fresh),
        Err(vigil_core::manager::PayError::NoRoute(_))
    ));
    // An expired invoice.
    let short = net.nodes[2].manager.create_invoice(Some(1_000), "short", 1).expect("invoice");
    net.now_secs += 3600;
    for node in &mut net.nodes {
        node.manager.timer_tick(net.now_secs);
    }
    assert_eq!(
        net.nodes[0].manager.pay_invoice(&short, None, PaymentId([0xcc; 32])),
        Err(vigil_core::manager::PayError::InvoiceExpired)
    );
    // An amountless invoice without an amount.
    let any = net.invoice(2, None);
    assert!(matches!(
        net.nodes[0].manager.pay_invoice(&any, None, PaymentId([0xdd; 32])),
        Err(vigil_core::manager::PayError::InvalidAmount(_))
    ));
    // Nothing was recorded for the refused ones.
    assert_eq!(net.nodes[0].manager.list_payments().len(), 1);
    // Unknown channels.
    let unknown = lightning::ln::types::ChannelId([5; 32]);
    assert!(matches!(
        net.nodes[0].manager.close_channel(unknown),
        Err(vigil_core::manager::CommandError::UnknownChannel(_))
    ));
    assert!(matches!(
        net.nodes[1].manager.claim_funds(lightning::types::payment::PaymentPreimage([1; 32])),
        Err(vigil_core::manager::ClaimError::NotClaimable(_))
    ));
}

#[test]
fn bad_channel_updates_are_refused() {
    use lightning::ln::msgs::{ChannelUpdate, UnsignedChannelUpdate};
    use vigil_core::manager::gossip::UpdateRefused;
    use vigil_core::manager::MessageError;
    let (mut net, a_ab, _) = line(vec![ManagerConfig::default(); 3]);
    let (a, b) = (net.id(0), net.id(1));
    let contents = |scid, flags| UnsignedChannelUpdate {
        chain_hash: bitcoin::constants::ChainHash::using_genesis_block(bitcoin::Network::Regtest),
        short_channel_id: scid,
        timestamp: 1,
        message_flags: 1,
        channel_flags: flags,
        cltv_expiry_delta: 1,
        htlc_minimum_msat: 1,
        htlc_maximum_msat: 1,
        fee_base_msat: 0,
        fee_proportional_millionths: 0,
        excess_data: Vec::new(),
    };
    let a_dir = u8::from(a.serialize() > b.serialize());
    // A signature by someone else.
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let stranger = bitcoin::secp256k1::SecretKey::from_slice(&[5; 32]).expect("key");
    let digest = |c: &UnsignedChannelUpdate| {
        use lightning::util::ser::Writeable;
        bitcoin::secp256k1::Message::from_digest(
            bitcoin::hashes::sha256d::Hash::hash(&c.encode()).to_byte_array(),
        )
    };
    let forged = contents(a_ab, a_dir);
    let update = ChannelUpdate { signature: secp.sign_ecdsa(&digest(&forged), &stranger), contents: forged };
    let result =
        net.nodes[1].manager.handle_message(a, vigil_core::channel::ChannelMessage::ChannelUpdate(update));
    assert_eq!(result, Err(MessageError::ChannelUpdate(UpdateRefused::BadSignature)));
    // B's own direction from A.
    let wrong = contents(a_ab, 1 - a_dir);
    let update = ChannelUpdate { signature: secp.sign_ecdsa(&digest(&wrong), &stranger), contents: wrong };
    let result =
        net.nodes[1].manager.handle_message(a, vigil_core::channel::ChannelMessage::ChannelUpdate(update));
    assert_eq!(result, Err(MessageError::ChannelUpdate(UpdateRefused::WrongDirection)));
    // A channel that does not exist.
    let unknown = contents(42, a_dir);
    let update =
        ChannelUpdate { signature: secp.sign_ecdsa(&digest(&unknown), &stranger), contents: unknown };
    let result =
        net.nodes[1].manager.handle_message(a, vigil_core::channel::ChannelMessage::ChannelUpdate(update));
    assert_eq!(result, Err(MessageError::ChannelUpdate(UpdateRefused::UnknownChannel(42))));
    // The real terms B holds for A are untouched: still A's defaults.
    let ab = net.nodes[1]
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.counterparty_node_id == a)
        .expect("A–B")
        .channel_id;
    let terms = net.nodes[1].manager.peer_terms(&ab).expect("A's update arrived when the channel opened");
    assert_eq!(terms.fee_base_msat, ManagerConfig::default().forwarding.fee_base_msat);
}

/// C cannot read its onion: it answers B with `update_fail_malformed_htlc`,
/// and B relays the failure upstream as its own, with the code and the
/// onion's hash (BOLT 2).
#[test]
fn malformed_downstream_is_relayed_with_its_code() {
    let (mut net, a_ab, b_bc) = line(vec![ManagerConfig::default(); 3]);
    let (hash, secret) = invoice_secret(&mut net, 2, 10_000 * SAT);
    let (b, c) = (net.id(1), net.id(2));
    net.corrupt_next_onion_to = Some(2);
    let fee = ManagerConfig::default().forwarding.fee_msat(10_000 * SAT);
    let hops = vec![hop(b, a_ab, fee, 72), hop(c, b_bc, 10_000 * SAT, 48)];
    assert_eq!(fail_code(&mut net, hops, hash, Some(secret)), Some(codes::INVALID_ONION_HMAC));
    assert!(net.nodes.iter().all(|n| n.errors.is_empty()), "no protocol error anywhere");
}

/// A peer's `open_channel` reusing the id of an existing channel is
/// refused, and the existing channel is untouched.
#[test]
fn open_channel_with_a_taken_id_is_refused() {
    let (mut net, _, _) = line(vec![ManagerConfig::default(); 3]);
    let existing = net.nodes[1]
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.counterparty_node_id == net.id(0))
        .expect("A–B");
    let mut open = common::open_message(&common::OpenOptions::default());
    open.common_fields.temporary_channel_id = existing.channel_id;
    let a = net.id(0);
    let result =
        net.nodes[1].manager.handle_message(a, vigil_core::channel::ChannelMessage::OpenChannel(open));
    assert_eq!(result, Err(vigil_core::manager::MessageError::DuplicateChannel(existing.channel_id)));
    let after = net.nodes[1]
        .manager
        .list_channels()
        .into_iter()
        .find(|c| c.channel_id == existing.channel_id)
        .expect("kept");
    assert_eq!(after, existing, "the existing channel is untouched");
}

/// A peer cannot pile up channels it never funds.
#[test]
fn unfunded_channels_per_peer_are_bounded() {
    let (mut net, _, _) = line(vec![ManagerConfig::default(); 3]);
    let a = net.id(0);
    let limit = vigil_core::manager::MAX_UNFUNDED_CHANNELS_PER_PEER;
    for i in 0..=limit {
        let mut open = common::open_message(&common::OpenOptions::default());
        open.common_fields.temporary_channel_id = lightning::ln::types::ChannelId([0x40 + i as u8; 32]);
        let result =
            net.nodes[1].manager.handle_message(a, vigil_core::channel::ChannelMessage::OpenChannel(open));
        if i < limit {
            assert_eq!(result, Ok(()), "open {i} is accepted");
        } else {
            assert_eq!(result, Err(vigil_core::manager::MessageError::TooManyPendingChannels));
        }
    }
}

/// Funding a channel before the peer accepted it, or with a transaction
/// that does not pay the channel, is refused and changes nothing.
#[test]
fn funding_commands_out_of_order_are_refused() {
    let (mut net, _, _) = line(vec![ManagerConfig::default(); 3]);
    let c = net.id(2);
    // A has no link to C, so C never answers.
    net.connect(0, 2);
    net.disconnect(0, 2);
    let any_tx = bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: Vec::new(),
        output: Vec::new(),
    };
    assert!(matches!(
        net.nodes[0].manager.open_channel(c, 100_000, 0, false),
        Err(vigil_core::manager::CommandError::PeerNotConnected(_))
    ));
    net.connect(0, 2);
    let temp = net.nodes[0].manager.open_channel(c, 100_000, 0, false).expect("open");
    // Not accepted yet: the messages have not moved.
    assert!(matches!(
        net.nodes[0].manager.funding_transaction_generated(temp, any_tx.clone()),
        Err(vigil_core::manager::CommandError::Channel(_))
    ));
    net.pump();
    // Accepted now, but the transaction pays nothing to the channel.
    assert!(matches!(
        net.nodes[0].manager.funding_transaction_generated(temp, any_tx),
        Err(vigil_core::manager::CommandError::Channel(_))
    ));
    assert!(net.nodes.iter().all(|n| n.errors.is_empty()));
}
