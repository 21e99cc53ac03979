//! `vigil`: the command-line client of `vigild`'s HTTP API, and `vigil
//! demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use vigild::datadir::{default_data_dir, network_dir_name};

/// Talk to a running vigild.
#[derive(Debug, Parser)]
#[command(name = "vigil", version)]
struct Args {
    /// vigild's data directory (to find the API token) [default: $VIGIL_DATA_DIR, else ~/.vigil].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// URL of vigild's HTTP API.
    #[arg(long, global = true, env = "VIGIL_API_URL", default_value = "http://127.0.0.1:9737")]
    api_url: String,
    /// The API token file [default: <data-dir>/regtest/api.token].
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The node: id, addresses, chain height, channels.
    Getinfo,
    /// Connect to a peer: NODE_ID@HOST:PORT.
    Connect {
        /// The peer, as node_id@host:port.
        peer: String,
    },
    /// Open a channel, funded from the on-chain wallet.
    Openchannel {
        /// The peer: NODE_ID, or NODE_ID@HOST:PORT to connect first.
        peer: String,
        /// The channel's value, in satoshis.
        amount_sat: u64,
        /// Millisatoshis given to the peer at the start.
        #[arg(long, default_value_t = 0)]
        push_msat: u64,
        /// Use zero-fee-HTLC anchors (default: vigild's `anchors` option).
        #[arg(long)]
        anchors: bool,
    },
    /// The node's channels.
    Listchannels,
    /// Close a channel cooperatively, or with --force by our commitment.
    Closechannel {
        /// The channel id (hex).
        channel_id: String,
        /// Force-close: put our commitment on chain now.
        #[arg(long)]
        force: bool,
    },
    /// Create a BOLT 11 invoice.
    Invoice {
        /// Amount in millisatoshis, or `any`.
        amount_msat: String,
        /// Its description.
        #[arg(long, default_value = "")]
        description: String,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 3600)]
        expiry_secs: u32,
    },
    /// Pay a BOLT 11 invoice, waiting for the outcome.
    Pay {
        /// The invoice.
        invoice: String,
        /// Amount in millisatoshis, for an invoice without one.
        #[arg(long)]
        amount_msat: Option<u64>,
        /// Seconds to wait for the outcome (0: return at once).
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Pay a node without an invoice.
    Keysend {
        /// The payee's node id.
        node_id: String,
        /// Amount in millisatoshis.
        amount_msat: u64,
        /// Seconds to wait for the outcome (0: return at once).
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Every payment, sent and received.
    Listpayments,
    /// A new on-chain address.
    Newaddr,
    /// On-chain and channel balances.
    Balance,
    /// Pay on chain from the wallet.
    Send {
        /// The address.
        address: String,
        /// Amount in satoshis.
        amount_sat: u64,
    },
    /// The chain (mining: embedded regtest chain only).
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Events not acknowledged yet.
    Events {
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
        /// Acknowledge each event once printed (it is never shown again).
        #[arg(long)]
        ack: bool,
    },
    /// Three nodes in this process pay each other, one crashes mid-payment
    /// and restarts from disk, and nothing is lost.
    Demo,
}

#[derive(Debug, Subcommand)]
enum ChainCommand {
    /// Height and tip.
    Info,
    /// Mine blocks (to the node's wallet unless an address is given).
    Mine {
        /// How many blocks.
        blocks: u32,
        /// Where the rewards go.
        address: Option<String>,
    },
}

struct Client {
    agent: ureq::Agent,
    url: String,
    token: String,
}

impl Client {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let path = args.token_file.clone().unwrap_or_else(|| {
            let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
            let network = network_dir_name(bitcoin::Network::Regtest).expect("regtest has a directory");
            dir.join(network).join("api.token")
        });
        let token = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the API token {} ({e}): is vigild running on this data directory? (start it with `vigild`, or pass the same --data-dir)",
                path.display()
            )
        })?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(vigild::api::MAX_WAIT_SECS + 30))
            .build();
        Ok(Self {
            agent,
            url: args.api_url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
        })
    }

    /// Reads the server-sent event stream, handing each event to `show`;
    /// reconnects after a dropped connection, from the last event shown.
    fn follow_events(&self, mut show: impl FnMut(&Value) -> anyhow::Result<()>) -> anyhow::Result<()> {
        // The server sends a keep-alive comment every 15 s; a silence much
        // longer than that is a dead connection.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(60))
            .build();
        let mut after: Option<u64> = None;
        let mut connected = false;
        loop {
            let query = after.map_or_else(String::new, |a| format!("?after={a}"));
            let response = agent
                .get(&format!("{}/v1/events/stream{query}", self.url))
                .set("Authorization", &format!("Bearer {}", self.token))
                .call();
            let response = match response {
                Ok(r) => r,
                // The first connection must work (else the options are
                // wrong); later, vigild may be restarting: keep trying.
                Err(e) if !connected => return Err(self.explain(e)),
                Err(e) => {
                    eprintln!("vigil: {}; trying again in 2 s", self.explain(e));
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                }
            };
            connected = true;
            let mut data = String::new();
            for line in std::io::BufRead::lines(std::io::BufReader::new(response.into_reader())) {
                let Ok(line) = line else { break };
                if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                } else if line.is_empty() && !data.is_empty() {
                    let event: Value = serde_json::from_str(&std::mem::take(&mut data))?;
                    show(&event)?;
                    after = event["id"].as_u64().or(after);
                }
            }
            eprintln!("vigil: the event stream dropped; reconnecting");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => Ok(response.into_json()?),
            Err(e) => Err(self.explain(e)),
        }
    }

    /// Turns a failed request into an error that says what to do.
    fn explain(&self, error: ureq::Error) -> anyhow::Error {
        match error {
            ureq::Error::Status(status, response) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                let error = &body["error"];
                let message = error["message"].as_str().unwrap_or("no details");
                match (status, error["field"].as_str()) {
                    (401, _) => {
                        anyhow::anyhow!(
                            "vigild refused the token: {message} (check --data-dir or --token-file)"
                        )
                    }
                    (_, Some(field)) => anyhow::anyhow!("{field}: {message}"),
                    _ => anyhow::anyhow!("{message}"),
                }
            }
            ureq::Error::Transport(e) => anyhow::anyhow!(
                "cannot reach vigild at {} ({e}): is it running? (`vigild`, or set --api-url)",
                self.url
            ),
        }
    }
}

fn split_peer(peer: &str) -> (String, Option<String>) {
    match peer.split_once('@') {
        Some((id, addr)) => (id.to_string(), Some(addr.to_string())),
        None => (peer.to_string(), None),
    }
}

fn sat(msat: &Value) -> String {
    msat.as_u64().map_or_else(|| "-".into(), |m| format!("{}.{:03}", m / 1000, m % 1000))
}

fn print_payment(p: &Value) {
    println!(
        "{:<8} {:<9} {:>16} sat  fee {:>10}  {}{}",
        p["direction"].as_str().unwrap_or("?"),
        p["status"].as_str().unwrap_or("?"),
        sat(&p["amount_msat"]),
        sat(&p["fee_msat"]),
        p["payment_hash"].as_str().unwrap_or("?"),
        p["failure_reason"].as_str().map(|r| format!("  ({r})")).unwrap_or_default(),
    );
}

fn print_event(e: &Value) {
    let mut fields: Vec<String> = e
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "id" && *k != "type")
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    println!("#{} {} {}", e["id"], e["type"].as_str().unwrap_or("?"), fields.join(" "));
}

fn run(args: &Args) -> anyhow::Result<()> {
    if let Command::Demo = args.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let report = runtime.block_on(vigild::demo::run(|line| println!("{line}")))?;
        if args.json {
            println!("{report:#}");
        }
        return Ok(());
    }
    let client = Client::new(args)?;
    let (result, human): (Value, Box<dyn Fn(&Value)>) = match &args.command {
        Command::Getinfo => (
            client.call("GET", "/v1/info", None)?,
            Box::new(|v| {
                println!("node id     {}", v["node_id"].as_str().unwrap_or("?"));
                println!("listening   {}", v["listening"].as_str().unwrap_or("-"));
                println!(
                    "network     {} ({} chain)",
                    v["network"].as_str().unwrap_or("?"),
                    v["chain"].as_str().unwrap_or("?")
                );
                println!("height      {}", v["block_height"]);
                println!("peers       {}", v["peers"]);
                println!("channels    {} ({} usable)", v["channels"], v["usable_channels"]);
                if let Some(e) = v["last_error"].as_str() {
                    println!("last error  {e}");
                }
            }),
        ),
        Command::Connect { peer } => {
            let (id, addr) = split_peer(peer);
            let Some(addr) = addr else { bail!("give the peer as NODE_ID@HOST:PORT") };
            (
                client.call("POST", "/v1/peers", Some(json!({ "node_id": id, "address": addr })))?,
                Box::new(|v| println!("connected to {}", v["connected"].as_str().unwrap_or("?"))),
            )
        }
        Command::Openchannel { peer, amount_sat, push_msat, anchors } => {
            let (id, addr) = split_peer(peer);
            let mut body =
                json!({ "node_id": id, "address": addr, "amount_sat": amount_sat, "push_msat": push_msat });
            if *anchors {
                body["anchors"] = json!(true);
            }
            (
                client.call("POST", "/v1/channels", Some(body))?,
                Box::new(|v| {
                    println!("opening channel {}", v["temporary_channel_id"].as_str().unwrap_or("?"));
                    println!("{}", v["next"].as_str().unwrap_or(""));
                }),
            )
        }
        Command::Listchannels => (
            client.call("GET", "/v1/channels", None)?,
            Box::new(|v| {
                let channels = v.as_array().cloned().unwrap_or_default();
                if channels.is_empty() {
                    println!("no channels (open one with `vigil openchannel NODE_ID@HOST:PORT AMOUNT_SAT`)");
                }
                for c in channels {
                    println!(
                        "{}  {:<30} {:>12} sat  ours {:>16} sat  htlcs {}  peer {}",
                        c["channel_id"].as_str().unwrap_or("?"),
                        c["state"].as_str().unwrap_or("?"),
                        c["value_sat"],
                        sat(&c["balance_msat"]),
                        c["pending_htlcs"],
                        c["peer"].as_str().unwrap_or("?"),
                    );
                }
            }),
        ),
        Command::Closechannel { channel_id, force } => (
            client.call(
                "POST",
                "/v1/channels/close",
                Some(json!({ "channel_id": channel_id, "force": force })),
            )?,
            Box::new(|v| {
                if v["force"].as_bool() == Some(true) {
                    println!(
                        "force-closing {}: our commitment goes on chain; funds return after its delay",
                        v["channel_id"].as_str().unwrap_or("?")
                    );
                } else {
                    println!("closing {} cooperatively", v["channel_id"].as_str().unwrap_or("?"));
                }
            }),
        ),
        Command::Invoice { amount_msat, description, expiry_secs } => {
            let amount = match amount_msat.as_str() {
                "any" => None,
                a => Some(a.parse::<u64>().context("the amount is a number of millisatoshis, or `any`")?),
            };
            let body =
                json!({ "amount_msat": amount, "description": description, "expiry_secs": expiry_secs });
            (
                client.call("POST", "/v1/invoices", Some(body))?,
                Box::new(|v| println!("{}", v["invoice"].as_str().unwrap_or("?"))),
            )
        }
        Command::Pay { invoice, amount_msat, wait_secs } => {
            let body = json!({ "invoice": invoice, "amount_msat": amount_msat, "wait_secs": wait_secs });
            (client.call("POST", "/v1/payments/pay", Some(body))?, Box::new(print_payment))
        }
        Command::Keysend { node_id, amount_msat, wait_secs } => {
            let body = json!({ "node_id": node_id, "amount_msat": amount_msat, "wait_secs": wait_secs });
            (client.call("POST", "/v1/payments/keysend", Some(body))?, Box::new(print_payment))
        }
        Command::Listpayments => (
            client.call("GET", "/v1/payments", None)?,
            Box::new(|v| {
                let payments = v.as_array().cloned().unwrap_or_default();
                if payments.is_empty() {
                    println!("no payments");
                }
                payments.iter().for_each(print_payment);
            }),
        ),
        Command::Newaddr => (
            client.call("POST", "/v1/wallet/address", None)?,
            Box::new(|v| println!("{}", v["address"].as_str().unwrap_or("?"))),
        ),
        Command::Balance => (
            client.call("GET", "/v1/wallet/balance", None)?,
            Box::new(|v| {
                println!(
                    "on chain    {} sat confirmed, {} sat pending",
                    v["onchain_confirmed_sat"], v["onchain_pending_sat"]
                );
                println!("lightning   {} sat", sat(&v["lightning_msat"]));
            }),
        ),
        Command::Send { address, amount_sat } => (
            client.call(
                "POST",
                "/v1/wallet/send",
                Some(json!({ "address": address, "amount_sat": amount_sat })),
            )?,
            Box::new(|v| println!("sent: {}", v["txid"].as_str().unwrap_or("?"))),
        ),
        Command::Chain(ChainCommand::Info) => (
            client.call("GET", "/v1/chain/info", None)?,
            Box::new(|v| {
                println!("height {} (followed to {})", v["height"], v["followed_height"]);
                println!("tip    {}", v["tip"].as_str().unwrap_or("?"));
            }),
        ),
        Command::Chain(ChainCommand::Mine { blocks, address }) => (
            client.call("POST", "/v1/chain/mine", Some(json!({ "blocks": blocks, "address": address })))?,
            Box::new(|v| {
                let n = v["blocks"].as_array().map_or(0, Vec::len);
                println!("mined {n} block(s); the chain is at height {}", v["height"]);
            }),
        ),
        Command::Events { follow, ack } => {
            let show = |e: &Value| -> anyhow::Result<()> {
                if args.json {
                    println!("{e}");
                } else {
                    print_event(e);
                }
                if *ack {
                    client.call("POST", "/v1/events/ack", Some(json!({ "id": e["id"] })))?;
                }
                Ok(())
            };
            if *follow {
                return client.follow_events(show);
            }
            for e in client.call("GET", "/v1/events", None)?.as_array().cloned().unwrap_or_default() {
                show(&e)?;
            }
            return Ok(());
        }
        Command::Demo => unreachable!("handled above"),
    };
    if args.json {
        println!("{result:#}");
    } else {
        human(&result);
    }
    // A payment that failed, or is still pending when the wait ended, is
    // not a success for a script.
    if let Command::Pay { wait_secs, .. } | Command::Keysend { wait_secs, .. } = &args.command {
        match result["status"].as_str() {
            Some("succeeded") => {}
            Some("pending") if *wait_secs == 0 => {}
            Some("failed") => bail!(
                "the payment failed: {}",
                result["failure_reason"].as_str().unwrap_or("no reason given")
            ),
            other => bail!(
                "the payment is still {} (follow it with `vigil listpayments`, or wait longer with --wait-secs)",
                other.unwrap_or("unknown")
            ),
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
