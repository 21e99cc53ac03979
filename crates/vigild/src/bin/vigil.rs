//! `vigil`: the command-line client of `vigild`. Today it drives the embedded
//! regtest chain over its bitcoind-compatible RPC.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use vigil_chain::rpc::{BitcoindRpcChain, RpcAuth};
use vigil_chain::ChainSourceError;
use vigild::datadir::{default_data_dir, network_dir_name};

/// Talk to a running vigild.
#[derive(Debug, Parser)]
#[command(name = "vigil", version)]
struct Args {
    /// vigild's data directory (to find the RPC cookie) [default: $VIGIL_DATA_DIR, else ~/.vigil].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// URL of the chain's RPC server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:18443")]
    rpc_url: String,
    /// RPC cookie file [default: <data-dir>/regtest/.cookie].
    #[arg(long, global = true, value_name = "FILE")]
    rpc_cookie: Option<PathBuf>,
    /// RPC user, instead of the cookie.
    #[arg(long, global = true, requires = "rpc_password")]
    rpc_user: Option<String>,
    /// RPC password of --rpc-user.
    #[arg(long, global = true, env = "VIGIL_RPC_PASSWORD", hide_env_values = true)]
    rpc_password: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The embedded regtest chain.
    #[command(subcommand)]
    Chain(ChainCommand),
}

#[derive(Debug, Subcommand)]
enum ChainCommand {
    /// Height, tip and time of the chain.
    Info,
    /// Mine blocks paying their reward to an address.
    Mine {
        /// How many blocks.
        blocks: u32,
        /// The address the rewards go to (vigild logs its wallet's address).
        address: String,
    },
}

fn client(args: &Args) -> anyhow::Result<BitcoindRpcChain> {
    let auth = match (&args.rpc_user, &args.rpc_password) {
        (Some(user), Some(password)) => RpcAuth::UserPass { user: user.clone(), password: password.clone() },
        _ => {
            let cookie = args.rpc_cookie.clone().unwrap_or_else(|| {
                let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
                dir.join(network_dir_name(bitcoin::Network::Regtest).expect("regtest has a directory"))
                    .join(".cookie")
            });
            if !cookie.exists() {
                anyhow::bail!(
                    "no RPC cookie at {}: is vigild running? (start it with `vigild`, or pass the same --data-dir)",
                    cookie.display()
                );
            }
            RpcAuth::Cookie(cookie)
        }
    };
    Ok(BitcoindRpcChain::new(&args.rpc_url, auth)?)
}

fn call(rpc: &BitcoindRpcChain, url: &str, method: &str, params: &[Value]) -> anyhow::Result<Value> {
    rpc.call(method, params).map_err(|e| match e {
        ChainSourceError::Unavailable(detail) => {
            anyhow::anyhow!("cannot reach vigild's RPC at {url} ({detail}): is vigild running?")
        }
        ChainSourceError::Unauthorized => {
            anyhow::anyhow!("vigild refused the credentials: check --data-dir, --rpc-cookie or --rpc-user")
        }
        ChainSourceError::Rpc { code, message } => {
            anyhow::anyhow!("{method} failed: {message} (code {code})")
        }
        other => anyhow::anyhow!("{method} failed: {other}"),
    })
}

fn run(args: &Args) -> anyhow::Result<()> {
    let rpc = client(args)?;
    match &args.command {
        Command::Chain(ChainCommand::Info) => {
            let info = call(&rpc, &args.rpc_url, "getblockchaininfo", &[])?;
            if args.json {
                println!("{info:#}");
            } else {
                println!(
                    "chain {} at height {}\ntip {}\nmedian time {}",
                    info["chain"].as_str().unwrap_or("?"),
                    info["blocks"],
                    info["bestblockhash"].as_str().unwrap_or("?"),
                    info["mediantime"]
                );
            }
        }
        Command::Chain(ChainCommand::Mine { blocks, address }) => {
            let hashes = call(&rpc, &args.rpc_url, "generatetoaddress", &[json!(blocks), json!(address)])
                .context("mining failed")?;
            if args.json {
                println!("{hashes:#}");
            } else {
                let height = call(&rpc, &args.rpc_url, "getblockcount", &[])?;
                println!("mined {blocks} block(s) to {address}; the chain is at height {height}");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
