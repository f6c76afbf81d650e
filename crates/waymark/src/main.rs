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

/// jemalloc instead of glibc malloc: the request threads and the store's writer allocate concurrently, and
/// glibc's arena locks showed up in profiles of the ingest benchmark. Measured on `bench ingest-batch` the same
/// hour: glibc 26,550–27,640 events/s, mimalloc 38,070–40,020, jemalloc 44,010–44,220 (mimalloc spent a fifth
/// of the writer thread collecting blocks that other threads freed).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    settings::init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli::run(cli))
}
