//! `vigild`: the Vigil daemon. Today it runs the embedded regtest chain with
//! its bitcoind-compatible RPC server, and the on-chain wallet.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vigild::daemon::{Daemon, DaemonConfig};
use vigild::datadir::default_data_dir;

/// The Vigil Lightning node daemon, on embedded defaults: an embedded regtest
/// chain (served over bitcoind-compatible JSON-RPC) and an on-chain wallet,
/// stored in SQLite under the data directory.
#[derive(Debug, Parser)]
#[command(name = "vigild", version)]
struct Args {
    /// Data directory [default: $VIGIL_DATA_DIR, else ~/.vigil].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Network. Only regtest is supported today.
    #[arg(long, default_value = "regtest")]
    network: bitcoin::Network,
    /// Address the chain's JSON-RPC server listens on.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    rpc_bind: IpAddr,
    /// Port of the chain's JSON-RPC server (bitcoind's regtest default).
    #[arg(long, default_value_t = vigil_chain::rpc::DEFAULT_RPC_PORT)]
    rpc_port: u16,
    /// A fixed RPC user, accepted besides the cookie.
    #[arg(long, requires = "rpc_password")]
    rpc_user: Option<String>,
    /// The password of --rpc-user.
    #[arg(long, requires = "rpc_user", env = "VIGIL_RPC_PASSWORD", hide_env_values = true)]
    rpc_password: Option<String>,
    /// How often the wallet syncs with the chain, in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    sync_interval_ms: u64,
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
    if args.network != bitcoin::Network::Regtest {
        anyhow::bail!("network {} is not supported yet; vigild runs on regtest", args.network);
    }
    let config = DaemonConfig {
        data_dir: args.data_dir.unwrap_or_else(default_data_dir),
        rpc_bind: SocketAddr::new(args.rpc_bind, args.rpc_port),
        rpc_user_password: args.rpc_user.zip(args.rpc_password),
        sync_interval: Duration::from_millis(args.sync_interval_ms.max(10)),
    };
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %config.data_dir.display(), "vigild starting");
    let daemon = tokio::select! {
        started = Daemon::start(config) => started?,
        () = &mut shutdown => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    let result = daemon.run_until(shutdown).await;
    daemon.stop().await;
    Ok(result?)
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
