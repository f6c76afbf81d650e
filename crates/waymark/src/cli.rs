//! Command-line interface: `serve`, `admin`, `demo`, `migrate`, `bench`.

use crate::settings::{self, Settings};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use waymark_server::bootstrap::{BootstrapRequest, bootstrap};
use waymark_server::clock::Clock;
use waymark_server::{AppState, Server};
use waymark_store::Store;
use waymark_store::postgres::{PgConfig, PgStore};
use waymark_store::sqlite::{Durability, SqliteConfig, SqliteStore};

#[derive(Debug, Parser)]
#[command(name = "waymark", version, about = "Waymark: a self-hosted customer-journey engine for contact centers", long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to ./waymark.toml when present.
    #[arg(long, global = true, env = "WAYMARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// More logging.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Administration: organisations, users, tokens, deployments.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Create or upgrade the database schema and exit.
    Migrate(ServeArgs),
    /// Run Waymark on a temporary embedded store with a demo organisation and live simulated visitors.
    Demo(crate::demo::DemoArgs),
    /// Benchmarks: ingest, reads, live push, idle connections, soak, and the machine's ceilings.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Data directory of the embedded store.
    #[arg(long, env = "WAYMARK_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, env = "WAYMARK_LISTEN")]
    pub listen: Option<String>,
    /// `sqlite` (embedded, default) or a PostgreSQL URL `postgres://user@host/db`. Any number of nodes may
    /// share one PostgreSQL database.
    #[arg(long, env = "WAYMARK_STORE")]
    pub store: Option<String>,
    /// PostgreSQL schema for Waymark's tables (default `public`; created if missing).
    #[arg(long, env = "WAYMARK_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// MaxMind City or Country database (.mmdb) for IP geolocation.
    #[arg(long, env = "WAYMARK_GEOIP_CITY_DB")]
    pub geoip_city_db: Option<PathBuf>,
    /// uap-core regexes.yaml for User-Agent parsing (default: built-in rules).
    #[arg(long, env = "WAYMARK_UA_REGEXES")]
    pub ua_regexes: Option<PathBuf>,
    /// `normal` (default) or `full`: fsync every commit.
    #[arg(long, env = "WAYMARK_DURABILITY")]
    pub durability: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create (if absent) an organisation, an admin user with an API token, and a deployment.
    Bootstrap(BootstrapArgs),
    /// People: list, add, set (name, password, roles, divisions, state), remove.
    #[command(subcommand)]
    Users(crate::admin_cli::UsersCommand),
    /// Roles: list, add a custom role with any permissions, remove.
    #[command(subcommand)]
    Roles(crate::admin_cli::RolesCommand),
    /// Divisions: list, add.
    #[command(subcommand)]
    Divisions(crate::admin_cli::DivisionsCommand),
    /// API tokens: list a person's, issue, revoke.
    #[command(subcommand)]
    Tokens(crate::admin_cli::TokensCommand),
    /// Tracking deployments: list, add, set (domains, excluded IPs, …), remove.
    #[command(subcommand)]
    Deployments(crate::admin_cli::DeploymentsCommand),
    /// OAuth clients for the client-credentials grant: list, add, remove.
    #[command(subcommand)]
    OauthClients(crate::admin_cli::OauthClientsCommand),
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Organisation name.
    #[arg(long, default_value = "Default")]
    pub org: String,
    /// Admin sign-in email.
    #[arg(long, default_value = "admin@waymark.local")]
    pub email: String,
    /// Admin password (for the agent UI); omit to keep or leave unset.
    #[arg(long, env = "WAYMARK_ADMIN_PASSWORD")]
    pub password: Option<String>,
    /// Allowed domain of the first deployment (`*` allows every origin).
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let s = settings::load(cli.config.as_ref(), &args)?;
            let store = open_store(&s).await?;
            let state = build_state(&s, store)?;
            let server = Server::start(state).await.with_context(|| format!("cannot listen on {}", s.server.listen))?;
            let store = if PgConfig::is_url(&s.store) {
                format!("postgres, schema {}", s.pg_schema)
            } else {
                format!("sqlite, data {}", s.data.display())
            };
            eprintln!("Waymark is running at http://{}  (store: {store})", server.addr);
            server.run_until_signal().await;
            Ok(())
        }
        Command::Demo(args) => crate::demo::run(cli.config.as_ref(), args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Migrate(args) => {
            let s = settings::load(cli.config.as_ref(), &args)?;
            let store = open_store(&s).await?;
            eprintln!("schema is up to date ({})", store.backend());
            Ok(())
        }
        Command::Admin(AdminCommand::Users(c)) => crate::admin_cli::users(cli.config.as_ref(), c).await,
        Command::Admin(AdminCommand::Roles(c)) => crate::admin_cli::roles(cli.config.as_ref(), c).await,
        Command::Admin(AdminCommand::Divisions(c)) => crate::admin_cli::divisions(cli.config.as_ref(), c).await,
        Command::Admin(AdminCommand::Tokens(c)) => crate::admin_cli::tokens(cli.config.as_ref(), c).await,
        Command::Admin(AdminCommand::Deployments(c)) => crate::admin_cli::deployments(cli.config.as_ref(), c).await,
        Command::Admin(AdminCommand::OauthClients(c)) => crate::admin_cli::oauth_clients(cli.config.as_ref(), c).await,
        Command::Admin(AdminCommand::Bootstrap(b)) => {
            let s = settings::load(cli.config.as_ref(), &b.serve)?;
            let store = open_store(&s).await?;
            let now = Clock::system().now();
            let req = BootstrapRequest {
                org_name: b.org,
                admin_email: b.email,
                admin_password: b.password,
                domain: b.domain,
            };
            let r = bootstrap(store.as_ref(), &req, now).await.context("bootstrap failed")?;
            if b.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("organisation  {} ({})", r.org_name, r.org_id);
                println!("admin         {} ({})", r.admin_email, r.user_id);
                println!("deployment    {}", r.deployment_id);
                println!("API token     {}   (shown once; keep it secret)", r.token);
            }
            Ok(())
        }
    }
}

pub async fn open_store(s: &Settings) -> Result<Arc<dyn Store>> {
    if s.store == "sqlite" || s.store.is_empty() {
        let mut cfg = SqliteConfig::new(s.data.join("waymark.db"));
        cfg.durability = match s.durability.as_str() {
            "normal" => Durability::Normal,
            "full" => Durability::Full,
            other => bail!("durability must be 'normal' or 'full', not {other:?}"),
        };
        cfg.cache_customers = s.state_cache_customers;
        anyhow::ensure!(
            (-20..=19).contains(&s.store_writer_nice),
            "store_writer_nice must be a nice value from -20 to 19 (0: leave the writer's priority alone), not {}",
            s.store_writer_nice
        );
        cfg.writer_nice = s.store_writer_nice;
        anyhow::ensure!(
            s.store_commit_delay_us <= 100_000,
            "store_commit_delay_us is a wait in microseconds of at most 100000 (0 commits at once), not {}",
            s.store_commit_delay_us
        );
        cfg.commit_delay = std::time::Duration::from_micros(s.store_commit_delay_us);
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(cfg))
            .await?
            .context("cannot open the embedded store")?;
        return Ok(Arc::new(store));
    }
    if PgConfig::is_url(&s.store) {
        let mut cfg = PgConfig::new(&s.store);
        cfg.schema = s.pg_schema.clone();
        let store = PgStore::connect(cfg).await.context("cannot open the PostgreSQL store")?;
        return Ok(Arc::new(store));
    }
    bail!("unknown store {:?}: use 'sqlite' or a postgres:// URL", s.store)
}

pub fn build_state(s: &Settings, store: Arc<dyn Store>) -> Result<AppState> {
    let ua = match &s.server.ua_regexes {
        Some(p) => waymark_enrich::UserAgentParser::from_regexes_file(p)
            .with_context(|| format!("cannot load User-Agent rules from {}", p.display()))?,
        None => waymark_enrich::UserAgentParser::builtin(),
    };
    let geo = match &s.server.geoip_city_db {
        Some(p) => waymark_enrich::GeoProvider::open(p)
            .with_context(|| format!("cannot open the MaxMind database {}", p.display()))?,
        None => waymark_enrich::GeoProvider::none(),
    };
    let trusted =
        waymark_enrich::TrustedProxies::parse(s.server.trusted_proxies.iter()).context("invalid trusted_proxies")?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok();
    Ok(AppState::new(
        store,
        Arc::new(waymark_enrich::Enricher::new(ua, geo)),
        s.server.clone(),
        Clock::system(),
        trusted,
        metrics,
    ))
}
