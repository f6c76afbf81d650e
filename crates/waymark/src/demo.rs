//! `waymark demo`: a throw-away Waymark a newcomer can look at within seconds. It opens an embedded store in a
//! temporary directory (or `--data`), bootstraps a demo organisation with an admin who can sign in, starts the
//! server, and prints the URL and credentials.

use crate::cli::{ServeArgs, build_state, open_store};
use crate::settings;
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
    server.run_until_signal().await;
    Ok(())
}
