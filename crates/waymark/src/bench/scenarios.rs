//! The scenarios: durable ingest (single events, batches), journey reads on a preloaded store, live push
//! latency to connected agents, idle live connections, and a mixed soak.

use super::BenchArgs;
use super::ceiling;
use super::client::{self, Conn, RequestSource};
use super::report::{Latency, Section, fmt_num, per_sec};
use super::server::{ORIGIN, ServerProc, Setup};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use waymark_domain::Timestamp;
use waymark_domain::deployment::Deployment;
use waymark_domain::identity::TraitIdentity;
use waymark_domain::ids::{ContactId, DeploymentId, OrgId, SessionId};
use waymark_domain::limits::InputLimits;
use waymark_domain::web_event::{CookieId, RequestAttribute, RequestPage, WebEventRequest, parse_web_event};
use waymark_server::clock::Clock;
use waymark_store::postgres::{PgConfig, PgStore};
use waymark_store::{IngestBatch, IngestItem, ItemResult, JourneyConfig, Store, WebFieldsForm, WebItem};

const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const WARMUP: Duration = Duration::from_secs(2);

/// Connections of `ingest-batch` on the embedded store: 8 × 100 events in flight. Its single writer reaches
/// the same events/s from 8 connections as from 16 (it needs a few batches queued, not more), and by Little's
/// law every event in flight beyond that only waits: at 150,000 events/s, 16 × 100 in flight make the mean
/// acknowledgement 10.7 ms and the p99 26-30 ms; 8 × 100 make them 5.3 ms and 15-17 ms (BENCHMARKS.md, stop 22).
const EMBEDDED_BATCH_CONNECTIONS: usize = 8;

/// Request bodies of web events: each event has its own `clientEventId`; each visitor (cookie) views 20 pages.
pub struct EventBodies {
    batch: usize,
    run: String,
    clock: Clock,
}

impl EventBodies {
    pub fn new(batch: usize, tag: &str) -> EventBodies {
        let run = format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        EventBodies { batch: batch.max(1), run, clock: Clock::system() }
    }

    fn event(&self, out: &mut String, cookie: &str, id: &str, url_path: &str, now: &str) {
        let _ = write!(
            out,
            r#"{{"customerCookieId":"{cookie}","eventName":"page_viewed","clientEventId":"{id}","createdDate":"{now}","page":{{"url":"https://shop.example{url_path}","title":"Red shoes"}},"referrerUrl":"https://www.google.com/search?q=red+shoes","userAgentString":"{UA}","attributes":{{"cart":{{"dataType":"number","value":2}}}}}}"#
        );
    }

    /// The body of request `n` of connection `conn`: [`EventBodies::event`]'s JSON, written piece by piece (the
    /// load generator shares the machine with the server; formatting each event through `write!` and three
    /// `format!`s cost it ~0.7 µs per event).
    pub fn body(&self, conn: usize, n: u64) -> Bytes {
        let now = self.clock.now().to_iso();
        let mut s = String::with_capacity(420 * self.batch);
        if self.batch > 1 {
            s.push('[');
        }
        for i in 0..self.batch as u64 {
            if i > 0 {
                s.push(',');
            }
            let k = n * self.batch as u64 + i;
            let run_conn = |s: &mut String| {
                s.push_str(&self.run);
                s.push('-');
                push_decimal(s, conn as u64);
                s.push('-');
            };
            s.push_str(r#"{"customerCookieId":""#);
            run_conn(&mut s);
            push_decimal(&mut s, k / 20);
            s.push_str(r#"","eventName":"page_viewed","clientEventId":""#);
            run_conn(&mut s);
            push_decimal(&mut s, k);
            s.push_str(r#"","createdDate":""#);
            s.push_str(&now);
            s.push_str(r#"","page":{"url":"https://shop.example/products/"#);
            push_decimal(&mut s, k % 50);
            s.push_str(r#"","title":"Red shoes"},"referrerUrl":"https://www.google.com/search?q=red+shoes","userAgentString":""#);
            s.push_str(UA);
            s.push_str(r#"","attributes":{"cart":{"dataType":"number","value":2}}}"#);
        }
        if self.batch > 1 {
            s.push(']');
        }
        Bytes::from(s)
    }

    /// A single event for `cookie` whose page path carries `marker`.
    pub fn marked(&self, cookie: &str, marker: &str) -> Bytes {
        let now = self.clock.now().to_iso();
        let mut s = String::with_capacity(512);
        self.event(&mut s, cookie, &format!("{}-{marker}", self.run), &format!("/{marker}"), &now);
        Bytes::from(s)
    }
}

/// Append `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| d as char));
}

async fn health_events(addr: SocketAddr) -> Result<u64> {
    let mut c = Conn::open(addr).await?;
    let (_, body) = c.send(client::get(addr, "/health", "")).await?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["events"].as_u64().unwrap_or(0))
}

/// What one ingest measurement gave.
struct IngestRun {
    rps: f64,
    eps: f64,
    lat: Latency,
    /// Server CPU seconds per wall second, all nodes together.
    cores: f64,
}

/// Load `nodes` servers on `setup`'s store for `args.seconds` after the warm-up (connections spread over
/// the nodes) and report the figures in `section`, each line prefixed with `tag`.
async fn measure_ingest(
    args: &BenchArgs,
    setup: &Setup,
    nodes: usize,
    batch: usize,
    conns: usize,
    tag: &str,
    section: &mut Section,
) -> Result<IngestRun> {
    let servers = (0..nodes).map(|_| ServerProc::spawn(args, setup, &[])).collect::<Result<Vec<_>>>()?;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let rss_before: f64 = servers.iter().map(ServerProc::rss_mb).sum();
    let cpu_before: f64 = servers.iter().map(ServerProc::cpu_secs).sum();
    let bodies = Arc::new(EventBodies::new(batch, "b"));
    let path = setup.webevents_path();
    let source: Arc<dyn RequestSource> = {
        let bodies = bodies.clone();
        let addr = addrs[0];
        // The address only names the Host header; each connection goes to its own node.
        Arc::new(move |c: usize, n: u64| client::wire_post(addr, &path, bodies.body(c, n), &[("origin", ORIGIN)]))
    };
    let label = if batch > 1 { "ingest-batch" } else { "ingest-single" };
    let started = Instant::now();
    let mut r =
        client::closed_loop(&addrs, conns, WARMUP, Duration::from_secs(args.seconds), None, label, source).await?;
    let wall = started.elapsed();
    let cpu = servers.iter().map(ServerProc::cpu_secs).sum::<f64>() - cpu_before;
    let rss_after: f64 = servers.iter().map(ServerProc::rss_mb).sum();
    let rps = per_sec(r.ok, r.measured);
    let lat = Latency::of(&mut r.latencies_us);
    if r.failures() > 0 {
        section.line(format!(
            "{tag}FAILED requests: {:?}; first: {}",
            r.failed,
            r.first_failure.as_deref().unwrap_or("")
        ));
    }
    let stored = health_events(addrs[0]).await?;
    section.line(format!("{tag}acknowledged latency: {}", lat.describe()));
    section.line(format!(
        "{tag}events in the store after the run: {} (every acknowledged event, warm-up included, is counted)",
        fmt_num(stored as f64)
    ));
    let cores = cpu / wall.as_secs_f64();
    section.line(format!("{tag}server CPU: {cores:.2} cores busy on average (the load generator uses the rest)"));
    section.line(format!("{tag}server RSS: {rss_before:.1} MB before, {rss_after:.1} MB after"));
    Ok(IngestRun { rps, eps: rps * batch as f64, lat, cores })
}

/// `ingest-single` and `ingest-batch`; with `--nodes N` (PostgreSQL), one node first and then N nodes on the
/// same database, the load spread over them.
pub async fn ingest(args: &BenchArgs, batched: bool, section: &mut Section) -> Result<()> {
    let nodes = args.nodes.max(1);
    if nodes > 1 && !args.store.starts_with("postgres") {
        bail!("several nodes share one store only on PostgreSQL: add --store postgres://…");
    }
    // On PostgreSQL each run starts from an empty schema of its own, as each SQLite run starts from an empty
    // file: ingest into a store that earlier runs filled is slower run after run. The schema is dropped after.
    if PgConfig::is_url(&args.store) && args.pg_schema.is_none() {
        let schema = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut scratch = args.clone();
        scratch.pg_schema = Some(schema.clone());
        eprintln!("  PostgreSQL schema {schema} for this run (dropped after it; --pg-schema picks one to keep)");
        let result = Box::pin(ingest(&scratch, batched, section)).await;
        // The figures are printed even when the schema could not be dropped.
        if let Err(e) = PgStore::drop_schema(&args.store, &schema).await {
            eprintln!("  could not drop the run's schema {schema} ({e}); drop it with DROP SCHEMA {schema} CASCADE");
        }
        return result;
    }
    let setup = Setup::new(args, |_, _, _| async { Ok(()) }).await?;
    let batch = if batched { args.batch.max(1) } else { 1 };
    let conns = args.connections.unwrap_or(match (batched, args.store.starts_with("postgres")) {
        (false, _) => 64,
        (true, false) => EMBEDDED_BATCH_CONNECTIONS,
        (true, true) => 16,
    });
    section.line(format!(
        "store {}, durability {} (answer after commit), {conns} connections, {batch} event(s)/request, {} s measured after {} s warm-up",
        args.store,
        args.durability,
        args.seconds,
        WARMUP.as_secs()
    ));
    let one_tag = if nodes > 1 { "one node: " } else { "" };
    let one = measure_ingest(args, &setup, 1, batch, conns, one_tag, section).await?;
    let run = if nodes > 1 {
        section.line(format!("one node: {} events/s, p99 {:.1} ms", fmt_num(one.eps), one.lat.p99_ms));
        let tag = format!("{nodes} nodes: ");
        let many = measure_ingest(args, &setup, nodes, batch, conns, &tag, section).await?;
        section.line(format!(
            "{nodes} nodes: {} events/s, p99 {:.1} ms; server CPU per event {:.1} µs (one node: {:.1} µs)",
            fmt_num(many.eps),
            many.lat.p99_ms,
            many.cores * 1e6 / many.eps.max(1.0),
            one.cores * 1e6 / one.eps.max(1.0)
        ));
        // Issue 8: several nodes ingest more than one.
        section.judge(
            &format!("{nodes} nodes' events/s"),
            100.0 * many.eps / one.eps.max(1.0),
            "% of one node's",
            100.0,
            true,
        );
        many
    } else {
        one
    };
    if batched {
        section.judge("batched ingest", run.eps, "events/s", 150_000.0, true);
        if args.store.starts_with("postgres") {
            section.judge("batched ingest into PostgreSQL (issue 8)", run.eps, "events/s", 40_000.0, true);
        }
    } else {
        section.judge("single-event ingest", run.rps, "req/s", 25_000.0, true);
    }
    section.judge("p99 acknowledgement", run.lat.p99_ms, "ms", 20.0, false);
    if !args.no_ceiling {
        let (bare_single, bare_batch) = ceiling::http(args, section).await?;
        let rows = ceiling::sqlite(section)?;
        if batched {
            section.line(format!(
                "ratio: {:.0}% of the bare handler's events/s, {:.0}% of raw SQLite rows/s",
                100.0 * run.eps / bare_batch.max(1.0),
                100.0 * run.eps / rows.max(1.0)
            ));
        } else {
            section.line(format!(
                "ratio: {:.0}% of the bare handler's req/s, {:.0}% of raw SQLite rows/s",
                100.0 * run.rps / bare_single.max(1.0),
                100.0 * run.rps / rows.max(1.0)
            ));
        }
    }
    Ok(())
}

/// A web item built directly (no HTTP) for preloading.
fn item(
    req: WebEventRequest,
    deployment: &Deployment,
    limits: &InputLimits,
    now: Timestamp,
    enrichment: &waymark_domain::journey::Enrichment,
    form: WebFieldsForm,
) -> Result<IngestItem> {
    let event = parse_web_event(req, deployment, limits, now, None, None).map_err(|r| anyhow::anyhow!("{r:?}"))?;
    let identity = TraitIdentity::from_traits(&event.traits, None);
    Ok(IngestItem::Web(Box::new(WebItem::new(event, enrichment.clone(), identity, form))))
}

fn request(cookie: &str, path: &str, now: Timestamp, email: Option<&str>) -> WebEventRequest {
    WebEventRequest {
        customer_cookie_id: Some(cookie.to_string()),
        event_name: Some("page_viewed".into()),
        page: Some(RequestPage {
            url: Some(format!("https://shop.example{path}")),
            title: Some("Red shoes".into()),
            ..Default::default()
        }),
        created_date: Some(now.to_iso()),
        user_agent_string: Some(UA.into()),
        traits: email.map(|e| {
            [("email".to_string(), RequestAttribute::Bare(serde_json::Value::String(e.to_string())))]
                .into_iter()
                .collect()
        }),
        ..Default::default()
    }
}

/// The reads target: one contact with 200 sessions of 50 events (10,000 events).
struct ReadTarget {
    contact: ContactId,
    sessions: Vec<SessionId>,
}

/// Preload `total` events: the target contact's 10,000, then visitors of 10 events each. Written through the
/// `Store` trait in batches of 1,000, four in flight.
async fn preload(store: Arc<dyn Store>, org: OrgId, deployment: DeploymentId, total: u64) -> Result<ReadTarget> {
    let mut deployment = Deployment::new(org, deployment, "bench");
    deployment.allowed_domains = vec!["shop.example".into()];
    let limits = InputLimits::default();
    let enricher =
        waymark_enrich::Enricher::new(waymark_enrich::UserAgentParser::builtin(), waymark_enrich::GeoProvider::none());
    let enrichment = enricher.enrich(Some(UA), &Default::default(), None);
    let config = Arc::new(JourneyConfig::default());
    let now = Clock::system().now();
    let form = store.web_fields_form();
    // The target contact: 200 cookies, each one session of 50 events, all identified by the same email.
    let mut contact = None;
    let mut sessions = Vec::new();
    for s in 0..200 {
        let cookie = format!("reader-{s}");
        let mut items = Vec::with_capacity(50);
        for e in 0..50 {
            let email = (e == 0).then_some("reader@bench.example");
            items.push(item(
                request(&cookie, &format!("/p/{e}"), now, email),
                &deployment,
                &limits,
                now,
                &enrichment,
                form,
            )?);
        }
        let results = store.ingest(IngestBatch { org, config: config.clone(), items }).await?;
        match results.first() {
            Some(ItemResult::Web(w)) => {
                contact = contact.or(w.contact_id);
                sessions.push(SessionId::parse(&w.session.session.id).context("session id")?);
            }
            other => bail!("preload of the target contact failed: {other:?}"),
        }
    }
    let contact = contact.context("the target contact was not created")?;
    let template = match item(request("t", "/products/1", now, None), &deployment, &limits, now, &enrichment, form)? {
        IngestItem::Web(w) => w,
        _ => bail!("template"),
    };
    let rest = total.saturating_sub(10_000);
    let started = Instant::now();
    let written = Arc::new(AtomicU64::new(0));
    let batches = rest.div_ceil(1000);
    let mut last_print = Instant::now();
    let mut stream = futures_util::stream::iter(0..batches)
        .map(|b| {
            let store = store.clone();
            let config = config.clone();
            let template = template.clone();
            let written = written.clone();
            async move {
                let n = (rest - b * 1000).min(1000);
                let mut items = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let k = b * 1000 + i;
                    let mut w = template.clone();
                    w.event.cookie_id =
                        CookieId::parse(&format!("fill-{}", k / 10)).map_err(|r| anyhow::anyhow!("{r:?}"))?;
                    items.push(IngestItem::Web(w));
                }
                store.ingest(IngestBatch { org, config, items }).await?;
                written.fetch_add(n, Ordering::Relaxed);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(4);
    while let Some(r) = stream.next().await {
        r?;
        if last_print.elapsed() >= Duration::from_secs(5) {
            let w = written.load(Ordering::Relaxed);
            eprintln!(
                "  [preload] {} / {} events, {} events/s",
                fmt_num(w as f64),
                fmt_num(rest as f64),
                fmt_num(per_sec(w, started.elapsed()))
            );
            last_print = Instant::now();
        }
    }
    eprintln!("  [preload] {} events in {:.0} s", fmt_num(total as f64), started.elapsed().as_secs_f64());
    Ok(ReadTarget { contact, sessions })
}

/// The file in `--data` naming what an earlier `reads` run preloaded there.
const READS_MARKER: &str = "reads-target.json";

/// The organisation and read target of a store preloaded by an earlier `reads` run in `--data` with the same
/// `--events`, `--store` and `--pg-schema`; `None` when there is none (then the run preloads).
fn reads_setup_reused(args: &BenchArgs, total: u64) -> Result<Option<(Setup, ReadTarget)>> {
    let Some(data) = &args.data else { return Ok(None) };
    let Ok(text) = std::fs::read(data.join(READS_MARKER)) else { return Ok(None) };
    let m: serde_json::Value = serde_json::from_slice(&text).context("unreadable reads marker")?;
    if m["events"].as_u64() != Some(total)
        || m["store"].as_str() != Some(args.store.as_str())
        || m["pgSchema"].as_str() != args.pg_schema.as_deref()
    {
        bail!(
            "{} holds a store preloaded for another --events/--store/--pg-schema; use another --data directory",
            data.display()
        );
    }
    let text_of = |k: &str| m[k].as_str().with_context(|| format!("reads marker: no {k}"));
    let deployment = DeploymentId::parse(text_of("deployment")?).context("reads marker: deployment")?;
    let contact = ContactId::parse(text_of("contact")?).context("reads marker: contact")?;
    let sessions = m["sessions"]
        .as_array()
        .context("reads marker: no sessions")?
        .iter()
        .map(|s| s.as_str().and_then(SessionId::parse).context("reads marker: session id"))
        .collect::<Result<Vec<_>>>()?;
    eprintln!("  [preload] reusing the store preloaded with {} events in {}", fmt_num(total as f64), data.display());
    let setup = Setup::reuse(args, deployment, text_of("token")?.to_string())?;
    Ok(Some((setup, ReadTarget { contact, sessions })))
}

/// `reads`.
pub async fn reads(args: &BenchArgs, section: &mut Section) -> Result<()> {
    let total = args.events.max(10_000);
    if let Some(data) = &args.data {
        // A PostgreSQL run keeps only its marker there; create it before a long preload, not after.
        std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    }
    let (setup, target) = match reads_setup_reused(args, total)? {
        Some(reused) => reused,
        None => {
            let target: Arc<Mutex<Option<ReadTarget>>> = Arc::new(Mutex::new(None));
            let t2 = target.clone();
            let setup = Setup::new(args, move |store, org, dep| async move {
                let t = preload(store, org, dep, total).await?;
                *t2.lock() = Some(t);
                Ok(())
            })
            .await?;
            let target = target.lock().take().context("no read target")?;
            if let Some(data) = &args.data {
                let marker = serde_json::json!({
                    "events": total, "store": args.store, "pgSchema": args.pg_schema,
                    "deployment": setup.deployment.to_string(), "token": setup.token,
                    "contact": target.contact.to_string(),
                    "sessions": target.sessions.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                });
                std::fs::write(data.join(READS_MARKER), serde_json::to_vec_pretty(&marker)?)?;
            }
            (setup, target)
        }
    };
    let server = ServerProc::spawn(args, &setup, &[])?;
    let addr = server.addr;
    let conns = args.connections.unwrap_or(32);
    section.line(format!(
        "store {} holding {} events; the contact has 200 sessions and 10,000 events; {conns} connections, {} s per endpoint",
        args.store,
        fmt_num(total as f64),
        args.seconds
    ));
    let token = Arc::new(setup.token.clone());
    let sessions = Arc::new(target.sessions.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let contact = target.contact.to_string();
    let endpoints: [(&str, String); 4] = [
        ("contact's sessions (first page)", format!("/api/v2/externalcontacts/contacts/{contact}/journey/sessions")),
        ("one session", "/api/v2/journey/sessions/{s}".to_string()),
        ("a session's events (first page)", "/api/v2/journey/sessions/{s}/events".to_string()),
        ("the contact", format!("/api/v2/externalcontacts/contacts/{contact}")),
    ];
    let mut worst_p99: f64 = 0.0;
    let mut worst_rps = f64::MAX;
    for (name, template) in endpoints {
        let token = token.clone();
        let sessions = sessions.clone();
        let source: Arc<dyn RequestSource> = Arc::new(move |c: usize, n: u64| {
            let s = &sessions[(c * 7 + n as usize) % sessions.len()];
            client::wire_get(addr, &template.replace("{s}", s), &token)
        });
        let mut r = client::closed_loop(
            &[addr],
            conns,
            Duration::from_secs(1),
            Duration::from_secs(args.seconds),
            None,
            name,
            source,
        )
        .await?;
        if r.failures() > 0 {
            bail!("{name}: failed requests {:?}: {}", r.failed, r.first_failure.unwrap_or_default());
        }
        let rps = per_sec(r.ok, r.measured);
        let lat = Latency::of(&mut r.latencies_us);
        section.line(format!("{name}: {} req/s; {}", fmt_num(rps), lat.describe()));
        worst_p99 = worst_p99.max(lat.p99_ms);
        worst_rps = worst_rps.min(rps);
    }
    section.judge("slowest endpoint's throughput", worst_rps, "req/s", 5_000.0, true);
    section.judge("worst endpoint p99", worst_p99, "ms", 10.0, false);
    if args.store.starts_with("postgres") {
        // Issue 8 asks PostgreSQL for p99 ≤ 15 ms at 10 M events; issue 3's 10 ms is judged above.
        section.judge("worst endpoint p99 on PostgreSQL", worst_p99, "ms", 15.0, false);
    }
    section.line(format!("server RSS after the run: {:.1} MB", server.rss_mb()));
    Ok(())
}

/// Open a live stream watching `cookie`; returns the streaming body once the server answered 200.
async fn open_live(addr: SocketAddr, token: &str, cookie: &str) -> Result<hyper::body::Incoming> {
    let conn = Conn::open(addr).await?;
    let resp =
        conn.open_stream(client::get(addr, &format!("/api/v2/journey/live?customerCookieId={cookie}"), token)).await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        bail!("live stream answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(resp.into_body())
}

/// Find every `/lv<digits>q` marker in SSE text.
fn markers(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("/lv") {
        let after = &rest[i + 3..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty()
            && after[digits.len()..].starts_with('q')
            && let Ok(n) = digits.parse()
        {
            out.push(n);
        }
        rest = after;
    }
    out
}

/// Shared bookkeeping of a live-latency run.
#[derive(Default)]
struct LiveBook {
    sent: Mutex<HashMap<u64, Instant>>,
    latencies_us: Mutex<Vec<u32>>,
    hellos: AtomicU64,
}

/// Connect `agents` agents watching `live-<i>`; each records the latency of every marked event it sees.
async fn connect_agents(addr: SocketAddr, token: &str, agents: usize, book: Arc<LiveBook>, prefix: &str) -> Result<()> {
    let opened = Arc::new(AtomicU64::new(0));
    let mut stream = futures_util::stream::iter(0..agents)
        .map(|i| {
            let token = token.to_string();
            let book = book.clone();
            let cookie = format!("{prefix}-{i}");
            let opened = opened.clone();
            async move {
                let mut body = open_live(addr, &token, &cookie).await?;
                opened.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut carry = String::new();
                    while let Some(Ok(frame)) = body.frame().await {
                        let Ok(data) = frame.into_data() else { continue };
                        let now = Instant::now();
                        carry.push_str(&String::from_utf8_lossy(&data));
                        if carry.contains("event: hello") {
                            book.hellos.fetch_add(1, Ordering::Relaxed);
                            carry = carry.replace("event: hello", "");
                        }
                        for m in markers(&carry) {
                            if let Some(sent) = book.sent.lock().remove(&m) {
                                book.latencies_us.lock().push(now.duration_since(sent).as_micros() as u32);
                            }
                        }
                        // Keep only an incomplete tail.
                        if let Some(p) = carry.rfind("\n\n") {
                            carry = carry[p + 2..].to_string();
                        }
                    }
                });
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32);
    let mut last = Instant::now();
    while let Some(r) = stream.next().await {
        r?;
        if last.elapsed() >= Duration::from_secs(2) {
            eprintln!("  [live] {} agents connected", opened.load(Ordering::Relaxed));
            last = Instant::now();
        }
    }
    Ok(())
}

/// Publish marked events for the agents at `rate` events/s for `dur`; returns how many were acknowledged.
async fn publish_marked(
    addr: SocketAddr,
    path: String,
    agents: usize,
    rate: f64,
    dur: Duration,
    book: Arc<LiveBook>,
    prefix: &str,
) -> Result<u64> {
    let bodies = Arc::new(EventBodies::new(1, "live"));
    let seq = Arc::new(AtomicU64::new(1));
    let prefix = prefix.to_string();
    let source: Arc<dyn RequestSource> = Arc::new(move |_c: usize, _n: u64| {
        let s = seq.fetch_add(1, Ordering::Relaxed);
        let cookie = format!("{prefix}-{}", s as usize % agents);
        let body = bodies.marked(&cookie, &format!("lv{s}q"));
        book.sent.lock().insert(s, Instant::now());
        client::wire_post(addr, &path, body, &[("origin", ORIGIN)])
    });
    let r = client::closed_loop(&[addr], 8, Duration::ZERO, dur, Some(rate), "publish", source).await?;
    if r.failures() > 0 {
        bail!("publishing failed: {:?}: {}", r.failed, r.first_failure.unwrap_or_default());
    }
    Ok(r.ok)
}

/// `live`.
pub async fn live(args: &BenchArgs, section: &mut Section) -> Result<()> {
    let setup = Setup::new(args, |_, _, _| async { Ok(()) }).await?;
    let server = ServerProc::spawn(args, &setup, &[])?;
    let addr = server.addr;
    let book = Arc::new(LiveBook::default());
    let rate = 200.0;
    connect_agents(addr, &setup.token, args.agents, book.clone(), "live").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (book.hellos.load(Ordering::Relaxed) as usize) < args.agents && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    section.line(format!(
        "{} agents connected (each watching its own visitor; every event is fanned out to the whole organisation's streams and filtered there); {rate} events/s published for {} s",
        book.hellos.load(Ordering::Relaxed),
        args.seconds
    ));
    let rss_connected = server.rss_mb();
    let sent = publish_marked(
        addr,
        setup.webevents_path(),
        args.agents,
        rate,
        Duration::from_secs(args.seconds),
        book.clone(),
        "live",
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut lat = std::mem::take(&mut *book.latencies_us.lock());
    let delivered = lat.len();
    let l = Latency::of(&mut lat);
    section.line(format!("events sent {sent}, seen by their agent {delivered}; sent → seen latency: {}", l.describe()));
    if (delivered as u64) < sent {
        section.line(format!("NOT DELIVERED: {} events", sent - delivered as u64));
    }
    section
        .line(format!("server RSS with the agents connected: {rss_connected:.1} MB, after: {:.1} MB", server.rss_mb()));
    section.judge("p99 event accepted → visible", l.p99_ms, "ms", 50.0, false);
    Ok(())
}

/// `idle-conns`.
pub async fn idle_conns(args: &BenchArgs, section: &mut Section) -> Result<()> {
    let setup = Setup::new(args, |_, _, _| async { Ok(()) }).await?;
    let server = ServerProc::spawn(args, &setup, &[])?;
    let addr = server.addr;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_mb();
    let held: Arc<Mutex<Vec<hyper::body::Incoming>>> = Arc::new(Mutex::new(Vec::with_capacity(args.idle)));
    let started = Instant::now();
    let token = setup.token.clone();
    let mut stream = futures_util::stream::iter(0..args.idle)
        .map(|i| {
            let token = token.clone();
            let held = held.clone();
            async move {
                let body = open_live(addr, &token, &format!("idle-{i}")).await?;
                held.lock().push(body);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64);
    let mut last = Instant::now();
    while let Some(r) = stream.next().await {
        r?;
        if last.elapsed() >= Duration::from_secs(2) {
            eprintln!("  [idle-conns] {} open, server RSS {:.1} MB", held.lock().len(), server.rss_mb());
            last = Instant::now();
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = held.lock().len();
    let rss = server.rss_mb();
    section.line(format!(
        "{n} live (SSE) connections opened in {open_secs:.1} s; server RSS {rss_before:.1} MB idle before, {rss:.1} MB with all open ({:.1} KB per connection)",
        (rss - rss_before) * 1024.0 / n.max(1) as f64
    ));
    section.judge(&format!("server RSS with {n} idle live connections"), rss, "MB", 300.0, false);
    drop(stream);
    held.lock().clear();
    Ok(())
}

/// `soak`: mixed load (single ingest, batches, reads, live agents) for `--minutes`, sampled every 30 s.
pub async fn soak(args: &BenchArgs, section: &mut Section) -> Result<()> {
    let setup = Setup::new(args, |_, _, _| async { Ok(()) }).await?;
    let server = ServerProc::spawn(args, &setup, &[])?;
    let addr = server.addr;
    let book = Arc::new(LiveBook::default());
    connect_agents(addr, &setup.token, 100, book.clone(), "soak").await?;
    let window = Duration::from_secs(30);
    let windows = (args.minutes * 2).max(1);
    section.line(format!(
        "{} min of mixed load: single events at 2,000 req/s (16 connections), batches of 50 at 20 req/s, session reads at 200 req/s, 100 live agents with 20 marked events/s; sampled every 30 s",
        args.minutes
    ));
    let single = Arc::new(EventBodies::new(1, "s"));
    let batch = Arc::new(EventBodies::new(50, "m"));
    let path = setup.webevents_path();
    let token = Arc::new(setup.token.clone());
    let mut samples = Vec::new();
    let mut first_rss = None;
    section.line(
        "window | server RSS MB | single p50 ms | single p99 ms | read p99 ms | live p99 ms | errors".to_string(),
    );
    for w in 0..windows {
        let (p1, p2, b1, b2) = (path.clone(), path.clone(), single.clone(), batch.clone());
        let s1: Arc<dyn RequestSource> = Arc::new(move |c: usize, n: u64| {
            client::wire_post(addr, &p1, b1.body(c, n + w * 1_000_000), &[("origin", ORIGIN)])
        });
        let s2: Arc<dyn RequestSource> = Arc::new(move |c: usize, n: u64| {
            client::wire_post(addr, &p2, b2.body(c + 100, n + w * 1_000_000), &[("origin", ORIGIN)])
        });
        let tk = token.clone();
        let s3: Arc<dyn RequestSource> = Arc::new(move |_c: usize, _n: u64| {
            client::wire_get(addr, "/api/v2/journey/customers/cookie/soak-1/sessions", &tk)
        });
        let node = [addr];
        let ingest = client::closed_loop(&node, 16, Duration::ZERO, window, Some(2000.0), "soak single", s1);
        let batches = client::closed_loop(&node, 2, Duration::ZERO, window, Some(20.0), "soak batch", s2);
        let readers = client::closed_loop(&node, 4, Duration::ZERO, window, Some(200.0), "soak reads", s3);
        let live = publish_marked(addr, path.clone(), 100, 20.0, window, book.clone(), "soak");
        let (ri, rb, rr, rl) = tokio::join!(ingest, batches, readers, live);
        let (mut ri, rb, mut rr) = (ri?, rb?, rr?);
        rl?;
        let li = Latency::of(&mut ri.latencies_us);
        let lr = Latency::of(&mut rr.latencies_us);
        let mut lv = std::mem::take(&mut *book.latencies_us.lock());
        let ll = Latency::of(&mut lv);
        let rss = server.rss_mb();
        first_rss.get_or_insert(rss);
        let errors = ri.failures() + rb.failures() + rr.failures();
        section.line(format!(
            "{:>3} | {rss:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {errors}",
            w + 1,
            li.p50_ms,
            li.p99_ms,
            lr.p99_ms,
            ll.p99_ms
        ));
        samples.push((rss, li.p99_ms));
    }
    let first = first_rss.unwrap_or(0.0);
    let last = samples.last().map(|s| s.0).unwrap_or(0.0);
    let peak = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    section.line(format!("RSS after the first window {first:.1} MB, at the end {last:.1} MB, peak {peak:.1} MB"));
    section.judge("RSS growth from the first window to the end", last - first, "MB", 64.0, false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_once_each() {
        assert_eq!(markers(r#"data: {"url":"https://shop.example/lv12q","x":"/lv7q /lv8 /lvq"}"#), vec![12, 7]);
    }

    #[test]
    fn bodies_parse_as_web_event_requests() {
        let b = EventBodies::new(3, "t");
        let v: Vec<WebEventRequest> = serde_json::from_slice(&b.body(1, 2)).expect("batch parses");
        assert_eq!(v.len(), 3);
        let one: WebEventRequest = serde_json::from_slice(&EventBodies::new(1, "t").body(0, 0)).expect("single");
        assert!(one.client_event_id.is_some());
    }

    #[test]
    fn a_body_is_the_event_template_written_piece_by_piece() {
        let b = EventBodies::new(1, "t");
        let body = String::from_utf8(b.body(7, 1234).to_vec()).unwrap();
        let now = &body[body.find(r#""createdDate":""#).unwrap() + 15..][..24];
        let mut expected = String::new();
        b.event(&mut expected, &format!("{}-7-61", b.run), &format!("{}-7-1234", b.run), "/products/34", now);
        assert_eq!(body, expected);
        for n in [0, 9, 10, 1234, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
