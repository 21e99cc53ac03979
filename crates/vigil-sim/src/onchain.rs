//! The world's chain moves: force-closes, reorgs, fee changes, and the
//! settling of closed channels on chain.
//!
//! Each node sweeps its claims to its own script (`sweep_script`) and has a
//! small fee wallet (coinbase coins of its key) that funds its anchor
//! channels' fee needs, as the node's BDK wallet does in `vigil-node`.

use bitcoin::ScriptBuf;
use lightning::ln::types::ChannelId;
use vigil_chain::testkit::{coin_of, sign_p2wpkh, Coin, TestKey};
use vigil_chain::ChainSource;

use crate::world::World;

/// The largest witness of a P2WPKH input: item count, a 73-byte signature
/// and a 33-byte key, with their lengths.
const P2WPKH_WITNESS_WEIGHT: u64 = 1 + 1 + 73 + 1 + 33;

/// Blocks at most that settling on chain mines.
const MAX_SETTLE_BLOCKS: u32 = 700;

/// The key of node `i`'s coins (channel funding and fees).
pub fn coin_key(i: usize) -> TestKey {
    TestKey::new(60 + i as u8)
}

/// The script node `i` sweeps its claims to.
pub fn sweep_script(i: usize) -> ScriptBuf {
    TestKey::new(80 + i as u8).p2wpkh()
}

impl World {
    /// `node`'s user force-closes its `pick`-th open channel.
    pub fn force_close(&mut self, node: usize, pick: usize) {
        let mut open: Vec<ChannelId> =
            self.nodes[node].manager.list_channels().iter().map(|c| c.channel_id).collect();
        open.sort();
        if open.is_empty() {
            return;
        }
        let id = open[pick % open.len()];
        if self.nodes[node].manager.force_close_channel(id).is_ok() {
            self.requested_closes.insert(id);
        }
    }

    /// The top `depth` blocks leave the chain (never below the setup), and
    /// `depth + 1` new ones replace them, with what was in the old ones.
    pub fn reorg(&mut self, depth: u32) {
        let tip = self.chain.height();
        if depth == 0 || tip < self.setup_height + depth {
            return;
        }
        let first = tip - depth + 1;
        let hash = self.chain.block_hash(first).expect("chain").expect("on the active chain");
        self.chain.invalidate_block(&hash).expect("a block above the setup");
        for h in (first..=tip).rev() {
            for node in &mut self.nodes {
                node.manager.block_disconnected(h);
                node.seen_height = h - 1;
                node.durable_height = node.durable_height.min(h - 1);
            }
        }
        self.mine(depth + 1);
    }

    /// Every node's claims start at `feerate_per_kw` from now on.
    pub fn set_fee(&mut self, feerate_per_kw: u32) {
        for node in &mut self.nodes {
            node.manager.set_claim_feerate(feerate_per_kw);
        }
    }

    /// Funds, signs and broadcasts the fee needs of every node (anchor
    /// channels' claims), each with one coin of its fee wallet.
    pub(crate) fn fund_fee_needs(&mut self) {
        let mempool = self.chain.mempool().expect("the embedded chain's mempool");
        for i in 0..self.nodes.len() {
            let needs = self.nodes[i].manager.fee_needs().to_vec();
            for (channel_id, need) in needs {
                let pending =
                    mempool.iter().any(|tx| tx.input.iter().any(|inp| inp.previous_output == need.outpoint));
                if pending {
                    continue;
                }
                // The newest coin still spendable (a reorg may have dropped
                // the transaction that made a change coin, and freed the
                // coin it spent) and large enough.
                let spendable = |c: &&Coin| self.chain.utxo(&c.outpoint, true).ok().flatten().is_some();
                let change = coin_key(i).p2wpkh();
                let funded = self.fee_coins[i].iter().rev().filter(spendable).find_map(|coin| {
                    let (outpoint, value) = (coin.outpoint, coin.txout.value);
                    let tx =
                        need.funded_by_one_coin(outpoint, value, change.clone(), P2WPKH_WITNESS_WEIGHT)?;
                    Some((coin.clone(), tx))
                });
                let Some((coin, mut tx)) = funded else { continue };
                sign_p2wpkh(&mut tx, 1, &coin_key(i), coin.txout.value);
                let signed = self.nodes[i].manager.sign_fee_input(&channel_id, &need, &mut tx, 0);
                if signed.is_ok() && self.chain.submit_transaction(&tx).is_ok() {
                    self.broadcasters.entry(tx.compute_txid()).or_insert(i);
                    self.fee_coins[i].push(coin_of(&tx, tx.output.len() as u32 - 1));
                }
            }
        }
    }

    /// Whether some closed channel's enforcement is not over.
    pub fn enforcing(&self) -> bool {
        self.nodes.iter().any(|n| {
            n.manager
                .chain_monitor()
                .monitors()
                .any(|m| (m.is_closed() || m.should_broadcast_holder_commitment()) && !m.onchain_settled())
        })
    }

    /// Mines, block by block (everything else moving in between), until
    /// every closed channel's enforcement is over, or [`MAX_SETTLE_BLOCKS`].
    pub fn settle_onchain(&mut self) {
        for _ in 0..MAX_SETTLE_BLOCKS {
            if !self.enforcing() {
                return;
            }
            self.mine(1);
            self.settle_rounds(4);
        }
    }

    /// The fee wallets' coins, for the checks: node `i`'s own coins.
    pub(crate) fn initial_fee_coins(chain: &dyn ChainSource, heights: &[u32]) -> Vec<Coin> {
        heights.iter().map(|h| vigil_chain::testkit::coinbase_coin(chain, *h)).collect()
    }
}
