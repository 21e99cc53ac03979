//! `option_anchors_zero_fee_htlc_tx` channels with LDK, opened each way:
//! LDK node 0 opens to Vigil, Vigil opens to LDK node 1 (two LDK nodes, so
//! each payment has one possible channel). Both LDK nodes negotiate anchors
//! and accept inbound channels manually, as LDK 0.2.7 requires for inbound
//! anchor channels (the harness accepts every `OpenChannelRequest`).

use lightning::ln::types::ChannelId;
use lightning::util::config::UserConfig;
use vigil_core::manager::ManagerConfig;

use crate::common::ldk::LdkNode;
use crate::common::pay::{ldk_channel, ldk_pays_vigil_at, vigil_balance, vigil_pays_ldk_at};
use crate::common::{Harness, Who};

fn anchors_config() -> UserConfig {
    let mut config = LdkNode::config();
    config.channel_handshake_config.negotiate_anchors_zero_fee_htlc_tx = true;
    config.manually_accept_inbound_channels = true;
    config
}

/// Both sides agree the channel is an anchors channel.
fn assert_anchors(h: &Harness, ldk: usize, channel_id: ChannelId) {
    let ldk_type = ldk_channel(h, ldk, channel_id).channel_type.expect("LDK knows the negotiated type");
    assert!(
        ldk_type.supports_anchors_zero_fee_htlc_tx() && ldk_type.supports_static_remote_key(),
        "LDK {ldk}'s channel type: {ldk_type}"
    );
    let vigil_type = h
        .vigil()
        .with_manager(|m| {
            m.chain_monitor().monitor(&channel_id).map(|mon| mon.params().channel_type_features.clone())
        })
        .expect("Vigil has a monitor for the channel");
    assert_eq!(vigil_type, ldk_type, "Vigil and LDK {ldk} negotiated the same type");
}

/// LDK's view of what Vigil holds on `channel_id`: its inbound capacity
/// plus the reserve it makes Vigil keep.
fn vigil_balance_seen_by_ldk(h: &Harness, ldk: usize, channel_id: ChannelId) -> u64 {
    let view = ldk_channel(h, ldk, channel_id);
    view.inbound_capacity_msat + view.counterparty.unspendable_punishment_reserve * 1000
}

/// LDK's own balance on `channel_id`: its outbound capacity plus the
/// reserve Vigil makes it keep.
fn ldk_balance(h: &Harness, ldk: usize, channel_id: ChannelId) -> u64 {
    let view = ldk_channel(h, ldk, channel_id);
    view.outbound_capacity_msat + view.unspendable_punishment_reserve.unwrap_or(0) * 1000
}

#[tokio::test(flavor = "multi_thread")]
async fn anchor_channels_both_ways() {
    let mut h =
        Harness::with_nodes(vec![ManagerConfig::default()], vec![anchors_config(), anchors_config()]).await;
    h.connect(0, 0).await;
    h.connect(1, 0).await;
    let from_ldk = h.open_typed(Who::Ldk(0), Who::Vigil(0), 1_000_000, 0, true).await;
    let from_vigil = h.open_typed(Who::Vigil(0), Who::Ldk(1), 1_000_000, 0, true).await;
    assert_anchors(&h, 0, from_ldk);
    assert_anchors(&h, 1, from_vigil);

    // LDK 0 (the funder) pays Vigil, which pays part of it back.
    ldk_pays_vigil_at(&mut h, 0, 100_000_000).await;
    h.settle().await;
    vigil_pays_ldk_at(&mut h, 0, 30_000_000, [11; 32]).await;
    h.settle().await;
    assert_eq!(vigil_balance(&h, from_ldk), 70_000_000, "Vigil's ledger on the channel LDK opened");
    assert_eq!(
        vigil_balance_seen_by_ldk(&h, 0, from_ldk),
        70_000_000,
        "LDK 0 counts Vigil's balance the same\n{}",
        h.report()
    );

    // Vigil (the funder) pays LDK 1, which pays part of it back.
    let before = vigil_balance(&h, from_vigil);
    let received = vigil_pays_ldk_at(&mut h, 1, 50_000_000, [12; 32]).await;
    assert_eq!(received, vec![from_vigil], "LDK 1 was paid over the anchors channel");
    h.settle().await;
    ldk_pays_vigil_at(&mut h, 1, 20_000_000).await;
    h.settle().await;
    assert_eq!(before - vigil_balance(&h, from_vigil), 30_000_000, "Vigil's ledger on the channel it opened");
    assert_eq!(ldk_balance(&h, 1, from_vigil), 30_000_000, "LDK 1's balance\n{}", h.report());

    for (ldk, c) in [(0, from_ldk), (1, from_vigil)] {
        let view = ldk_channel(&h, ldk, c);
        assert!(view.pending_inbound_htlcs.is_empty() && view.pending_outbound_htlcs.is_empty());
        assert!(view.is_usable, "LDK {ldk}'s channel stays usable");
    }
    assert!(h.closures().is_empty(), "{:?}", h.closures());
    assert_eq!(h.vigil().last_error(), None, "{}", h.report());
}
