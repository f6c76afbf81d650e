//! Benchmark: batched, durable web-event ingest into the PostgreSQL store, and a `COPY` ceiling.
//!
//! ```text
//! cargo run --release -p waymark-store --example pg_ingest -- [events] [batch] [concurrency] [customers]
//! ```
//! Defaults: 200000 events, batches of 100, 32 concurrent callers, 20000 customers. The database is
//! `WAYMARK_BENCH_PG`, else `WAYMARK_TEST_PG`, else `postgres://postgres@127.0.0.1:5432/test`; the run uses a
//! fresh schema and drops it at the end. Events go through `Store::ingest` exactly as the HTTP handler sends
//! them (parsed and enriched before the clock starts): sessionization, customer row locks, group commit; a
//! batch counts when its `ingest` call has returned after the commit.
//!
//! The ceiling then `COPY`s the same stored rows (binary) into a table with the same primary key.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use waymark_domain::Timestamp;
use waymark_domain::deployment::Deployment;
use waymark_domain::identity::TraitIdentity;
use waymark_domain::ids::{DeploymentId, OrgId};
use waymark_domain::journey::Enrichment;
use waymark_domain::limits::InputLimits;
use waymark_domain::web_event::{WebEventRequest, parse_web_event};
use waymark_store::postgres::{PgConfig, PgStore};
use waymark_store::{IngestBatch, IngestItem, ItemResult, JourneyConfig, Store, WebFieldsForm, WebItem};

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (total, batch, concurrency, customers) = (arg(1, 200_000), arg(2, 100), arg(3, 32), arg(4, 20_000));
    let url = std::env::var("WAYMARK_BENCH_PG")
        .or_else(|_| std::env::var("WAYMARK_TEST_PG"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut config = PgConfig::new(&url);
    config.schema = schema.clone();
    config.listen = false;
    let store = Arc::new(PgStore::connect(config).await?);

    // Prepare the batches (parse + enrichment happen in the HTTP handler, before the store).
    let org = OrgId::new_v7(Timestamp::from_unix_millis(0));
    let deployment = Deployment::new(org, DeploymentId::new_v7(Timestamp::from_unix_millis(0)), "bench");
    let limits = InputLimits::default();
    let now = Timestamp::from_unix_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64,
    );
    let journey = Arc::new(JourneyConfig::default());
    let mut batches = Vec::with_capacity(total / batch + 1);
    let mut items = Vec::with_capacity(batch);
    for i in 0..total {
        let req: WebEventRequest = serde_json::from_value(serde_json::json!({
            "customerCookieId": format!("bench-cookie-{:06}", i % customers),
            "eventName": "page_viewed",
            "page": {"url": format!("https://shop.example/products/{}?utm_source=news", i % 500), "title": "Product page"},
            "createdDate": now.plus_millis((i / customers) as i64).to_iso(),
            "userAgentString": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        }))?;
        let event = parse_web_event(req, &deployment, &limits, now, None, None).map_err(|r| r.message)?;
        items.push(IngestItem::Web(Box::new(WebItem::new(
            event,
            Enrichment::default(),
            TraitIdentity::default(),
            WebFieldsForm::Json,
        ))));
        if items.len() == batch {
            batches.push(IngestBatch { org, config: journey.clone(), items: std::mem::take(&mut items) });
        }
    }
    if !items.is_empty() {
        batches.push(IngestBatch { org, config: journey.clone(), items });
    }

    let queue = Arc::new(parking_lot::Mutex::new(batches));
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        let (queue, store) = (queue.clone(), store.clone());
        callers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut stored = 0usize;
            loop {
                let Some(b) = queue.lock().pop() else { break };
                let t = Instant::now();
                let results = store.ingest(b).await.expect("ingest");
                latencies.push(t.elapsed());
                stored += results.iter().filter(|r| matches!(r, ItemResult::Web(_))).count();
            }
            (stored, latencies)
        }));
    }
    let mut stored = 0;
    let mut latencies: Vec<Duration> = Vec::new();
    for c in callers {
        let (n, l) = c.await?;
        stored += n;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "store ingest: {stored} events in {:.2} s = {:.0} events/s (batches of {batch}, {concurrency} callers, {customers} customers); batch ack p50 {:?} p99 {:?}",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
    assert_eq!(stored, total, "every event was stored");

    // COPY ceiling: the same rows, binary COPY into a table with the same primary key.
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute(&format!("SET search_path = {schema}")).await?;
    let rows = client.query("SELECT org_id, session_id, created_ms, id, type, body FROM events", &[]).await?;
    client.batch_execute("CREATE TABLE events_copy (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS); ALTER TABLE events_copy ADD PRIMARY KEY (org_id, session_id, created_ms, id)").await?;
    let started = Instant::now();
    let sink =
        client.copy_in("COPY events_copy (org_id, session_id, created_ms, id, type, body) FROM STDIN BINARY").await?;
    let writer =
        BinaryCopyInWriter::new(sink, &[Type::UUID, Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT]);
    futures_util::pin_mut!(writer);
    for r in &rows {
        let (o, s, c, i, t, b): (uuid::Uuid, &str, i64, &str, &str, &str) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        writer.as_mut().write(&[&o, &s, &c, &i, &t, &b]).await?;
    }
    let copied = writer.finish().await?;
    let elapsed = started.elapsed();
    println!(
        "COPY ceiling: {copied} rows in {:.2} s = {:.0} rows/s (binary COPY, same rows, same primary key)",
        elapsed.as_secs_f64(),
        copied as f64 / elapsed.as_secs_f64()
    );
    drop(store);
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
    Ok(())
}
