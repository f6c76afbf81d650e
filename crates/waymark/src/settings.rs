//! Configuration loading: defaults, then a TOML file, then `WAYMARK_*` environment variables, then flags.
//! Errors name the source of the bad value.

use crate::cli::{Cli, ServeArgs};
use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use waymark_server::ServerConfig;

/// Everything `waymark serve` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Data directory of the embedded store.
    pub data: PathBuf,
    /// `sqlite` (default) or a `postgres://…` URL.
    pub store: String,
    /// PostgreSQL schema holding Waymark's tables.
    pub pg_schema: String,
    /// `normal` or `full` (SQLite fsync on every commit).
    pub durability: String,
    /// Customer states the embedded store's writer keeps in memory (about 5 KB each); an event of a visitor not
    /// among them reads the state back from its row first. It bounds the server's memory under any load.
    pub state_cache_customers: usize,
    /// The nice value the embedded store's writer thread asks for (-20..=19; 0: leave it alone). Raising a
    /// priority needs CAP_SYS_NICE or RLIMIT_NICE; without them the writer keeps the process's priority.
    pub store_writer_nice: i32,
    /// Microseconds a small commit group of the embedded store waits for more requests while several are in
    /// flight (0: never waits).
    pub store_commit_delay_us: u64,
    pub log_format: String,
    pub server: ServerConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data: PathBuf::from("./waymark-data"),
            store: "sqlite".into(),
            pg_schema: "public".into(),
            durability: "normal".into(),
            state_cache_customers: waymark_store::sqlite::DEFAULT_CACHE_CUSTOMERS,
            store_writer_nice: waymark_store::sqlite::DEFAULT_WRITER_NICE,
            store_commit_delay_us: waymark_store::sqlite::DEFAULT_COMMIT_DELAY.as_micros() as u64,
            log_format: "pretty".into(),
            server: ServerConfig::default(),
        }
    }
}

/// Load settings for `serve`-like commands.
pub fn load(config_file: Option<&PathBuf>, args: &ServeArgs) -> Result<Settings> {
    let mut fig = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = config_file {
        anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
        fig = fig.merge(Toml::file(path));
    } else if std::path::Path::new("waymark.toml").exists() {
        fig = fig.merge(Toml::file("waymark.toml"));
    }
    fig = fig.merge(Env::prefixed("WAYMARK_").split("__"));
    let mut s: Settings = fig.extract().context("invalid configuration (file waymark.toml or WAYMARK_* variables)")?;
    if let Some(d) = &args.data {
        s.data = d.clone();
    }
    if let Some(l) = &args.listen {
        s.server.listen = l.parse().with_context(|| format!("--listen {l:?} is not an address like 127.0.0.1:8080"))?;
    }
    if let Some(st) = &args.store {
        s.store = st.clone();
    }
    if let Some(p) = &args.pg_schema {
        s.pg_schema = p.clone();
    }
    if let Some(g) = &args.geoip_city_db {
        s.server.geoip_city_db = Some(g.clone());
    }
    if let Some(u) = &args.ua_regexes {
        s.server.ua_regexes = Some(u.clone());
    }
    if let Some(d) = &args.durability {
        s.durability = d.clone();
    }
    Ok(s)
}

pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    // A benchmark prints its own progress and figures; the store it opens in-process to set up the run (its
    // migrations, say) would only interleave lines with them.
    let quiet = matches!(cli.command, crate::cli::Command::Bench(_));
    let default = match (cli.verbose, quiet) {
        (true, _) => "debug",
        (false, true) => "warn",
        (false, false) => "info,tower_http=warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("WAYMARK_LOG_FORMAT").map(|v| v == "json").unwrap_or(false) || cli.log_json;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_cache_size_comes_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let load_text = |text: &str| {
            let path = dir.path().join("waymark.toml");
            std::fs::write(&path, text).unwrap();
            load(Some(&path), &ServeArgs::default())
        };
        assert_eq!(load_text("").unwrap().state_cache_customers, waymark_store::sqlite::DEFAULT_CACHE_CUSTOMERS);
        assert_eq!(load_text("state_cache_customers = 1234\n").unwrap().state_cache_customers, 1234);
        assert!(load_text("state_cache_customers = \"lots\"\n").is_err(), "a size that is not a number is refused");
        assert_eq!(load_text("").unwrap().store_writer_nice, waymark_store::sqlite::DEFAULT_WRITER_NICE);
        assert_eq!(load_text("store_writer_nice = 0\n").unwrap().store_writer_nice, 0);
        assert_eq!(load_text("").unwrap().store_commit_delay_us, 200);
        assert_eq!(load_text("store_commit_delay_us = 0\n").unwrap().store_commit_delay_us, 0);
    }
}
