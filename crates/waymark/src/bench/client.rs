//! The load generator: a closed-loop driver over lean HTTP/1.1 keep-alive connections ([`WireConn`]) — each
//! connection sends its next request as soon as the previous one is answered — with per-request latency
//! recorded after a warm-up, and a one-line progress report every second; and hyper's client connection
//! ([`Conn`]) for the one-off calls and the live streams around it.
//!
//! The driver's connections write requests serialized up front and read answers with `httparse`, as `wrk`
//! does: the load generator shares the two cores with the server under test, and hyper's client (a connection
//! task per connection, a header map and a body collector per request) took ~14 µs of CPU per request, a
//! fifth of what the server spent on a single event.

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

pub fn get(addr: SocketAddr, path: &str, token: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// A POST as it goes on the wire (head and body in one buffer), for [`closed_loop`].
pub fn wire_post(addr: SocketAddr, path: &str, body: Bytes, headers: &[(&str, &str)]) -> Bytes {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = BytesMut::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&body);
    out.freeze()
}

/// A GET with a bearer token as it goes on the wire, for [`closed_loop`].
pub fn wire_get(addr: SocketAddr, path: &str, token: &str) -> Bytes {
    Bytes::from(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"))
}

/// A lean keep-alive HTTP/1.1 connection: writes a serialized request, reads one answer whose length its
/// `Content-Length` gives (the answers of the measured endpoints all have one; a chunked answer is an error).
pub struct WireConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl WireConn {
    pub async fn open(addr: SocketAddr) -> Result<WireConn> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(WireConn { stream, buf: BytesMut::with_capacity(16 * 1024) })
    }

    /// Send `request` (a whole serialized request) and read the answer's status and body.
    pub async fn send(&mut self, request: &[u8]) -> Result<(StatusCode, Bytes)> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, head, len)) = parse_head(&self.buf)? {
                while self.buf.len() < head + len {
                    self.read_more().await?;
                }
                let mut message = self.buf.split_to(head + len);
                return Ok((status, message.split_off(head).freeze()));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}

/// The status, head length and body length of the answer at the start of `buf`, once its head is complete.
fn parse_head(buf: &[u8]) -> Result<Option<(StatusCode, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf).context("parse the answer's head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = StatusCode::from_u16(response.code.unwrap_or(0)).context("the answer's status")?;
    let mut len = None;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = Some(
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .context("bad content-length")?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("a chunked answer ({status}): the load generator reads answers with a Content-Length");
        }
    }
    let len = match len {
        Some(n) => n,
        None if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED => 0,
        None => bail!("an answer without a Content-Length ({status})"),
    };
    Ok(Some((status, head, len)))
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
    /// The `n`-th request of connection `conn`, serialized ([`wire_post`], [`wire_get`]).
    fn request(&self, conn: usize, n: u64) -> Bytes;
}

impl<F: Fn(usize, u64) -> Bytes + Send + Sync + 'static> RequestSource for F {
    fn request(&self, conn: usize, n: u64) -> Bytes {
        self(conn, n)
    }
}

/// Drive `connections` closed-loop connections for `warmup + measure`, optionally throttled to `rate` requests/s
/// in total (open loop per connection), printing progress labelled `label`.
///
/// The connections run on a single-threaded runtime of their own thread: the load generator needs a fraction
/// of a core, and one thread serving all its connections spares the cross-thread wake-ups of a shared pool.
pub async fn closed_loop(
    addrs: &[SocketAddr],
    connections: usize,
    warmup: Duration,
    measure: Duration,
    rate: Option<f64>,
    label: &str,
    source: Arc<dyn RequestSource>,
) -> Result<LoadResult> {
    let plan = LoadPlan { addrs: addrs.to_vec(), connections, warmup, measure, rate, label: label.to_string() };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("wm-bench-load".into()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(drive(plan, source)));
        let _ = tx.send(result);
    })?;
    rx.await.map_err(|_| anyhow!("the load generator's thread stopped"))?
}

/// What [`closed_loop`] was asked to run, moved to the load generator's thread.
struct LoadPlan {
    addrs: Vec<SocketAddr>,
    connections: usize,
    warmup: Duration,
    measure: Duration,
    rate: Option<f64>,
    label: String,
}

async fn drive(plan: LoadPlan, source: Arc<dyn RequestSource>) -> Result<LoadResult> {
    let LoadPlan { addrs, connections, warmup, measure, rate, label } = plan;
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + measure;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = {
        let done = done.clone();
        let stop = stop.clone();
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
            let mut conn = match WireConn::open(addr).await {
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
                let r = conn.send(&req).await;
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
                        match WireConn::open(addr).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_read_once_complete_with_its_body_length() {
        let answer = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(parse_head(&answer[..20]).unwrap(), None);
        let (status, head, len) = parse_head(answer).unwrap().unwrap();
        assert_eq!((status, len), (StatusCode::ACCEPTED, 7));
        assert_eq!(&answer[head..head + len], b"{\"a\":1}");
        let empty = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((empty.0, empty.2), (StatusCode::NO_CONTENT, 0));
    }

    #[test]
    fn answers_the_client_cannot_delimit_are_errors() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).unwrap_err().to_string().contains("chunked"));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn a_connection_carries_requests_one_after_another() {
        use axum::routing::post;
        let app = axum::Router::new().route("/echo", post(|body: Bytes| async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut conn = WireConn::open(addr).await.unwrap();
        for i in 0..3 {
            let body = Bytes::from(format!("{{\"n\":{i}}}").repeat(2_000 * i + 1));
            let (status, got) = conn.send(&wire_post(addr, "/echo", body.clone(), &[("origin", "x")])).await.unwrap();
            assert_eq!((status, got), (StatusCode::OK, body));
        }
        let (status, _) = conn.send(&wire_get(addr, "/nowhere", "t")).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
