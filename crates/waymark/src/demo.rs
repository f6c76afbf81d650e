//! `waymark demo`: a throw-away Waymark a newcomer can look at within seconds. It opens an embedded store in a
//! temporary directory (or `--data`), bootstraps a demo organisation with an admin who can sign in, starts the
//! server, and prints the URL and credentials. Simulated visitors ([`crate::visitors`]) then browse the demo
//! shop live through the public ingestion API, so journeys appear within seconds.

use crate::cli::{ServeArgs, build_state, open_store};
use crate::settings;
use crate::visitors::VisitorStream;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use waymark_server::Server;
use waymark_server::bootstrap::{BootstrapRequest, bootstrap};
use waymark_server::clock::Clock;

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Keep the demo data in this directory instead of a temporary one.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Demo admin email.
    #[arg(long, default_value = "admin@demo.waymark")]
    pub email: String,
    /// Demo admin password.
    #[arg(long, default_value = "waymark-demo")]
    pub password: String,
    /// New simulated visitors per minute (0: no simulated traffic).
    #[arg(long, default_value_t = 12)]
    pub visitors_per_minute: u32,
    /// Seed of the visitor simulator (the same seed replays the same visitors).
    #[arg(long)]
    pub seed: Option<u64>,
}

pub async fn run(config: Option<&PathBuf>, args: DemoArgs) -> Result<()> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory for the demo store")?;
    let data = args.data.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let serve = ServeArgs { data: Some(data.clone()), listen: Some(args.listen.clone()), ..Default::default() };
    let s = settings::load(config, &serve)?;
    let store = open_store(&s).await?;
    let now = Clock::system().now();
    let req = BootstrapRequest {
        org_name: "Waymark Demo".into(),
        admin_email: args.email.clone(),
        admin_password: Some(args.password.clone()),
        domain: "*".into(),
    };
    let boot = bootstrap(store.as_ref(), &req, now).await.context("cannot create the demo organisation")?;
    let state = build_state(&s, store)?;
    let server = Server::start(state).await.with_context(|| format!("cannot listen on {}", s.server.listen))?;
    let base = format!("http://{}", server.addr);
    eprintln!("Waymark demo is running at {base}");
    eprintln!("  sign in:     {}  /  {}", args.email, args.password);
    eprintln!("  API token:   {}", boot.token);
    eprintln!("  deployment:  {}", boot.deployment_id);
    eprintln!("  data:        {}  (deleted on exit unless --data was given)", data.display());
    let visitors = (args.visitors_per_minute > 0).then(|| {
        // Post to the address the server listens on (loopback when it listens on every interface).
        let mut addr = server.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let stream = VisitorStream {
            base: format!("http://{addr}"),
            deployment_id: boot.deployment_id.to_string(),
            per_minute: args.visitors_per_minute,
            max_concurrent: 12,
            speedup: 4.0,
            seed: args.seed.unwrap_or_else(|| now.unix_millis() as u64),
        };
        eprintln!("  visitors:    {} simulated visitors a minute, posting web events live", args.visitors_per_minute);
        tokio::spawn(stream.run())
    });
    server.run_until_signal().await;
    if let Some(v) = visitors {
        v.abort();
    }
    Ok(())
}
