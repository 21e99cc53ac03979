//! On-chain enforcement (DESIGN.md I7): the transactions that get every
//! output a closed channel owes us, computed from the monitor alone.
//!
//! [`ChannelMonitor::claims`] is a pure function of the monitor's durable
//! state (its commitments, secrets, preimages, the confirmed funding spend
//! and the confirmed spends of its outputs), the chain height, a feerate and
//! the script to sweep to. It keeps no claim state of its own: after a
//! restart or a reorg the same call gives the same claims, so the runtime
//! simply broadcasts what it returns at every block until nothing is left.
//!
//! - our commitment, signed, when the channel was force-closed
//!   ([`ClaimKind::HolderCommitment`]);
//! - on our commitment: HTLC-timeout and HTLC-success transactions (the
//!   counterparty's pre-signed second stage), then our delayed outputs
//!   after their CSV delay;
//! - on theirs: HTLC outputs spent directly (with the preimage, or after
//!   the timeout) and `to_remote`;
//! - on a revoked commitment: every output, and the outputs of their
//!   second-stage HTLC transactions, with the revocation key.
//!
//! Claims we build pay their fee from the value they claim, at a feerate
//! that rises with every block the claim could have confirmed and did not
//! (fast and up to 16 times the base when the counterparty could take the
//! output instead, slowly and up to twice the base when nobody else can),
//! and doubles when a deadline (an HTLC's expiry) is close. A fee that
//! would leave less than the dust limit is clamped; only an output that
//! cannot pay the minimum relay fee and leave the dust limit waits
//! ([`WaitReason::Dust`]). Rebroadcast
//! at each block, a bumped claim replaces the previous one (it spends the
//! same output and signals replaceability). `owed` lists what is owed.

mod fees;
mod owed;

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::{All, PublicKey, Secp256k1};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::InMemorySigner;

use crate::channel::commitment::htlc_transaction;
use crate::monitor::{ChannelMonitor, ANTI_REORG_DELAY};
pub use fees::{FeeNeed, FeeNeedKind, FeeSignError, ANCHOR_OUTPUT_SAT};
use owed::{Owed, Spend};

/// What a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClaimKind {
    /// Our latest commitment, fully signed: the force-close itself.
    HolderCommitment,
    /// An HTLC we offered, on our commitment, after its expiry.
    HtlcTimeout,
    /// An HTLC offered to us, on our commitment, with its preimage.
    HtlcSuccess,
    /// Our `to_local`, or the output of our HTLC transaction, after the CSV
    /// delay.
    DelayedOutput,
    /// An HTLC offered to us, on their commitment, with its preimage.
    CounterpartyHtlcSuccess,
    /// An HTLC we offered, on their commitment, after its expiry.
    CounterpartyHtlcTimeout,
    /// Our `to_remote` output on their commitment.
    ToRemote,
    /// An output of a revoked commitment or of its HTLC transactions.
    Justice,
    /// The agreed cooperative closing transaction, broadcast again after a
    /// reorg took it out of the chain.
    CooperativeClose,
}

/// The chain facts a claim is built against.
#[derive(Debug, Clone, Copy)]
pub struct ClaimContext<'a> {
    /// The height of the chain tip.
    pub height: u32,
    /// The feerate claims start at, in satoshis per 1000 weight units.
    pub feerate_per_kw: u32,
    /// Where claimed funds go: a script of the node's on-chain wallet.
    pub sweep_script: &'a ScriptBuf,
}

/// A signed transaction to broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// What it takes.
    pub kind: ClaimKind,
    /// The output it spends (the funding output for our commitment).
    pub outpoint: OutPoint,
    /// That output's value.
    pub value_sat: u64,
    /// The transaction.
    pub tx: Transaction,
}

/// Why an owed output is not claimed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Its timelock opens at this height (the first block it can be mined
    /// in).
    Timelock(u32),
    /// It is worth less than the fee of claiming it plus the dust limit.
    Dust,
    /// The signer refused to sign it.
    SignerRefused,
}

/// An owed output not claimed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// What it would take.
    pub kind: ClaimKind,
    /// The output.
    pub outpoint: OutPoint,
    /// Its value.
    pub value_sat: u64,
    /// Why it waits.
    pub reason: WaitReason,
}

/// What [`ChannelMonitor::claims`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimPlan {
    /// Transactions to broadcast now.
    pub claims: Vec<Claim>,
    /// Owed outputs not claimed now.
    pub waiting: Vec<Waiting>,
    /// Claims the wallet must fund (anchor channels): broadcast once funded
    /// and signed with [`ChannelMonitor::sign_fee_input`].
    pub fee_needs: Vec<FeeNeed>,
}

/// The weight of a funded HTLC transaction with one wallet input and a
/// change output, about: its fee is capped so that it never pays more than
/// the HTLC is worth.
const HTLC_FEE_NEED_WEIGHT: u64 = 1_200;

/// The lowest feerate a claim pays: Bitcoin Core's minimum relay fee (1
/// sat/vB), in satoshis per 1000 weight units.
pub const MIN_FEERATE_PER_KW: u64 = 253;

/// An owed output worth at most this is not worth claiming: the minimum
/// relay fee of its claim would leave less than the dust limit.
pub const UNECONOMIC_SAT: u64 = CLAIM_DUST_LIMIT_SAT + 250;

/// Blocks after an HTLC's expiry after which an HTLC output nobody claimed
/// is given up on, so that the channel's enforcement can end.
pub const ABANDONED_HTLC_BLOCKS: u32 = 2016;

/// The lowest output value a claim leaves (Bitcoin Core's dust limit for a
/// P2WSH or P2TR output, the largest standard sweep scripts).
pub const CLAIM_DUST_LIMIT_SAT: u64 = 330;

impl ChannelMonitor {
    /// The transactions to broadcast now to take what the channel owes us,
    /// and the owed outputs that must wait. `signer` must be this channel's
    /// (derived from [`crate::channel::ChannelSnapshot::channel_keys_id`]).
    ///
    /// Outputs already spent by a confirmed transaction (ours or theirs) are
    /// not claimed again.
    pub fn claims(&self, signer: &InMemorySigner, ctx: &ClaimContext<'_>) -> ClaimPlan {
        let secp = Secp256k1::new();
        let mut plan = ClaimPlan::default();
        let anchors = self.params.channel_type_features.supports_anchors_zero_fee_htlc_tx();
        if let (Some(tx), None) = (&self.closing_tx, &self.funding_spend) {
            plan.claims.push(Claim {
                kind: ClaimKind::CooperativeClose,
                outpoint: tx.input[0].previous_output,
                value_sat: self.params.channel_value_satoshis,
                tx: tx.clone(),
            });
        }
        if self.broadcast_holder && !self.stale && self.funding_spend.is_none() {
            if let Some(tx) = self.signed_holder_commitment(signer, &secp) {
                let outpoint = tx.input[0].previous_output;
                if anchors {
                    plan.fee_needs.extend(self.anchor_cpfp_need(&tx, self.commitment_target(ctx)));
                }
                plan.claims.push(Claim {
                    kind: ClaimKind::HolderCommitment,
                    outpoint,
                    value_sat: self.params.channel_value_satoshis,
                    tx,
                });
            }
        }
        for owed in self.owed().into_iter().filter(|o| !self.is_spent(&o.outpoint)) {
            let waiting = |reason| Waiting {
                kind: owed.kind,
                outpoint: owed.outpoint,
                value_sat: owed.output.value.to_sat(),
                reason,
            };
            if ctx.height + 1 < owed.mineable_at {
                plan.waiting.push(waiting(WaitReason::Timelock(owed.mineable_at)));
                continue;
            }
            if anchors && matches!(owed.spend, Spend::HolderHtlc(_)) {
                // Zero-fee: the wallet pays, at most about what it takes.
                let value = owed.output.value.to_sat();
                let cap = value * 1000 / HTLC_FEE_NEED_WEIGHT;
                let rate = u32::try_from(self.bumped_feerate(&owed, ctx).min(cap)).unwrap_or(u32::MAX);
                plan.fee_needs.extend(self.htlc_fee_need(&owed, rate));
                continue;
            }
            match self.build_claim(&owed, signer, ctx, &secp) {
                Ok(tx) => plan.claims.push(Claim {
                    kind: owed.kind,
                    outpoint: owed.outpoint,
                    value_sat: owed.output.value.to_sat(),
                    tx,
                }),
                Err(reason) => plan.waiting.push(waiting(reason)),
            }
        }
        plan
    }

    /// The feerate our commitment must reach: the base, doubled when one of
    /// its HTLCs expires within two [`ANTI_REORG_DELAY`]s (the commitment
    /// and then the HTLC's own claim must confirm before it), four times
    /// within one.
    fn commitment_target(&self, ctx: &ClaimContext<'_>) -> u32 {
        let base = ctx.feerate_per_kw.max(MIN_FEERATE_PER_KW as u32);
        let soonest = self
            .holder
            .as_ref()
            .and_then(|(h, _)| h.nondust_htlcs().iter().map(|htlc| htlc.cltv_expiry).min());
        match soonest {
            Some(expiry) if expiry <= ctx.height + ANTI_REORG_DELAY => base.saturating_mul(4),
            Some(expiry) if expiry <= ctx.height + 2 * ANTI_REORG_DELAY => base.saturating_mul(2),
            _ => base,
        }
    }

    /// Whether on-chain enforcement is over: the funding spend, every spend
    /// of an output owed to us and every spend of an HTLC output of the
    /// commitment (whoever took it) are [`ANTI_REORG_DELAY`] blocks deep, and
    /// no owed output is left unspent (the uneconomic excepted, and HTLC
    /// outputs nobody took [`ABANDONED_HTLC_BLOCKS`] after their expiry).
    /// Never while the funding spend's transaction is unknown (a monitor
    /// written before it was kept), unless it is the cooperative close.
    pub fn onchain_settled(&self) -> bool {
        let Some(spend) = &self.funding_spend else { return false };
        let deep = |height: u32| self.best_height + 1 >= height + ANTI_REORG_DELAY;
        let cooperative = self.closing_tx.as_ref().is_some_and(|c| c.compute_txid() == spend.txid);
        if !deep(spend.height) || spend.tx.is_none() && !cooperative {
            return false;
        }
        let owed = self.owed();
        let htlcs_decided = self.commitment_htlc_outpoints().iter().all(|(o, expiry)| {
            // Ours to claim and worth it: it will be spent.
            let worth_claiming =
                owed.iter().any(|w| w.outpoint == *o && w.output.value.to_sat() > UNECONOMIC_SAT);
            match self.spent_by(o) {
                Some(height) => deep(height),
                None => !worth_claiming && self.best_height >= expiry + ABANDONED_HTLC_BLOCKS,
            }
        });
        htlcs_decided
            && owed.iter().all(|o| match self.spent_by(&o.outpoint) {
                Some(height) => deep(height),
                None => o.output.value.to_sat() <= UNECONOMIC_SAT,
            })
    }

    /// The outputs owed to us (for the monitor's choice of what to follow).
    pub(crate) fn owed_outpoints(&self) -> Vec<OutPoint> {
        self.owed().into_iter().map(|o| o.outpoint).collect()
    }

    /// The height of the confirmed transaction spending `outpoint`, if any.
    fn spent_by(&self, outpoint: &OutPoint) -> Option<u32> {
        self.spends
            .iter()
            .find(|s| s.tx.input.iter().any(|i| i.previous_output == *outpoint))
            .map(|s| s.height)
    }

    fn is_spent(&self, outpoint: &OutPoint) -> bool {
        self.spent_by(outpoint).is_some()
    }

    /// Our latest commitment with both signatures.
    fn signed_holder_commitment(
        &self,
        signer: &InMemorySigner,
        secp: &Secp256k1<All>,
    ) -> Option<Transaction> {
        let (commitment, _) = self.holder.as_ref()?;
        let ours = signer.sign_holder_commitment(&self.params, commitment, secp).ok()?;
        let counterparty = &self.params.counterparty_parameters.as_ref()?.pubkeys.funding_pubkey;
        let holder = &self.params.holder_pubkeys.funding_pubkey;
        let script = lightning::ln::chan_utils::make_funding_redeemscript(holder, counterparty);
        let der = |s: &bitcoin::secp256k1::ecdsa::Signature| {
            let mut v = s.serialize_der().to_vec();
            v.push(bitcoin::EcdsaSighashType::All as u8);
            v
        };
        let (first, second) = if holder.serialize() < counterparty.serialize() {
            (der(&ours), der(&commitment.counterparty_sig))
        } else {
            (der(&commitment.counterparty_sig), der(&ours))
        };
        let mut tx = commitment.trust().built_transaction().transaction.clone();
        tx.input[0].witness = Witness::from_slice(&[Vec::new(), first, second, script.to_bytes()]);
        Some(tx)
    }

    /// Builds and signs the claim of `owed`.
    fn build_claim(
        &self,
        owed: &Owed,
        signer: &InMemorySigner,
        ctx: &ClaimContext<'_>,
        secp: &Secp256k1<All>,
    ) -> Result<Transaction, WaitReason> {
        if let Spend::HolderHtlc(desc) = &owed.spend {
            // The counterparty signed this transaction and its fee (never
            // zero here: anchor channels' go through `FeeNeed`s).
            let (holder, _) = self.holder.as_ref().expect("holder HTLCs come from the holder commitment");
            let (mut tx, script) = htlc_transaction(holder, &desc.htlc, desc_contest_delay(desc));
            let sig = signer
                .sign_holder_htlc_transaction(&tx, 0, desc, secp)
                .map_err(|_| WaitReason::SignerRefused)?;
            tx.input[0].witness = desc.tx_input_witness(&sig, &script);
            return Ok(tx);
        }
        let value = owed.output.value.to_sat();
        let feerate = self.bumped_feerate(owed, ctx);
        // Sign once to learn the weight, then again with the fee taken.
        let anchors = self.params.channel_type_features.supports_anchors_zero_fee_htlc_tx();
        let unsigned = sweep_tx(owed, ctx.sweep_script, value, anchors);
        let weight = self.sign_sweep(owed, unsigned, signer, secp)?.weight().to_wu() + 4;
        // A fee that would eat the output is clamped to what leaves the dust
        // limit, as long as that still pays the minimum relay feerate: a
        // claim is never abandoned because it waited.
        let fee = (feerate * weight).div_ceil(1000);
        let floor = (MIN_FEERATE_PER_KW * weight).div_ceil(1000);
        let fee = fee.min(value.saturating_sub(CLAIM_DUST_LIMIT_SAT)).max(floor);
        let Some(left) = value.checked_sub(fee).filter(|v| *v >= CLAIM_DUST_LIMIT_SAT) else {
            return Err(WaitReason::Dust);
        };
        self.sign_sweep(owed, sweep_tx(owed, ctx.sweep_script, left, anchors), signer, secp)
    }

    /// The feerate for `owed` now. Claims nobody else can take (our
    /// `to_remote` and delayed outputs) rise slowly, by a sixteenth of the
    /// base for each block they could have confirmed in, up to twice the
    /// base; contested ones (HTLC outputs, justice) by half of it, up to 16
    /// times the base, and double within [`ANTI_REORG_DELAY`] blocks of
    /// their deadline.
    fn bumped_feerate(&self, owed: &Owed, ctx: &ClaimContext<'_>) -> u64 {
        let base = u64::from(ctx.feerate_per_kw).max(MIN_FEERATE_PER_KW);
        // The first block a claim could be in is the one after we learnt of
        // its output.
        let first = owed.mineable_at.max(self.funding_height() + 1);
        let waited = u64::from((ctx.height + 1).saturating_sub(first));
        let contested = !matches!(owed.kind, ClaimKind::ToRemote | ClaimKind::DelayedOutput);
        let (step, cap) = if contested { (2, 16) } else { (16, 2) };
        let mut feerate = (base + base * waited / step).min(base * cap);
        if contested && owed.deadline.is_some_and(|d| d <= ctx.height + ANTI_REORG_DELAY) {
            feerate *= 2;
        }
        feerate
    }

    fn funding_height(&self) -> u32 {
        self.funding_spend.as_ref().map_or(0, |s| s.height)
    }

    /// Signs the single input of a sweep of `owed`.
    fn sign_sweep(
        &self,
        owed: &Owed,
        mut tx: Transaction,
        signer: &InMemorySigner,
        secp: &Secp256k1<All>,
    ) -> Result<Transaction, WaitReason> {
        let amount = owed.output.value.to_sat();
        let sig_bytes = |sig: bitcoin::secp256k1::ecdsa::Signature| {
            let mut v = sig.serialize_der().to_vec();
            v.push(bitcoin::EcdsaSighashType::All as u8);
            v
        };
        let refused = |_| WaitReason::SignerRefused;
        let witness = match &owed.spend {
            Spend::Delayed(desc) => signer.sign_dynamic_p2wsh_input(&tx, 0, desc, secp).map_err(refused)?,
            Spend::StaticPayment(desc) => {
                signer.sign_counterparty_payment_input(&tx, 0, desc, secp).map_err(refused)?
            }
            Spend::CounterpartyHtlc { htlc, point, script, preimage } => {
                let sig = signer
                    .sign_counterparty_htlc_transaction(&self.params, &tx, 0, amount, point, htlc, secp)
                    .map_err(refused)?;
                let second = preimage.map(|p| p.0.to_vec()).unwrap_or_default();
                Witness::from_slice(&[sig_bytes(sig), second, script.to_bytes()])
            }
            Spend::RevokedOutput { secret } => {
                let sig = signer
                    .sign_justice_revoked_output(&self.params, &tx, 0, amount, secret, secp)
                    .map_err(refused)?;
                let script = self.revoked_output_script(secret, secp);
                Witness::from_slice(&[sig_bytes(sig), vec![1], script.to_bytes()])
            }
            Spend::RevokedHtlc { secret, htlc, script, revocation } => {
                let sig = signer
                    .sign_justice_revoked_htlc(&self.params, &tx, 0, amount, secret, htlc, secp)
                    .map_err(refused)?;
                Witness::from_slice(&[sig_bytes(sig), revocation.serialize().to_vec(), script.to_bytes()])
            }
            Spend::HolderHtlc(_) => unreachable!("built by build_claim"),
        };
        tx.input[0].witness = witness;
        Ok(tx)
    }

    /// The revokeable script of the counterparty's commitment whose
    /// per-commitment secret is `secret`.
    fn revoked_output_script(
        &self,
        secret: &bitcoin::secp256k1::SecretKey,
        secp: &Secp256k1<All>,
    ) -> ScriptBuf {
        use lightning::ln::chan_utils::{get_revokeable_redeemscript, TxCreationKeys};
        let point = PublicKey::from_secret_key(secp, secret);
        let counterparty = &self.params.counterparty_parameters.as_ref().expect("funded channel").pubkeys;
        let keys =
            TxCreationKeys::from_channel_static_keys(&point, counterparty, &self.params.holder_pubkeys, secp);
        get_revokeable_redeemscript(
            &keys.revocation_key,
            self.params.holder_selected_contest_delay,
            &keys.broadcaster_delayed_payment_key,
        )
    }
}

/// The contest delay of our HTLC transactions: the one the counterparty
/// chose for us.
fn desc_contest_delay(desc: &lightning::sign::HTLCDescriptor) -> u16 {
    desc.channel_derivation_parameters.transaction_parameters.as_holder_broadcastable().contest_delay()
}

/// An unsigned one-input, one-output sweep of `owed` paying `value` to
/// `script`, with the lock time and sequence its script requires (`anchors`:
/// the channel has zero-fee-HTLC anchors).
fn sweep_tx(owed: &Owed, script: &ScriptBuf, value: u64, anchors: bool) -> Transaction {
    let (lock_time, sequence) = match &owed.spend {
        Spend::Delayed(desc) => (0, u32::from(desc.to_self_delay)),
        Spend::StaticPayment(_) => (0, if anchors { 1 } else { Sequence::ENABLE_RBF_NO_LOCKTIME.0 }),
        Spend::CounterpartyHtlc { htlc, .. } => {
            // Anchor channels' HTLC outputs carry `1 OP_CHECKSEQUENCEVERIFY`
            // outside the revocation branch.
            let lock = if htlc.offered { 0 } else { htlc.cltv_expiry };
            (lock, if anchors { 1 } else { Sequence::ENABLE_RBF_NO_LOCKTIME.0 })
        }
        Spend::RevokedOutput { .. } | Spend::RevokedHtlc { .. } => (0, Sequence::ENABLE_RBF_NO_LOCKTIME.0),
        Spend::HolderHtlc(_) => unreachable!("HTLC transactions are pre-signed"),
    };
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(lock_time),
        input: vec![TxIn {
            previous_output: owed.outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence(sequence),
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(value), script_pubkey: script.clone() }],
    }
}
