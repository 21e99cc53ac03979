//! The pairwise channel harness: two [`Channel`]s driven against each other
//! message by message, with their monitor updates persisted on command, and
//! every transaction they produce checked against the embedded regtest
//! chain's consensus rules.
//!
//! Vocabulary: [`Pair::open`], [`Pair::deliver`] (one message), [`Pair::settle`]
//! (everything, both ways), [`Pair::pay`], [`Pair::claim`], [`Pair::fail`],
//! [`Pair::disconnect`], [`Pair::reconnect`], [`Pair::crash`], [`Pair::close`].

#![allow(dead_code)]

pub mod disk;
pub mod net;

use std::collections::VecDeque;
use std::sync::Arc;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1};
use bitcoin::{Network, ScriptBuf, Transaction, TxOut, Witness};
use lightning::ln::chan_utils::{ChannelTransactionParameters, HolderCommitmentTransaction};
use lightning::ln::msgs::{self, OnionPacket};
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::{
    ChannelDerivationParameters, HTLCDescriptor, InMemorySigner, KeysManager, NodeSigner, Recipient,
    SignerProvider,
};
use lightning::types::features::ChannelTypeFeatures;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use vigil_chain::regtest::validate::verify_scripts;
use vigil_chain::testkit::{coin_of, coinbase_coin, funding_spend, TestKey};
use vigil_chain::{ChainSource, ManualClock, RegtestChain};
use vigil_core::channel::commitment::{commitment_index, htlc_transaction};
use vigil_core::channel::{
    Channel, ChannelConfig, ChannelError, ChannelEvent, ChannelMessage, ChannelOutput, HtlcSource,
    InboundParams, MonitorUpdate, OutboundParams, Phase, UpdateStep,
};
use vigil_core::ser::{Decode, Encode};

/// One side of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The funder.
    A,
    /// The fundee.
    B,
}

impl Who {
    pub fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }
}

/// A node with one channel.
pub struct Node {
    pub keys: KeysManager,
    pub keys_id: [u8; 32],
    pub config: ChannelConfig,
    pub close_script: ScriptBuf,
    pub channel: Channel<InMemorySigner>,
    /// Updates handed out and not yet durable.
    pub pending: VecDeque<MonitorUpdate>,
    /// Durable updates, in order.
    pub durable: Vec<MonitorUpdate>,
    /// Whether updates become durable as soon as they are handed out.
    pub auto_persist: bool,
    /// Messages released for the peer, not yet delivered.
    pub to_peer: VecDeque<ChannelMessage>,
    pub events: Vec<ChannelEvent>,
    /// Errors returned by the handlers.
    pub errors: Vec<ChannelError>,
}

impl Node {
    pub fn signer(&self) -> InMemorySigner {
        self.keys.derive_channel_signer(self.keys_id)
    }

    fn node_id(&self) -> PublicKey {
        self.keys.get_node_id(Recipient::Node).expect("node id")
    }

    /// Steps of every durable update, in order.
    pub fn durable_steps(&self) -> impl Iterator<Item = &UpdateStep> {
        self.durable.iter().flat_map(|u| u.steps.iter())
    }

    /// The `update_add_htlc`s reported irrevocably committed (durably).
    pub fn irrevocable(&self) -> Vec<msgs::UpdateAddHTLC> {
        self.durable_steps()
            .filter_map(|s| match s {
                UpdateStep::HtlcIrrevocablyCommitted { update_add, .. } => Some(update_add.clone()),
                _ => None,
            })
            .collect()
    }

    /// The preimages handed to the monitor (durably): (htlc id, outbound).
    pub fn preimages(&self) -> Vec<(u64, bool, PaymentPreimage)> {
        self.durable_steps()
            .filter_map(|s| match s {
                UpdateStep::PaymentPreimage { htlc_id, outbound, preimage, .. } => {
                    Some((*htlc_id, *outbound, *preimage))
                }
                _ => None,
            })
            .collect()
    }

    /// The latest durable holder commitment.
    pub fn latest_holder_commitment(&self) -> Option<HolderCommitmentTransaction> {
        self.durable_steps()
            .filter_map(|s| match s {
                UpdateStep::HolderCommitment { commitment, .. } => Some(commitment.clone()),
                _ => None,
            })
            .last()
    }

    pub fn has_event(&self, pred: impl Fn(&ChannelEvent) -> bool) -> bool {
        self.events.iter().any(pred)
    }
}

/// Options for [`Pair::open`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub anchors: bool,
    pub zero_conf: bool,
    pub funding_sat: u64,
    pub push_msat: u64,
    pub feerate_per_kw: u32,
    pub config_a: ChannelConfig,
    pub config_b: ChannelConfig,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            anchors: false,
            zero_conf: false,
            funding_sat: 1_000_000,
            push_msat: 200_000_000,
            feerate_per_kw: 1000,
            config_a: ChannelConfig::default(),
            config_b: ChannelConfig::default(),
        }
    }
}

impl OpenOptions {
    pub fn channel_type(&self) -> ChannelTypeFeatures {
        let mut t = if self.anchors {
            ChannelTypeFeatures::anchors_zero_htlc_fee_and_dependencies()
        } else {
            ChannelTypeFeatures::only_static_remote_key()
        };
        if self.zero_conf {
            t.set_zero_conf_required();
            t.set_scid_privacy_required();
        }
        t
    }
}

/// A funder's `open_channel` for `opts`.
pub fn open_message(opts: &OpenOptions) -> msgs::OpenChannel {
    let ka = keys(1);
    let keys_id = ka.generate_channel_keys_id(false, 1);
    let mut channel = Channel::new_outbound(
        opts.config_a.clone(),
        ka.derive_channel_signer(keys_id),
        OutboundParams {
            counterparty_node_id: keys(2).get_node_id(Recipient::Node).expect("node id"),
            chain_hash: regtest(),
            temporary_channel_id: [7; 32],
            channel_keys_id: keys_id,
            funding_sat: opts.funding_sat,
            push_msat: opts.push_msat,
            feerate_per_kw: opts.feerate_per_kw,
            channel_type: opts.channel_type(),
            scid_alias: 1,
            announce: false,
            best_height: 101,
            close_script: TestKey::new(11).p2wpkh(),
        },
    )
    .expect("open");
    match channel.poll_output() {
        Some(ChannelOutput::Message(ChannelMessage::OpenChannel(m))) => m,
        other => panic!("expected open_channel, got {other:?}"),
    }
}

/// A fundee's answer to `open` under `config`.
pub fn try_inbound(
    config: ChannelConfig,
    open: &msgs::OpenChannel,
) -> Result<Channel<InMemorySigner>, ChannelError> {
    let kb = keys(2);
    let keys_id = kb.generate_channel_keys_id(true, 2);
    Channel::new_inbound(
        config,
        kb.derive_channel_signer(keys_id),
        InboundParams {
            counterparty_node_id: keys(1).get_node_id(Recipient::Node).expect("node id"),
            chain_hash: regtest(),
            channel_keys_id: keys_id,
            scid_alias: 2,
            best_height: 101,
            close_script: TestKey::new(12).p2wpkh(),
            fee_estimate: Some(1000),
        },
        open,
    )
}

/// Two channels against each other, and a chain.
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub chain: RegtestChain,
    pub clock: Arc<ManualClock>,
    pub funding: Option<Transaction>,
    /// Transactions checked against consensus so far.
    pub checked: usize,
    next_preimage: u8,
}

fn keys(seed: u8) -> KeysManager {
    KeysManager::new(&[seed; 32], 1_700_000_000, 0, true)
}

fn regtest() -> ChainHash {
    ChainHash::using_genesis_block(Network::Regtest)
}

/// A source for test HTLCs: a path of payment 0x01...
pub fn test_source() -> HtlcSource {
    HtlcSource::Sent { payment_id: [1; 32], session_priv: [2; 32], path: vec![1, 2, 3] }
}

pub fn dummy_onion() -> OnionPacket {
    let secp = Secp256k1::new();
    let key =
        PublicKey::from_secret_key(&secp, &bitcoin::secp256k1::SecretKey::from_slice(&[3; 32]).expect("key"));
    OnionPacket { version: 0, public_key: Ok(key), hop_data: [0; 1300], hmac: [0; 32] }
}

impl Pair {
    pub fn node(&mut self, who: Who) -> &mut Node {
        match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        }
    }

    pub fn node_ref(&self, who: Who) -> &Node {
        match who {
            Who::A => &self.a,
            Who::B => &self.b,
        }
    }

    /// Moves what `who`'s channel produced into the harness: updates (persisted
    /// at once with auto-persist), released messages and events.
    pub fn pump(&mut self, who: Who) {
        loop {
            let node = self.node(who);
            let mut progressed = false;
            while let Some(update) = node.channel.poll_monitor_update() {
                node.pending.push_back(update);
                progressed = true;
            }
            if node.auto_persist && !node.pending.is_empty() {
                self.persist(who);
                progressed = true;
            }
            let node = self.node(who);
            while let Some(output) = node.channel.poll_output() {
                progressed = true;
                match output {
                    ChannelOutput::Message(m) => node.to_peer.push_back(m),
                    ChannelOutput::Event(e) => node.events.push(e),
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// Makes every pending update of `who` durable, checking the commitments
    /// they carry against the chain's consensus rules.
    pub fn persist(&mut self, who: Who) {
        while self.persist_one(who) {}
    }

    /// Makes the oldest pending update of `who` durable.
    pub fn persist_one(&mut self, who: Who) -> bool {
        let Some(update) = self.node(who).pending.pop_front() else { return false };
        // Every update the channel produces survives its own encoding.
        let decoded = MonitorUpdate::from_bytes(&update.to_bytes()).expect("a monitor update decodes");
        assert_eq!(decoded, update, "a monitor update round-trips through its encoding");
        for step in &update.steps {
            if let UpdateStep::HolderCommitment { commitment, .. } = step {
                self.check_holder_commitment(who, commitment, &update);
            }
        }
        let node = self.node(who);
        node.channel.update_persisted(update.update_id);
        node.durable.push(update);
        true
    }

    /// Delivers the next message from `from` to its peer. Returns whether there
    /// was one.
    pub fn deliver(&mut self, from: Who) -> bool {
        self.pump(from);
        let Some(msg) = self.node(from).to_peer.pop_front() else { return false };
        let to = from.other();
        let node = self.node(to);
        if let Err(e) = node.channel.handle_message(msg) {
            node.errors.push(e);
        }
        self.pump(to);
        true
    }

    /// Delivers everything both ways, persisting as the nodes allow, until
    /// nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            self.pump(Who::A);
            self.pump(Who::B);
            if !self.deliver(Who::A) && !self.deliver(Who::B) {
                return;
            }
        }
        panic!("the pair did not settle");
    }

    /// Opens a channel from A to B and brings it to `channel_ready` on both
    /// sides, with the funding transaction mined on the embedded chain.
    pub fn open(opts: OpenOptions) -> Pair {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let chain = RegtestChain::in_memory(clock.clone());
        let funder_key = TestKey::new(42);
        chain.mine(101, &funder_key.address()).expect("mine");
        let height = chain.height();
        let ka = keys(1);
        let kb = keys(2);
        let keys_id_a = ka.generate_channel_keys_id(false, 1);
        let keys_id_b = kb.generate_channel_keys_id(true, 2);
        let close_a = TestKey::new(11).p2wpkh();
        let close_b = TestKey::new(12).p2wpkh();
        let node_b_id = kb.get_node_id(Recipient::Node).expect("node id");
        let node_a_id = ka.get_node_id(Recipient::Node).expect("node id");
        let mut config_b = opts.config_b.clone();
        config_b.accept_zero_conf |= opts.zero_conf;
        let a_channel = Channel::new_outbound(
            opts.config_a.clone(),
            ka.derive_channel_signer(keys_id_a),
            OutboundParams {
                counterparty_node_id: node_b_id,
                chain_hash: regtest(),
                temporary_channel_id: [7; 32],
                channel_keys_id: keys_id_a,
                funding_sat: opts.funding_sat,
                push_msat: opts.push_msat,
                feerate_per_kw: opts.feerate_per_kw,
                channel_type: opts.channel_type(),
                scid_alias: 0xa11a5,
                announce: false,
                best_height: height,
                close_script: close_a.clone(),
            },
        )
        .expect("open");
        let mut a = Node {
            keys: ka,
            keys_id: keys_id_a,
            config: opts.config_a.clone(),
            close_script: close_a,
            channel: a_channel,
            pending: VecDeque::new(),
            durable: Vec::new(),
            auto_persist: true,
            to_peer: VecDeque::new(),
            events: Vec::new(),
            errors: Vec::new(),
        };
        let open = match a.channel.poll_output() {
            Some(ChannelOutput::Message(ChannelMessage::OpenChannel(m))) => m,
            other => panic!("expected open_channel, got {other:?}"),
        };
        let b_channel = Channel::new_inbound(
            config_b.clone(),
            kb.derive_channel_signer(keys_id_b),
            InboundParams {
                counterparty_node_id: node_a_id,
                chain_hash: regtest(),
                channel_keys_id: keys_id_b,
                scid_alias: 0xb11b5,
                best_height: height,
                close_script: close_b.clone(),
                fee_estimate: Some(opts.feerate_per_kw),
            },
            &open,
        )
        .expect("accept");
        let b = Node {
            keys: kb,
            keys_id: keys_id_b,
            config: config_b,
            close_script: close_b,
            channel: b_channel,
            pending: VecDeque::new(),
            durable: Vec::new(),
            auto_persist: true,
            to_peer: VecDeque::new(),
            events: Vec::new(),
            errors: Vec::new(),
        };
        let mut pair = Pair { a, b, chain, clock, funding: None, checked: 0, next_preimage: 1 };
        pair.deliver(Who::B); // accept_channel
        let (script, value) = match pair.a.events.iter().find_map(|e| match e {
            ChannelEvent::FundingNeeded { script_pubkey, value_sat } => {
                Some((script_pubkey.clone(), *value_sat))
            }
            _ => None,
        }) {
            Some(x) => x,
            None => panic!("expected FundingNeeded, got {:?} / errors {:?}", pair.a.events, pair.a.errors),
        };
        let funding = funding_spend(&funder_key, &coinbase_coin(&pair.chain, 1), script, value);
        pair.funding = Some(funding.clone());
        pair.a.channel.funding_outpoint_ready(funding.compute_txid(), 0).expect("funding outpoint");
        pair.deliver(Who::A); // funding_created
        pair.deliver(Who::B); // funding_signed
        assert!(
            pair.a.has_event(|e| matches!(e, ChannelEvent::BroadcastFunding { .. })),
            "the funder may broadcast: {:?} {:?}",
            pair.a.events,
            pair.a.errors
        );
        pair.chain.submit_transaction(&funding).expect("the funding transaction is valid");
        pair.checked += 1;
        pair.funding = Some(funding.clone());
        if !opts.zero_conf {
            pair.chain.mine(3, &TestKey::new(99).address()).expect("mine");
            let block_height = pair.chain.height() - 2;
            let tip = pair.chain.height();
            for who in [Who::A, Who::B] {
                let node = pair.node(who);
                node.channel.funding_confirmed(block_height, 1);
                node.channel.best_block_updated(tip);
            }
        }
        let _ = coin_of(&funding, 0);
        pair.settle();
        for who in [Who::A, Who::B] {
            let node = pair.node_ref(who);
            assert!(
                node.has_event(|e| *e == ChannelEvent::ChannelReady),
                "{who:?} is ready: {:?} {:?}",
                node.events,
                node.errors
            );
            assert!(node.channel.is_usable());
        }
        pair
    }

    /// A fresh preimage and its hash.
    pub fn new_preimage(&mut self) -> (PaymentPreimage, PaymentHash) {
        let preimage = PaymentPreimage([self.next_preimage; 32]);
        self.next_preimage = self.next_preimage.wrapping_add(1);
        (preimage, PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array()))
    }

    /// `from` offers an HTLC of `amount_msat` (not yet committed). Returns its
    /// id and preimage.
    pub fn add(&mut self, from: Who, amount_msat: u64) -> Result<(u64, PaymentPreimage), ChannelError> {
        self.add_with_source(from, amount_msat, test_source())
    }

    /// As [`Pair::add`], with the HTLC's source given.
    pub fn add_with_source(
        &mut self,
        from: Who,
        amount_msat: u64,
        source: HtlcSource,
    ) -> Result<(u64, PaymentPreimage), ChannelError> {
        let (preimage, hash) = self.new_preimage();
        let height = self.chain.height();
        let node = self.node(from);
        let id = node.channel.add_htlc(amount_msat, hash, height + 40, dummy_onion(), source)?;
        self.pump(from);
        Ok((id, preimage))
    }

    /// `from` signs what is pending.
    pub fn commit(&mut self, from: Who) -> bool {
        let sent = self.node(from).channel.send_commitment().expect("send_commitment");
        self.pump(from);
        sent
    }

    /// A payment from `from`, committed on both sides. Returns id and preimage.
    pub fn pay(&mut self, from: Who, amount_msat: u64) -> (u64, PaymentPreimage) {
        let added = self.add(from, amount_msat).expect("add_htlc");
        self.commit(from);
        self.settle();
        added
    }

    /// The receiver (`to`) claims HTLC `id` with `preimage`, and the pair
    /// settles.
    pub fn claim(&mut self, to: Who, id: u64, preimage: PaymentPreimage) {
        self.node(to).channel.fulfill_htlc(id, preimage, None).expect("fulfill_htlc");
        self.pump(to);
        self.commit(to);
        self.settle();
    }

    /// The receiver (`to`) fails HTLC `id`, and the pair settles.
    pub fn fail(&mut self, to: Who, id: u64) {
        self.node(to).channel.fail_htlc(id, vec![0xfa; 32]).expect("fail_htlc");
        self.pump(to);
        self.commit(to);
        self.settle();
    }

    /// Drops the connection: undelivered messages are lost.
    pub fn disconnect(&mut self) {
        for who in [Who::A, Who::B] {
            let node = self.node(who);
            node.channel.peer_disconnected();
            node.to_peer.clear();
            self.pump(who);
            self.node(who).to_peer.clear();
        }
    }

    /// Connects again and runs `channel_reestablish`.
    pub fn reconnect(&mut self) {
        for who in [Who::A, Who::B] {
            self.node(who).channel.peer_connected();
            self.pump(who);
        }
        self.settle();
    }

    /// `who` crashes: everything not durable is lost, the channel is rebuilt
    /// from the snapshot of its last durable update, and the peer sees a
    /// disconnection.
    pub fn crash(&mut self, who: Who) {
        let height = self.chain.height();
        let node = self.node(who);
        let snapshot = node.durable.last().expect("a funded channel has updates").snapshot.clone();
        node.pending.clear();
        node.to_peer.clear();
        let signer = node.signer();
        node.channel =
            Channel::from_snapshot(snapshot, signer, node.config.clone(), node.close_script.clone(), height);
        let other = self.node(who.other());
        other.channel.peer_disconnected();
        other.to_peer.clear();
        self.pump(who.other());
        self.node(who.other()).to_peer.clear();
    }

    /// Cooperative close started by `who`; returns the closing transaction,
    /// checked and mined on the chain.
    pub fn close(&mut self, who: Who) -> Transaction {
        self.node(who).channel.shutdown(None).expect("shutdown");
        self.pump(who);
        self.settle();
        let tx = self
            .a
            .events
            .iter()
            .find_map(|e| match e {
                ChannelEvent::BroadcastClosing { transaction } => Some(transaction.clone()),
                _ => None,
            })
            .unwrap_or_else(|| {
                panic!("A agreed a close: {:?} {:?} / {:?}", self.a.events, self.a.errors, self.b.errors)
            });
        assert!(self
            .b
            .events
            .iter()
            .any(|e| matches!(e, ChannelEvent::BroadcastClosing { transaction } if *transaction == tx)));
        self.chain.submit_transaction(&tx).expect("the closing transaction is valid");
        self.checked += 1;
        self.chain.mine(1, &TestKey::new(99).address()).expect("mine");
        tx
    }

    fn funding_output(&self) -> TxOut {
        self.funding.as_ref().expect("funded").output[0].clone()
    }

    fn params(&self, who: Who) -> ChannelTransactionParameters {
        self.node_ref(who).channel.snapshot().params.clone()
    }

    /// Signs `who`'s holder commitment fully and checks it, and each of its
    /// HTLC transactions, against the chain's consensus rules.
    fn check_holder_commitment(
        &mut self,
        who: Who,
        commitment: &HolderCommitmentTransaction,
        update: &MonitorUpdate,
    ) {
        let params = update.snapshot.params.clone();
        let tx = self.sign_holder_commitment(who, commitment, &params);
        // Before the funding is broadcast, check the commitment as a package
        // with it.
        let funding = self.funding.clone().expect("the funding is built before any commitment is signed");
        let package = if self.chain.transaction(&funding.compute_txid()).expect("lookup").is_some() {
            vec![tx.clone()]
        } else {
            vec![funding, tx.clone()]
        };
        let results = self.chain.test_accept(&package);
        assert!(results.iter().all(Result::is_ok), "{who:?}'s commitment is valid: {results:?}");
        self.checked += 1;
        for (htlc, htlc_tx) in self.sign_holder_htlc_transactions(who, commitment, update) {
            let spent = tx.output[htlc.transaction_output_index.expect("nondust") as usize].clone();
            verify_scripts(&htlc_tx, &[spent])
                .unwrap_or_else(|e| panic!("{who:?}'s HTLC transaction is valid: {e}"));
            self.checked += 1;
        }
    }

    /// `who`'s holder commitment, fully signed.
    pub fn sign_holder_commitment(
        &self,
        who: Who,
        commitment: &HolderCommitmentTransaction,
        params: &ChannelTransactionParameters,
    ) -> Transaction {
        let signer = self.node_ref(who).signer();
        let secp = Secp256k1::new();
        let our_sig =
            signer.sign_holder_commitment(params, commitment, &secp).expect("sign holder commitment");
        let counterparty = &params.counterparty_parameters.as_ref().expect("funded").pubkeys.funding_pubkey;
        let funding_script = lightning::ln::chan_utils::make_funding_redeemscript(
            &params.holder_pubkeys.funding_pubkey,
            counterparty,
        );
        let der = |s: &bitcoin::secp256k1::ecdsa::Signature| {
            let mut v = s.serialize_der().to_vec();
            v.push(1);
            v
        };
        let holder_first = params.holder_pubkeys.funding_pubkey.serialize() < counterparty.serialize();
        let (first, second) = if holder_first {
            (der(&our_sig), der(&commitment.counterparty_sig))
        } else {
            (der(&commitment.counterparty_sig), der(&our_sig))
        };
        let mut tx = commitment.trust().built_transaction().transaction.clone();
        tx.input[0].witness = Witness::from_slice(&[Vec::new(), first, second, funding_script.to_bytes()]);
        tx
    }

    /// The fully signed HTLC transactions of `who`'s holder commitment made
    /// by `update`: timeouts for offered HTLCs, successes (with the
    /// preimage) for received ones.
    pub fn sign_holder_htlc_transactions(
        &self,
        who: Who,
        commitment: &HolderCommitmentTransaction,
        update: &MonitorUpdate,
    ) -> Vec<(lightning::ln::chan_utils::HTLCOutputInCommitment, Transaction)> {
        let node = self.node_ref(who);
        let signer = node.signer();
        let secp = Secp256k1::new();
        let params = update.snapshot.params.clone();
        let commitment_txid = commitment.trust().txid();
        let contest_delay = params.counterparty_parameters.as_ref().expect("funded").selected_contest_delay;
        let number = update.snapshot.local_number;
        let mut txs = Vec::new();
        for (htlc, counterparty_sig) in
            commitment.nondust_htlcs().iter().zip(&commitment.counterparty_htlc_sigs)
        {
            let preimage = (!htlc.offered).then(|| PaymentPreimage(self.preimage_for(htlc.payment_hash)));
            let desc = HTLCDescriptor {
                channel_derivation_parameters: ChannelDerivationParameters {
                    value_satoshis: params.channel_value_satoshis,
                    keys_id: node.keys_id,
                    transaction_parameters: params.clone(),
                },
                commitment_txid,
                per_commitment_number: commitment_index(number),
                per_commitment_point: commitment.per_commitment_point(),
                feerate_per_kw: commitment.negotiated_feerate_per_kw(),
                htlc: htlc.clone(),
                preimage,
                counterparty_sig: *counterparty_sig,
            };
            let (mut htlc_tx, script) = htlc_transaction(commitment, htlc, contest_delay);
            let sig = signer.sign_holder_htlc_transaction(&htlc_tx, 0, &desc, &secp).expect("sign HTLC tx");
            htlc_tx.input[0].witness = desc.tx_input_witness(&sig, &script);
            txs.push((htlc.clone(), htlc_tx));
        }
        txs
    }

    /// `who`'s latest durable holder commitment, fully signed, with its
    /// signed HTLC transactions: what a force-close broadcasts.
    pub fn force_close_transactions(
        &self,
        who: Who,
    ) -> (Transaction, Vec<(lightning::ln::chan_utils::HTLCOutputInCommitment, Transaction)>) {
        let (update, commitment) = self
            .node_ref(who)
            .durable
            .iter()
            .rev()
            .find_map(|u| {
                u.steps.iter().find_map(|s| match s {
                    UpdateStep::HolderCommitment { commitment, .. } => Some((u, commitment)),
                    _ => None,
                })
            })
            .expect("a funded channel has a holder commitment");
        let tx = self.sign_holder_commitment(who, commitment, &update.snapshot.params);
        (tx, self.sign_holder_htlc_transactions(who, commitment, update))
    }

    /// The preimage of a hash made by [`Pair::new_preimage`].
    fn preimage_for(&self, hash: PaymentHash) -> [u8; 32] {
        (0..=255u8)
            .map(|b| [b; 32])
            .find(|p| sha256::Hash::hash(p).to_byte_array() == hash.0)
            .expect("every test preimage is 32 equal bytes")
    }

    /// Our balance on `who`'s current commitment.
    pub fn balance(&self, who: Who) -> u64 {
        self.node_ref(who).channel.balance_msat()
    }

    pub fn phase(&self, who: Who) -> Phase {
        self.node_ref(who).channel.phase().clone()
    }

    pub fn chain_source(&self) -> &dyn ChainSource {
        &self.chain
    }
}

/// A small deterministic xorshift generator for interleavings and mutations.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// True with the given percent probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
