//! `Builder`: everything a [`Node`] runs on, chosen once, with embedded
//! defaults.
//!
//! ```no_run
//! # async fn f() -> Result<(), vigil_node::BuildError> {
//! let node = vigil_node::Builder::new().data_dir("/tmp/alice").build()?;
//! node.start().await?;
//! # Ok(()) }
//! ```
//!
//! With a data directory the builder takes its lock (one node per
//! directory), reads or creates the seed, and keeps the node's store
//! (`vigil.sqlite`) and, for the embedded chain, the chain's store
//! (`chain.sqlite`) there (see [`crate::datadir`]). Without one, the seed
//! must be given and stores are in memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Network;
use vigil_chain::rpc::{BitcoindRpcChain, RpcAuth};
use vigil_chain::{ChainSource, RegtestChain, SystemClock};
use vigil_core::manager::ManagerConfig;
use vigil_store::{KvStore, MemoryStore, SqliteStore};

use crate::datadir::{DataDir, DataDirError};
use crate::node::{Node, NodeError};

/// Where a node learns about the chain.
#[derive(Clone)]
pub enum ChainChoice {
    /// The embedded regtest chain, stored in the data directory (in memory
    /// without one). The default.
    Embedded,
    /// Any bitcoind's JSON-RPC, including another `vigild`'s embedded chain.
    Rpc {
        /// Its URL, e.g. `http://127.0.0.1:18443`.
        url: String,
        /// How to authenticate.
        auth: RpcAuth,
    },
    /// A chain source of the caller's.
    Source(Arc<dyn ChainSource + Send + Sync>),
}

impl std::fmt::Debug for ChainChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("Embedded"),
            Self::Rpc { url, .. } => f.debug_struct("Rpc").field("url", url).finish_non_exhaustive(),
            Self::Source(_) => f.write_str("Source(..)"),
        }
    }
}

/// Where a node keeps its state.
#[derive(Clone)]
pub enum StoreChoice {
    /// SQLite in the data directory (`vigil.sqlite`); in memory without a
    /// data directory. The default.
    Default,
    /// In memory: everything is lost when the process ends (tests, demos).
    Memory,
    /// A store of the caller's.
    Store(Arc<dyn KvStore + Send + Sync>),
}

/// Why a node could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The data directory or its seed is unusable (or in use).
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Neither a data directory nor a seed was given.
    #[error("no seed: give a data directory (which keeps one) or a seed")]
    NoSeed,
    /// A store could not be opened.
    #[error("cannot open the store {path}: {source}")]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: vigil_store::StoreError,
    },
    /// The embedded chain could not be loaded.
    #[error("cannot load the embedded chain: {0}")]
    Chain(#[from] vigil_chain::regtest::OpenError),
    /// The chain source is unusable (bad URL, unreachable, wrong network).
    #[error("chain source: {0}")]
    ChainSource(String),
    /// The node could not start from its store.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// What the node holds besides its manager: set by the builder.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// The data directory, locked until the node stops.
    pub(crate) dir: std::sync::Mutex<Option<DataDir>>,
    /// The embedded chain, when the node runs on it.
    pub(crate) embedded: Option<Arc<RegtestChain>>,
    /// Where [`Node::start`] listens for peers.
    pub(crate) listen: Option<SocketAddr>,
    /// How often the background loop follows the chain and handles events.
    pub(crate) poll_interval: Duration,
    /// How often timers tick (payment timeouts, pings).
    pub(crate) tick_interval: Duration,
}

/// Builds a [`Node`].
#[derive(Debug, Clone)]
pub struct Builder {
    network: Network,
    data_dir: Option<PathBuf>,
    seed: Option<[u8; 32]>,
    listen: Option<SocketAddr>,
    chain: ChainChoice,
    store: StoreChoice,
    config: ManagerConfig,
    poll_interval: Duration,
    tick_interval: Duration,
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("Default"),
            Self::Memory => f.write_str("Memory"),
            Self::Store(_) => f.write_str("Store(..)"),
        }
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Regtest, the embedded chain, SQLite in the data directory, listening
    /// on `127.0.0.1:9735`.
    pub fn new() -> Self {
        Self {
            network: Network::Regtest,
            data_dir: None,
            seed: None,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9735))),
            chain: ChainChoice::Embedded,
            store: StoreChoice::Default,
            config: ManagerConfig::default(),
            poll_interval: Duration::from_millis(100),
            tick_interval: Duration::from_secs(10),
        }
    }

    /// The network (only regtest is supported today).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self.config.network = network;
        self
    }

    /// The data directory (its `<network>/` subdirectory holds everything).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The seed, for a node without a data directory (a data directory
    /// keeps its own).
    pub fn seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Where to listen for peers (`None`: do not listen; port 0: any).
    pub fn listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.listen = addr;
        self
    }

    /// The chain source.
    pub fn chain(mut self, chain: ChainChoice) -> Self {
        self.chain = chain;
        self
    }

    /// The store.
    pub fn store(mut self, store: StoreChoice) -> Self {
        self.store = store;
        self
    }

    /// The manager's configuration (its network is the builder's).
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = ManagerConfig { network: self.network, ..config };
        self
    }

    /// How often the background loop follows the chain and hands out
    /// events (default 100 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Opens everything and replays the node from its store. The node does
    /// nothing by itself until [`Node::start`].
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming what could not be opened; nothing is replaced
    /// to get past an error.
    pub fn build(self) -> Result<Arc<Node>, BuildError> {
        let dir = match &self.data_dir {
            Some(root) => Some(DataDir::open(root, self.network)?),
            None => None,
        };
        let seed = match (&dir, self.seed) {
            (_, Some(seed)) => seed,
            (Some(dir), None) => {
                let (seed, created) = dir.load_or_create_seed()?;
                if created {
                    tracing::info!(path = %dir.seed_path().display(), "created a new node seed; back it up");
                }
                seed
            }
            (None, None) => return Err(BuildError::NoSeed),
        };
        let open_sqlite = |path: PathBuf| match SqliteStore::open(&path) {
            Ok(store) => Ok(Arc::new(store)),
            Err(source) => Err(BuildError::Store { path, source }),
        };
        let store: Arc<dyn KvStore + Send + Sync> = match (&self.store, &dir) {
            (StoreChoice::Store(store), _) => store.clone(),
            (StoreChoice::Default, Some(dir)) => open_sqlite(dir.node_store_path())?,
            (StoreChoice::Memory, _) | (StoreChoice::Default, None) => Arc::new(MemoryStore::new()),
        };
        let mut embedded = None;
        let chain: Arc<dyn ChainSource + Send + Sync> = match &self.chain {
            ChainChoice::Embedded => {
                let clock = Arc::new(SystemClock);
                let chain = Arc::new(match (&dir, &self.store) {
                    (Some(dir), StoreChoice::Default) => {
                        RegtestChain::open(open_sqlite(dir.chain_store_path())?, clock)?
                    }
                    _ => RegtestChain::in_memory(clock),
                });
                embedded = Some(chain.clone());
                chain
            }
            ChainChoice::Rpc { url, auth } => Arc::new(
                BitcoindRpcChain::new(url, auth.clone())
                    .map_err(|e| BuildError::ChainSource(e.to_string()))?,
            ),
            ChainChoice::Source(source) => source.clone(),
        };
        let extras = Extras {
            dir: std::sync::Mutex::new(dir),
            embedded,
            listen: self.listen,
            poll_interval: self.poll_interval,
            tick_interval: self.tick_interval,
        };
        let config = ManagerConfig { network: self.network, ..self.config };
        Ok(Arc::new(Node::open_with(seed, config, store, chain, extras, true)?))
    }
}
