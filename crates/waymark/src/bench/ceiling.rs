//! The machine's ceilings, measured in the same run as our figures: a bare axum handler that only parses the
//! same JSON our tracking endpoint parses (no validation, no store), and raw SQLite inserting rows shaped like
//! our events into an indexed table in one transaction.

use super::BenchArgs;
use super::client::{self, RequestSource};
use super::report::{Latency, Section, fmt_num, per_sec};
use super::scenarios::EventBodies;
use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::routing::post;
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_domain::web_event::WebEventRequest;

/// What the bare handler does with a body: parse it into the same request type our endpoint uses.
async fn bare(body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let parsed = serde_json::from_slice::<serde_json::Value>(&body).map(|v| match v {
        serde_json::Value::Array(items) => {
            items.into_iter().filter(|i| serde_json::from_value::<WebEventRequest>(i.clone()).is_ok()).count()
        }
        other => usize::from(serde_json::from_value::<WebEventRequest>(other).is_ok()),
    });
    match parsed {
        Ok(n) => axum::Json(serde_json::json!({"parsed": n})).into_response(),
        Err(_) => axum::http::StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Requests/s of the bare handler for single events and for batches of `args.batch`. Returns (single, batch).
pub async fn http(args: &BenchArgs, section: &mut Section) -> Result<(f64, f64)> {
    let app = axum::Router::new().route("/api/v2/journey/deployments/{id}/webevents", post(bare));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let path = "/api/v2/journey/deployments/00000000-0000-7000-8000-000000000000/webevents".to_string();
    let seconds = Duration::from_secs(args.seconds.clamp(1, 10));
    let mut out = (0.0, 0.0);
    for (batch, conns) in [(1usize, 64usize), (args.batch, 16)] {
        let bodies = EventBodies::new(batch, "ceiling");
        let p = path.clone();
        let source: Arc<dyn RequestSource> = Arc::new(move |c: usize, n: u64| {
            client::wire_post(addr, &p, bodies.body(c, n), &[("origin", super::server::ORIGIN)])
        });
        let label = if batch == 1 { "ceiling single" } else { "ceiling batch" };
        let mut r = client::closed_loop(&[addr], conns, Duration::from_secs(1), seconds, None, label, source).await?;
        let rps = per_sec(r.ok, r.measured);
        let lat = Latency::of(&mut r.latencies_us);
        section.line(format!(
            "ceiling: bare axum handler parsing the same JSON ({} event(s)/request, {conns} connections): {} req/s = {} events/s; {}",
            batch,
            fmt_num(rps),
            fmt_num(rps * batch as f64),
            lat.describe()
        ));
        if batch == 1 {
            out.0 = rps;
        } else {
            out.1 = rps * batch as f64;
        }
    }
    server.abort();
    Ok(out)
}

/// Rows/s SQLite inserts into an indexed table shaped like `events`, in one transaction.
pub fn sqlite(section: &mut Section) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("ceiling.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE events (org_id TEXT NOT NULL, session_id TEXT NOT NULL, created_ms INTEGER NOT NULL,
            id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (org_id, session_id, created_ms, id)) WITHOUT ROWID;
         CREATE INDEX events_by_created ON events (created_ms);",
    )?;
    let rows = 300_000u64;
    let body = "{\"eventName\":\"page_viewed\",\"page\":{\"url\":\"https://shop.example/products/1\",\"title\":\"Page\",\"hostname\":\"shop.example\",\"pathname\":\"/products/1\"},\"browser\":{\"family\":\"Chrome\",\"version\":\"124.0\"},\"device\":{\"category\":\"desktop\",\"osFamily\":\"Windows\"}}";
    let org = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    conn.execute_batch("BEGIN")?;
    {
        let mut stmt = conn.prepare(
            "INSERT INTO events (org_id, session_id, created_ms, id, type, body) VALUES (?1, ?2, ?3, ?4, 'web', ?5)",
        )?;
        let mut session = uuid::Uuid::now_v7().to_string();
        for i in 0..rows {
            if i % 10 == 0 {
                session = uuid::Uuid::now_v7().to_string();
            }
            stmt.execute(rusqlite::params![
                org,
                session,
                1_700_000_000_000i64 + i as i64,
                uuid::Uuid::now_v7().to_string(),
                body
            ])
            .context("insert")?;
        }
    }
    conn.execute_batch("COMMIT")?;
    let rate = per_sec(rows, started.elapsed());
    section.line(format!(
        "ceiling: raw SQLite indexed insert (events-shaped rows, WAL, synchronous=NORMAL, one transaction): {} rows/s",
        fmt_num(rate)
    ));
    Ok(rate)
}
