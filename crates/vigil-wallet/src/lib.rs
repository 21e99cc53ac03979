//! Vigil's on-chain wallet.
//!
//! [`OnchainWallet`] is a BDK wallet with BIP84 (P2WPKH) descriptors derived
//! from the node seed. It is fed from a [`ChainSource`] by pull sync
//! ([`OnchainWallet::sync`]), builds and signs transactions paying to any
//! script (channel funding needs this), and persists every change in a
//! [`vigil_store::KvStore`] ([`persist`]), so it survives a restart.
//!
//! It also funds transactions others built ([`OnchainWallet::fund_external`]):
//! Lightning fee bumping adds wallet coins to a claim.
//!
//! BDK does the coin selection, signing and chain indexing; this crate owns
//! the wiring: descriptors from the seed, sync from the chain source, and
//! persistence.
#![deny(missing_docs)]

mod fund;
pub mod persist;

use std::sync::{Arc, Mutex, MutexGuard};

use bdk_wallet::bitcoin::bip32::Xpriv;
use bdk_wallet::chain::{BlockId, ChainPosition};
use bdk_wallet::error::CreateTxError;
use bdk_wallet::template::Bip84;
use bdk_wallet::{KeychainKind, LoadWithPersistError, PersistedWallet, SignOptions, Wallet};
use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use vigil_chain::{BroadcastError, ChainEvent, ChainFollower, ChainSource, ChainSourceError};
use vigil_store::KvStore;

pub use fund::ExternalInput;
use persist::{KvPersister, PersistError};

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The wallet's data could not be read or written.
    #[error("wallet storage: {0}")]
    Persist(#[from] PersistError),
    /// The stored wallet was made from another seed or for another network.
    #[error("the stored wallet does not belong to this seed and network: {0}")]
    Mismatch(String),
    /// The seed cannot make a wallet key.
    #[error("the seed cannot derive a wallet key: {0}")]
    BadSeed(String),
    /// The chain source failed.
    #[error("chain source: {0}")]
    Chain(#[from] ChainSourceError),
    /// The wallet's chain does not connect to the block the source gave.
    #[error("the wallet's chain does not connect to block {height}: {detail}")]
    CannotConnect {
        /// The height of the block.
        height: u32,
        /// BDK's explanation.
        detail: String,
    },
    /// The spendable coins do not cover the amount and the fee.
    #[error("insufficient funds: {needed} needed, {available} available")]
    InsufficientFunds {
        /// What the transaction needs, fee included.
        needed: Amount,
        /// What the wallet can spend.
        available: Amount,
    },
    /// An output is below the dust limit.
    #[error("output {0} is below the dust limit")]
    OutputBelowDust(usize),
    /// The address is for another network.
    #[error("address {address} is not for {expected}")]
    WrongNetwork {
        /// The address given.
        address: String,
        /// The wallet's network.
        expected: Network,
    },
    /// The transaction could not be built or signed.
    #[error("cannot build the transaction: {0}")]
    Build(String),
    /// The chain source refused the transaction.
    #[error("broadcast failed: {0}")]
    Broadcast(#[from] BroadcastError),
}

/// The wallet's balance, split by how final each part is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalletBalance {
    /// Confirmed and spendable.
    pub confirmed: Amount,
    /// Unconfirmed change and self-transfers.
    pub trusted_pending: Amount,
    /// Unconfirmed payments from others.
    pub untrusted_pending: Amount,
    /// Coinbase outputs not yet mature.
    pub immature: Amount,
}

impl WalletBalance {
    /// Everything the wallet holds, pending and immature included.
    pub fn total(&self) -> Amount {
        self.confirmed + self.trusted_pending + self.untrusted_pending + self.immature
    }
}

/// An unspent output of the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletUtxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it holds.
    pub txout: TxOut,
    /// The height of the block confirming it, or `None` while unconfirmed.
    pub confirmation_height: Option<u32>,
    /// Whether it is change (internal keychain).
    pub is_change: bool,
}

/// What one [`OnchainWallet::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Blocks connected.
    pub connected: u32,
    /// Blocks that left the source's active chain since the last sync. The
    /// wallet forgot them and the confirmations they carried.
    pub disconnected: u32,
    /// The wallet's chain tip after the sync.
    pub tip_height: u32,
}

struct Inner {
    wallet: PersistedWallet<KvPersister>,
    persister: KvPersister,
    /// The master key the descriptors derive from; BDK stores only the
    /// public descriptors, and transactions are signed with this key.
    xprv: Xpriv,
}

/// The on-chain wallet. Every method takes `&self`; calls are serialised.
pub struct OnchainWallet {
    inner: Mutex<Inner>,
    network: Network,
}

impl std::fmt::Debug for OnchainWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnchainWallet").field("network", &self.network).finish_non_exhaustive()
    }
}

impl OnchainWallet {
    /// Opens the wallet of `seed` on `network` stored in `store`, or creates it.
    ///
    /// # Errors
    ///
    /// - [`WalletError::Mismatch`] if `store` holds a wallet of another seed or
    ///   network;
    /// - [`WalletError::Persist`] if its data cannot be read or is corrupt;
    /// - [`WalletError::BadSeed`] if the seed cannot derive a key.
    pub fn open(seed: &[u8; 32], network: Network, store: Arc<dyn KvStore>) -> Result<Self, WalletError> {
        let xprv = Xpriv::new_master(network, seed).map_err(|e| WalletError::BadSeed(e.to_string()))?;
        let mut persister = KvPersister::new(store);
        let wallet = match Self::load(&mut persister, xprv, network)? {
            Some(wallet) => wallet,
            None => Wallet::create(Bip84(xprv, KeychainKind::External), Bip84(xprv, KeychainKind::Internal))
                .network(network)
                .create_wallet(&mut persister)
                .map_err(|e| match e {
                    bdk_wallet::CreateWithPersistError::Persist(e) => WalletError::Persist(e),
                    other => WalletError::Mismatch(other.to_string()),
                })?,
        };
        Ok(Self { inner: Mutex::new(Inner { wallet, persister, xprv }), network })
    }

    /// Loads the wallet stored in `persister`, checking it belongs to `xprv`
    /// and `network`; `None` if there is none.
    fn load(
        persister: &mut KvPersister,
        xprv: Xpriv,
        network: Network,
    ) -> Result<Option<PersistedWallet<KvPersister>>, WalletError> {
        Wallet::load()
            .descriptor(KeychainKind::External, Some(Bip84(xprv, KeychainKind::External)))
            .descriptor(KeychainKind::Internal, Some(Bip84(xprv, KeychainKind::Internal)))
            .check_network(network)
            .load_wallet(persister)
            .map_err(|e| match e {
                LoadWithPersistError::Persist(e) => WalletError::Persist(e),
                LoadWithPersistError::InvalidChangeSet(e) => WalletError::Mismatch(e.to_string()),
            })
    }

    /// Removes the wallet's checkpoints above `height`, with the
    /// confirmations they carried, durably.
    ///
    /// BDK only drops a block when a block at the same height replaces it,
    /// but a chain can also get shorter. The removal is written as a
    /// changeset (a `None` block removes a checkpoint) and the wallet is
    /// reloaded from the store, which is how BDK applies such a changeset.
    fn forget_blocks_above(&self, inner: &mut Inner, height: u32) -> Result<u32, WalletError> {
        Self::persist(inner)?;
        let mut changeset = bdk_wallet::ChangeSet::default();
        for checkpoint in inner.wallet.latest_checkpoint().iter().take_while(|c| c.height() > height) {
            changeset.local_chain.blocks.insert(checkpoint.height(), None);
        }
        let forgotten = changeset.local_chain.blocks.len() as u32;
        <KvPersister as bdk_wallet::WalletPersister>::persist(&mut inner.persister, &changeset)?;
        inner.wallet = Self::load(&mut inner.persister, inner.xprv, self.network)?.ok_or_else(|| {
            WalletError::Mismatch("the wallet vanished from the store while reloading".into())
        })?;
        Ok(forgotten)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("wallet lock poisoned: an earlier wallet call panicked")
    }

    /// The wallet's network.
    pub fn network(&self) -> Network {
        self.network
    }

    fn persist(inner: &mut Inner) -> Result<(), WalletError> {
        let Inner { wallet, persister, .. } = inner;
        wallet.persist(persister)?;
        Ok(())
    }

    /// A new receive address, never handed out before.
    ///
    /// # Errors
    ///
    /// [`WalletError::Persist`] if the new derivation index cannot be stored.
    pub fn new_address(&self) -> Result<Address, WalletError> {
        let mut inner = self.lock();
        let info = inner.wallet.reveal_next_address(KeychainKind::External);
        Self::persist(&mut inner)?;
        Ok(info.address)
    }

    /// The first receive address not yet seen on chain; the same until it
    /// receives a payment.
    ///
    /// # Errors
    ///
    /// [`WalletError::Persist`] if a newly revealed index cannot be stored.
    pub fn receive_address(&self) -> Result<Address, WalletError> {
        let mut inner = self.lock();
        let info = inner.wallet.next_unused_address(KeychainKind::External);
        Self::persist(&mut inner)?;
        Ok(info.address)
    }

    /// The balance as of the last sync.
    pub fn balance(&self) -> WalletBalance {
        let b = self.lock().wallet.balance();
        WalletBalance {
            confirmed: b.confirmed,
            trusted_pending: b.trusted_pending,
            untrusted_pending: b.untrusted_pending,
            immature: b.immature,
        }
    }

    /// The unspent outputs as of the last sync.
    pub fn list_utxos(&self) -> Vec<WalletUtxo> {
        self.lock()
            .wallet
            .list_unspent()
            .map(|u| WalletUtxo {
                outpoint: u.outpoint,
                txout: u.txout,
                confirmation_height: match u.chain_position {
                    ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id.height),
                    ChainPosition::Unconfirmed { .. } => None,
                },
                is_change: u.keychain == KeychainKind::Internal,
            })
            .collect()
    }

    /// The height of the wallet's chain tip.
    pub fn tip_height(&self) -> u32 {
        self.lock().wallet.latest_checkpoint().height()
    }

    /// Brings the wallet up to the source's tip and mempool, then persists.
    /// `now` (UNIX seconds) stamps when mempool transactions were seen.
    ///
    /// # Errors
    ///
    /// [`WalletError::Chain`] if the source fails (what was synced before
    /// stays), [`WalletError::CannotConnect`], or [`WalletError::Persist`].
    pub fn sync(&self, source: &dyn ChainSource, now: u64) -> Result<SyncSummary, WalletError> {
        let mut inner = self.lock();
        let checkpoint = inner.wallet.latest_checkpoint();
        let mut follower = ChainFollower::new(vigil_chain::BlockRef {
            height: checkpoint.height(),
            hash: checkpoint.hash(),
        });
        let mut summary = SyncSummary::default();
        let result: Result<(), WalletError> = (|| {
            while let Some(event) = follower.poll(source)? {
                match event {
                    // BDK keeps its own chain of checkpoints: the block that
                    // replaces a disconnected one invalidates it there.
                    ChainEvent::Disconnected(_) => summary.disconnected += 1,
                    ChainEvent::Connected { height, block } => {
                        let parent = BlockId { height: height - 1, hash: block.header.prev_blockhash };
                        inner
                            .wallet
                            .apply_block_connected_to(&block, height, parent)
                            .map_err(|e| WalletError::CannotConnect { height, detail: e.to_string() })?;
                        summary.connected += 1;
                    }
                }
            }
            // A chain that got shorter leaves the wallet's tip on blocks no
            // block replaced.
            let checkpoint = inner.wallet.latest_checkpoint();
            if source.block_hash(checkpoint.height())? != Some(checkpoint.hash()) {
                let forgotten = self.forget_blocks_above(&mut inner, follower.position().height)?;
                tracing::info!(
                    forgotten,
                    height = follower.position().height,
                    "the chain got shorter; the wallet forgot its stale blocks"
                );
            }
            let mempool = source.mempool()?;
            let in_mempool: std::collections::HashSet<Txid> =
                mempool.iter().map(|tx| tx.compute_txid()).collect();
            let evicted: Vec<(Txid, u64)> = inner
                .wallet
                .transactions()
                .filter(|t| !t.chain_position.is_confirmed())
                .map(|t| t.tx_node.txid)
                .filter(|txid| !in_mempool.contains(txid))
                .map(|txid| (txid, now))
                .collect();
            inner.wallet.apply_unconfirmed_txs(mempool.into_iter().map(|tx| (tx, now)));
            inner.wallet.apply_evicted_txs(evicted);
            Ok(())
        })();
        // Persist what was applied even if the source failed midway.
        Self::persist(&mut inner)?;
        result?;
        summary.tip_height = inner.wallet.latest_checkpoint().height();
        if summary.connected > 0 || summary.disconnected > 0 {
            tracing::debug!(?summary, "wallet synced");
        }
        Ok(summary)
    }

    /// Builds and signs a transaction paying each `(script, amount)` at
    /// `fee_rate`, with change back to the wallet. Nothing is broadcast, and
    /// the wallet does not count it as spent until it is seen in the mempool
    /// or applied with [`OnchainWallet::send`].
    ///
    /// # Errors
    ///
    /// [`WalletError::InsufficientFunds`], [`WalletError::OutputBelowDust`],
    /// [`WalletError::Build`], or [`WalletError::Persist`] (a new change
    /// address could not be stored).
    pub fn build_transaction(
        &self,
        outputs: &[(ScriptBuf, Amount)],
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        let mut inner = self.lock();
        let tx = Self::build_locked(&mut inner, outputs, fee_rate)?;
        Self::persist(&mut inner)?;
        Ok(tx)
    }

    fn build_locked(
        inner: &mut Inner,
        outputs: &[(ScriptBuf, Amount)],
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        let mut builder = inner.wallet.build_tx();
        for (script, amount) in outputs {
            builder.add_recipient(script.clone(), *amount);
        }
        builder.fee_rate(fee_rate);
        let mut psbt = builder.finish().map_err(|e| match e {
            CreateTxError::CoinSelection(e) => {
                WalletError::InsufficientFunds { needed: e.needed, available: e.available }
            }
            CreateTxError::OutputBelowDustLimit(i) => WalletError::OutputBelowDust(i),
            other => WalletError::Build(other.to_string()),
        })?;
        let secp = bitcoin::secp256k1::Secp256k1::new();
        psbt.sign(&inner.xprv, &secp)
            .map_err(|(_, errors)| WalletError::Build(format!("signing failed: {errors:?}")))?;
        let finalized = inner
            .wallet
            .finalize_psbt(&mut psbt, SignOptions::default())
            .map_err(|e| WalletError::Build(e.to_string()))?;
        if !finalized {
            return Err(WalletError::Build("the wallet could not sign every input".into()));
        }
        psbt.extract_tx().map_err(|e| WalletError::Build(e.to_string()))
    }

    /// Pays `amount` to `address` at `fee_rate`, broadcasts through `source`,
    /// and records the transaction as pending. `now` stamps it.
    ///
    /// # Errors
    ///
    /// [`WalletError::WrongNetwork`], the errors of
    /// [`OnchainWallet::build_transaction`], or [`WalletError::Broadcast`] if
    /// the source refuses it (then the wallet is unchanged). Once the source
    /// accepted the transaction this returns `Ok`, even if storing it failed
    /// (that is logged and retried by the next write).
    pub fn send(
        &self,
        address: &Address<bitcoin::address::NetworkUnchecked>,
        amount: Amount,
        fee_rate: FeeRate,
        source: &dyn ChainSource,
        now: u64,
    ) -> Result<Txid, WalletError> {
        let address =
            address.clone().require_network(self.network).map_err(|_| WalletError::WrongNetwork {
                address: address.clone().assume_checked().to_string(),
                expected: self.network,
            })?;
        let mut inner = self.lock();
        let tx = Self::build_locked(&mut inner, &[(address.script_pubkey(), amount)], fee_rate)?;
        let txid = source.broadcast(&tx)?;
        inner.wallet.apply_unconfirmed_txs([(tx, now)]);
        // The payment is out: failing now would invite a retry that pays
        // twice. The change stays staged and is written by the next persist,
        // and the next sync sees the transaction in the mempool anyway.
        if let Err(e) = Self::persist(&mut inner) {
            tracing::warn!(%txid, error = %e, "payment sent, but the wallet could not store it yet");
        }
        tracing::info!(%txid, %amount, %address, "sent an on-chain payment");
        Ok(txid)
    }
}
