//! A SQLite VFS shim that writes each commit's WAL frames with one `pwrite` instead of two per frame.
//!
//! SQLite appends a WAL frame as two writes: its 24-byte header, then the page at the next offset. With
//! `synchronous=NORMAL` nothing else happens at commit, so one group commit of the embedded store's writer
//! made ~100 small `pwrite`s, each a full trip through the kernel's page cache, and every page write started 24
//! bytes into a cache page, so it touched two. The shim ([`register`], named [`VFS_NAME`]) wraps the platform's
//! default VFS and changes only the WAL file's writes: consecutive writes are gathered in a buffer, and the
//! buffer goes to the file as one write as soon as the commit frame is complete (its header carries the
//! database size, which only a commit frame does), before SQLite publishes the frames in the WAL index for
//! readers. Anything else on the file (a read, a non-contiguous write, sync, truncate, size, lock, close,
//! file control) writes the buffer out first, so the file always reads as SQLite wrote it, and a commit is in
//! the file (the kernel's page cache) by the time SQLite returns from it, exactly as without the shim.
//! Database and journal files are the default VFS's own files, untouched.

use rusqlite::ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

/// The name under which the shim is registered (see [`register`]).
pub const VFS_NAME: &str = "waymark-wal-coalesce";
const VFS_NAME_C: &CStr = c"waymark-wal-coalesce";

/// Size of a WAL frame header; bytes 4..8 of a commit frame's header hold the database size in pages.
const FRAME_HEADER: usize = 24;
/// The default unix VFS writes at most 128 KiB - 1 bytes a call (its `seekAndWrite` masks the count to 17
/// bits), so the buffer goes out in pieces of this size: one write per 16 frames instead of two per frame.
const WRITE_CHUNK: usize = 64 * 1024;
/// A buffer larger than this is written out even before a commit frame (a large transaction's spill).
const FLUSH_AT: usize = 4 << 20;

/// Our file object: the `sqlite3_file` SQLite sees, the buffer, and the default VFS's file after it.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    /// Gathered writes, starting at file offset `at`; null when the file is not a WAL file.
    buf: *mut Vec<u8>,
    at: i64,
    /// The last write was a commit frame's header: the next write (its page) completes the commit.
    commit_pending: bool,
    /// Where the default VFS's file lives (8-aligned, right after these fields).
    real: *mut ffi::sqlite3_file,
}

struct Shim {
    vfs: ffi::sqlite3_vfs,
    methods: ffi::sqlite3_io_methods,
}

// The VFS structs hold raw pointers that SQLite reads from any thread; they are written once and never changed.
unsafe impl Send for Shim {}
unsafe impl Sync for Shim {}

static SHIM: OnceLock<Result<&'static Shim, String>> = OnceLock::new();

/// Register the shim (once per process). Open a connection with [`VFS_NAME`] to use it.
pub fn register() -> Result<(), String> {
    SHIM.get_or_init(|| unsafe { build() }).as_ref().map(|_| ()).map_err(|e| e.clone())
}

fn header_size() -> usize {
    std::mem::size_of::<ShimFile>().div_ceil(8) * 8
}

unsafe fn build() -> Result<&'static Shim, String> {
    unsafe {
        if ffi::sqlite3_initialize() != ffi::SQLITE_OK {
            return Err("sqlite3_initialize failed".into());
        }
        let real = ffi::sqlite3_vfs_find(std::ptr::null());
        if real.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let r = &*real;
        let mut vfs: ffi::sqlite3_vfs = std::ptr::read(real);
        vfs.szOsFile = (header_size() + r.szOsFile as usize) as c_int;
        vfs.pNext = std::ptr::null_mut();
        vfs.zName = VFS_NAME_C.as_ptr();
        vfs.pAppData = real.cast();
        vfs.xOpen = Some(x_open);
        let methods = ffi::sqlite3_io_methods {
            iVersion: 1,
            xClose: Some(x_close),
            xRead: Some(x_read),
            xWrite: Some(x_write),
            xTruncate: Some(x_truncate),
            xSync: Some(x_sync),
            xFileSize: Some(x_file_size),
            xLock: Some(x_lock),
            xUnlock: Some(x_unlock),
            xCheckReservedLock: Some(x_check_reserved_lock),
            xFileControl: Some(x_file_control),
            xSectorSize: Some(x_sector_size),
            xDeviceCharacteristics: Some(x_device_characteristics),
            xShmMap: None,
            xShmLock: None,
            xShmBarrier: None,
            xShmUnmap: None,
            xFetch: None,
            xUnfetch: None,
        };
        let shim: &'static mut Shim = Box::leak(Box::new(Shim { vfs, methods }));
        let rc = ffi::sqlite3_vfs_register(&mut shim.vfs, 0);
        if rc != ffi::SQLITE_OK {
            return Err(format!("sqlite3_vfs_register failed: {rc}"));
        }
        Ok(shim)
    }
}

fn shim() -> &'static Shim {
    match SHIM.get() {
        Some(Ok(s)) => s,
        // SQLite calls into the shim only after `register` succeeded.
        _ => unreachable!("the WAL VFS shim is used before it was registered"),
    }
}

unsafe fn real_methods(f: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    unsafe { &*(*f).pMethods }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        let real_vfs = (*vfs).pAppData as *mut ffi::sqlite3_vfs;
        let Some(real_open) = (*real_vfs).xOpen else { return ffi::SQLITE_CANTOPEN };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Not a WAL file: the default VFS's own file object, at the start of the space SQLite gave us.
            return real_open(real_vfs, name, file, flags, out_flags);
        }
        let shim_file = file as *mut ShimFile;
        let real = (file as *mut u8).add(header_size()) as *mut ffi::sqlite3_file;
        std::ptr::write_bytes(shim_file as *mut u8, 0, header_size());
        let rc = real_open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite calls no method of a file whose open failed, so ours stays without methods.
            if !(*real).pMethods.is_null()
                && let Some(close) = real_methods(real).xClose
            {
                close(real);
            }
            return rc;
        }
        (*shim_file).real = real;
        (*shim_file).buf = Box::into_raw(Box::new(Vec::with_capacity(256 * 1024)));
        (*shim_file).base.pMethods = &shim().methods;
        rc
    }
}

/// Write out what is gathered.
unsafe fn flush(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let s = f as *mut ShimFile;
        let buf = &mut *(*s).buf;
        (*s).commit_pending = false;
        if buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let real = (*s).real;
        let Some(write) = real_methods(real).xWrite else { return ffi::SQLITE_IOERR_WRITE };
        let mut rc = ffi::SQLITE_OK;
        let mut at = (*s).at;
        for chunk in buf.chunks(WRITE_CHUNK) {
            rc = write(real, chunk.as_ptr().cast(), chunk.len() as c_int, at);
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += chunk.len() as i64;
        }
        buf.clear();
        rc
    }
}

unsafe extern "C" fn x_write(f: *mut ffi::sqlite3_file, data: *const c_void, amt: c_int, off: i64) -> c_int {
    unsafe {
        let s = f as *mut ShimFile;
        let buf = &mut *(*s).buf;
        if !buf.is_empty() && off != (*s).at + buf.len() as i64 {
            let rc = flush(f);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let buf = &mut *(*s).buf;
        if buf.is_empty() {
            (*s).at = off;
        }
        let bytes = std::slice::from_raw_parts(data as *const u8, amt.max(0) as usize);
        buf.extend_from_slice(bytes);
        if (*s).commit_pending || buf.len() >= FLUSH_AT {
            return flush(f);
        }
        if bytes.len() == FRAME_HEADER && bytes[4..8] != [0, 0, 0, 0] {
            (*s).commit_pending = true;
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let s = f as *mut ShimFile;
        let flushed = flush(f);
        drop(Box::from_raw((*s).buf));
        (*s).buf = std::ptr::null_mut();
        let real = (*s).real;
        let closed = match real_methods(real).xClose {
            Some(close) => close(real),
            None => ffi::SQLITE_OK,
        };
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

/// Forward a call to the default VFS's file after writing out the buffer.
macro_rules! forward {
    ($name:ident, $method:ident $(, $arg:ident : $ty:ty)*) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            unsafe {
                let rc = flush(f);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let real = (*(f as *mut ShimFile)).real;
                match real_methods(real).$method {
                    Some(m) => m(real $(, $arg)*),
                    None => ffi::SQLITE_IOERR,
                }
            }
        }
    };
}

forward!(x_read, xRead, data: *mut c_void, amt: c_int, off: i64);
forward!(x_truncate, xTruncate, size: i64);
forward!(x_sync, xSync, flags: c_int);
forward!(x_file_size, xFileSize, size: *mut i64);
forward!(x_lock, xLock, level: c_int);
forward!(x_unlock, xUnlock, level: c_int);
forward!(x_check_reserved_lock, xCheckReservedLock, out: *mut c_int);
forward!(x_file_control, xFileControl, op: c_int, arg: *mut c_void);

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = (*(f as *mut ShimFile)).real;
        real_methods(real).xSectorSize.map(|m| m(real)).unwrap_or(4096)
    }
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = (*(f as *mut ShimFile)).real;
        real_methods(real).xDeviceCharacteristics.map(|m| m(real)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    fn open(path: &std::path::Path) -> Connection {
        register().unwrap();
        let c = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), VFS_NAME).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "NORMAL").unwrap();
        c
    }

    /// Commits through the shim are seen by a plain connection (another file handle) right after each commit,
    /// survive spills of a transaction larger than the page cache, and the database checks out afterwards.
    #[test]
    fn commits_are_in_the_file_when_sqlite_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = open(&path);
        w.pragma_update(None, "cache_size", 10).unwrap(); // tiny cache: big transactions spill to the WAL
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
        let r = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let count = |c: &Connection| c.query_row("SELECT count(*) FROM t", [], |x| x.get::<_, i64>(0)).unwrap();
        let mut n: i64 = 0;
        for round in 0..50 {
            w.execute_batch("BEGIN IMMEDIATE").unwrap();
            // Every tenth transaction is large (spills, rewrites frames in place); the rest are small.
            let rows: i64 = if round % 10 == 0 { 2_000 } else { 3 };
            for i in 0..rows {
                w.execute("INSERT INTO t (v) VALUES (?1)", [format!("{round}-{i}-{}", "x".repeat((i % 300) as usize))])
                    .unwrap();
            }
            // Rewrite earlier rows in the same transaction, so pages already in the WAL change again.
            w.execute("UPDATE t SET v = v || '!' WHERE id % 7 = 0", []).unwrap();
            w.execute_batch("COMMIT").unwrap();
            n += rows;
            assert_eq!(count(&r), n, "round {round}: a reader on another handle sees the commit");
        }
        w.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).unwrap();
        w.execute("INSERT INTO t (v) VALUES ('after restart')", []).unwrap();
        assert_eq!(count(&r), n + 1);
        drop(r);
        drop(w);
        // Reopened without the shim (WAL recovery reads what the shim wrote): intact.
        let c = Connection::open(&path).unwrap();
        let ok: String = c.query_row("PRAGMA integrity_check", [], |x| x.get(0)).unwrap();
        assert_eq!(ok, "ok");
        assert_eq!(count(&c), n + 1);
    }

    /// A process that stops right after a commit (no clean close, no checkpoint) leaves a WAL that recovers
    /// to every committed row: the shim holds nothing back once SQLite returned from the commit.
    #[test]
    fn a_commit_is_not_held_in_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = open(&path);
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
        for i in 0..100 {
            w.execute("INSERT INTO t (v) VALUES (?1)", [i.to_string()]).unwrap();
        }
        // Copy the database and WAL while the connection is still open: what a kill -9 would leave.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(dir.path().join("t.db-wal"), dir.path().join("copy.db-wal")).unwrap();
        let c = Connection::open(&copy).unwrap();
        assert_eq!(c.query_row("SELECT count(*) FROM t", [], |x| x.get::<_, i64>(0)).unwrap(), 100);
        drop(w);
    }
}
