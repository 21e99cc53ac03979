//! `vigild`: a [`Node`] on its data directory, the embedded chain's
//! bitcoind-compatible RPC (when it runs the embedded chain), and the HTTP
//! API.
//!
//! [`Daemon::start`] builds and starts everything; [`Daemon::run_until`]
//! waits for a shutdown signal; [`Daemon::stop`] stops the API, the RPC
//! server (removing the cookie) and the node (releasing the data
//! directory).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vigil_chain::rpc::{RpcAuth, RpcServer, RpcServerConfig, RpcServerError};
use vigil_node::{BuildError, Builder, ChainChoice, Node, NodeError};

use crate::api::{self, ApiState};
use crate::config::{ChainSetting, Config, ConfigError};

/// Why `vigild` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node could not be built (data directory, stores, chain).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The node could not start (its listening address).
    #[error("{0}")]
    Node(#[from] NodeError),
    /// The embedded chain's RPC server could not start.
    #[error(transparent)]
    Rpc(#[from] RpcServerError),
    /// The HTTP API could not start.
    #[error("the HTTP API cannot listen on {addr}: {source}; is another vigild running? (set api_bind)")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The API token could not be read or written.
    #[error("{path}: {source}")]
    Token {
        /// The token file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running `vigild`.
pub struct Daemon {
    node: Arc<Node>,
    rpc: Option<RpcServer>,
    api_addr: SocketAddr,
    api_stop: Option<oneshot::Sender<()>>,
    api_task: Option<tokio::task::JoinHandle<()>>,
    token_path: PathBuf,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("api_addr", &self.api_addr).finish_non_exhaustive()
    }
}

/// The API token file of a network directory.
pub fn token_path(network_dir: &Path) -> PathBuf {
    network_dir.join("api.token")
}

/// Reads the API token, creating it (32 random bytes as hex, mode 0600)
/// the first time. It is kept across restarts, like a macaroon.
fn load_or_create_token(path: &Path) -> Result<String, DaemonError> {
    let err = |source| DaemonError::Token { path: path.to_path_buf(), source };
    match fs::read_to_string(path) {
        Ok(token) if token.trim().len() >= 32 => {
            restrict(path).map_err(err)?;
            return Ok(token.trim().to_string());
        }
        Ok(_) => tracing::warn!(path = %path.display(), "the API token is too short; writing a new one"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let token = crate::json::hex(&bytes);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(err)?;
    // `mode` applies only when the file is created: an older file keeps
    // its mode otherwise.
    restrict(path).map_err(err)?;
    file.write_all(token.as_bytes()).and_then(|()| file.sync_all()).map_err(err)?;
    Ok(token)
}

/// Makes the token readable by its owner only (it may have been created or
/// copied with looser permissions).
fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the API token was readable by others; setting it to 0600");
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl Daemon {
    /// Builds the node on `data_dir` as `config` says and starts the node,
    /// the embedded chain's RPC server and the HTTP API. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`DaemonError`] naming what could not be opened or started (e.g.
    /// [`vigil_node::datadir::DataDirError::Locked`] when another vigild
    /// uses the directory); nothing is replaced to get past an error.
    pub async fn start(data_dir: &Path, config: &Config) -> Result<Self, DaemonError> {
        if config.network != "regtest" {
            return Err(ConfigError::Invalid {
                field: "network",
                reason: format!("`{}` is not supported yet; vigild runs on regtest", config.network),
            }
            .into());
        }
        let chain = match config.chain_setting()? {
            ChainSetting::Embedded => ChainChoice::Embedded,
            ChainSetting::Rpc(url) => {
                let auth = match (&config.chain_user, &config.chain_password, &config.chain_cookie) {
                    (Some(user), Some(password), _) => {
                        RpcAuth::UserPass { user: user.clone(), password: password.clone() }
                    }
                    (_, _, Some(cookie)) => RpcAuth::Cookie(cookie.clone()),
                    _ => {
                        return Err(ConfigError::Invalid {
                            field: "chain_cookie",
                            reason: "a chain over RPC needs chain_cookie, or chain_user and chain_password"
                                .into(),
                        }
                        .into())
                    }
                };
                ChainChoice::Rpc { url, auth }
            }
        };
        let node = Builder::new()
            .data_dir(data_dir)
            .listen(Some(config.listen))
            .chain(chain)
            .poll_interval(Duration::from_millis(config.poll_interval_ms.max(1)))
            .build()?;
        let network_dir = node.data_dir().expect("a node built on a data directory holds it");
        let rpc = match node.embedded_chain() {
            Some(chain) => {
                let tip = chain.tip();
                tracing::info!(height = tip.height, tip = %tip.hash, "embedded regtest chain loaded");
                Some(
                    RpcServer::start(
                        chain.clone(),
                        RpcServerConfig {
                            bind: config.rpc_bind,
                            cookie_path: Some(network_dir.join(".cookie")),
                            user_password: config.rpc_user.clone().zip(config.rpc_password.clone()),
                        },
                    )
                    .await?,
                )
            }
            None => None,
        };
        node.start().await?;
        let token_path = token_path(&network_dir);
        let token = load_or_create_token(&token_path)?;
        let listener = tokio::net::TcpListener::bind(config.api_bind)
            .await
            .map_err(|source| DaemonError::Api { addr: config.api_bind, source })?;
        let api_addr =
            listener.local_addr().map_err(|source| DaemonError::Api { addr: config.api_bind, source })?;
        if !api_addr.ip().is_loopback() {
            tracing::warn!(%api_addr, "the HTTP API listens beyond this machine; anyone with the token controls the node");
        }
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = ApiState {
            node: node.clone(),
            token: Arc::new(token),
            anchors_default: config.anchors,
            started: Instant::now(),
            event_id_base: ApiState::event_id_base_now(),
            stopping: stopping.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = api::router(state);
        let api_task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the HTTP API stopped with an error");
            }
        });
        tracing::info!(
            node_id = %node.node_id(),
            api = %api_addr,
            token = %token_path.display(),
            peers = ?node.listening_addr(),
            "vigild ready"
        );
        Ok(Self {
            node,
            rpc,
            api_addr,
            api_stop: Some(stop_tx),
            api_task: Some(api_task),
            token_path,
            stopping,
        })
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The API token file.
    pub fn token_path(&self) -> &Path {
        &self.token_path
    }

    /// Where the embedded chain's RPC listens, if it runs.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref().map(RpcServer::local_addr)
    }

    /// Runs until `shutdown` completes, logging the node's errors as they
    /// change.
    pub async fn run_until(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_error = None;
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {
                    let error = self.node.last_error();
                    if error.is_some() && error != last_error {
                        tracing::warn!(error = ?error, "the node reports an error");
                    }
                    last_error = error;
                }
            }
        }
    }

    /// Stops the API, the RPC server (removing its cookie) and the node.
    pub async fn stop(mut self) {
        // Event streams end, then the server stops taking requests and
        // finishes those in flight (a payment waiting for its outcome may
        // hold it up to 5 s; then it is cut).
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.api_task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
                task.abort();
            }
        }
        if let Some(rpc) = self.rpc.take() {
            rpc.stop().await;
        }
        self.node.stop();
        tracing::info!("vigild stopped");
    }
}
