//! `waymark demo`: a throw-away Waymark a newcomer can look at within seconds. It opens an embedded store in a
//! temporary directory (or `--data`), bootstraps a demo organisation with an admin who can sign in, starts the
//! server, and prints the URL and credentials. Simulated visitors ([`crate::visitors`]) then browse the demo
//! shop live through the public ingestion API, so journeys appear within seconds; the shop's segments and
//! outcomes are defined through the API first, so assignments, achievements and live predictions show too.

use crate::cli::{ServeArgs, build_state, open_store};
use crate::demo_calls::CallStream;
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
    /// Seconds between two simulated contact-center conversations (0: none).
    #[arg(long, default_value_t = 30)]
    pub conversation_every_secs: u64,
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
    // Talk to the address the server listens on (loopback when it listens on every interface).
    let mut addr = server.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let local = format!("http://{addr}");
    let segments = define_rules(&local, &boot.token).await?;
    define_action_maps(&local, &boot.token, &segments).await?;
    let agent_password = define_agent(&local, &boot.token, &args.password).await?;
    eprintln!("  agent:       agent@demo.waymark  /  {agent_password}   (built-in User role)");
    let visitors = (args.visitors_per_minute > 0).then(|| {
        let stream = VisitorStream {
            base: local.clone(),
            deployment_id: boot.deployment_id.to_string(),
            per_minute: args.visitors_per_minute,
            max_concurrent: 12,
            speedup: 4.0,
            seed: args.seed.unwrap_or_else(|| now.unix_millis() as u64),
        };
        eprintln!("  visitors:    {} simulated visitors a minute, posting web events live", args.visitors_per_minute);
        tokio::spawn(stream.run())
    });
    let calls = (args.conversation_every_secs > 0).then(|| {
        let stream = CallStream {
            base: local.clone(),
            deployment_id: boot.deployment_id.to_string(),
            token: boot.token.clone(),
            every_secs: args.conversation_every_secs,
            seed: args.seed.unwrap_or(0),
        };
        eprintln!(
            "  contacts:    a known customer browses, signs in and contacts the center every {} s (voice, chat, email, WhatsApp, SMS)",
            args.conversation_every_secs
        );
        tokio::spawn(stream.run())
    });
    eprintln!("  open:        {base}/agent  (search e.g. maria.santos@example.com)");
    server.run_until_signal().await;
    for task in [visitors, calls].into_iter().flatten() {
        task.abort();
    }
    Ok(())
}

async fn post_json(base: &str, token: &str, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {path}"))?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{path} answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

/// Engagement offers: a content offer for visitors in the first demo segment, and a chat offer on checkout.
async fn define_action_maps(base: &str, token: &str, segments: &[String]) -> Result<()> {
    let mut maps = vec![serde_json::json!({
        "displayName": "Checkout help",
        "triggerWithEventConditions": [{"key": "page.pathname", "values": ["/checkout"], "operator": "startsWith",
            "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}],
        "weight": 3,
        "action": {"mediaType": "webchat", "webMessagingOfferFields": {"offerText": "Questions about your order? Chat with us."}}
    })];
    if let Some(first) = segments.first() {
        maps.push(serde_json::json!({
            "displayName": "Gear guide offer",
            "triggerWithSegments": [first],
            "action": {"mediaType": "contentOffer", "contentOffer": {"title": "Gear guide", "headline": "Free gear guide",
                "body": "Our experts picked the best tents of the season.", "displayMode": "Overlay", "layoutMode": "TextOnly",
                "callToAction": {"text": "Read the guide", "url": format!("{}/blog/gear-guide", waymark_sim::SITE), "target": "Blank"}}}
        }));
    }
    for m in &maps {
        post_json(base, token, "/api/v2/journey/actionmaps", m).await.context("cannot create the demo action maps")?;
    }
    eprintln!("  offers:      {} action maps defined", maps.len());
    Ok(())
}

/// An agent account with the built-in User role (the seed's ten permissions), to see the view as agents do.
async fn define_agent(base: &str, token: &str, password: &str) -> Result<String> {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v2/authorization/roles"))
        .bearer_auth(token)
        .send()
        .await
        .context("cannot list roles")?;
    let roles: serde_json::Value = r.json().await.context("roles are not JSON")?;
    let user_role = roles["entities"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "User"))
        .and_then(|r| r["id"].as_str())
        .context("the built-in User role is missing")?
        .to_string();
    let agent_password = format!("{password}-agent");
    post_json(
        base,
        token,
        "/api/v2/users",
        &serde_json::json!({"email": "agent@demo.waymark", "name": "Demo Agent", "password": agent_password, "roleIds": [user_role]}),
    )
    .await
    .context("cannot create the demo agent")?;
    Ok(agent_password)
}

/// Create the demo shop's segments and outcomes through the public API, as an administrator would. Returns the
/// segments' ids.
async fn define_rules(base: &str, token: &str) -> Result<Vec<String>> {
    let mut segment_ids = Vec::new();
    let client = reqwest::Client::new();
    let sets = [("segments", waymark_sim::demo_segments()), ("outcomes", waymark_sim::demo_outcomes())];
    for (kind, bodies) in sets {
        for body in bodies {
            let r = client
                .post(format!("{base}/api/v2/journey/{kind}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .with_context(|| format!("cannot create the demo {kind}"))?;
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if !status.is_success() {
                anyhow::bail!("creating the demo {kind} failed with {status}: {text}");
            }
            if kind == "segments"
                && let Some(id) = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string))
            {
                segment_ids.push(id);
            }
        }
    }
    eprintln!(
        "  rules:       {} segments and {} outcomes defined",
        waymark_sim::demo_segments().len(),
        waymark_sim::demo_outcomes().len()
    );
    Ok(segment_ids)
}
