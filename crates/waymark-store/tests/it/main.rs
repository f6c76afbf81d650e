//! Store tests through the `Store` trait, on both backends where the behaviour is shared, and on
//! PostgreSQL for what only it has (partitions, several nodes on one schema, advisory-locked jobs).
//! PostgreSQL is `WAYMARK_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`), a fresh schema per
//! test; when it is unreachable the tests fail, they are never skipped.

use std::sync::Arc;
use waymark_domain::Timestamp;
use waymark_domain::deployment::Deployment;
use waymark_domain::identity::TraitIdentity;
use waymark_domain::ids::{DeploymentId, OrgId, SessionId};
use waymark_domain::journey::Enrichment;
use waymark_domain::limits::InputLimits;
use waymark_domain::web_event::{CookieId, WebEventRequest, parse_web_event};
use waymark_store::postgres::{PgConfig, PgStore};
use waymark_store::sqlite::{SqliteConfig, SqliteStore};
use waymark_store::{
    EventPage, IngestBatch, IngestItem, ItemResult, JourneyConfig, SessionPage, Store, WebFieldsForm, WebItem,
};

fn pg_url() -> String {
    std::env::var("WAYMARK_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema, dropped at the end of the test.
struct Schema(String);

impl Schema {
    fn fresh() -> Schema {
        Schema(format!("t_{}", uuid::Uuid::new_v4().simple()))
    }

    async fn open(&self) -> PgStore {
        let mut c = PgConfig::new(pg_url());
        c.schema = self.0.clone();
        c.pool_size = 4;
        PgStore::connect(c).await.unwrap_or_else(|e| panic!("PostgreSQL at {} is not usable: {e}", pg_url()))
    }

    async fn admin(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client.batch_execute(&format!("SET search_path = {}", self.0)).await.unwrap();
        client
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
                }
            });
        })
        .join();
    }
}

async fn both() -> Vec<(Arc<dyn Store>, Option<Schema>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("w.db"))).unwrap());
    let schema = Schema::fresh();
    let pg: Arc<dyn Store> = Arc::new(schema.open().await);
    vec![(sqlite, None, dir), (pg, Some(schema), tempfile::tempdir().unwrap())]
}

fn now() -> Timestamp {
    Timestamp::from_unix_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    )
}

/// A web event for `cookie` at `at` (parsed as if the server's clock said `at`).
fn web(org: OrgId, cookie: &str, path: &str, at: Timestamp) -> IngestItem {
    web_sent(org, cookie, path, at, None)
}

/// [`web`] with the tracker's `clientEventId`.
fn web_sent(org: OrgId, cookie: &str, path: &str, at: Timestamp, client_event_id: Option<&str>) -> IngestItem {
    let deployment = Deployment::new(org, DeploymentId::new_v7(at), "test");
    let req: WebEventRequest = serde_json::from_value(serde_json::json!({
        "customerCookieId": cookie,
        "eventName": "page_viewed",
        "page": {"url": format!("https://shop.example{path}"), "title": "Page"},
        "createdDate": at.to_iso(),
        "clientEventId": client_event_id,
    }))
    .unwrap();
    let event = parse_web_event(req, &deployment, &InputLimits::default(), at, None, None).unwrap();
    IngestItem::Web(Box::new(WebItem::new(
        event,
        Enrichment::default(),
        TraitIdentity::default(),
        WebFieldsForm::Packed,
    )))
}

fn batch(org: OrgId, items: Vec<IngestItem>) -> IngestBatch {
    IngestBatch { org, config: Arc::new(JourneyConfig::default()), items }
}

/// The writer thread takes the nice value it is configured with (a lower priority is always allowed, so this
/// runs without privileges; −10, the default, needs them and is only asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_thread_takes_its_configured_priority() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SqliteConfig::new(dir.path().join("w.db"));
    cfg.writer_nice = 7;
    let store = SqliteStore::open(cfg).unwrap();
    let org = OrgId::new_v7(now());
    // An answered write: the writer thread has set its priority before it took its first job.
    store.ingest(batch(org, vec![web(org, "n", "/", now())])).await.unwrap();
    let writers_nice: Vec<i64> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?.path();
            let comm = std::fs::read_to_string(t.join("comm")).ok()?;
            let stat = std::fs::read_to_string(t.join("stat")).ok()?;
            // Fields after the `(comm)`: state is the first, nice the seventeenth.
            let nice = stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()?;
            (comm.trim() == "wm-sqlite-write").then_some(nice)
        })
        .collect();
    assert!(writers_nice.contains(&7), "writer threads' nice values: {writers_nice:?}");
}

/// A session's events are read under its own organisation only: another organisation asking for the same
/// session id finds nothing (the SQLite index finds a session's events by the session alone; the organisation
/// is checked on each row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_events_are_read_under_its_own_organisation_only() {
    for (store, _schema, _dir) in both().await {
        let (org, other, t) = (OrgId::new_v7(now()), OrgId::new_v7(now()), now());
        let items = (0..3).map(|i| web(org, "v", &format!("/{i}"), t.plus_millis(i))).collect();
        let results = store.ingest(batch(org, items)).await.unwrap();
        let ItemResult::Web(w) = &results[0] else { panic!("{}: {:?}", store.backend(), results[0]) };
        let sid = SessionId::parse(&w.session.session.id).unwrap();
        let page = EventPage { after: None, limit: 100, types: Vec::new() };
        let b = store.backend();
        let all = store.session_events(org, sid, &page).await.unwrap();
        assert_eq!(all.len(), 3, "{b}");
        assert!(store.session_events(other, sid, &page).await.unwrap().is_empty(), "{b}: another organisation");
        let after = EventPage { after: Some((all[0].created_date, all[0].id.clone())), limit: 1, types: Vec::new() };
        let next = store.session_events(org, sid, &after).await.unwrap();
        assert_eq!(next.len(), 1, "{b}: a page after the first event");
        assert_eq!(
            (next[0].created_date, &next[0].id),
            (t.plus_millis(1), &all[1].id),
            "{b}: pages follow (created, id)"
        );
    }
}

/// A web event reads back as the event the ingest answered, whichever form its request-side fields came in:
/// the embedded store keeps packed bodies (BLOBs) and, from before they existed and for fields sent as JSON,
/// compact JSON bodies, in the same table; PostgreSQL keeps whole JSON bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_events_read_back_whole_from_any_body_form() {
    for (store, _schema, dir) in both().await {
        let (org, t, b) = (OrgId::new_v7(now()), now(), store.backend());
        let mut stored = Vec::new();
        for (i, form) in [WebFieldsForm::Json, WebFieldsForm::Packed, WebFieldsForm::Json].into_iter().enumerate() {
            let req: WebEventRequest = serde_json::from_value(serde_json::json!({
                "customerCookieId": "forms", "eventName": "page_viewed", "createdDate": t.plus_millis(i as i64).to_iso(),
                "page": {"url": format!("https://shop.example/f/{i}?q=x#top"), "title": "Ünïcode \"title\" <b>"},
                "attributes": {"n": {"dataType": "number", "value": i}}, "searchQuery": "red shoes",
            }))
            .unwrap();
            let deployment = Deployment::new(org, DeploymentId::new_v7(t), "test");
            let event = parse_web_event(req, &deployment, &InputLimits::default(), t, None, None).unwrap();
            let item =
                IngestItem::Web(Box::new(WebItem::new(event, Enrichment::default(), TraitIdentity::default(), form)));
            let results = store.ingest(batch(org, vec![item])).await.unwrap();
            let ItemResult::Web(w) = &results[0] else { panic!("{b}: {:?}", results[0]) };
            stored.push(w.event.clone());
        }
        let sid = SessionId::parse(&stored[0].session.id).unwrap();
        let page = EventPage { after: None, limit: 100, types: Vec::new() };
        let read = store.session_events(org, sid, &page).await.unwrap();
        let read: Vec<_> = read.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        let stored: Vec<_> = stored.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        assert_eq!(read, stored, "{b}");
        if b == "sqlite" {
            let db = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
            let forms: Vec<String> = db
                .prepare("SELECT typeof(body) FROM events ORDER BY created_ms")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(forms, ["text", "blob", "text"], "the embedded store keeps both forms");
        }
    }
}

/// A retried event is answered from the customer's state without changing it; the events after it, in the same
/// batch and in later ones, still find that state (the SQLite writer moves states out of its cache instead of
/// copying them, and a duplicate must give the state back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_leaves_the_customer_state_for_the_events_after_it() {
    for (store, _schema, _dir) in both().await {
        let org = OrgId::new_v7(now());
        let t = now();
        let session_of = |r: &ItemResult| match r {
            ItemResult::Web(w) => (w.session.session.id.clone(), w.session.session.event_count),
            ItemResult::Duplicate { session: Some(s) } => (s.session.id.clone(), -1),
            other => panic!("{}: unexpected result {other:?}", store.backend()),
        };
        let first = store.ingest(batch(org, vec![web_sent(org, "v", "/a", t, Some("x"))])).await.unwrap();
        let (sid, count) = session_of(&first[0]);
        assert_eq!(count, 1);
        let second = store
            .ingest(batch(
                org,
                vec![
                    web_sent(org, "v", "/a", t, Some("x")),
                    web_sent(org, "v", "/b", t.plus_millis(1000), Some("y")),
                    web_sent(org, "v", "/b", t.plus_millis(1000), Some("y")),
                ],
            ))
            .await
            .unwrap();
        let got: Vec<_> = second.iter().map(session_of).collect();
        assert_eq!(got, vec![(sid.clone(), -1), (sid.clone(), 2), (sid.clone(), -1)], "{}", store.backend());
        let third = store.ingest(batch(org, vec![web_sent(org, "v", "/c", t.plus_millis(2000), None)])).await.unwrap();
        assert_eq!(session_of(&third[0]), (sid.clone(), 3), "{}", store.backend());
        let customer = store.get_customer(org, &CookieId::parse("v").unwrap()).await.unwrap().unwrap();
        let sessions = store
            .customer_sessions(
                org,
                &CookieId::parse("v").unwrap(),
                &SessionPage { since: t.minus_secs(3600), before: None, limit: 10 },
            )
            .await
            .unwrap();
        assert_eq!(sessions.len(), 1, "{}: one session: {customer:?}", store.backend());
        assert_eq!(sessions[0].session.event_count, 3, "{}", store.backend());
    }
}

/// A batch's web results of one session share one snapshot of it, as the batch's last event of it left it,
/// and each keeps its own figures; the stored session is that snapshot. Sessions that a later event of the
/// batch closed, or pushed out of the customer's state, are snapshotted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_results_share_one_snapshot_per_session_and_keep_their_own_counts() {
    for (store, _schema, _dir) in both().await {
        let org = OrgId::new_v7(now());
        let t = now().minus_secs(3000);
        // Visitor a: three events, then a fourth 25 minutes later (a new session), then a fifth an hour
        // later in yet another; visitor b between them.
        let items = vec![
            web(org, "a", "/1", t),
            web(org, "b", "/1", t.plus_millis(500)),
            web(org, "a", "/2", t.plus_millis(1_000)),
            web(org, "a", "/3", t.plus_millis(3_000)),
            web(org, "a", "/4", t.plus_millis(25 * 60_000)),
            web(org, "b", "/2", t.plus_millis(2_000)),
            web(org, "a", "/5", t.plus_millis(48 * 60_000)),
        ];
        let results = store.ingest(batch(org, items)).await.unwrap();
        let stored: Vec<_> = results
            .iter()
            .map(|r| match r {
                ItemResult::Web(w) => w,
                other => panic!("{}: unexpected result {other:?}", store.backend()),
            })
            .collect();
        let b = store.backend();
        let counts: Vec<i64> = stored.iter().map(|w| w.counts.event_count).collect();
        assert_eq!(counts, vec![1, 1, 2, 3, 1, 2, 1], "{b}: each result's figures are as of its event");
        for w in &stored {
            assert_eq!(w.session.session.id, w.event.session.id, "{b}: the result's session is its event's");
        }
        let (a1, a2, a3) = (&stored[0].session, &stored[4].session, &stored[6].session);
        assert!(Arc::ptr_eq(a1, &stored[2].session) && Arc::ptr_eq(a1, &stored[3].session), "{b}: one snapshot");
        assert!(Arc::ptr_eq(&stored[1].session, &stored[5].session), "{b}: one snapshot for b");
        assert_eq!(a1.session.event_count, 3, "{b}: the snapshot is after the session's last event");
        assert_eq!(a1.session.last_page.as_ref().map(|p| p.pathname.as_str()), Some("/3"));
        assert!(a1.session.ended_date.is_some(), "{b}: a's first session was closed by its second");
        assert_eq!(stored[1].session.session.event_count, 2);
        assert_ne!(a1.session.id, a2.session.id);
        assert_ne!(a2.session.id, a3.session.id);
        assert_eq!(stored[4].closed.as_ref().map(|c| c.session.id.as_str()), Some(a1.session.id.as_str()));
        // What was written is the snapshots.
        let cookie = CookieId::parse("a").unwrap();
        let page = SessionPage { since: t.minus_secs(3600), before: None, limit: 10 };
        let mut written = store.customer_sessions(org, &cookie, &page).await.unwrap();
        written.sort_by_key(|s| s.session.created_date);
        let got: Vec<(String, i64)> = written.iter().map(|s| (s.session.id.clone(), s.session.event_count)).collect();
        let want: Vec<(String, i64)> =
            [a1, a2, a3].iter().map(|s| (s.session.id.clone(), s.session.event_count)).collect();
        assert_eq!(got, want, "{b}");
        assert_eq!(written[0].session.last_page, a1.session.last_page, "{b}");
    }
}

/// A customer state read back from its row (evicted from the writer's cache, or after a restart) continues the
/// open session: the embedded store keeps the session bodies in the session rows, not in the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_read_back_from_the_embedded_store_continues_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SqliteConfig { cache_customers: 16, ..SqliteConfig::new(dir.path().join("w.db")) };
    let org = OrgId::new_v7(now());
    let t = now();
    let session_of = |r: &ItemResult| match r {
        ItemResult::Web(w) => (w.session.session.id.clone(), w.session.session.event_count),
        other => panic!("unexpected result {other:?}"),
    };
    let store = SqliteStore::open(config()).unwrap();
    let first = store.ingest(batch(org, vec![web(org, "v0", "/a", t)])).await.unwrap();
    let (sid, _) = session_of(&first[0]);
    // Enough other visitors to push v0 out of the cache.
    for i in 1..40 {
        store.ingest(batch(org, vec![web(org, &format!("v{i}"), "/a", t)])).await.unwrap();
    }
    let second = store.ingest(batch(org, vec![web(org, "v0", "/b", t.plus_millis(1000))])).await.unwrap();
    assert_eq!(session_of(&second[0]), (sid.clone(), 2));
    store.close();
    drop(store);
    let store = SqliteStore::open(config()).unwrap();
    let third = store.ingest(batch(org, vec![web(org, "v0", "/c", t.plus_millis(2000))])).await.unwrap();
    assert_eq!(session_of(&third[0]), (sid, 3));
    let sessions = store
        .customer_sessions(
            org,
            &CookieId::parse("v0").unwrap(),
            &SessionPage { since: t.minus_secs(3600), before: None, limit: 10 },
        )
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session.last_page.as_ref().map(|p| p.pathname.as_str()), Some("/c"));
}

/// States saved within one batch reach their rows whatever follows them in the batch: the next event of the same
/// visitor, a retry answered from the state, or another visitor's event (the writer keeps the last saved state
/// apart from the others until the batch ends). Read back after a restart, each continues its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_saved_within_a_batch_are_all_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SqliteConfig::new(dir.path().join("w.db"));
    let org = OrgId::new_v7(now());
    let t = now();
    let store = SqliteStore::open(config()).unwrap();
    let results = store
        .ingest(batch(
            org,
            vec![
                web_sent(org, "a", "/a1", t, Some("a1")),
                web_sent(org, "a", "/a1", t, Some("a1")),
                web_sent(org, "b", "/b1", t, Some("b1")),
                web_sent(org, "a", "/a2", t.plus_millis(10), Some("a2")),
                web_sent(org, "c", "/c1", t, Some("c1")),
                web_sent(org, "c", "/c1", t, Some("c1")),
            ],
        ))
        .await
        .unwrap();
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| match r {
            ItemResult::Web(_) => "web",
            ItemResult::Duplicate { .. } => "duplicate",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["web", "duplicate", "web", "web", "web", "duplicate"]);
    store.close();
    drop(store);
    let store = SqliteStore::open(config()).unwrap();
    let later = t.plus_millis(1000);
    let results = store
        .ingest(batch(
            org,
            vec![
                web_sent(org, "a", "/a1", t, Some("a1")),
                web_sent(org, "a", "/a3", later, Some("a3")),
                web_sent(org, "b", "/b2", later, Some("b2")),
                web_sent(org, "c", "/c1", t, Some("c1")),
                web_sent(org, "c", "/c2", later, Some("c2")),
            ],
        ))
        .await
        .unwrap();
    let seen: Vec<(bool, i64)> = results
        .iter()
        .map(|r| match r {
            ItemResult::Web(w) => (false, w.counts.event_count),
            ItemResult::Duplicate { .. } => (true, 0),
            other => panic!("unexpected result {other:?}"),
        })
        .collect();
    // A retry from before the restart is still recognised, and every session goes on from its count.
    assert_eq!(seen, [(true, 0), (false, 3), (false, 2), (true, 0), (false, 2)]);
}

/// Under a steady stream of commits the WAL starts over once it is large: the file stays bounded while far
/// more than its size goes through it, and every event is still there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_stores_wal_starts_over_under_steady_writes() {
    let dir = tempfile::tempdir().unwrap();
    let restart_frames = 2048; // 8 MiB of 4 KiB pages
    let store = SqliteStore::open(SqliteConfig {
        wal_restart_frames: restart_frames,
        ..SqliteConfig::new(dir.path().join("w.db"))
    })
    .unwrap();
    let (org, t) = (OrgId::new_v7(now()), now());
    let (db, wal) = (dir.path().join("w.db"), dir.path().join("w.db-wal"));
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let restart_bytes = restart_frames as u64 * 4096;
    let (mut events, mut largest_wal) = (0usize, 0u64);
    // Every database page came through the WAL: once the database holds three times the restart size, that
    // much has gone through it.
    while size(&db) < 3 * restart_bytes {
        let items =
            (0..50).map(|i| web(org, &format!("v{events}-{i}"), &format!("/{}", "p".repeat(1500)), t)).collect();
        let results = store.ingest(batch(org, items)).await.unwrap();
        assert!(results.iter().all(|r| matches!(r, ItemResult::Web(_))), "{results:?}");
        events += 50;
        largest_wal = largest_wal.max(size(&wal));
        assert!(events < 200_000, "the database did not grow: {} bytes", size(&db));
    }
    assert!(
        largest_wal < 2 * restart_bytes,
        "the WAL grew to {largest_wal} bytes (restart at {restart_bytes}) while the database reached {}",
        size(&db)
    );
    assert_eq!(store.stats().await.unwrap().events as usize, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_journeys_and_keeps_recent_ones() {
    for (store, schema, _dir) in both().await {
        let org = OrgId::new_v7(now());
        let old = now().minus_secs(70 * 86_400);
        let recent = now();
        // Ingest old events (as they were ingested 70 days ago) and a recent one.
        let r = store
            .ingest(batch(
                org,
                vec![web(org, "old-cookie", "/a", old), web(org, "old-cookie", "/b", old.plus_millis(1000))],
            ))
            .await
            .unwrap();
        assert!(r.iter().all(|x| matches!(x, ItemResult::Web(_))), "{}: {r:?}", store.backend());
        store.ingest(batch(org, vec![web(org, "new-cookie", "/c", recent)])).await.unwrap();
        assert_eq!(store.stats().await.unwrap().events, 3);
        let pg = schema.as_ref().map(|_| ());
        let partitions_before = match &schema {
            Some(s) => {
                let c = s.admin().await;
                c.query("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'events_2%' AND relnamespace = to_regnamespace($1)", &[&s.0])
                    .await
                    .unwrap()
                    .len()
            }
            None => 0,
        };

        let report = store.purge_before(now().minus_secs(60 * 86_400)).await.unwrap();
        assert_eq!(report.sessions, 1, "{}: {report:?}", store.backend());
        assert_eq!(report.customers, 1, "{}: {report:?}", store.backend());
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.events, 1, "{}: only the recent event is left", store.backend());
        assert!(store.get_customer(org, &CookieId::parse("old-cookie").unwrap()).await.unwrap().is_none());
        assert!(store.get_customer(org, &CookieId::parse("new-cookie").unwrap()).await.unwrap().is_some());

        if let (Some(s), Some(())) = (&schema, pg) {
            // The old day's partition was created for the old events and is now gone: dropped, not emptied.
            let c = s.admin().await;
            let names: Vec<String> = c
                .query("SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname LIKE 'events_2%' AND relnamespace = to_regnamespace($1)", &[&s.0])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(names.len(), partitions_before - 1, "one partition dropped: {names:?}");
            let old_day = format!("events_{}", &old.to_iso()[..10].replace('-', ""));
            assert!(!names.contains(&old_day), "{old_day} was dropped: {names:?}");
        }
    }
}

/// A store a newer build migrated is refused, on either backend, before anything is written to it: this build
/// may not read what that build stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_migrated_by_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(SqliteStore::open(SqliteConfig::new(&path)).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO schema_migrations (version, name, sha256, applied_ms) VALUES (999, 'future', 'x', 0)", [])
        .unwrap();
    let e = SqliteStore::open(SqliteConfig::new(&path)).err().expect("a newer store is refused").to_string();
    assert!(e.contains("schema version 999") && e.contains("newer Waymark"), "{e}");

    let schema = Schema::fresh();
    drop(schema.open().await);
    schema
        .admin()
        .await
        .batch_execute(
            "INSERT INTO schema_migrations (version, name, sha256, applied_ms) VALUES (999, 'future', 'x', 0)",
        )
        .await
        .unwrap();
    let mut c = PgConfig::new(pg_url());
    c.schema = schema.0.clone();
    let e = PgStore::connect(c).await.err().expect("a newer schema is refused").to_string();
    assert!(e.contains("schema version 999") && e.contains(&schema.0), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_migrating_together_all_start() {
    let schema = Schema::fresh();
    let (a, b, c) = tokio::join!(schema.open(), schema.open(), schema.open());
    let org = OrgId::new_v7(now());
    for s in [&a, &b, &c] {
        s.ingest(batch(org, vec![web(org, "m-cookie", "/", now())])).await.unwrap();
    }
    assert_eq!(a.stats().await.unwrap().events, 3);
    assert_eq!(a.stats().await.unwrap().customers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_nodes_write_one_customer_correctly() {
    let schema = Schema::fresh();
    let (a, b) = tokio::join!(schema.open(), schema.open());
    let (a, b) = (Arc::new(a), Arc::new(b));
    let org = OrgId::new_v7(now());
    let start = now();
    let mut calls = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move {
            s.ingest(batch(org, vec![web(org, "shared", &format!("/{i}"), start.plus_millis(i))])).await
        }));
    }
    for c in calls {
        let r = c.await.unwrap().unwrap();
        assert!(matches!(r[0], ItemResult::Web(_)), "{r:?}");
    }
    let customer = a.get_customer(org, &CookieId::parse("shared").unwrap()).await.unwrap().unwrap();
    assert_eq!(customer.total_events, 40, "every event counted once in the customer's state");
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.events, stats.sessions, stats.customers), (40, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_jobs_run_on_one_node_at_a_time() {
    let schema = Schema::fresh();
    let store = schema.open().await;
    let org = OrgId::new_v7(now());
    let at = now().minus_secs(1800);
    store.ingest(batch(org, vec![web(org, "idle-cookie", "/", at)])).await.unwrap();
    // Another node holds the job's lock: this node leaves the job to it.
    let other = schema.admin().await;
    other
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&format!("waymark-close-idle:{}", schema.0)])
        .await
        .unwrap();
    let closed = store.close_idle_sessions(now().minus_secs(1200), 100).await.unwrap();
    assert!(closed.is_empty(), "the job ran although another node held it");
    other
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&format!("waymark-close-idle:{}", schema.0)])
        .await
        .unwrap();
    let closed = store.close_idle_sessions(now().minus_secs(1200), 100).await.unwrap();
    assert_eq!(closed.len(), 1);
    assert!(closed[0].session.ended_date.is_some());
    assert!(store.close_idle_sessions(now().minus_secs(1200), 100).await.unwrap().is_empty(), "closed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lease_is_held_by_one_node_until_dropped() {
    let schema = Schema::fresh();
    let (a, b) = tokio::join!(schema.open(), schema.open());
    let lease = a.job_lease("training").await.unwrap();
    assert!(lease.is_some(), "the first node gets the job");
    assert!(b.job_lease("training").await.unwrap().is_none(), "the second node does not, while it is held");
    assert!(b.job_lease("retention").await.unwrap().is_some(), "other jobs are independent");
    drop(lease);
    let mut got = None;
    for _ in 0..50 {
        got = b.job_lease("training").await.unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(got.is_some(), "released when the holder drops its lease");
    // Released explicitly, the lease is free at once (maintenance runs back to back must not skip).
    got.unwrap().release().await;
    let again = a.job_lease("training").await.unwrap();
    assert!(again.is_some(), "free right after release");
    // The embedded store has one node: it always grants.
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(SqliteConfig::new(dir.path().join("w.db"))).unwrap();
    assert!(s.job_lease("training").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_dropped_by_another_node_is_recreated_on_demand() {
    let schema = Schema::fresh();
    let (a, b) = tokio::join!(schema.open(), schema.open());
    let org = OrgId::new_v7(now());
    let old = now().minus_secs(70 * 86_400);
    a.ingest(batch(org, vec![web(org, "p-cookie", "/1", old)])).await.unwrap();
    // Node B's retention drops the day node A has just written to.
    b.purge_before(now().minus_secs(60 * 86_400)).await.unwrap();
    let r = a.ingest(batch(org, vec![web(org, "p2-cookie", "/2", old.plus_millis(5))])).await.unwrap();
    assert!(matches!(r[0], ItemResult::Web(_)), "{r:?}");
    assert_eq!(a.stats().await.unwrap().events, 1);
}
