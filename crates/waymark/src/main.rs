//! The `waymark` command: a thin shell over the library crates. It parses flags and configuration, opens the
//! store, and runs the server, the administration commands, the demo or the benchmarks.

mod admin_cli;
mod bench;
mod cli;
mod demo;
mod demo_calls;
mod settings;
mod visitors;

use anyhow::Result;
use clap::Parser;

/// mimalloc instead of glibc malloc: the request threads and the store's writer allocate concurrently, and
/// glibc's arena locks showed up in profiles of the ingest benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    settings::init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli::run(cli))
}
