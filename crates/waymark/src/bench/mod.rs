//! `waymark bench <scenario>`: the benchmark harness. Each scenario starts a real `waymark serve` child process
//! on a fresh data directory (so the server's resident memory is measured alone), drives it over HTTP from this
//! process with a small built-in HTTP/1.1 load generator, prints median/p99 latency and throughput next to the
//! target and the machine's ceiling (a bare axum handler parsing the same JSON; raw SQLite indexed inserts),
//! and with `--write-benchmarks` records the figures and the exact command in `BENCHMARKS.md`.
//!
//! The harness only talks to the store through the `Store` trait (`open_store`), so `--store postgres://…`
//! benchmarks whichever backend the build supports.

mod ceiling;
mod client;
mod report;
mod scenarios;
mod server;

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Single-event POSTs at `--connections` (default 64) connections.
    IngestSingle,
    /// Batches of `--batch` (default 100) events.
    IngestBatch,
    /// Journey read endpoints for a contact with 200 sessions / 10,000 events in a store of `--events` events.
    Reads,
    /// Event accepted → visible on `--agents` connected SSE streams.
    Live,
    /// `--idle` idle live connections; resident memory of the server.
    IdleConns,
    /// Only the ceilings: bare axum JSON handler and raw SQLite indexed inserts.
    Ceiling,
    /// Mixed load for `--minutes`, sampling RSS and latency.
    Soak,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::IngestSingle => "ingest-single",
            Scenario::IngestBatch => "ingest-batch",
            Scenario::Reads => "reads",
            Scenario::Live => "live",
            Scenario::IdleConns => "idle-conns",
            Scenario::Ceiling => "ceiling",
            Scenario::Soak => "soak",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Measured seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Client connections (default: 64 single, 8 batch on SQLite and 16 on PostgreSQL, 32 reads, 8 live
    /// publishers).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Events preloaded into the store for `reads` (10000000 for the full figure).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Connected agents for `live`.
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,
    /// Idle live connections for `idle-conns`.
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Minutes of mixed load for `soak`.
    #[arg(long, default_value_t = 5)]
    pub minutes: u64,
    /// `sqlite` (default) or a PostgreSQL URL.
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// SQLite durability of the server under test: `normal` or `full`.
    #[arg(long, default_value = "normal")]
    pub durability: String,
    /// Servers sharing the store for `ingest-single` / `ingest-batch` (PostgreSQL only): the run measures one
    /// node, then this many with the connections spread over them.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// PostgreSQL schema of the store under test (with `--store postgres://…`).
    #[arg(long)]
    pub pg_schema: Option<String>,
    /// Keep the server's data here instead of a temporary directory. For `reads`, a directory holding a store
    /// preloaded by an earlier `reads` run with the same `--events` and `--store` is reused as it is (the
    /// preload of 10 M events takes minutes); delete the directory to preload again.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Skip the ceiling measurements.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Record the figures in this file's section for the scenario.
    #[arg(long)]
    pub write_benchmarks: bool,
    /// The file `--write-benchmarks` updates.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub benchmarks_file: PathBuf,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let machine = report::Machine::detect();
    eprintln!("waymark bench {}  on {}", args.scenario.name(), machine.describe());
    // Figures of the PostgreSQL store get blocks of their own (`ingest-batch-postgres`, …).
    let block = if args.store == "sqlite" {
        args.scenario.name().to_string()
    } else {
        format!("{}-postgres", args.scenario.name())
    };
    let mut section = report::Section::new(block, &machine);
    match args.scenario {
        Scenario::IngestSingle => scenarios::ingest(&args, false, &mut section).await?,
        Scenario::IngestBatch => scenarios::ingest(&args, true, &mut section).await?,
        Scenario::Reads => scenarios::reads(&args, &mut section).await?,
        Scenario::Live => scenarios::live(&args, &mut section).await?,
        Scenario::IdleConns => scenarios::idle_conns(&args, &mut section).await?,
        Scenario::Ceiling => {
            ceiling::http(&args, &mut section).await?;
            ceiling::sqlite(&mut section)?;
        }
        Scenario::Soak => scenarios::soak(&args, &mut section).await?,
    }
    println!("{}", section.render());
    if args.write_benchmarks {
        section.write_into(&args.benchmarks_file)?;
        eprintln!("updated {}", args.benchmarks_file.display());
    }
    Ok(())
}
