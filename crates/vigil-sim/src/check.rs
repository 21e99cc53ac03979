//! The invariants checked after a program has run and the world settled
//! (DESIGN.md §1). Each returns the violations it finds, in words.

use std::collections::{BTreeMap, BTreeSet};

use lightning::ln::types::ChannelId;
use lightning::types::payment::PaymentHash;
use vigil_core::chain_monitor::{ARCHIVE_NAMESPACE, MONITORS_NAMESPACE};
use vigil_core::manager::records::PAYMENTS_NAMESPACE;
use vigil_core::manager::{Event, PaymentId, PaymentStatus};
use vigil_core::onchain::UNECONOMIC_SAT;

use crate::accounts::ClosingTrees;
use crate::world::World;

/// Every invariant, over a settled world.
pub fn check(world: &World) -> Vec<String> {
    let mut v = world.violations.clone();
    only_asked_closes(world, &mut v);
    payments_resolve_once(world, &mut v);
    nothing_left(world, &mut v);
    let trees = world.closing_trees();
    value_conserved(world, &trees, &mut v);
    everything_claimed_on_chain(world, &trees, &mut v);
    only_monitors_and_records_on_disk(world, &mut v);
    v
}

/// The largest payment record expected on disk: ids, hashes, amounts, a
/// status and a preimage take well under this.
const MAX_RECORD_BYTES: usize = 1024;

/// The manager is never persisted: a node's disk holds monitors (live and
/// archived) and small payment records, nothing else, so a restart (which
/// reads only the first and the last) rebuilds it from them alone.
fn only_monitors_and_records_on_disk(world: &World, v: &mut Vec<String>) {
    for (i, node) in world.nodes.iter().enumerate() {
        for ((namespace, key), value) in &node.durable {
            if ![MONITORS_NAMESPACE, ARCHIVE_NAMESPACE, PAYMENTS_NAMESPACE].contains(&namespace.as_str()) {
                v.push(format!("node {i}: {namespace}/{key} on disk is neither a monitor nor a record"));
            }
            if namespace == PAYMENTS_NAMESPACE && value.len() > MAX_RECORD_BYTES {
                v.push(format!("node {i}: record {key} is {} bytes, not small", value.len()));
            }
        }
    }
}

/// The channels a close is allowed for: those the program force-closed,
/// and those closed because an HTLC reached its BOLT 2 deadline (an
/// offline or slow peer). Either end may report such a close.
fn allowed_closes(world: &World) -> BTreeSet<ChannelId> {
    let mut allowed = world.requested_closes.clone();
    for node in &world.nodes {
        for e in &node.user.delivered {
            if let Event::ChannelClosed { channel_id, reason } = e {
                if reason.contains("reached its deadline") {
                    allowed.insert(*channel_id);
                }
            }
        }
    }
    allowed
}

/// No channel closed but those allowed, and every open channel is usable.
fn only_asked_closes(world: &World, v: &mut Vec<String>) {
    let allowed = allowed_closes(world);
    for (i, node) in world.nodes.iter().enumerate() {
        for e in &node.user.delivered {
            if let Event::ChannelClosed { channel_id, .. } = e {
                if !allowed.contains(channel_id) {
                    v.push(format!("node {i}: a channel closed unasked: {e:?}"));
                }
            }
        }
        for c in node.manager.list_channels() {
            if !c.usable {
                v.push(format!("node {i}: channel {} is not usable after settling", c.channel_id));
            }
        }
    }
}

/// Every payment a payer recorded ends with exactly one of `PaymentSent`
/// and `PaymentFailed`, its record agrees, and a payment the payee claimed
/// is never reported failed.
fn payments_resolve_once(world: &World, v: &mut Vec<String>) {
    let mut claimed: BTreeSet<PaymentHash> = BTreeSet::new();
    for node in &world.nodes {
        for e in &node.user.delivered {
            if let Event::PaymentClaimed { payment_hash, .. } = e {
                claimed.insert(*payment_hash);
            }
        }
    }
    for (i, node) in world.nodes.iter().enumerate() {
        let mut outcomes: BTreeMap<PaymentId, BTreeSet<&'static str>> = BTreeMap::new();
        for e in &node.user.delivered {
            match e {
                Event::PaymentSent { payment_id, .. } => {
                    outcomes.entry(*payment_id).or_default().insert("sent");
                }
                Event::PaymentFailed { payment_id, payment_hash, .. } => {
                    outcomes.entry(*payment_id).or_default().insert("failed");
                    if claimed.contains(payment_hash) {
                        v.push(format!(
                            "node {i}: payment {payment_hash} failed although its payee claimed it"
                        ));
                    }
                }
                _ => {}
            }
        }
        for record in node.manager.list_payments() {
            let seen = outcomes.get(&record.payment_id).cloned().unwrap_or_default();
            let expected = match record.status {
                PaymentStatus::Pending => {
                    v.push(format!("node {i}: payment {} never resolved", record.payment_hash));
                    continue;
                }
                PaymentStatus::Succeeded { .. } => "sent",
                PaymentStatus::Failed { .. } => "failed",
            };
            if seen.len() != 1 || !seen.contains(expected) {
                v.push(format!(
                    "node {i}: payment {} has record {:?} but the user saw {seen:?}",
                    record.payment_hash, record.status
                ));
            }
        }
    }
}

/// No HTLC is left on an open channel, none we offered is left undecided
/// on a closed one, and every monitor event and deferred claim is
/// acknowledged.
fn nothing_left(world: &World, v: &mut Vec<String>) {
    for (i, node) in world.nodes.iter().enumerate() {
        for m in node.manager.chain_monitor().monitors() {
            if m.is_closed() && m.pending_outbound().next().is_some() {
                v.push(format!(
                    "node {i}: HTLCs we offered left undecided on closed {}: {:?}",
                    m.channel_id(),
                    m.pending_outbound().map(|h| h.id).collect::<Vec<_>>()
                ));
            }
            if !m.is_closed() && !m.channel_snapshot().ledger.htlcs.is_empty() {
                v.push(format!(
                    "node {i}: HTLCs left on {}: {}",
                    m.channel_id(),
                    m.channel_snapshot().ledger.htlcs.len()
                ));
            }
            if !m.events().is_empty() {
                v.push(format!("node {i}: unacknowledged events on {}: {:?}", m.channel_id(), m.events()));
            }
            if !m.deferred_events().is_empty() {
                v.push(format!("node {i}: deferred claims left on {}", m.channel_id()));
            }
        }
    }
}

/// Value is conserved: in every channel both sides agree and add up to its
/// capacity, and every node holds what it started with, plus what it
/// received and earned forwarding, minus what it paid. A node with closed
/// channels holds part of that on chain: its sweeps and fee wallet, less
/// its starting fee wallet, plus the fees it bore ([`crate::accounts`]),
/// must make up the rest, to BOLT 3's rounding of commitment outputs; it
/// may be short of its closed channels' trimmed HTLCs, never ahead of
/// them, and all nodes together are short of exactly what was trimmed.
fn value_conserved(world: &World, trees: &ClosingTrees, v: &mut Vec<String>) {
    let accounts = world.accounts(trees);
    let (mut total_off, mut total_rounding) = (0i128, 0i128);
    for (i, node) in world.nodes.iter().enumerate() {
        for c in node.manager.list_channels() {
            let Some(j) = world.nodes.iter().position(|n| n.id() == c.counterparty_node_id) else { continue };
            let theirs =
                world.nodes[j].manager.list_channels().into_iter().find(|d| d.channel_id == c.channel_id);
            let Some(theirs) = theirs else { continue };
            if c.balance_msat + theirs.balance_msat != c.value_sat * 1000 {
                v.push(format!(
                    "channel {}: {} + {} msat is not its capacity {} sat",
                    c.channel_id, c.balance_msat, theirs.balance_msat, c.value_sat
                ));
            }
        }
        let mut received = 0i128;
        let mut paid = 0i128;
        let mut earned = 0i128;
        let mut seen_claims = BTreeSet::new();
        let mut seen_sent = BTreeSet::new();
        let mut seen_forwards = BTreeSet::new();
        let amounts: BTreeMap<PaymentId, u64> =
            node.manager.list_payments().into_iter().map(|r| (r.payment_id, r.amount_msat)).collect();
        for e in &node.user.delivered {
            match e {
                Event::PaymentClaimed { payment_hash, amount_msat } if seen_claims.insert(*payment_hash) => {
                    received += i128::from(*amount_msat);
                }
                Event::PaymentSent { payment_id, fee_paid_msat, .. } if seen_sent.insert(*payment_id) => {
                    paid += i128::from(amounts.get(payment_id).copied().unwrap_or(0) + fee_paid_msat);
                }
                Event::PaymentForwarded { prev_channel_id, prev_htlc_id, fee_earned_msat, .. }
                    if seen_forwards.insert((*prev_channel_id, *prev_htlc_id)) =>
                {
                    earned += i128::from(*fee_earned_msat);
                }
                _ => {}
            }
        }
        let a = accounts[i];
        let expected = i128::from(world.initial_balance[i]) + received + earned - paid;
        let on_chain = (i128::from(a.held_sat) - i128::from(world.initial_fee_sat[i])) * 1000;
        let fees = i128::from(a.fees_sat) * 1000;
        let actual = i128::from(world.balance(i)) + on_chain;
        // Positive: the node is short.
        let off = expected - fees - actual;
        let rounding = i128::from(a.rounding_msat);
        total_off += off;
        total_rounding += rounding;
        if off < -rounding || off > i128::from(a.dust_msat) + rounding {
            let gap = if off < 0 { format!("{} msat ahead", -off) } else { format!("{off} msat short") };
            v.push(format!(
                "node {i}: holds {actual} msat ({on_chain} of it on chain) and paid {fees} in fees; \
                 started with {}, received {received}, earned {earned}, paid {paid}: {gap}",
                world.initial_balance[i]
            ));
        }
    }
    // Each closed channel's trimmed value counts at both its ends.
    let trimmed = accounts.iter().map(|a| i128::from(a.dust_msat)).sum::<i128>() / 2;
    if (total_off - trimmed).abs() > total_rounding {
        v.push(format!("the nodes are {total_off} msat short together, but only {trimmed} was trimmed"));
    }
}

/// Every closed channel's enforcement is over, and every output of every
/// closing transaction tree went to a node's sweep script or fee wallet
/// (anchors, and outputs worth less than their claim, excepted: the core
/// gives those up by design): nothing owed was left on chain.
fn everything_claimed_on_chain(world: &World, trees: &ClosingTrees, v: &mut Vec<String>) {
    if world.enforcing() {
        v.push("a closed channel's on-chain enforcement did not finish".into());
    }
    let unspent = &trees.unspent;
    let ours: Vec<bitcoin::ScriptBuf> = (0..world.nodes.len())
        .flat_map(|i| [crate::onchain::sweep_script(i), crate::onchain::coin_key(i).p2wpkh()])
        .collect();
    for (outpoint, output) in unspent {
        // Anchors, and what is worth less than its claim, are left.
        if output.value.to_sat() > UNECONOMIC_SAT && !ours.contains(&output.script_pubkey) {
            v.push(format!("output {outpoint} of a closing transaction was never claimed: {output:?}"));
        }
    }
}
