//! The PostgreSQL store: the scale-out backend, for several Waymark nodes on one database.
//!
//! - **Writes** go through writer tasks with **group commit**: each writer takes every queued `ingest` batch
//!   (up to a limit), opens one transaction, locks the customers the group touches (`SELECT … FOR UPDATE`, in
//!   key order, after reserving rows for new customers), runs the shared journey logic
//!   ([`crate::ingest::apply_batch`]) against in-memory buffers ([`tx::PgTx`]), writes every row with one
//!   multi-row `INSERT … SELECT FROM unnest(…)` per table, notifies the other nodes, and commits. Callers are
//!   answered after the commit. Row locks keep a customer correct when its events land on different nodes.
//! - **Events** are range-partitioned by day (`events_YYYYMMDD`); partitions are created ahead, and
//!   retention drops whole partitions ([`partitions`]).
//! - **Several nodes**: a dedicated `LISTEN` connection per node turns other nodes' commits into
//!   [`RemoteChange`]s ([`feed`]); background jobs take `pg_try_advisory_xact_lock` so they run on one node.
//! - **Connection loss**: every database error that means "cannot reach PostgreSQL" becomes
//!   [`StoreError::Unavailable`] (HTTP 503); the pool reconnects by itself.

mod feed;
mod partitions;
mod read;
mod tx;

use crate::ingest::apply_batch;
use crate::migrate::{Migration, POSTGRES};
use crate::types::*;
use crate::{Record, RecordKind, Store, StoreError, StoreResult};
use async_trait::async_trait;
use deadpool_postgres::{Manager, Pool, Runtime};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::ids::{ContactId, OrgId, SessionId};
use waymark_domain::web_event::CookieId;

/// Settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/database` (key=value strings work too).
    pub url: String,
    /// Schema holding Waymark's tables (created if missing). `public` by default.
    pub schema: String,
    /// Connections in the pool (readers and writers share it).
    pub pool_size: usize,
    /// Writer tasks, each committing one group at a time.
    pub writers: usize,
    /// Most `ingest` batches in one transaction.
    pub max_batch_jobs: usize,
    /// Days of event partitions created ahead of today.
    pub partitions_ahead: i64,
    /// Listen for other nodes' changes (live push across nodes).
    pub listen: bool,
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: "public".into(),
            pool_size: 16,
            writers: 2,
            max_batch_jobs: 256,
            partitions_ahead: 3,
            listen: true,
        }
    }

    /// Whether `s` names a PostgreSQL store (`postgres://` or `postgresql://`).
    pub fn is_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }
}

/// One queued `ingest` call.
pub(crate) struct IngestJob {
    batch: IngestBatch,
    reply: oneshot::Sender<StoreResult<Vec<ItemResult>>>,
}

/// What the writers, readers and the listener share.
pub(crate) struct Shared {
    pub pool: Pool,
    pub schema: String,
    /// This process's id in change notifications, so a node skips its own.
    pub node: String,
    /// `LISTEN`/`NOTIFY` channel name (per schema).
    pub channel: String,
    pub partitions: partitions::Partitions,
    pub feed: broadcast::Sender<Arc<RemoteChange>>,
    /// Which organisations this node reads other nodes' changes back for (`None`: all).
    pub interest: parking_lot::RwLock<Option<crate::RemoteInterest>>,
}

/// The PostgreSQL store.
pub struct PgStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<IngestJob>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Marks an error after which the whole group may simply be retried (deadlock, serialization failure).
const RETRY_MARK: &str = "transient conflict, retried: ";

/// Map a driver error to a store error: connection trouble is `Unavailable` (503), a taken key `Conflict`.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict(db.message().to_string());
        }
        if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE {
            return StoreError::Unavailable(format!("{RETRY_MARK}{}", db.message()));
        }
        // 08: connection exception, 53: insufficient resources, 57: operator intervention (shutdown,
        // terminated backend), 58: system error.
        if matches!(class, "08" | "53" | "57" | "58") {
            return StoreError::Unavailable(format!("PostgreSQL: {}", db.message()));
        }
        return StoreError::Internal(format!("PostgreSQL {}: {}", code.code(), db.message()));
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Unavailable(format!("PostgreSQL connection: {e}"));
    }
    let text = e.to_string();
    if text.contains("timeout") || text.contains("connection") {
        return StoreError::Unavailable(format!("PostgreSQL: {text}"));
    }
    StoreError::Internal(format!("PostgreSQL: {text}"))
}

pub(crate) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no PostgreSQL connection: {e}"))
}

fn is_retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(RETRY_MARK))
}

/// Quote an identifier for SQL.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgStore {
    /// Connect, create the schema if needed, migrate it (under an advisory lock, so nodes starting together
    /// are safe), create the event partitions around today, and start the writers and the listener.
    pub async fn connect(config: PgConfig) -> StoreResult<PgStore> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| StoreError::Schema(format!("invalid PostgreSQL URL {:?}: {e}", redact(&config.url))))?;
        pg.connect_timeout(Duration::from_secs(5));
        pg.application_name("waymark");
        pg.options(format!("-c search_path={}", quote_ident(&config.schema)));
        let mgr = Manager::new(pg.clone(), NoTls);
        let pool = Pool::builder(mgr)
            .max_size(config.pool_size.max(config.writers + 2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Internal(format!("PostgreSQL pool: {e}")))?;
        let channel = channel_name(&config.schema);
        let shared = Arc::new(Shared {
            pool,
            schema: config.schema.clone(),
            node: uuid::Uuid::new_v4().simple().to_string(),
            channel,
            partitions: partitions::Partitions::default(),
            feed: broadcast::channel(4096).0,
            interest: parking_lot::RwLock::new(None),
        });
        migrate(&shared, POSTGRES).await?;
        partitions::load_existing(&shared).await?;
        let today = partitions::day_of(Timestamp::from_unix_millis(unix_ms()));
        partitions::ensure(&shared, (today - 1..=today + config.partitions_ahead.max(1)).collect()).await?;

        let (tx, rx) = mpsc::channel::<IngestJob>(8192);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut tasks = Vec::new();
        for _ in 0..config.writers.max(1) {
            let (shared, rx) = (shared.clone(), rx.clone());
            let max = config.max_batch_jobs.max(1);
            tasks.push(tokio::spawn(writer_loop(shared, rx, max)));
        }
        if config.listen {
            tasks.push(tokio::spawn(feed::listen(shared.clone(), pg)));
        }
        Ok(PgStore { shared, tx, tasks })
    }

    /// Drop `schema` with all it holds (a benchmark's scratch schema). No store may be using it.
    pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
        let (client, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL at {}: {e}", redact(url))))?;
        let conn = tokio::spawn(conn);
        let dropped = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(schema)))
            .await
            .map_err(|e| StoreError::Internal(format!("drop schema {schema}: {e}")));
        drop(client);
        let _ = conn.await;
        dropped
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// Create the event partitions for the days from `from` to `to` (inclusive) if missing.
    pub async fn ensure_partitions(&self, from: Timestamp, to: Timestamp) -> StoreResult<()> {
        let (a, b) = (partitions::day_of(from), partitions::day_of(to));
        partitions::ensure(&self.shared, (a..=b).collect()).await
    }

    /// Names of the event partitions that exist, oldest first.
    pub async fn event_partitions(&self) -> StoreResult<Vec<String>> {
        partitions::list(&self.shared).await.map(|v| v.into_iter().map(|(_, n)| n).collect())
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.shared.pool.get().await.map_err(pool_err)
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

fn channel_name(schema: &str) -> String {
    let mut c: String =
        format!("waymark_{schema}").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    c.truncate(63);
    c
}

pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Apply the migrations not yet applied, holding a session advisory lock (per schema) so concurrent nodes
/// wait for each other; a changed file is a hard error.
async fn migrate(shared: &Shared, migrations: &[Migration]) -> StoreResult<()> {
    let mut client = shared.pool.get().await.map_err(pool_err)?;
    let lock_key = format!("waymark-migrate:{}", shared.schema);
    client.execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock_key]).await.map_err(pg_err)?;
    let result = async {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                   sha256 TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
                schema = quote_ident(&shared.schema)
            ))
            .await
            .map_err(pg_err)?;
        let applied_max: Option<i64> =
            client.query_one("SELECT MAX(version) FROM schema_migrations", &[]).await.map_err(pg_err)?.get(0);
        crate::migrate::refuse_newer(applied_max, migrations, &format!("the schema {}", shared.schema))?;
        for m in migrations {
            let row = client
                .query_opt("SELECT sha256 FROM schema_migrations WHERE version = $1", &[&m.version])
                .await
                .map_err(pg_err)?;
            match row.map(|r| r.get::<_, String>(0)) {
                Some(sum) if sum == m.checksum() => continue,
                Some(_) => {
                    return Err(StoreError::Schema(format!(
                        "migration {} ({}) was changed after it was applied; restore the original file",
                        m.version, m.name
                    )));
                }
                None => {
                    // Rewriting tables of a large store takes minutes: say so before, and how long it took after.
                    tracing::info!(version = m.version, name = m.name, schema = %shared.schema, "applying schema migration; on a large store this can take minutes");
                    let started = std::time::Instant::now();
                    let t = client.transaction().await.map_err(pg_err)?;
                    t.batch_execute(m.sql).await.map_err(|e| {
                        StoreError::Schema(format!("migration {} ({}) failed: {}", m.version, m.name, pg_err(e)))
                    })?;
                    t.execute(
                        "INSERT INTO schema_migrations (version, name, sha256, applied_ms) VALUES ($1, $2, $3, $4)",
                        &[&m.version, &m.name, &m.checksum(), &unix_ms()],
                    )
                    .await
                    .map_err(pg_err)?;
                    t.commit().await.map_err(pg_err)?;
                    tracing::info!(version = m.version, name = m.name, schema = %shared.schema, seconds = started.elapsed().as_secs_f64(), "applied schema migration");
                }
            }
        }
        Ok(())
    }
    .await;
    let _ = client.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock_key]).await;
    result
}

async fn writer_loop(shared: Arc<Shared>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<IngestJob>>>, max_jobs: usize) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(j) => jobs.push(j),
                None => return,
            }
            while jobs.len() < max_jobs {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        let started = Instant::now();
        let n = jobs.len();
        run_group(&shared, jobs).await;
        metrics::histogram!("waymark_store_commit_seconds", "backend" => "postgres")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("waymark_store_commit_jobs", "backend" => "postgres").record(n as f64);
    }
}

/// Why a group did not commit.
enum GroupFail {
    /// One job failed on its own; the others are retried without it.
    Job(usize, StoreError),
    /// The group as a whole failed.
    All(StoreError),
    /// Event partitions are missing for these days; create them and retry.
    Partitions(BTreeSet<i64>),
}

/// Commit a group of jobs in one transaction, retrying without a job that fails on its own and after
/// transient conflicts; then answer every job.
async fn run_group(shared: &Shared, mut jobs: Vec<IngestJob>) {
    let mut attempts = 0;
    loop {
        if jobs.is_empty() {
            return;
        }
        match try_group(shared, &jobs).await {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
                return;
            }
            Err(GroupFail::Job(i, e)) => {
                let job = jobs.remove(i);
                let _ = job.reply.send(Err(e));
            }
            Err(GroupFail::Partitions(days)) if attempts < 5 => {
                attempts += 1;
                if let Err(e) = partitions::ensure(shared, days).await {
                    for job in jobs {
                        let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                    }
                    return;
                }
            }
            Err(GroupFail::All(e)) if is_retryable(&e) && attempts < 5 => {
                attempts += 1;
                tracing::debug!(error = %e, attempts, "retrying a group after a transient conflict");
                tokio::time::sleep(Duration::from_millis(5 * attempts)).await;
            }
            Err(GroupFail::All(e)) => {
                if !matches!(e, StoreError::Unavailable(_)) {
                    tracing::error!(error = %e, "PostgreSQL group commit failed");
                }
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(match &e {
                        StoreError::Unavailable(_) => StoreError::Unavailable(msg.clone()),
                        _ => StoreError::Internal(msg.clone()),
                    }));
                }
                return;
            }
            Err(GroupFail::Partitions(_)) => {
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Internal("event partitions could not be created".into())));
                }
                return;
            }
        }
    }
}

async fn try_group(shared: &Shared, jobs: &[IngestJob]) -> Result<Vec<Vec<ItemResult>>, GroupFail> {
    let mut client = shared.pool.get().await.map_err(|e| GroupFail::All(pool_err(e)))?;
    let t = client.transaction().await.map_err(|e| GroupFail::All(pg_err(e)))?;
    let mut g = tx::PgTx::new(&t, shared);
    // Lock every customer the group touches, in key order, and read their states.
    g.prefetch(jobs.iter().map(|j| &j.batch)).await.map_err(GroupFail::All)?;
    let mut out = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        match apply_batch(&mut g, &job.batch).await {
            Ok(results) => out.push(results),
            Err(e) => return Err(classify(&g, e, Some(i))),
        }
    }
    if let Err(e) = g.finish(&out, jobs.iter().map(|j| j.batch.org)).await {
        return Err(classify(&g, e, None));
    }
    drop(g);
    t.commit().await.map_err(|e| GroupFail::All(pg_err(e)))?;
    Ok(out)
}

fn classify(g: &tx::PgTx<'_>, e: StoreError, job: Option<usize>) -> GroupFail {
    if !g.missing_days.is_empty() {
        return GroupFail::Partitions(g.missing_days.clone());
    }
    match (job, &e) {
        (_, StoreError::Unavailable(_)) | (None, _) => GroupFail::All(e),
        (Some(i), _) => GroupFail::Job(i, e),
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ingest(&self, batch: IngestBatch) -> StoreResult<Vec<ItemResult>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(IngestJob { batch, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store's writers have stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the store's writers have stopped".into()))?
    }

    async fn get_session(&self, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        read::session(&self.client().await?, org, &id.to_string()).await
    }

    async fn session_events(&self, org: OrgId, session: SessionId, page: &EventPage) -> StoreResult<Vec<Event>> {
        read::session_events(&self.client().await?, org, session, page).await
    }

    async fn contact_sessions(
        &self,
        org: OrgId,
        contact: ContactId,
        page: &SessionPage,
    ) -> StoreResult<Vec<SessionRecord>> {
        read::contact_sessions(&self.client().await?, org, contact, page).await
    }

    async fn customer_sessions(
        &self,
        org: OrgId,
        cookie: &CookieId,
        page: &SessionPage,
    ) -> StoreResult<Vec<SessionRecord>> {
        read::customer_sessions(&self.client().await?, org, cookie, page).await
    }

    async fn get_customer(&self, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerRecord>> {
        read::customer(&self.client().await?, org, cookie).await
    }

    async fn get_contact(&self, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>> {
        read::contact(&self.client().await?, org, id).await
    }

    async fn search_contacts(&self, org: OrgId, query: &ContactQuery, limit: usize) -> StoreResult<Vec<Contact>> {
        read::search_contacts(&self.client().await?, org, query, limit).await
    }

    async fn conversation_session(&self, org: OrgId, conversation_id: &str) -> StoreResult<Option<SessionId>> {
        read::conversation_session(&self.client().await?, org, conversation_id).await
    }

    async fn put_record(&self, record: &Record, expect_version: Option<i64>, unique_name: bool) -> StoreResult<()> {
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(pg_err)?;
        tx::put_record(&t, record, expect_version, unique_name).await?;
        t.commit().await.map_err(pg_err)
    }

    async fn get_record(&self, kind: RecordKind, id: &str) -> StoreResult<Option<Record>> {
        read::record(&self.client().await?, kind, id).await
    }

    async fn find_record(&self, kind: RecordKind, org: Option<OrgId>, name: &str) -> StoreResult<Option<Record>> {
        read::record_by_name(&self.client().await?, kind, org, name).await
    }

    async fn list_records(&self, kind: RecordKind, org: Option<OrgId>) -> StoreResult<Vec<Record>> {
        read::records(&self.client().await?, kind, org).await
    }

    async fn delete_record(&self, kind: RecordKind, org: Option<OrgId>, id: &str) -> StoreResult<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM records WHERE kind = $1 AND org_id = $2 AND id = $3",
                &[&kind.as_str(), &org.map(|o| o.to_string()).unwrap_or_default(), &id],
            )
            .await
            .map_err(pg_err)?;
        Ok(n > 0)
    }

    async fn purge_before(&self, cutoff: Timestamp) -> StoreResult<PurgeReport> {
        // Keep partitions ahead of time created, whichever node runs retention.
        let today = partitions::day_of(Timestamp::from_unix_millis(unix_ms()));
        partitions::ensure(&self.shared, (today..=today + 2).collect()).await?;
        partitions::purge_before(&self.shared, cutoff).await
    }

    async fn close_idle_sessions(&self, idle_before: Timestamp, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        tx::close_idle(&self.shared, idle_before, limit).await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        read::stats(&self.client().await?).await
    }

    async fn job_lease(&self, job: &str) -> StoreResult<Option<JobLease>> {
        let client = self.client().await?;
        let key = format!("waymark-job:{}:{job}", self.shared.schema);
        let got: bool =
            client.query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key]).await.map_err(pg_err)?.get(0);
        if !got {
            return Ok(None);
        }
        // The lock belongs to this session: take the connection out of the pool and keep it in the lease.
        // Releasing the lease unlocks; dropping it closes the connection, which releases the lock too (also
        // if this node dies).
        let client = deadpool_postgres::Object::take(client);
        Ok(Some(JobLease::releasing(async move {
            if let Err(e) = client.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key]).await {
                tracing::debug!(error = %e, "releasing a job lease failed; closing its connection releases it");
            }
        })))
    }

    fn remote_changes(&self) -> Option<broadcast::Receiver<Arc<RemoteChange>>> {
        Some(self.shared.feed.subscribe())
    }

    fn watch_remote(&self, interest: crate::RemoteInterest) {
        *self.shared.interest.write() = Some(interest);
    }
}
