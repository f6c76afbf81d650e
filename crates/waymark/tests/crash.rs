//! Crash safety of the real `waymark` binary: ingest under load with `clientEventId`s, `kill -9` the server at
//! random moments several times, restart it on the same data, and re-send what was never acknowledged (as a
//! tracker would). Afterwards every event that was ever answered 2xx is stored exactly once, no event is
//! stored twice, and every restart came up cleanly.
//!
//! Structured per store backend: the store is inspected through the `Store` trait only.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use waymark_domain::Timestamp;
use waymark_domain::ids::OrgId;
use waymark_domain::web_event::CookieId;
use waymark_store::postgres::{PgConfig, PgStore};
use waymark_store::sqlite::{SqliteConfig, SqliteStore};
use waymark_store::{EventPage, SessionPage, Store};

const BIN: &str = env!("CARGO_BIN_EXE_waymark");
const CLIENTS: usize = 6;
const ROUNDS: usize = 4;

#[derive(Debug, Clone)]
enum Backend {
    Sqlite,
    /// The PostgreSQL at `WAYMARK_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`), in a fresh schema.
    Postgres {
        url: String,
        schema: String,
    },
}

impl Backend {
    fn postgres() -> Backend {
        Backend::Postgres {
            url: std::env::var("WAYMARK_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            schema: format!("crash_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// `--store …` (and `--pg-schema …`) for the binary.
    fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite => vec!["--store".into(), "sqlite".into()],
            Backend::Postgres { url, schema } => {
                vec!["--store".into(), url.clone(), "--pg-schema".into(), schema.clone()]
            }
        }
    }

    async fn open(&self, data: &Path) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite => {
                Arc::new(SqliteStore::open(SqliteConfig::new(data.join("waymark.db"))).expect("open store"))
            }
            Backend::Postgres { url, schema } => {
                let mut cfg = PgConfig::new(url);
                cfg.schema = schema.clone();
                Arc::new(PgStore::connect(cfg).await.expect("PostgreSQL test store (set WAYMARK_TEST_PG)"))
            }
        }
    }
}

/// A small deterministic generator, seeded from the clock and printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

fn start_server(backend: &Backend, data: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(backend.args())
        .env("RUST_LOG", "warn")
        .env("WAYMARK_SERVER__RATE_LIMITS__PER_IP_PER_SEC", "1000000")
        .env("WAYMARK_SERVER__RATE_LIMITS__PER_IP_BURST", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn waymark serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.split("running at http://").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                sent = true;
            } else {
                eprintln!("[server] {line}");
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the server did not start cleanly");
    (child, format!("http://{addr}"))
}

fn event(cookie: &str, id: &str) -> Value {
    let now = Timestamp::from_offset_datetime(time::OffsetDateTime::now_utc());
    json!({
        "customerCookieId": cookie,
        "eventName": "page_viewed",
        "clientEventId": id,
        "createdDate": now.to_iso(),
        "page": {"url": format!("https://shop.example/e/{id}"), "title": "Crash"},
    })
}

/// What the clients know: ids acknowledged with 2xx, and ids sent without an answer (to re-send).
#[derive(Default)]
struct Ledger {
    acked: BTreeSet<String>,
    unanswered: BTreeMap<String, String>,
}

/// One client: re-send its unanswered events, then send new ones (singles and batches of 10) until the server
/// dies.
async fn client(base: String, path: String, c: usize, round: usize, ledger: Arc<parking_lot::Mutex<Ledger>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let cookie = format!("crash-{c}");
    let mut retry: Vec<String> =
        ledger.lock().unanswered.iter().filter(|(_, ck)| **ck == cookie).map(|(id, _)| id.clone()).collect();
    let mut n = 0u64;
    loop {
        let ids: Vec<String> = if let Some(id) = retry.pop() {
            vec![id]
        } else {
            let k = if n.is_multiple_of(3) { 10 } else { 1 };
            (0..k).map(|i| format!("r{round}-c{c}-n{n}-{i}")).collect()
        };
        n += 1;
        {
            let mut l = ledger.lock();
            for id in &ids {
                l.unanswered.insert(id.clone(), cookie.clone());
            }
        }
        let body = if ids.len() == 1 {
            event(&cookie, &ids[0])
        } else {
            Value::Array(ids.iter().map(|id| event(&cookie, id)).collect())
        };
        let r = http.post(format!("{base}{path}")).header("origin", "http://shop.example").json(&body).send().await;
        let Ok(r) = r else { return };
        let status = r.status().as_u16();
        let Ok(answer) = r.json::<Value>().await else { return };
        assert_eq!(status, 200, "a live server refused an event: {answer}");
        let mut l = ledger.lock();
        if ids.len() == 1 {
            l.acked.insert(ids[0].clone());
            l.unanswered.remove(&ids[0]);
        } else {
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(answer["results"][i]["status"], 200, "{answer}");
                l.acked.insert(id.clone());
                l.unanswered.remove(id);
            }
        }
    }
}

async fn crash_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .args(["admin", "bootstrap", "--json", "--domain", "shop.example", "--data"])
        .arg(&data)
        .args(backend.args())
        .output()
        .expect("bootstrap");
    assert!(out.status.success(), "bootstrap failed: {}", String::from_utf8_lossy(&out.stderr));
    let boot: Value = serde_json::from_slice(&out.stdout).expect("bootstrap json");
    let org = OrgId::parse(boot["orgId"].as_str().expect("orgId")).expect("org id");
    let path = format!("/api/v2/journey/deployments/{}/webevents", boot["deploymentId"].as_str().expect("deployment"));
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7) | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let ledger = Arc::new(parking_lot::Mutex::new(Ledger::default()));

    for round in 0..=ROUNDS {
        let started = Instant::now();
        let (mut child, base) = start_server(&backend, &data);
        let health: Value = reqwest::get(format!("{base}/health")).await.expect("health").json().await.expect("json");
        assert_eq!(health["status"], "ok", "round {round}: the server did not start cleanly: {health}");
        let clients: Vec<_> =
            (0..CLIENTS).map(|c| tokio::spawn(client(base.clone(), path.clone(), c, round, ledger.clone()))).collect();
        if round == ROUNDS {
            // The last round re-sends what was left unanswered (and a little more) before its kill.
            tokio::time::sleep(Duration::from_millis(800)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.between(300, 1500))).await;
        }
        child.kill().expect("kill -9");
        let _ = child.wait();
        for c in clients {
            c.await.expect("client task");
        }
        let l = ledger.lock();
        eprintln!(
            "round {round}: killed after {:?}; {} acknowledged so far, {} unanswered",
            started.elapsed(),
            l.acked.len(),
            l.unanswered.len()
        );
    }

    // One more clean start after the last kill.
    let (mut child, base) = start_server(&backend, &data);
    let health: Value = reqwest::get(format!("{base}/health")).await.expect("health").json().await.expect("json");
    assert_eq!(health["status"], "ok", "the server did not start cleanly after the last kill: {health}");
    child.kill().expect("stop");
    let _ = child.wait();

    // Count every stored event by its id. A node killed with `kill -9` can leave a group transaction that
    // PostgreSQL still completes after the node is gone (a batch never acknowledged, so it may or may not be
    // stored): wait until the store's count has stayed put for 2 s before reading, so that the reading and the
    // count see the same store.
    let store = backend.open(&data).await;
    let mut settled = store.stats().await.expect("stats").events;
    let (mut still_since, deadline) = (Instant::now(), Instant::now() + Duration::from_secs(30));
    while still_since.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now_events = store.stats().await.expect("stats").events;
        if now_events != settled {
            eprintln!("the store still changed after the last kill: {settled} -> {now_events} events");
            (settled, still_since) = (now_events, Instant::now());
        }
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let since = Timestamp::from_offset_datetime(time::OffsetDateTime::now_utc() - time::Duration::days(1));
    for c in 0..CLIENTS {
        let cookie = CookieId::parse(&format!("crash-{c}")).expect("cookie");
        let sessions = store
            .customer_sessions(org, &cookie, &SessionPage { since, before: None, limit: 1000 })
            .await
            .expect("sessions");
        for s in sessions {
            let sid = waymark_domain::ids::SessionId::parse(&s.session.id).expect("sid");
            let mut page = EventPage { after: None, limit: 500, types: Vec::new() };
            loop {
                let evs = store.session_events(org, sid, &page).await.expect("events");
                let Some(last) = evs.last() else { break };
                page.after = Some((last.created_date, last.id.clone()));
                for e in &evs {
                    let url = &e.web_event.as_ref().expect("web event").page.url;
                    let id = url.rsplit('/').next().expect("id").to_string();
                    *seen.entry(id).or_default() += 1;
                }
            }
        }
    }
    let stats = store.stats().await.expect("stats");
    let l = ledger.lock();
    assert!(l.acked.len() > 100, "too little load to mean anything: {}", l.acked.len());
    let missing: Vec<&String> = l.acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events were lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let doubled: Vec<(&String, &u32)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "events stored more than once: {:?}", &doubled[..doubled.len().min(5)]);
    assert_eq!(stats.events as usize, seen.len(), "every stored event belongs to a client");
    eprintln!("{} acknowledged, {} stored, {} sent but never answered", l.acked.len(), seen.len(), l.unanswered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_loses_no_acknowledged_event() {
    crash_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_loses_no_acknowledged_event() {
    crash_loses_nothing(Backend::postgres()).await;
}
