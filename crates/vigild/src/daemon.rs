//! `vigild` on embedded defaults: the embedded regtest chain served over
//! bitcoind-compatible JSON-RPC, and the on-chain wallet kept in step with it.
//!
//! [`Daemon::start`] opens everything (data directory, seed, stores, chain,
//! RPC server, wallet); [`Daemon::run_until`] syncs the wallet until a
//! shutdown signal; [`Daemon::stop`] stops the RPC server (removing the
//! cookie) and releases the data directory. The wiring moves into
//! `vigil-node`'s `Builder` with the node itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Network;
use vigil_chain::regtest::OpenError;
use vigil_chain::rpc::{RpcServer, RpcServerConfig, RpcServerError};
use vigil_chain::{Clock, RegtestChain, SystemClock};
use vigil_store::{KvStore, SqliteStore, StoreError};
use vigil_wallet::{OnchainWallet, WalletBalance, WalletError};

use crate::datadir::{DataDir, DataDirError};

/// How `vigild` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the RPC server listens.
    pub rpc_bind: SocketAddr,
    /// A fixed RPC user and password, besides the cookie.
    pub rpc_user_password: Option<(String, String)>,
    /// How often the wallet is synced with the chain.
    pub sync_interval: Duration,
}

/// Why `vigild` could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The data directory or seed is unusable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// A store could not be opened.
    #[error("cannot open {path}: {source}")]
    Store {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The embedded chain could not be loaded.
    #[error("cannot load the embedded chain: {0}")]
    Chain(#[from] OpenError),
    /// The RPC server could not start.
    #[error(transparent)]
    Rpc(#[from] RpcServerError),
    /// The wallet failed.
    #[error("wallet: {0}")]
    Wallet(#[from] WalletError),
    /// A background task failed unexpectedly (a bug); vigild stops.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A running `vigild`.
#[derive(Debug)]
pub struct Daemon {
    dir: DataDir,
    chain: Arc<RegtestChain>,
    wallet: Arc<OnchainWallet>,
    rpc: RpcServer,
    clock: Arc<dyn Clock>,
    sync_interval: Duration,
}

fn open_store(path: PathBuf) -> Result<Arc<dyn KvStore>, DaemonError> {
    match SqliteStore::open(&path) {
        Ok(store) => Ok(Arc::new(store)),
        Err(source) => Err(DaemonError::Store { path, source }),
    }
}

fn log_balance(balance: &WalletBalance) {
    tracing::info!(
        confirmed = %balance.confirmed,
        pending = %(balance.trusted_pending + balance.untrusted_pending),
        immature = %balance.immature,
        "wallet balance"
    );
}

impl Daemon {
    /// Opens the data directory and starts the chain, the RPC server and the
    /// wallet. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`DaemonError`] naming what could not be opened or started; nothing is
    /// ever replaced to get past an error.
    pub async fn start(config: DaemonConfig) -> Result<Self, DaemonError> {
        let dir = DataDir::open(&config.data_dir, Network::Regtest)?;
        let (seed, created) = dir.load_or_create_seed()?;
        if created {
            tracing::info!(path = %dir.seed_path().display(), "created a new node seed; back it up");
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let chain = Arc::new(RegtestChain::open(open_store(dir.chain_store_path())?, clock.clone())?);
        let tip = chain.tip();
        tracing::info!(height = tip.height, tip = %tip.hash, "embedded regtest chain loaded");
        let rpc = RpcServer::start(
            chain.clone(),
            RpcServerConfig {
                bind: config.rpc_bind,
                cookie_path: Some(dir.cookie_path()),
                user_password: config.rpc_user_password.clone(),
            },
        )
        .await?;
        let wallet =
            Arc::new(OnchainWallet::open(&seed, Network::Regtest, open_store(dir.node_store_path())?)?);
        let daemon = Self { dir, chain, wallet, rpc, clock, sync_interval: config.sync_interval };
        daemon.sync_wallet().await?;
        let address = daemon.wallet.receive_address()?;
        tracing::info!(%address, "wallet receive address");
        log_balance(&daemon.wallet.balance());
        tracing::info!(
            data_dir = %daemon.dir.root().display(),
            rpc = %daemon.rpc.local_addr(),
            cookie = %daemon.dir.cookie_path().display(),
            "vigild ready"
        );
        Ok(daemon)
    }

    /// The address the RPC server listens on.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc.local_addr()
    }

    async fn sync_wallet(&self) -> Result<(), DaemonError> {
        let (wallet, chain, now) = (self.wallet.clone(), self.chain.clone(), self.clock.now_secs());
        tokio::task::spawn_blocking(move || wallet.sync(chain.as_ref(), now))
            .await
            .map_err(|e| DaemonError::Internal(format!("the wallet sync task failed: {e}")))??;
        Ok(())
    }

    /// Keeps the wallet in step with the chain until `shutdown` completes,
    /// logging the balance when it changes.
    ///
    /// # Errors
    ///
    /// [`DaemonError::Wallet`] if the wallet can no longer be persisted, or
    /// [`DaemonError::Internal`] if the sync task failed.
    pub async fn run_until(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        tokio::pin!(shutdown);
        let mut last = self.wallet.balance();
        let mut ticker = tokio::time::interval(self.sync_interval);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = ticker.tick() => {
                    match self.sync_wallet().await {
                        Ok(()) => {}
                        Err(e @ (DaemonError::Internal(_) | DaemonError::Wallet(WalletError::Persist(_)))) => {
                            return Err(e)
                        }
                        Err(e) => tracing::warn!(error = %e, "wallet sync failed; retrying"),
                    }
                    let balance = self.wallet.balance();
                    if balance != last {
                        log_balance(&balance);
                        last = balance;
                    }
                }
            }
        }
    }

    /// Stops the RPC server (removing the cookie) and releases the data
    /// directory.
    pub async fn stop(self) {
        self.rpc.stop().await;
        tracing::info!("vigild stopped");
    }
}
