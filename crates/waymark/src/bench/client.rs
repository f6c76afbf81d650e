//! The load generator: plain HTTP/1.1 keep-alive connections (hyper's client connection, no pooling layer) and
//! a closed-loop driver — each connection sends its next request as soon as the previous one is answered —
//! with per-request latency recorded after a warm-up, and a one-line progress report every second.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// Send a request and read the whole answer.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Send a request and return the response with its body still streaming (for SSE).
    pub async fn open_stream(mut self, req: Request<Full<Bytes>>) -> Result<hyper::Response<hyper::body::Incoming>> {
        self.sender.ready().await?;
        Ok(self.sender.send_request(req).await?)
    }
}

pub fn post(addr: SocketAddr, path: &str, body: Bytes, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::post(path).header("host", addr.to_string()).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body)).unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

pub fn get(addr: SocketAddr, path: &str, token: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// What a load run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// 2xx answers in the measured window.
    pub ok: u64,
    /// Non-2xx answers and transport errors in the measured window, by status (0 = transport error).
    pub failed: BTreeMap<u16, u64>,
    pub first_failure: Option<String>,
    /// Latency of each measured request in µs.
    pub latencies_us: Vec<u32>,
    pub measured: Duration,
}

impl LoadResult {
    pub fn failures(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// What each request of a closed-loop run is.
pub trait RequestSource: Send + Sync + 'static {
    /// The `n`-th request of connection `conn`.
    fn request(&self, conn: usize, n: u64) -> Request<Full<Bytes>>;
}

impl<F: Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + 'static> RequestSource for F {
    fn request(&self, conn: usize, n: u64) -> Request<Full<Bytes>> {
        self(conn, n)
    }
}

/// Drive `connections` closed-loop connections for `warmup + measure`, optionally throttled to `rate` requests/s
/// in total (open loop per connection), printing progress labelled `label`.
pub async fn closed_loop(
    addrs: &[SocketAddr],
    connections: usize,
    warmup: Duration,
    measure: Duration,
    rate: Option<f64>,
    label: &str,
    source: Arc<dyn RequestSource>,
) -> Result<LoadResult> {
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + measure;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = {
        let done = done.clone();
        let stop = stop.clone();
        let label = label.to_string();
        tokio::spawn(async move {
            let mut last = 0u64;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut secs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                secs += 1;
                let now = done.load(Ordering::Relaxed);
                eprintln!("  [{label}] {secs:>3} s  {:>8} req/s", now - last);
                last = now;
            }
        })
    };
    let mut tasks = Vec::with_capacity(connections);
    if addrs.is_empty() {
        bail!("no server to load");
    }
    for c in 0..connections {
        let addr = addrs[c % addrs.len()];
        let source = source.clone();
        let done = done.clone();
        let per_conn_interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1e-3)));
        tasks.push(tokio::spawn(async move {
            let mut out = LoadResult::default();
            let mut conn = match Conn::open(addr).await {
                Ok(c) => c,
                Err(e) => {
                    out.failed.insert(0, 1);
                    out.first_failure = Some(format!("{e:#}"));
                    return out;
                }
            };
            let mut n = 0u64;
            let mut next_at = Instant::now()
                + per_conn_interval.map(|i| i.mul_f64(c as f64 / connections as f64)).unwrap_or_default();
            loop {
                if let Some(i) = per_conn_interval {
                    tokio::time::sleep_until(next_at.into()).await;
                    next_at += i;
                }
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let req = source.request(c, n);
                n += 1;
                let r = conn.send(req).await;
                let lat = t0.elapsed();
                done.fetch_add(1, Ordering::Relaxed);
                let measured = t0 >= measure_from;
                match r {
                    Ok((s, _)) if s.is_success() => {
                        if measured {
                            out.ok += 1;
                            out.latencies_us.push(lat.as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                    Ok((s, body)) => {
                        if measured {
                            *out.failed.entry(s.as_u16()).or_default() += 1;
                        }
                        if out.first_failure.is_none() {
                            out.first_failure = Some(format!("{s}: {}", String::from_utf8_lossy(&body)));
                        }
                    }
                    Err(e) => {
                        *out.failed.entry(0).or_default() += 1;
                        if out.first_failure.is_none() {
                            out.first_failure = Some(format!("{e:#}"));
                        }
                        // Reconnect after a transport error.
                        match Conn::open(addr).await {
                            Ok(nc) => conn = nc,
                            Err(_) => break,
                        }
                    }
                }
            }
            out
        }));
    }
    let mut total = LoadResult::default();
    for t in tasks {
        let r = t.await.map_err(|e| anyhow!("load task: {e}"))?;
        total.ok += r.ok;
        for (k, v) in r.failed {
            *total.failed.entry(k).or_default() += v;
        }
        if total.first_failure.is_none() {
            total.first_failure = r.first_failure;
        }
        total.latencies_us.extend(r.latencies_us);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    total.measured = measure;
    Ok(total)
}
