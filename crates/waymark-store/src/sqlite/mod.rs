//! The embedded store: SQLite in WAL mode.
//!
//! One **writer thread** owns the only write connection. Requests queue [`WriteJob`]s on a channel; the writer
//! drains whatever is queued (up to a limit), applies all of it in **one transaction** (group commit), commits,
//! and only then answers each job. A per-job savepoint keeps one failing job from failing its neighbours.
//! The writer keeps the customer states it wrote in a bounded cache, since it is the only writer.
//!
//! Reads use a small pool of read-only connections on blocking threads; WAL lets them run beside the writer.
//! A checkpoint thread copies the WAL into the database every 50 ms, so that commits never wait for a
//! checkpoint's fsyncs, and restarts the WAL once it is large, so that the WAL stays bounded under load.

mod customer_row;
mod read;
mod tx;
mod wal_vfs;

use crate::migrate::{Migration, SQLITE};
use crate::types::*;
use crate::{Record, RecordKind, Store, StoreError, StoreResult};
use async_trait::async_trait;
use futures_util::FutureExt;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::ids::{ContactId, OrgId, SessionId};
use waymark_domain::journey::CustomerState;
use waymark_domain::web_event::CookieId;

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=NORMAL`: survives a crash of Waymark; a power cut may lose the last commits.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is on disk before it is acknowledged.
    Full,
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub durability: Durability,
    /// Most jobs in one transaction.
    pub max_batch_jobs: usize,
    /// Read connections.
    pub readers: usize,
    /// Customer states kept in the writer's cache.
    pub cache_customers: usize,
    /// WAL pages after which the WAL starts over from its beginning ([`WAL_RESTART_FRAMES`]).
    pub wal_restart_frames: i64,
    /// The nice value the writer thread asks for ([`DEFAULT_WRITER_NICE`]; 0 leaves its priority alone).
    pub writer_nice: i32,
    /// How long a small group waits for more jobs before its commit ([`CommitDelay`]); zero never waits.
    pub commit_delay: Duration,
}

/// The writer thread's nice value by default. Every commit goes through that one thread, and while it waits for
/// a core behind the request threads it feeds, the whole store waits: in batches of 100 events it held a core
/// 80 % of the time at normal priority, and each group it missed left the next one larger and the other core
/// idle. At −10 it is scheduled ahead of them (batched ingest higher in five of six pairs, by −14 % to +27 %;
/// single events within noise, p99 ~15 % higher; BENCHMARKS.md, stop 21). Raising a priority needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it (e.g.
/// systemd's `LimitNICE=`); without either the writer runs at the process's priority and says so in the log.
pub const DEFAULT_WRITER_NICE: i32 = -10;

/// How long a small group waits by default for more jobs to share its commit ([`CommitDelay`]). Single-event
/// requests from 64 connections reached the writer in groups of ~5 jobs (`waymark_store_commit_jobs`), each
/// commit rewriting the tails of the shared b-trees and paying the commit's fixed work (locks, the WAL write,
/// the page cache walk) for a handful of events; waiting 200 µs they come ~22 to a commit. In eight pairs run
/// in turns against no wait: single events higher in six (19,316–27,514 against 19,879–25,099 req/s), the
/// writer's CPU per event 20.6–32.7 µs against 25.6–32.8, p99 lower in all (5.8–8.1 ms against 7.2–9.5;
/// BENCHMARKS.md, stop 23). 500 µs left a core idle 17 % of the time.
pub const DEFAULT_COMMIT_DELAY: Duration = Duration::from_micros(200);

/// Customer states the writer keeps in memory by default. A state with its open sessions takes ~5 KB, so this
/// bounds the cache near 250 MB: at 200,000 a 10-million-event run climbed to ~1 GB before the cache was full.
pub const DEFAULT_CACHE_CUSTOMERS: usize = 50_000;

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            durability: Durability::Normal,
            max_batch_jobs: 512,
            readers: 4,
            cache_customers: DEFAULT_CACHE_CUSTOMERS,
            wal_restart_frames: WAL_RESTART_FRAMES,
            writer_nice: DEFAULT_WRITER_NICE,
            commit_delay: DEFAULT_COMMIT_DELAY,
        }
    }
}

type CustomerKey = (OrgId, String);

/// The answer to an ingest job, with its batch handed back: the request's task frees the batch (events,
/// enrichments, strings its thread allocated) instead of the writer thread, which is the store's bottleneck
/// (5 % of the writer's time in batches of 100 went to those frees).
type IngestReply = oneshot::Sender<(StoreResult<Vec<ItemResult>>, IngestBatch)>;

/// A closure run on the writer thread inside its transaction.
type WriterWork = Box<dyn FnOnce(&Connection, &mut StateCache) -> StoreResult<JobValue> + Send>;

enum WriteJob {
    Ingest { batch: IngestBatch, reply: IngestReply },
    Exec { work: WriterWork, reply: oneshot::Sender<StoreResult<JobValue>> },
}

/// What an `Exec` job returns.
enum JobValue {
    Unit,
    Bool(bool),
    Purge(PurgeReport),
    Closed(Vec<SessionRecord>),
}

/// The embedded SQLite store.
pub struct SqliteStore {
    tx: mpsc::Sender<WriteJob>,
    readers: Arc<ReaderPool>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Dropping it stops the checkpoint thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// Read connections, and a bound on reads running at once: the machine's cores gain nothing from more, and
/// with more the pool would open connections beyond the ones it keeps, each with a cold page cache and its
/// statements to prepare again.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    running: tokio::sync::Semaphore,
}

impl ReaderPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = match self.idle.lock().pop() {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < 16 {
            idle.push(conn);
        }
        out
    }
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(e.to_string())
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Bytes of the database file a reader maps into memory instead of copying each page with `pread` (SQLite
/// caps it at its `SQLITE_MAX_MMAP_SIZE`, 2 GiB by default).
const READ_MMAP_BYTES: i64 = 1 << 40;

/// A read-only connection. It maps the file into memory, and keeps its query plans whatever values are bound
/// (the query planner stability guarantee): with the bundled SQLite's STAT4, binding a new cursor value would
/// otherwise make every execution parse and plan its statement again.
fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::Unavailable(format!("open {} for reading: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
    conn.pragma_update(None, "query_only", true).map_err(sql_err)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(sql_err)?;
    conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES).map_err(sql_err)?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating if needed) the database file and migrate it. Starts the writer thread.
    pub fn open(config: SqliteConfig) -> StoreResult<SqliteStore> {
        if let Some(dir) = config.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create data directory {}: {e}", dir.display())))?;
        }
        // The writer's connection writes each commit's WAL frames with one write (see `wal_vfs`).
        wal_vfs::register().map_err(|e| StoreError::Internal(format!("register the WAL VFS: {e}")))?;
        let conn = Connection::open_with_flags_and_vfs(&config.path, OpenFlags::default(), wal_vfs::VFS_NAME)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", config.path.display())))?;
        // auto_vacuum must be set before the first table exists.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(sql_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql_err)?;
        conn.pragma_update(
            None,
            "synchronous",
            match config.durability {
                Durability::Normal => "NORMAL",
                Durability::Full => "FULL",
            },
        )
        .map_err(sql_err)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(sql_err)?;
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(sql_err)?;
        // The writer's page cache follows the store's size ([`WriterCache`]); this is the size it starts with.
        conn.pragma_update(None, "cache_size", -WriterCache::SMALL_STORE_KIB).map_err(sql_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
        migrate(&conn, SQLITE)?;
        // Checkpoints (copying the WAL into the database, with fsyncs) run on their own thread, not inside the
        // writer's commits; the WAL file is truncated back to this size after it was reset.
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(sql_err)?;
        // The WAL restarts a little after `wal_restart_frames` pages (SQLite's default 4 KiB), once the checkpoint
        // has caught up. The limit leaves room for that lag so that the file is not cut back after every restart
        // (the cut cost the next commit an ftruncate and a slower fsync, and the file then grew again).
        let restart_frames = config.wal_restart_frames.max(2 * RESTART_LAG_FRAMES);
        conn.pragma_update(None, "journal_size_limit", restart_frames * 4096 * 3 / 2).map_err(sql_err)?;
        let restart_wal = Arc::new(AtomicBool::new(false));
        let checkpointer = spawn_checkpointer(&config.path, restart_frames, restart_wal.clone())?;

        let readers = Arc::new(ReaderPool {
            path: config.path.clone(),
            idle: Mutex::new(Vec::new()),
            running: tokio::sync::Semaphore::new(config.readers.max(1)),
        });
        for _ in 0..config.readers {
            let r = open_reader(&config.path)?;
            readers.idle.lock().push(r);
        }
        let (tx, rx) = mpsc::channel::<WriteJob>(8192);
        let max_jobs = config.max_batch_jobs.max(1);
        let cache_cap = config.cache_customers.max(16);
        let nice = config.writer_nice;
        let delay = CommitDelay::new(config.commit_delay);
        let writer = std::thread::Builder::new()
            .name("wm-sqlite-writer".into())
            .spawn(move || {
                ask_for_priority(nice);
                writer_loop(conn, rx, max_jobs, cache_cap, delay, &restart_wal)
            })
            .map_err(|e| StoreError::Internal(format!("spawn writer: {e}")))?;
        Ok(SqliteStore { tx, readers, writer: Mutex::new(Some(writer)), _checkpointer: checkpointer })
    }

    async fn exec(
        &self,
        work: impl FnOnce(&Connection, &mut StateCache) -> StoreResult<JobValue> + Send + 'static,
    ) -> StoreResult<JobValue> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriteJob::Exec { work: Box::new(work), reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _permit =
            self.readers.running.acquire().await.map_err(|e| StoreError::Internal(format!("read permits: {e}")))?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Internal(format!("read task: {e}")))?
    }

    /// Stop accepting writes, finish the queued ones and join the writer thread.
    pub fn close(&self) {
        let handle = self.writer.lock().take();
        // Dropping our sender is not enough while clones exist; the writer ends when every sender is gone.
        drop(handle);
    }
}

/// How often the checkpoint thread copies the WAL into the database. Each pass also syncs what it copied, so the
/// shorter the pass interval, the less a WAL restart (which stops the writer) has left to copy and sync: at
/// 200 ms a restart took 50-60 ms under batched ingest, at 50 ms 35-45 ms (`waymark_store_wal_restart_seconds`),
/// before the thread synced the database file itself. Since then 200 ms and 50 ms gave the same throughput, with
/// p99 56-58 ms against 45-53 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// WAL frames (pages) after which, by default, the checkpoint thread restarts the WAL from its beginning (128 MiB at 4 KiB
/// pages; the file is kept at that size, `journal_size_limit`). Each restart stops the writer for tens of
/// milliseconds whatever the size: at 64 MiB batched ingest restarted 2-4 times a second and lost ~10 % of the
/// writer's time to it; at 128 MiB half as often (batches of 100: 97-116k -> 118-120k events/s, same hour).
const WAL_RESTART_FRAMES: i64 = 32 * 1024;

/// The most WAL frames a passive pass may have left uncopied for the writer to restart the WAL: the restart
/// copies and syncs them while the writer waits (1,024 pages: ~2 ms of copying and ~5 ms of fsync here).
const RESTART_LAG_FRAMES: i64 = 1024;

/// Start the thread that checkpoints the WAL until the returned sender is dropped.
///
/// A PASSIVE checkpoint never blocks the writer or readers, but under a continuous stream of commits it never
/// catches up with the end of the WAL, so the WAL would never start over: it would grow without bound, and every
/// commit would extend the file (the kernel zeroes each new page) and lengthen the WAL index searched by reads.
/// So once the WAL holds `restart_frames` and the passive pass has copied all but [`RESTART_LAG_FRAMES`] of it
/// (passes run back to back until then), this thread sets
/// `restart_wal`; the writer then runs a RESTART checkpoint itself between two groups (it holds no lock then,
/// so nothing waits in a busy loop), which copies the few remaining frames and makes the next commit write
/// from the start of the file again.
fn spawn_checkpointer(
    path: &Path,
    restart_frames: i64,
    restart_wal: Arc<AtomicBool>,
) -> StoreResult<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {} for checkpoints: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
    // SQLite syncs the database file only after a pass that reached the end of the WAL, which a passive pass
    // under a steady stream of commits never does: the pages it copies stay dirty in the kernel until the WAL
    // restart, whose fsync then wrote them all while the writer waited (8,192 dirty pages: ~30 ms here). So
    // this thread syncs the file itself after each pass; the restart is left with only the last pass's lag.
    let db_file = std::fs::File::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {} for checkpoints: {e}", path.display())))?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("wm-sqlite-ckpt".into())
        .spawn(move || {
            let mut wait = CHECKPOINT_EVERY;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                wait = CHECKPOINT_EVERY;
                match wal_checkpoint(&conn, "PASSIVE") {
                    Ok((log, copied)) => {
                        if copied > 0
                            && let Err(e) = db_file.sync_data()
                        {
                            tracing::warn!(error = %e, "sqlite database file sync failed; retrying");
                        }
                        if log >= restart_frames {
                            if log - copied <= RESTART_LAG_FRAMES {
                                restart_wal.store(true, Ordering::Relaxed);
                            } else {
                                // Catch up at once: the restart waits for whatever is left to copy.
                                wait = Duration::ZERO;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed; retrying"),
                }
            }
            // A last full copy so that a clean shutdown leaves a small WAL.
            let _ = wal_checkpoint(&conn, "PASSIVE");
        })
        .map_err(|e| StoreError::Internal(format!("spawn checkpointer: {e}")))?;
    Ok(stop)
}

/// Run `PRAGMA wal_checkpoint(mode)`; returns the WAL's frames and how many of them are copied.
fn wal_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
}

fn migrate(conn: &Connection, migrations: &[Migration]) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
    )
    .map_err(sql_err)?;
    let applied_max: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| r.get(0)).map_err(sql_err)?;
    let path = conn.path().unwrap_or("").to_string();
    crate::migrate::refuse_newer(applied_max, migrations, &format!("the store at {path}"))?;
    for m in migrations {
        let existing: Option<String> = conn
            .query_row("SELECT sha256 FROM schema_migrations WHERE version = ?1", [m.version], |r| r.get(0))
            .map(Some)
            .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })
            .map_err(sql_err)?;
        match existing {
            Some(sum) if sum == m.checksum() => continue,
            Some(_) => {
                return Err(StoreError::Schema(format!(
                    "migration {} ({}) was changed after it was applied; restore the original file or start from a fresh data directory",
                    m.version, m.name
                )));
            }
            None => {
                // Rewriting tables of a large store takes minutes: say so before, and how long it took after.
                tracing::info!(
                    version = m.version,
                    name = m.name,
                    "applying schema migration; on a large store this can take minutes"
                );
                let started = std::time::Instant::now();
                let now = unix_ms();
                conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err)?;
                let applied = conn.execute_batch(m.sql).and_then(|_| {
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, sha256, applied_ms) VALUES (?1, ?2, ?3, ?4)",
                        params![m.version, m.name, m.checksum(), now],
                    )
                });
                match applied {
                    Ok(_) => conn.execute_batch("COMMIT").map_err(sql_err)?,
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        return Err(StoreError::Schema(format!("migration {} ({}) failed: {e}", m.version, m.name)));
                    }
                }
                tracing::info!(
                    version = m.version,
                    name = m.name,
                    seconds = started.elapsed().as_secs_f64(),
                    "applied schema migration"
                );
            }
        }
    }
    Ok(())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Bounded cache of customer states owned by the writer thread.
pub(crate) struct StateCache {
    map: HashMap<CustomerKey, CustomerState>,
    cap: usize,
}

impl StateCache {
    /// Move a state out (the journey path puts it back after the commit, changed or not).
    fn take(&mut self, key: &CustomerKey) -> Option<CustomerState> {
        self.map.remove(key)
    }

    fn put(&mut self, key: CustomerKey, state: CustomerState) {
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            // Drop an arbitrary tenth; the states are on disk and reload on demand.
            let drop: Vec<CustomerKey> = self.map.keys().take(self.cap / 10 + 1).cloned().collect();
            for k in drop {
                self.map.remove(&k);
            }
        }
        self.map.insert(key, state);
    }

    pub(crate) fn remove(&mut self, key: &CustomerKey) {
        self.map.remove(key);
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&CustomerKey, &CustomerState) -> bool) {
        self.map.retain(|k, s| keep(k, s));
    }
}

/// Set the calling thread's nice value to `nice` (Linux: a thread's own priority, by its thread id). Refused
/// (no privilege to raise it) is logged, not an error: the store works the same, only slower under load.
fn ask_for_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let (tid, result) = unsafe {
            let tid = libc::gettid();
            (tid, libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice))
        };
        if result == 0 {
            tracing::debug!(tid, nice, "sqlite writer priority set");
        } else {
            let e = std::io::Error::last_os_error();
            tracing::info!(
                nice,
                error = %e,
                "the sqlite writer runs at normal priority: raising it needs CAP_SYS_NICE or RLIMIT_NICE \
                 (systemd: LimitNICE=); set store_writer_nice = 0 to not ask"
            );
        }
    }
}

/// The size of the writer's SQLite page cache, which follows the size of the store.
///
/// SQLite drops the cached pages past the end of the database at the end of every transaction, and while the
/// database is under 1 GiB that walks the cache's whole hash table: a b-tree split that reorders its new pages
/// parks one for a moment under the page number of the lock byte (page 262,145 at 4 KiB pages;
/// `balance_nonroot` in sqlite3.c), the cache keeps that as its highest page number, and the truncation then
/// scans every slot (seen with gdb on `pcache1Truncate`: iMaxKey 262,145 at each commit). The walk grows with
/// the cache: with 16 MiB it was 5-9 % of the writer's CPU for single events (a commit every ~20 events). So a
/// store under 1 GiB, whose file the kernel keeps cached anyway, gets a small cache
/// ([`WriterCache::SMALL_STORE_KIB`]); past 1 GiB the walk stops and a larger store gets a larger cache
/// ([`WriterCache::LARGE_STORE_KIB`]) for its b-trees' upper pages. The size is checked every
/// [`WriterCache::CHECK_EVERY`] groups.
#[derive(Debug, Default)]
struct WriterCache {
    kib: i64,
    groups: u32,
}

impl WriterCache {
    /// KiB of page cache while the store is under 1 GiB. Single events, writer CPU per event in turns against
    /// 16 MiB: 2 MiB 16.1-20.6 µs, 4 MiB 16.5-21.8 µs, 16 MiB 17.2-25.3 µs (BENCHMARKS.md, stop 24); 4 MiB
    /// keeps more of a larger store's b-tree pages.
    const SMALL_STORE_KIB: i64 = 4096;
    /// KiB of page cache from 1 GiB on.
    const LARGE_STORE_KIB: i64 = 65536;
    /// Groups between two looks at the store's size.
    const CHECK_EVERY: u32 = 512;

    /// The cache for a store of `pages` pages of `page_size` bytes: small while SQLite's truncation walks the
    /// whole cache at every commit (the store's pages end before the lock-byte page), large past that.
    fn kib_for(pages: i64, page_size: i64) -> i64 {
        let lock_byte_page = (1i64 << 30) / page_size.max(512) + 1;
        if pages < lock_byte_page { Self::SMALL_STORE_KIB } else { Self::LARGE_STORE_KIB }
    }

    fn after_group(&mut self, conn: &Connection) {
        self.groups += 1;
        if self.groups >= Self::CHECK_EVERY {
            self.groups = 0;
            self.adjust(conn);
        }
    }

    /// Look at the store's size and resize the cache if its class changed.
    fn adjust(&mut self, conn: &Connection) {
        let size = |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0));
        let (Ok(pages), Ok(page_size)) = (size("page_count"), size("page_size")) else { return };
        let kib = Self::kib_for(pages, page_size);
        if kib != self.kib && conn.pragma_update(None, "cache_size", -kib).is_ok() {
            tracing::debug!(pages, kib, "sqlite writer page cache resized");
            metrics::gauge!("waymark_store_writer_cache_bytes").set((kib * 1024) as f64);
            self.kib = kib;
        }
    }
}

/// Group commit's wait for company, after PostgreSQL's `commit_delay` and `commit_siblings`: a group of fewer
/// than [`CommitDelay::BELOW_ITEMS`] events waits `delay` once for more jobs before it commits, but only when
/// the group before it held more than one job, i.e. while several requests are in flight. A lone request on a
/// quiet store commits at once; batches of 100 events never wait. While the writer sleeps, the request threads
/// get the core it held and hand over the requests they were parsing, so the commit's fixed work and the
/// shared pages it rewrites are paid once for all of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitDelay {
    delay: Duration,
    last_jobs: usize,
}

impl CommitDelay {
    /// Groups with at least this many events commit without waiting.
    pub(crate) const BELOW_ITEMS: usize = 32;

    pub(crate) fn new(delay: Duration) -> CommitDelay {
        CommitDelay { delay, last_jobs: 0 }
    }

    /// Whether a group holding `items` events waits before its commit.
    fn waits(&self, items: usize) -> bool {
        !self.delay.is_zero() && self.last_jobs > 1 && items < Self::BELOW_ITEMS
    }

    /// Remember the group that commits now.
    fn committed(&mut self, jobs: usize) {
        self.last_jobs = jobs;
    }
}

impl WriteJob {
    /// Journey items (events, pings, conversation updates) the job holds; other work counts as one.
    fn items(&self) -> usize {
        match self {
            WriteJob::Ingest { batch, .. } => batch.items.len(),
            WriteJob::Exec { .. } => 1,
        }
    }
}

/// Move queued jobs into `jobs` until it holds `max_jobs` or the queue is empty.
fn take_queued(rx: &mut mpsc::Receiver<WriteJob>, jobs: &mut Vec<WriteJob>, max_jobs: usize) {
    while jobs.len() < max_jobs {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<WriteJob>,
    max_jobs: usize,
    cache_cap: usize,
    mut delay: CommitDelay,
    restart_wal: &AtomicBool,
) {
    let mut cache = StateCache { map: HashMap::new(), cap: cache_cap };
    let mut page_cache = WriterCache::default();
    page_cache.adjust(&conn);
    let mut jobs: Vec<WriteJob> = Vec::with_capacity(max_jobs);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        take_queued(&mut rx, &mut jobs, max_jobs);
        if jobs.len() < max_jobs && delay.waits(jobs.iter().map(WriteJob::items).sum()) {
            std::thread::sleep(delay.delay);
            take_queued(&mut rx, &mut jobs, max_jobs);
        }
        delay.committed(jobs.len());
        let started = Instant::now();
        let n = jobs.len();
        run_group(&conn, &mut cache, std::mem::take(&mut jobs));
        metrics::histogram!("waymark_store_commit_seconds", "backend" => "sqlite")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("waymark_store_commit_jobs", "backend" => "sqlite").record(n as f64);
        page_cache.after_group(&conn);
        if restart_wal.swap(false, Ordering::Relaxed) {
            let started = Instant::now();
            if let Err(e) = wal_checkpoint(&conn, "RESTART") {
                tracing::warn!(error = %e, "sqlite WAL restart failed; the checkpoint thread asks again");
            }
            metrics::histogram!("waymark_store_wal_restart_seconds").record(started.elapsed().as_secs_f64());
        }
    }
    tracing::debug!("sqlite writer stopped");
}

enum Pending {
    Ingest(IngestReply, StoreResult<Vec<ItemResult>>, IngestBatch),
    Exec(oneshot::Sender<StoreResult<JobValue>>, StoreResult<JobValue>),
}

/// Apply a group of jobs in one transaction, then answer them.
fn run_group(conn: &Connection, cache: &mut StateCache, jobs: Vec<WriteJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = sql_err(e);
        for job in jobs {
            fail(job, StoreError::Unavailable(err.to_string()));
        }
        return;
    }
    let mut pending = Vec::with_capacity(jobs.len());
    // A group of ingest jobs only (the common case) runs without a savepoint: a savepoint copies every page
    // the group changes into a statement journal. If it fails, the whole transaction is rolled back instead.
    let whole_tx = jobs.iter().all(|j| matches!(j, WriteJob::Ingest { .. }));
    // Customer states written in this transaction; they enter the cache only after the commit.
    let mut written: HashMap<CustomerKey, CustomerState> = HashMap::new();
    // Consecutive ingest jobs run as one unit under one savepoint (store errors are rare, and a savepoint per
    // job journals every shared page once per job); when one fails the unit is undone and replayed job by job.
    let mut run: Vec<(IngestBatch, IngestReply)> = Vec::new();
    for job in jobs {
        match job {
            WriteJob::Ingest { batch, reply } => run.push((batch, reply)),
            WriteJob::Exec { work, reply } => {
                apply_ingest_run(conn, cache, &mut written, std::mem::take(&mut run), &mut pending, false);
                let _ = conn.execute_batch("SAVEPOINT job");
                let result = work(conn, cache);
                match &result {
                    Ok(_) => {
                        let _ = conn.execute_batch("RELEASE job");
                    }
                    Err(_) => {
                        let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                    }
                }
                pending.push(Pending::Exec(reply, result));
            }
        }
    }
    apply_ingest_run(conn, cache, &mut written, run, &mut pending, whole_tx);
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for (k, v) in written {
                cache.put(k, v);
            }
            for p in pending {
                match p {
                    Pending::Ingest(reply, r, batch) => {
                        let _ = reply.send((r, batch));
                    }
                    Pending::Exec(reply, r) => {
                        let _ = reply.send(r);
                    }
                }
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            for k in written.keys() {
                cache.remove(k);
            }
            let msg = format!("commit failed: {e}");
            tracing::error!(error = %msg, "sqlite group commit failed");
            for p in pending {
                match p {
                    Pending::Ingest(reply, _, batch) => {
                        let _ = reply.send((Err(StoreError::Unavailable(msg.clone())), batch));
                    }
                    Pending::Exec(reply, _) => {
                        let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
                    }
                }
            }
        }
    }
}

/// Apply one ingest batch through `t` (its session and customer rows stay buffered in `t`).
fn apply_batch(t: &mut tx::SqliteTx<'_>, batch: &IngestBatch) -> StoreResult<Vec<ItemResult>> {
    match crate::ingest::apply_batch(t, batch).now_or_never() {
        Some(r) => r,
        None => Err(StoreError::Internal("sqlite journey step did not complete synchronously".into())),
    }
}

/// Apply jobs as one unit through one [`tx::SqliteTx`], writing the buffered rows at the end.
fn apply_unit<'b>(
    conn: &Connection,
    cache: &mut StateCache,
    written: &mut HashMap<CustomerKey, CustomerState>,
    states: &mut HashMap<CustomerKey, CustomerState>,
    batches: impl Iterator<Item = &'b IngestBatch>,
) -> StoreResult<Vec<Vec<ItemResult>>> {
    let mut t = tx::SqliteTx::new(conn, cache, written, states);
    let mut results = Vec::new();
    for batch in batches {
        results.push(apply_batch(&mut t, batch)?);
    }
    t.flush()?;
    Ok(results)
}

/// Apply consecutive ingest jobs as one unit; on a failure, undo them and replay each under its own
/// savepoint. The unit runs under a savepoint unless it is the whole transaction (`whole_tx`), which is then
/// rolled back and begun again to undo it.
fn apply_ingest_run(
    conn: &Connection,
    cache: &mut StateCache,
    written: &mut HashMap<CustomerKey, CustomerState>,
    run: Vec<(IngestBatch, IngestReply)>,
    pending: &mut Vec<Pending>,
    whole_tx: bool,
) {
    if run.is_empty() {
        return;
    }
    let opened = whole_tx || conn.execute_batch("SAVEPOINT run").is_ok();
    if opened {
        let mut states = HashMap::new();
        if let Ok(results) = apply_unit(conn, cache, written, &mut states, run.iter().map(|(b, _)| b))
            && (whole_tx || conn.execute_batch("RELEASE run").is_ok())
        {
            written.extend(states);
            for ((batch, reply), r) in run.into_iter().zip(results) {
                pending.push(Pending::Ingest(reply, Ok(r), batch));
            }
            return;
        }
        let undone = if whole_tx {
            conn.execute_batch("ROLLBACK").and_then(|_| conn.execute_batch("BEGIN IMMEDIATE"))
        } else {
            conn.execute_batch("ROLLBACK TO run; RELEASE run")
        };
        if let Err(e) = undone {
            let msg = format!("cannot undo a failed group: {e}");
            for (batch, reply) in run {
                let _ = reply.send((Err(StoreError::Unavailable(msg.clone())), batch));
            }
            return;
        }
    }
    for (batch, reply) in run {
        let _ = conn.execute_batch("SAVEPOINT job");
        let mut states = HashMap::new();
        let result = apply_unit(conn, cache, written, &mut states, std::iter::once(&batch)).map(|mut r| r.remove(0));
        match &result {
            Ok(_) => {
                let _ = conn.execute_batch("RELEASE job");
                written.extend(states);
            }
            Err(_) => {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
        pending.push(Pending::Ingest(reply, result, batch));
    }
}

fn fail(job: WriteJob, e: StoreError) {
    match job {
        WriteJob::Ingest { reply, batch } => {
            let _ = reply.send((Err(e), batch));
        }
        WriteJob::Exec { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn web_fields_form(&self) -> WebFieldsForm {
        WebFieldsForm::Packed
    }

    async fn ingest(&self, batch: IngestBatch) -> StoreResult<Vec<ItemResult>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriteJob::Ingest { batch, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        let (result, batch) = rx.await.map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        // Freed here, on the request's thread, not on the writer's.
        drop(batch);
        result
    }

    async fn get_session(&self, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        self.read(move |c| read::session(c, org, id)).await
    }

    async fn session_events(&self, org: OrgId, session: SessionId, page: &EventPage) -> StoreResult<Vec<Event>> {
        let page = page.clone();
        self.read(move |c| read::session_events(c, org, session, &page)).await
    }

    async fn contact_sessions(
        &self,
        org: OrgId,
        contact: ContactId,
        page: &SessionPage,
    ) -> StoreResult<Vec<SessionRecord>> {
        let page = page.clone();
        self.read(move |c| read::contact_sessions(c, org, contact, &page)).await
    }

    async fn customer_sessions(
        &self,
        org: OrgId,
        cookie: &CookieId,
        page: &SessionPage,
    ) -> StoreResult<Vec<SessionRecord>> {
        let page = page.clone();
        let cookie = cookie.clone();
        self.read(move |c| read::customer_sessions(c, org, &cookie, &page)).await
    }

    async fn get_customer(&self, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerRecord>> {
        let cookie = cookie.clone();
        self.read(move |c| read::customer(c, org, &cookie)).await
    }

    async fn get_contact(&self, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>> {
        self.read(move |c| read::contact(c, org, id)).await
    }

    async fn search_contacts(&self, org: OrgId, query: &ContactQuery, limit: usize) -> StoreResult<Vec<Contact>> {
        let q = query.clone();
        self.read(move |c| read::search_contacts(c, org, &q, limit)).await
    }

    async fn conversation_session(&self, org: OrgId, conversation_id: &str) -> StoreResult<Option<SessionId>> {
        let id = conversation_id.to_string();
        self.read(move |c| read::conversation_session(c, org, &id)).await
    }

    async fn put_record(&self, record: &Record, expect_version: Option<i64>, unique_name: bool) -> StoreResult<()> {
        let record = record.clone();
        self.exec(move |c, _| tx::put_record(c, &record, expect_version, unique_name).map(|_| JobValue::Unit))
            .await
            .map(|_| ())
    }

    async fn get_record(&self, kind: RecordKind, id: &str) -> StoreResult<Option<Record>> {
        let id = id.to_string();
        self.read(move |c| read::record(c, kind, &id)).await
    }

    async fn find_record(&self, kind: RecordKind, org: Option<OrgId>, name: &str) -> StoreResult<Option<Record>> {
        let name = name.to_string();
        self.read(move |c| read::record_by_name(c, kind, org, &name)).await
    }

    async fn list_records(&self, kind: RecordKind, org: Option<OrgId>) -> StoreResult<Vec<Record>> {
        self.read(move |c| read::records(c, kind, org)).await
    }

    async fn delete_record(&self, kind: RecordKind, org: Option<OrgId>, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        match self.exec(move |c, _| tx::delete_record(c, kind, org, &id).map(JobValue::Bool)).await? {
            JobValue::Bool(b) => Ok(b),
            _ => Err(StoreError::Internal("unexpected job value".into())),
        }
    }

    async fn purge_before(&self, cutoff: Timestamp) -> StoreResult<PurgeReport> {
        match self.exec(move |c, cache| tx::purge_before(c, cache, cutoff).map(JobValue::Purge)).await? {
            JobValue::Purge(r) => Ok(r),
            _ => Err(StoreError::Internal("unexpected job value".into())),
        }
    }

    async fn close_idle_sessions(&self, idle_before: Timestamp, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        match self.exec(move |c, cache| tx::close_idle(c, cache, idle_before, limit).map(JobValue::Closed)).await? {
            JobValue::Closed(r) => Ok(r),
            _ => Err(StoreError::Internal("unexpected job value".into())),
        }
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(read::stats).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use waymark_domain::deployment::Deployment;
    use waymark_domain::ids::DeploymentId;
    use waymark_domain::limits::InputLimits;
    use waymark_domain::web_event::{WebEventRequest, parse_web_event};

    fn web(org: OrgId, cookie: &str, at: Timestamp) -> IngestItem {
        web_with_id(org, cookie, at, None)
    }

    #[test]
    fn the_writer_cache_is_small_until_the_store_passes_the_lock_byte_page() {
        // 1 GiB at 4 KiB pages is 262,144 pages; the lock-byte page is the next one.
        assert_eq!(WriterCache::kib_for(1, 4096), WriterCache::SMALL_STORE_KIB);
        assert_eq!(WriterCache::kib_for(262_144, 4096), WriterCache::SMALL_STORE_KIB);
        assert_eq!(WriterCache::kib_for(262_145, 4096), WriterCache::LARGE_STORE_KIB);
        assert_eq!(WriterCache::kib_for(3_000_000, 4096), WriterCache::LARGE_STORE_KIB);
        // Other page sizes: the lock byte is always at 1 GiB.
        assert_eq!(WriterCache::kib_for(131_072, 8192), WriterCache::SMALL_STORE_KIB);
        assert_eq!(WriterCache::kib_for(131_073, 8192), WriterCache::LARGE_STORE_KIB);
    }

    #[tokio::test]
    async fn a_small_store_s_writer_gets_the_small_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("c.db"))).unwrap();
        let cache_size = store
            .exec(|c, _| {
                let v: i64 = c.query_row("PRAGMA cache_size", [], |r| r.get(0)).map_err(sql_err)?;
                Ok(JobValue::Bool(v == -WriterCache::SMALL_STORE_KIB))
            })
            .await
            .unwrap();
        assert!(matches!(cache_size, JobValue::Bool(true)));
    }

    #[test]
    fn commit_delay_waits_only_for_small_groups_while_requests_overlap() {
        let mut d = CommitDelay::new(Duration::from_micros(200));
        // A lone request on a quiet store commits at once.
        assert!(!d.waits(1));
        d.committed(1);
        assert!(!d.waits(1), "the group before held one job: nothing overlaps");
        d.committed(5);
        // Several requests in flight: a small group waits for company.
        assert!(d.waits(1));
        assert!(d.waits(CommitDelay::BELOW_ITEMS - 1));
        // Enough events already, e.g. one batch of 100: no wait.
        assert!(!d.waits(CommitDelay::BELOW_ITEMS));
        assert!(!d.waits(100));
        // Switched off.
        let mut off = CommitDelay::new(Duration::ZERO);
        off.committed(64);
        assert!(!off.waits(1));
    }

    #[tokio::test]
    async fn commit_delay_does_not_hold_a_lone_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SqliteConfig::new(dir.path().join("w.db"));
        // Far longer than any commit here: a lone request that waited would show it.
        cfg.commit_delay = Duration::from_secs(2);
        let store = SqliteStore::open(cfg).unwrap();
        let now = || Timestamp::from_unix_millis(unix_ms());
        let org = OrgId::new_v7(now());
        for i in 0..3 {
            let started = Instant::now();
            let batch = IngestBatch {
                org,
                config: Arc::new(JourneyConfig::default()),
                items: vec![web(org, &format!("c{i}"), now())],
            };
            store.ingest(batch).await.unwrap();
            assert!(started.elapsed() < Duration::from_secs(1), "request {i} waited {:?}", started.elapsed());
        }
    }

    fn web_with_id(org: OrgId, cookie: &str, at: Timestamp, client_event_id: Option<&str>) -> IngestItem {
        let deployment = Deployment::new(org, DeploymentId::new_v7(at), "test");
        let req: WebEventRequest = serde_json::from_value(serde_json::json!({
            "customerCookieId": cookie,
            "eventName": "page_viewed",
            "page": {"url": "https://shop.example/a", "title": "A"},
            "createdDate": at.to_iso(),
            "clientEventId": client_event_id,
        }))
        .unwrap();
        let event = parse_web_event(req, &deployment, &InputLimits::default(), at, None, None).unwrap();
        IngestItem::Web(Box::new(WebItem::new(event, Default::default(), Default::default(), WebFieldsForm::Packed)))
    }

    async fn cached(store: &SqliteStore, org: OrgId, cookie: &str) -> bool {
        let key = (org, cookie.to_string());
        match store.exec(move |_, cache| Ok(JobValue::Bool(cache.map.contains_key(&key)))).await.unwrap() {
            JobValue::Bool(b) => b,
            _ => unreachable!("the job answers a bool"),
        }
    }

    /// An event that changes only its customer's per-event fields leaves the customer row as it is (the session
    /// row carries them), and a store opened again, with nothing cached, has them all: the totals, and the
    /// recent client event ids that recognise a retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_current_session_row_carries_the_per_event_state_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let now = Timestamp::from_unix_millis(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
        );
        let org = OrgId::new_v7(now);
        let batch = |items| IngestBatch { org, config: Arc::new(JourneyConfig::default()), items };
        let customer_row = || -> Vec<u8> {
            let c = Connection::open(&path).unwrap();
            c.query_row("SELECT state FROM customers WHERE cookie_id = 'v'", [], |r| r.get(0)).unwrap()
        };
        let total = |r: &[ItemResult]| match &r[0] {
            ItemResult::Web(w) => w.event.web_event.as_ref().unwrap().total_event_count,
            other => panic!("unexpected result {other:?}"),
        };

        let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        let mut row_after_first = Vec::new();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            let at = now.plus_millis(i as i64 * 1_000);
            let r = store.ingest(batch(vec![web_with_id(org, "v", at, Some(id))])).await.unwrap();
            assert_eq!(total(&r), i as i64 + 1);
            if i == 0 {
                row_after_first = customer_row();
            }
        }
        assert_eq!(customer_row(), row_after_first, "events of the same session leave the customer row alone");
        store.close();
        drop(store);

        let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        let r = store.ingest(batch(vec![web_with_id(org, "v", now.plus_millis(3_000), Some("b"))])).await.unwrap();
        assert!(matches!(r[0], ItemResult::Duplicate { .. }), "a retry is recognised after a restart: {:?}", r[0]);
        let record = store.get_customer(org, &CookieId::parse("v").unwrap()).await.unwrap().unwrap();
        assert_eq!(record.total_events, 3, "the customer read has the carried total");
        let r = store.ingest(batch(vec![web_with_id(org, "v", now.plus_millis(4_000), Some("d"))])).await.unwrap();
        assert_eq!(total(&r), 4, "the journey continues from the carried totals");
        let ItemResult::Web(w) = &r[0] else { unreachable!() };
        assert_eq!(w.counts.event_count, 4, "in the same session: {w:?}");
        assert!(!w.new_session);
    }

    /// Retention drops from the writer's cache the states of the customers it purged (whole, or some of their
    /// sessions) and keeps the others, instead of emptying the cache at every run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_drops_only_the_cached_states_it_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("w.db"))).unwrap();
        let now = Timestamp::from_unix_millis(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
        );
        let (org, old) = (OrgId::new_v7(now), now.minus_secs(70 * 86_400));
        let batch = |items| IngestBatch { org, config: Arc::new(JourneyConfig::default()), items };
        store.ingest(batch(vec![web(org, "old", old)])).await.unwrap();
        store.ingest(batch(vec![web(org, "mixed", old)])).await.unwrap();
        store.ingest(batch(vec![web(org, "mixed", now), web(org, "recent", now)])).await.unwrap();
        for cookie in ["old", "mixed", "recent"] {
            assert!(cached(&store, org, cookie).await, "{cookie} is cached after its events");
        }
        let report = store.purge_before(now.minus_secs(60 * 86_400)).await.unwrap();
        assert_eq!(report.sessions, 2, "{report:?}");
        assert!(!cached(&store, org, "old").await, "a purged customer leaves the cache");
        assert!(!cached(&store, org, "mixed").await, "a customer with a purged session leaves the cache");
        assert!(cached(&store, org, "recent").await, "an untouched customer stays cached");
        // Both still continue their journeys.
        let results = store
            .ingest(batch(vec![web(org, "mixed", now.plus_millis(1_000)), web(org, "recent", now.plus_millis(1_000))]))
            .await
            .unwrap();
        for r in &results {
            let ItemResult::Web(w) = r else { panic!("unexpected result {r:?}") };
            assert_eq!(w.counts.event_count, 2, "{w:?}");
        }
    }
}
