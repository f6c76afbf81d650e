//! Several nodes on one PostgreSQL database behave as one system, and a node rides out losing PostgreSQL.
//! These tests are about the PostgreSQL store only (the embedded store has one node by design).

use crate::harness::{Backend, PgSchema, TestServer};
use futures_util::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_ingested_on_one_node_reaches_an_agent_on_another() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = a.second_node().await;
    let mut first = a.event("cross-cookie", "https://shop.example/");
    first["traits"] = json!({"email": "cross@example.com"});
    let (status, r) = a.post_events(&first).await;
    assert_eq!(status, 200, "{r}");
    let contact = r["externalContact"]["id"].as_str().unwrap().to_string();

    let resp = b
        .client
        .get(b.url(&format!("/api/v2/journey/live?contactId={contact}")))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut events = eventsource_stream::EventStream::new(resp.bytes_stream());
    let hello = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(hello.event, "hello");

    let sent = Instant::now();
    let (status, _) = a.post_events(&a.event("cross-cookie", "https://shop.example/pricing")).await;
    assert_eq!(status, 200);
    // The first event may still be on its way from A too; wait for the new one and its session.
    let (mut got_event, mut got_session) = (false, false);
    while !got_event || !got_session {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("node B hears node A's event within 5 s")
            .unwrap()
            .unwrap();
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        match e.event.as_str() {
            "event" if data["event"]["webEvent"]["page"]["pathname"] == "/pricing" => got_event = true,
            "session" if got_event => got_session = true,
            _ => {}
        }
    }
    let latency = sent.elapsed();
    assert!(latency < Duration::from_secs(1), "cross-node push took {latency:?}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_customer_on_two_nodes_keeps_one_session() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = a.second_node().await;
    let nodes = [&a, &b];
    // Alternating, one after the other.
    let mut session = None;
    for i in 0..6 {
        let t = nodes[i % 2];
        let (status, r) = t.post_events(&t.event("alt-cookie", &format!("https://shop.example/p{i}"))).await;
        assert_eq!(status, 200, "{r}");
        let sid = r["session"]["id"].as_str().unwrap().to_string();
        assert_eq!(*session.get_or_insert(sid.clone()), sid, "event {i} joined the same session");
        assert_eq!(r["session"]["eventCount"], i as i64 + 1, "counts continue across nodes");
    }
    // At the same time, on both nodes.
    let posts = (0..20).map(|i| {
        let t = nodes[i % 2];
        async move { t.post_events(&t.event("alt-cookie", &format!("https://shop.example/c{i}"))).await }
    });
    for (status, r) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["session"]["id"].as_str(), session.as_deref());
    }
    let sid = session.unwrap();
    for t in nodes {
        let (status, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["eventCount"], 26, "no event lost or counted twice: {s}");
        let (_, evs) = t.get(&format!("/api/v2/journey/sessions/{sid}/events?pageSize=100")).await;
        assert_eq!(evs["entities"].as_array().map(Vec::len), Some(26), "{evs}");
    }
    let customers = a.state.store.stats().await.unwrap().customers;
    assert_eq!(customers, 1, "one customer, not one per node");
    b.stop().await;
    a.stop().await;
}

/// A TCP forwarder standing in for the network path to PostgreSQL, so the test can cut it.
struct Link {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Link {
    async fn open(addr: SocketAddr, upstream: String) -> Link {
        let listener = TcpListener::bind(addr).await.expect("bind the link");
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up, t2) = (upstream.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let up = up.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                t2.lock().push(pipe);
            }
        });
        tasks.lock().push(accept);
        Link { addr, upstream, tasks }
    }

    /// Cut every connection and stop accepting: PostgreSQL is unreachable.
    fn cut(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_answers_503_while_postgres_is_unreachable_and_loses_nothing_acknowledged() {
    let schema = PgSchema::fresh();
    let real: url::Url = schema.url.parse().expect("WAYMARK_TEST_PG is a URL");
    let upstream = format!("{}:{}", real.host_str().unwrap_or("127.0.0.1"), real.port().unwrap_or(5432));
    let link = Link::open("127.0.0.1:0".parse().unwrap(), upstream).await;
    let mut via = real.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(link.addr.port())).unwrap();
    let mut config = schema.config();
    config.url = via.to_string();
    let store = waymark_store::postgres::PgStore::connect(config).await.expect("PostgreSQL through the link");
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_on(Arc::new(store), Some(Arc::new(schema)), dir, |_| {}).await;

    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let (status, r) = t.post_events(&t.event("loss-cookie", &format!("https://shop.example/before{i}"))).await;
        assert_eq!(status, 200, "{r}");
        acknowledged.push(format!("/before{i}"));
    }

    link.cut();
    let (status, r) = t.post_events(&t.event("loss-cookie", "https://shop.example/during")).await;
    assert_eq!(status, 503, "PostgreSQL is unreachable: {r}");
    assert_eq!(r["code"], "store_unavailable");

    // PostgreSQL comes back at the same address: the node reconnects by itself.
    let link = Link::open(link.addr, link.upstream.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, r) = t.post_events(&t.event("loss-cookie", "https://shop.example/after")).await;
        if status == 200 {
            acknowledged.push("/after".into());
            break;
        }
        assert_eq!(status, 503, "{r}");
        assert!(Instant::now() < deadline, "the node did not reconnect within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, sessions) = t.get("/api/v2/journey/customers/cookie/loss-cookie/sessions").await;
    let mut paths = Vec::new();
    for s in sessions["entities"].as_array().expect("sessions") {
        let sid = s["id"].as_str().unwrap();
        let (_, evs) = t.get(&format!("/api/v2/journey/sessions/{sid}/events?pageSize=100")).await;
        for e in evs["entities"].as_array().unwrap() {
            paths.push(e["webEvent"]["page"]["pathname"].as_str().unwrap().to_string());
        }
    }
    for p in &acknowledged {
        assert!(paths.contains(p), "acknowledged event {p} is stored: {paths:?}");
    }
    t.stop().await;
    link.cut();
}
