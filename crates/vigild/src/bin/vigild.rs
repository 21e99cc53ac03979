//! `vigild`: the Vigil daemon. A Lightning node on embedded defaults (the
//! embedded regtest chain, SQLite under the data directory), with its HTTP
//! API for `vigil` and scripts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vigild::config::Config;
use vigild::daemon::Daemon;
use vigild::datadir::default_data_dir;

/// The Vigil Lightning node daemon. Options come from
/// <data-dir>/vigild.toml (see docs/vigild.example.toml) and are overridden
/// by these flags.
#[derive(Debug, Parser)]
#[command(name = "vigild", version)]
struct Args {
    /// Data directory [default: $VIGIL_DATA_DIR, else ~/.vigil].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: <data-dir>/vigild.toml, if it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Network (only regtest today).
    #[arg(long)]
    network: Option<String>,
    /// Where peers connect [default: 127.0.0.1:9735].
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
    /// Where the HTTP API listens [default: 127.0.0.1:9737].
    #[arg(long, value_name = "IP:PORT")]
    api_bind: Option<SocketAddr>,
    /// The chain: `embedded`, or `rpc://HOST:PORT` for a bitcoind (or another vigild's chain).
    #[arg(long)]
    chain: Option<String>,
    /// Cookie file of the `--chain rpc://…` server.
    #[arg(long, value_name = "FILE")]
    chain_cookie: Option<PathBuf>,
    /// User of the `--chain rpc://…` server, instead of the cookie.
    #[arg(long, requires = "chain_password")]
    chain_user: Option<String>,
    /// Password of --chain-user.
    #[arg(long, env = "VIGIL_CHAIN_PASSWORD", hide_env_values = true)]
    chain_password: Option<String>,
    /// Where the embedded chain's JSON-RPC listens [default: 127.0.0.1:18443].
    #[arg(long, value_name = "IP:PORT")]
    rpc_bind: Option<SocketAddr>,
    /// A fixed user of the embedded chain's RPC, besides the cookie.
    #[arg(long, requires = "rpc_password")]
    rpc_user: Option<String>,
    /// The password of --rpc-user.
    #[arg(long, requires = "rpc_user", env = "VIGIL_RPC_PASSWORD", hide_env_values = true)]
    rpc_password: Option<String>,
    /// How often the node follows the chain and hands out events, in ms.
    #[arg(long, value_name = "MS")]
    poll_interval_ms: Option<u64>,
    /// Whether channels opened through the API use zero-fee-HTLC anchors
    /// unless the request says otherwise [default: false].
    #[arg(long, value_name = "BOOL")]
    anchors: Option<bool>,
}

impl Args {
    fn config(&self, data_dir: &std::path::Path) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path, true)?,
            None => Config::load(&data_dir.join("vigild.toml"), false)?,
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { c.$field = v.clone(); } )* };
        }
        set!(network, listen, api_bind, chain, rpc_bind, poll_interval_ms, anchors);
        macro_rules! set_opt {
            ($($field:ident),*) => { $( if self.$field.is_some() { c.$field = self.$field.clone(); } )* };
        }
        set_opt!(chain_cookie, chain_user, chain_password, rpc_user, rpc_password);
        Ok(c)
    }
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that
/// completes at the first of them. Installed before start-up, so a signal
/// during start-up stops vigild cleanly too.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
                _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C, shutting down");
        })
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let config = args.config(&data_dir)?;
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %data_dir.display(), "vigild starting");
    let daemon = tokio::select! {
        started = Daemon::start(&data_dir, &config) => started?,
        () = &mut shutdown => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    daemon.run_until(shutdown).await;
    daemon.stop().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigild: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vigild: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
