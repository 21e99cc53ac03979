//! Programs: sequences of operations picked from a seed, and running them.

use bitcoin::hashes::{sha256, Hash};

use crate::world::World;
use vigil_core::manager::PaymentId;

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `from` pays an invoice of `to` for `sat` (direct, forwarded or
    /// multi-part, as routing decides).
    Pay {
        /// The payer.
        from: usize,
        /// The payee.
        to: usize,
        /// The amount, in satoshis.
        sat: u64,
    },
    /// Deliver the next message from `from` to `to`.
    Deliver {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
    },
    /// Deliver every queued message.
    DeliverAll,
    /// Complete one of `node`'s writes that may complete (`pick` chooses).
    Complete {
        /// The node.
        node: usize,
        /// Which of the ready writes.
        pick: usize,
    },
    /// The `fsync` of one of `node`'s writes that may complete (`pick`
    /// chooses) fails: it stays in flight, to be written again; when
    /// `landed`, it reached the disk all the same.
    FailFsync {
        /// The node.
        node: usize,
        /// Which of the ready writes.
        pick: usize,
        /// Whether the data is on disk despite the failure.
        landed: bool,
    },
    /// Hold back the writes of one of `node`'s channels (`pick` chooses),
    /// so that other channels' writes overtake them.
    Stall {
        /// The node.
        node: usize,
        /// Which channel with writes in flight.
        pick: usize,
    },
    /// Complete every write of `node`.
    CompleteAll {
        /// The node.
        node: usize,
    },
    /// Complete every write of `node` except those of one channel with
    /// writes in flight (`pick` chooses): a disk where one region lags.
    CompleteAllBut {
        /// The node.
        node: usize,
        /// Which channel's writes stay in flight.
        pick: usize,
    },
    /// `node`'s disk lags on one of its channels (`pick` among them): for
    /// `rounds` rounds everything else moves (writes complete, messages are
    /// delivered, users handle events, time passes), then `node` crashes
    /// and that channel's writes are lost.
    Lag {
        /// The node.
        node: usize,
        /// Which of its open channels lags.
        pick: usize,
        /// How many rounds the rest moves before the crash.
        rounds: usize,
    },
    /// `node`'s user handles its events (claims, or refuses when `refuse`).
    Handle {
        /// The node.
        node: usize,
        /// Whether to refuse payments instead of claiming them.
        refuse: bool,
    },
    /// `node`'s user looks at its events without handling them.
    Peek {
        /// The node.
        node: usize,
    },
    /// `node` crashes and restarts from its durable image.
    Crash {
        /// The node.
        node: usize,
    },
    /// The link `a`–`b` drops.
    Disconnect {
        /// One end.
        a: usize,
        /// The other.
        b: usize,
    },
    /// The link `a`–`b` comes back.
    Reconnect {
        /// One end.
        a: usize,
        /// The other.
        b: usize,
    },
    /// A minute passes.
    Tick,
    /// A block is mined.
    Mine,
    /// `node`'s user force-closes its `pick`-th open channel.
    ForceClose {
        /// The node.
        node: usize,
        /// Which of its open channels.
        pick: usize,
    },
    /// The top `depth` blocks are replaced by `depth + 1` others.
    Reorg {
        /// How many blocks leave the chain.
        depth: u32,
    },
    /// On-chain claims start at a new feerate.
    FeeChange {
        /// Satoshis per 1000 weight units.
        feerate_per_kw: u32,
    },
}

/// A deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Where a program's choices come from: a seeded generator or fuzzer
/// bytes.
pub trait Choices {
    /// A number in `0..n`, or `None` when the source is exhausted.
    fn pick(&mut self, n: u64) -> Option<u64>;
}

impl Choices for Rng {
    fn pick(&mut self, n: u64) -> Option<u64> {
        Some(self.below(n))
    }
}

/// Choices read from bytes (a fuzzer's input): two bytes per choice.
#[derive(Debug, Clone)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Choices for Bytes<'_> {
    fn pick(&mut self, n: u64) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u64::from(u16::from_be_bytes(*head)) % n.max(1))
    }
}

/// The next operations over `nodes` nodes in a line (one, or a burst), or
/// `None` when the choices run out.
fn next_ops(c: &mut impl Choices, nodes: usize) -> Option<Vec<Op>> {
    let n = nodes as u64;
    let node = c.pick(n)? as usize;
    let op = match c.pick(100)? {
        // A burst: messages arrive, the user handles what it has, the disk
        // completes all but one region, and the node crashes (the lagging
        // writes are lost).
        84 => {
            return Some(vec![
                Op::DeliverAll,
                Op::Handle { node, refuse: false },
                Op::CompleteAllBut { node, pick: c.pick(8)? as usize },
                Op::Crash { node },
            ])
        }
        0..=11 => {
            let from = c.pick(n)? as usize;
            let to = (from + 1 + c.pick(n - 1)? as usize) % nodes;
            // Mostly small payments; some need two channels (MPP).
            let sat = if c.pick(4)? == 0 { 300_000 + c.pick(300_000)? } else { 1_000 + c.pick(50_000)? };
            Op::Pay { from, to, sat }
        }
        // A disk region lags while the rest moves on, then a crash.
        12..=13 | 87..=88 => Op::Lag { node, pick: c.pick(8)? as usize, rounds: 2 + c.pick(12)? as usize },
        14..=39 => {
            let a = c.pick(n - 1)? as usize;
            if c.pick(2)? == 0 {
                Op::Deliver { from: a, to: a + 1 }
            } else {
                Op::Deliver { from: a + 1, to: a }
            }
        }
        40..=44 => Op::DeliverAll,
        45..=61 => Op::Complete { node, pick: c.pick(8)? as usize },
        62..=63 => Op::FailFsync { node, pick: c.pick(8)? as usize, landed: c.pick(2)? == 0 },
        64..=66 => Op::Stall { node, pick: c.pick(8)? as usize },
        67..=70 => Op::CompleteAll { node },
        71..=80 => Op::Handle { node, refuse: c.pick(10)? == 0 },
        81..=83 => Op::Peek { node },
        85..=86 => Op::Crash { node },
        89..=90 => Op::Disconnect { a: c.pick(n - 1)? as usize, b: 0 },
        91..=94 => Op::Reconnect { a: c.pick(n - 1)? as usize, b: 0 },
        95..=97 => Op::Tick,
        // Chain moves: mostly blocks; now and then a reorg, a fee change or
        // a force-close.
        _ => match c.pick(20)? {
            0 => Op::ForceClose { node, pick: c.pick(8)? as usize },
            1..=2 => Op::Reorg { depth: 1 + c.pick(2)? as u32 },
            3 => Op::FeeChange { feerate_per_kw: 253 + c.pick(5_000)? as u32 },
            _ => Op::Mine,
        },
    };
    // Links join neighbours.
    Some(vec![match op {
        Op::Disconnect { a, .. } => Op::Disconnect { a, b: a + 1 },
        Op::Reconnect { a, .. } => Op::Reconnect { a, b: a + 1 },
        op => op,
    }])
}

/// The program of `seed`: `ops` operations over `nodes` nodes in a line.
pub fn generate(seed: u64, ops: usize, nodes: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut program = Vec::with_capacity(ops);
    while program.len() < ops {
        let Some(next) = next_ops(&mut rng, nodes) else { break };
        program.extend(next);
    }
    program.truncate(ops);
    program
}

/// The program a fuzzer's bytes describe (as many operations as the bytes
/// allow, at most `max_ops`).
pub fn from_bytes(data: &[u8], max_ops: usize, nodes: usize) -> Vec<Op> {
    let mut bytes = Bytes(data);
    let mut program = Vec::with_capacity(max_ops);
    while program.len() < max_ops {
        let Some(next) = next_ops(&mut bytes, nodes) else { break };
        program.extend(next);
    }
    program.truncate(max_ops);
    program
}

/// What running a program did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Operations run.
    pub ops: usize,
    /// Crashes among them.
    pub crashes: usize,
    /// Payments started (accepted by the payer).
    pub payments: usize,
    /// Writes whose `fsync` failed.
    pub failed_fsyncs: usize,
}

/// Runs `program` on `world`.
pub fn run(world: &mut World, program: &[Op]) -> Stats {
    let mut stats = Stats::default();
    for (k, op) in program.iter().enumerate() {
        stats.ops += 1;
        if world.trace {
            eprintln!("op {k}: {op:?}");
        }
        match *op {
            Op::Pay { from, to, sat } => {
                let invoice = world.nodes[to].manager.create_invoice(Some(sat * 1000), "sim", 3600);
                if let Ok(invoice) = invoice {
                    let id = PaymentId(sha256::Hash::hash(&(k as u64).to_be_bytes()).to_byte_array());
                    if world.nodes[from].manager.pay_invoice(&invoice, None, id).is_ok() {
                        stats.payments += 1;
                    }
                }
            }
            Op::Deliver { from, to } => {
                world.deliver_one(from, to);
            }
            Op::DeliverAll => {
                world.deliver_all();
            }
            Op::Complete { node, pick } => {
                world.nodes[node].complete(pick);
            }
            Op::FailFsync { node, pick, landed } => {
                if world.nodes[node].fail_fsync(pick, landed) {
                    stats.failed_fsyncs += 1;
                }
            }
            Op::Stall { node, pick } => world.nodes[node].stall(pick),
            Op::CompleteAll { node } => {
                world.nodes[node].complete_all();
            }
            Op::CompleteAllBut { node, pick } => world.nodes[node].complete_all_but(pick),
            Op::Lag { node, pick, rounds } => {
                stats.crashes += 1;
                world.lag(node, pick, rounds);
            }
            Op::Handle { node, refuse } => {
                world.user(node, true, refuse);
            }
            Op::Peek { node } => {
                world.user(node, false, false);
            }
            Op::Crash { node } => {
                stats.crashes += 1;
                world.crash(node);
            }
            Op::Disconnect { a, b } => world.disconnect(a, b),
            Op::Reconnect { a, b } => world.connect(a, b),
            Op::Tick => world.tick(),
            Op::Mine => world.mine(1),
            Op::ForceClose { node, pick } => world.force_close(node, pick),
            Op::Reorg { depth } => world.reorg(depth),
            Op::FeeChange { feerate_per_kw } => world.set_fee(feerate_per_kw),
        }
        world.collect();
    }
    stats
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Pay { from, to, sat } => write!(f, "pay:{from}>{to}:{sat}"),
            Op::Deliver { from, to } => write!(f, "deliver:{from}>{to}"),
            Op::DeliverAll => write!(f, "deliver-all"),
            Op::Complete { node, pick } => write!(f, "complete:{node}:{pick}"),
            Op::FailFsync { node, pick, landed: false } => write!(f, "fsync-fail:{node}:{pick}"),
            Op::FailFsync { node, pick, landed: true } => write!(f, "fsync-fail-landed:{node}:{pick}"),
            Op::Stall { node, pick } => write!(f, "stall:{node}:{pick}"),
            Op::CompleteAll { node } => write!(f, "complete-all:{node}"),
            Op::CompleteAllBut { node, pick } => write!(f, "complete-all-but:{node}:{pick}"),
            Op::Lag { node, pick, rounds } => write!(f, "lag:{node}:{pick}:{rounds}"),
            Op::Handle { node, refuse: false } => write!(f, "handle:{node}"),
            Op::Handle { node, refuse: true } => write!(f, "refuse:{node}"),
            Op::Peek { node } => write!(f, "peek:{node}"),
            Op::Crash { node } => write!(f, "crash:{node}"),
            Op::Disconnect { a, b } => write!(f, "disconnect:{a}-{b}"),
            Op::Reconnect { a, b } => write!(f, "reconnect:{a}-{b}"),
            Op::Tick => write!(f, "tick"),
            Op::Mine => write!(f, "mine"),
            Op::ForceClose { node, pick } => write!(f, "force-close:{node}:{pick}"),
            Op::Reorg { depth } => write!(f, "reorg:{depth}"),
            Op::FeeChange { feerate_per_kw } => write!(f, "fee:{feerate_per_kw}"),
        }
    }
}

/// A program as text: its operations' [`Op`] `Display` forms, separated by
/// spaces (what the CLI prints for a violation, and `--replay` reads).
pub fn to_text(program: &[Op]) -> String {
    program.iter().map(Op::to_string).collect::<Vec<_>>().join(" ")
}

/// Why a program's text is unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The operation that could not be read.
    pub token: String,
    /// Its position.
    pub index: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "operation {} ({:?}): {}", self.index, self.token, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Reads what [`to_text`] wrote, for `nodes` nodes in a line.
///
/// # Errors
///
/// [`ParseError`] for an unknown operation, a malformed number, a node out
/// of range, or a link between nodes that are not neighbours.
pub fn parse(text: &str, nodes: usize) -> Result<Vec<Op>, ParseError> {
    text.split_whitespace()
        .enumerate()
        .map(|(index, token)| {
            parse_op(token, nodes).map_err(|reason| ParseError { token: token.to_owned(), index, reason })
        })
        .collect()
}

fn parse_op(token: &str, nodes: usize) -> Result<Op, &'static str> {
    let (name, args) = token.split_once(':').unwrap_or((token, ""));
    let num = |s: &str| s.parse::<u64>().map_err(|_| "a number is malformed");
    let node = |s: &str| -> Result<usize, &'static str> {
        let n = num(s)? as usize;
        if n < nodes {
            Ok(n)
        } else {
            Err("no such node")
        }
    };
    let pair = |s: &str, sep: char| -> Result<(usize, usize), &'static str> {
        let (a, b) = s.split_once(sep).ok_or("two nodes are expected")?;
        Ok((node(a)?, node(b)?))
    };
    let link = |s: &str| -> Result<(usize, usize), &'static str> {
        let (a, b) = pair(s, '-')?;
        if b == a + 1 {
            Ok((a, b))
        } else {
            Err("links join neighbours: a-(a+1)")
        }
    };
    let node_pick = |s: &str| -> Result<(usize, usize), &'static str> {
        let (n, p) = s.split_once(':').ok_or("a node and a pick are expected")?;
        Ok((node(n)?, num(p)? as usize))
    };
    Ok(match name {
        "pay" => {
            let (route, sat) = args.rsplit_once(':').ok_or("pay:from>to:sat is expected")?;
            let (from, to) = pair(route, '>')?;
            Op::Pay { from, to, sat: num(sat)? }
        }
        "deliver" => {
            let (from, to) = pair(args, '>')?;
            Op::Deliver { from, to }
        }
        "deliver-all" => Op::DeliverAll,
        "complete" => {
            let (node, pick) = node_pick(args)?;
            Op::Complete { node, pick }
        }
        "fsync-fail" | "fsync-fail-landed" => {
            let (node, pick) = node_pick(args)?;
            Op::FailFsync { node, pick, landed: name == "fsync-fail-landed" }
        }
        "stall" => {
            let (node, pick) = node_pick(args)?;
            Op::Stall { node, pick }
        }
        "complete-all" => Op::CompleteAll { node: node(args)? },
        "complete-all-but" => {
            let (node, pick) = node_pick(args)?;
            Op::CompleteAllBut { node, pick }
        }
        "lag" => {
            let (node_pick_text, rounds) = args.rsplit_once(':').ok_or("lag:node:pick:rounds is expected")?;
            let (node, pick) = node_pick(node_pick_text)?;
            Op::Lag { node, pick, rounds: num(rounds)? as usize }
        }
        "handle" => Op::Handle { node: node(args)?, refuse: false },
        "refuse" => Op::Handle { node: node(args)?, refuse: true },
        "peek" => Op::Peek { node: node(args)? },
        "crash" => Op::Crash { node: node(args)? },
        "disconnect" => {
            let (a, b) = link(args)?;
            Op::Disconnect { a, b }
        }
        "reconnect" => {
            let (a, b) = link(args)?;
            Op::Reconnect { a, b }
        }
        "tick" => Op::Tick,
        "mine" => Op::Mine,
        "force-close" => {
            let (node, pick) = node_pick(args)?;
            Op::ForceClose { node, pick }
        }
        "reorg" => Op::Reorg { depth: num(args)? as u32 },
        "fee" => Op::FeeChange { feerate_per_kw: num(args)? as u32 },
        _ => return Err("unknown operation"),
    })
}
