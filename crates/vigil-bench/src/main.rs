//! `vigil-bench`: runs a scenario for Vigil and for LDK 0.2.7 in this
//! process and prints medians and the ratio Vigil/LDK (one JSON object per
//! row with `--json`).
//!
//! ```text
//! cargo run --release -p vigil-bench -- all --json
//! ```

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use vigil_bench::limits;
use vigil_bench::report::Row;
use vigil_bench::scenarios::{self, Sizes};
use vigil_bench::store::StoreKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Sequential payments A→B, B→A on one channel, in-memory stores.
    PaymentsMem,
    /// The same on SQLite stores, every transaction fsynced.
    PaymentsDisk,
    /// Payments with hundreds in flight on one channel, SQLite stores.
    PaymentsConcurrent,
    /// A→B→C on SQLite stores: forwards per second at B.
    Forward,
    /// Start-up time against channels, history and unacknowledged events.
    Restart,
    /// Bytes written and fsyncs per payment and node.
    Bytes,
    /// Costs of signatures, point multiplications and fsyncs, and the
    /// ceilings they set.
    Limits,
    /// Every scenario.
    All,
}

#[derive(Debug, Parser)]
#[command(name = "vigil-bench", about = "Vigil and LDK side by side, in one process")]
struct Args {
    /// What to run.
    scenario: Scenario,
    /// One JSON object per result row.
    #[arg(long)]
    json: bool,
    /// Runs per side (default 5).
    #[arg(long)]
    runs: Option<usize>,
    /// Tiny sizes, to check the harness works (numbers mean nothing).
    #[arg(long)]
    quick: bool,
}

fn print(rows: &[Row], json: bool) {
    for row in rows {
        if json {
            println!("{}", row.to_json());
        } else {
            println!("{}", row.to_text());
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut sizes = if args.quick { Sizes::quick() } else { Sizes::full() };
    if let Some(runs) = args.runs {
        sizes.runs = runs.max(1);
    }
    let wants = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let (mut mem, mut disk, mut fwd) = (None, None, None);
    let emit = |rows: Vec<Row>| print(&rows, args.json);
    if wants(Scenario::PaymentsMem) {
        let row = scenarios::payments(StoreKind::Memory, &sizes)?;
        mem = Some(row.vigil);
        emit(vec![row]);
    }
    if wants(Scenario::PaymentsDisk) {
        let row = scenarios::payments(StoreKind::Sqlite, &sizes)?;
        disk = Some(row.vigil);
        emit(vec![row]);
    }
    if wants(Scenario::PaymentsConcurrent) {
        emit(vec![scenarios::payments_concurrent(&sizes)?]);
    }
    if wants(Scenario::Forward) {
        let row = scenarios::forward(&sizes)?;
        fwd = Some(row.vigil);
        emit(vec![row]);
    }
    if wants(Scenario::Bytes) {
        emit(scenarios::bytes(&sizes)?);
    }
    if wants(Scenario::Restart) {
        emit(scenarios::restart(&sizes)?);
    }
    if wants(Scenario::Limits) {
        let costs = limits::measure(if args.quick { 200 } else { 4_000 });
        // Alone, `limits` measures Vigil's rates with one short run each.
        let short = Sizes { runs: 1, ..sizes.clone() };
        let mem = match mem {
            Some(m) => m,
            None => scenarios::payments(StoreKind::Memory, &short)?.vigil,
        };
        let disk = match disk {
            Some(d) => d,
            None => scenarios::payments(StoreKind::Sqlite, &short)?.vigil,
        };
        let fwd = match fwd {
            Some(f) => f,
            None => scenarios::forward(&short)?.vigil,
        };
        emit(limits::rows(&costs, mem, disk, fwd));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) && !args.quick {
        eprintln!("vigil-bench: this is a debug build; run with `cargo run --release -p vigil-bench -- …`");
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
