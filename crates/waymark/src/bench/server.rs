//! The server under test: a fresh data directory, an organisation bootstrapped through the store, optional
//! preloading through the `Store` trait, then a `waymark serve` child process of this very binary, whose
//! address is read from its start-up line and whose resident memory is read from `/proc`.

use super::BenchArgs;
use super::report::rss_mb;
use crate::cli::{ServeArgs, open_store};
use crate::settings;
use anyhow::{Context, Result, anyhow, bail};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use waymark_domain::ids::{DeploymentId, OrgId};
use waymark_server::bootstrap::{BootstrapRequest, bootstrap};
use waymark_server::clock::Clock;
use waymark_store::Store;

/// The allowed origin of the bench deployment.
pub const ORIGIN: &str = "http://shop.example";

/// An organisation ready to receive load.
pub struct Setup {
    pub data: PathBuf,
    pub deployment: DeploymentId,
    pub token: String,
    _temp: Option<tempfile::TempDir>,
}

impl Setup {
    /// Create the data directory and bootstrap the organisation; `preload` may write through the store before
    /// the server starts.
    pub async fn new<F, Fut>(args: &BenchArgs, preload: F) -> Result<Setup>
    where
        F: FnOnce(Arc<dyn Store>, OrgId, DeploymentId) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let (data, temp) = match &args.data {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("waymark-bench-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let serve = serve_args(args, &data);
        let s = settings::load(None, &serve)?;
        let store = open_store(&s).await?;
        let r = bootstrap(
            store.as_ref(),
            &BootstrapRequest {
                org_name: "Bench".into(),
                admin_email: "bench@waymark.local".into(),
                admin_password: None,
                domain: "shop.example".into(),
            },
            Clock::system().now(),
        )
        .await
        .context("bootstrap")?;
        preload(store.clone(), r.org_id, r.deployment_id).await?;
        drop(store);
        Ok(Setup { data, deployment: r.deployment_id, token: r.token, _temp: temp })
    }

    /// An organisation bootstrapped and preloaded by an earlier run on `args.data` (see `reads`).
    pub fn reuse(args: &BenchArgs, deployment: DeploymentId, token: String) -> Result<Setup> {
        let data = args.data.clone().context("reusing a store needs --data")?;
        Ok(Setup { data, deployment, token, _temp: None })
    }

    pub fn webevents_path(&self) -> String {
        format!("/api/v2/journey/deployments/{}/webevents", self.deployment)
    }
}

fn serve_args(args: &BenchArgs, data: &std::path::Path) -> ServeArgs {
    ServeArgs {
        data: Some(data.to_path_buf()),
        store: Some(args.store.clone()),
        durability: Some(args.durability.clone()),
        listen: Some("127.0.0.1:0".into()),
        pg_schema: args.pg_schema.clone(),
        ..Default::default()
    }
}

/// A running `waymark serve` child.
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
}

impl ServerProc {
    /// Start the server on `setup`'s data with rate limits raised so that one load generator address is not
    /// throttled (`extra_env` can set other `WAYMARK_*` settings).
    pub fn spawn(args: &BenchArgs, setup: &Setup, extra_env: &[(&str, String)]) -> Result<ServerProc> {
        let exe = std::env::current_exe().context("cannot find the waymark binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--data")
            .arg(&setup.data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--store")
            .arg(&args.store)
            .arg("--durability")
            .arg(&args.durability)
            .args(args.pg_schema.iter().flat_map(|s| ["--pg-schema", s.as_str()]))
            .env("RUST_LOG", "warn")
            .env("WAYMARK_SERVER__RATE_LIMITS__PER_IP_PER_SEC", "100000000")
            .env("WAYMARK_SERVER__RATE_LIMITS__PER_IP_BURST", "100000000")
            .env("WAYMARK_SERVER__RATE_LIMITS__PER_DEPLOYMENT_PER_SEC", "100000000")
            .env("WAYMARK_SERVER__RATE_LIMITS__PER_DEPLOYMENT_BURST", "100000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("cannot start waymark serve")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.split("running at http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                    sent = true;
                } else if line.contains("ERROR") || line.contains("WARN") || !sent {
                    eprintln!("  [server] {line}");
                }
            }
        });
        // A reused store (`--data`) may first migrate its schema, which takes minutes on a large one (the
        // server's lines until it listens are shown); a server that exits ends the wait at once.
        let addr = match rx.recv_timeout(Duration::from_secs(1800)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                bail!("the server did not start listening (see its lines above)");
            }
        };
        let addr: SocketAddr = addr.parse().with_context(|| format!("bad server address {addr:?}"))?;
        Ok(ServerProc { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_mb(&self) -> f64 {
        rss_mb(self.pid())
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
