//! Test harness: start a server on port 0 with a temporary store, bootstrap an organisation, and talk to it.

use serde_json::{Value, json};
use std::sync::Arc;
use waymark_domain::Timestamp;
use waymark_domain::ids::{DeploymentId, OrgId, RoleId};
use waymark_server::accounts::{Role, TokenKind};
use waymark_server::bootstrap::{BootstrapRequest, bootstrap, create_user, issue_token, put};
use waymark_server::clock::Clock;
use waymark_server::{AppState, Server, ServerConfig};
use waymark_store::postgres::{PgConfig, PgStore};
use waymark_store::sqlite::{SqliteConfig, SqliteStore};
use waymark_store::{RecordKind, Store};

/// An agent's live stream (`GET /api/v2/journey/live`), as server-sent events.
pub type LiveStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The PostgreSQL at `WAYMARK_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`), in a fresh
    /// schema per test. Unreachable PostgreSQL fails the test; it is never skipped.
    Postgres,
}

/// The test database's URL.
pub fn pg_url() -> String {
    std::env::var("WAYMARK_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema created for one test, dropped when the guard goes away.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub fn fresh() -> PgSchema {
        PgSchema { url: pg_url(), name: format!("t_{}", uuid::Uuid::new_v4().simple()) }
    }

    pub fn config(&self) -> PgConfig {
        let mut c = PgConfig::new(&self.url);
        c.schema = self.name.clone();
        c.pool_size = 6;
        c
    }

    /// Open a store on this schema (migrating it); panics loudly when PostgreSQL cannot be reached.
    pub async fn open(&self) -> PgStore {
        match PgStore::connect(self.config()).await {
            Ok(s) => s,
            Err(e) => panic!(
                "PostgreSQL test store at {} is not usable: {e}. Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set WAYMARK_TEST_PG.",
                self.url
            ),
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    let driver = tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await;
                    drop(client);
                    let _ = driver.await;
                }
            });
        })
        .join();
    }
}

/// Generate one `#[tokio::test]` per backend for each listed test function `async fn name(b: Backend)`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Backend::Postgres).await }
            )*
        }
    };
}

pub const ORIGIN: &str = "http://shop.example";

pub struct TestServer {
    pub base: String,
    pub server: Option<Server>,
    pub state: AppState,
    pub org: OrgId,
    pub deployment: DeploymentId,
    /// Admin API token.
    pub token: String,
    pub client: reqwest::Client,
    pub clock: Clock,
    /// The clock's reading when the server started: a fixed base for events that must share timestamps.
    pub epoch: Timestamp,
    /// The PostgreSQL schema of this test (dropped last).
    pub pg: Option<Arc<PgSchema>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, pg): (Arc<dyn Store>, _) = match backend {
            Backend::Sqlite => (
                Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("waymark.db"))).expect("open sqlite")),
                None,
            ),
            Backend::Postgres => {
                let schema = PgSchema::fresh();
                (Arc::new(schema.open().await), Some(Arc::new(schema)))
            }
        };
        Self::start_on(store, pg, dir, tweak).await
    }

    /// Another node on the same PostgreSQL schema as `self` (a second `waymark serve` on one database).
    pub async fn second_node(&self) -> TestServer {
        let pg = self.pg.clone().expect("a second node needs the PostgreSQL backend");
        let store: Arc<dyn Store> = Arc::new(pg.open().await);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Self::start_on(store, Some(pg), dir, |_| {}).await;
        // Same organisation, deployment and admin token as the first node (bootstrap finds them).
        node.token = self.token.clone();
        node
    }

    pub async fn start_on(
        store: Arc<dyn Store>,
        pg: Option<Arc<PgSchema>>,
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            maintenance_interval_secs: 3600,
            ..Default::default()
        };
        config.rate_limits.per_ip_per_sec = 100_000;
        config.rate_limits.per_ip_burst = 100_000;
        tweak(&mut config);
        let ua = waymark_enrich::UserAgentParser::builtin();
        let geo = match &config.geoip_city_db {
            Some(p) => waymark_enrich::GeoProvider::open(p).expect("geo db"),
            None => waymark_enrich::GeoProvider::none(),
        };
        let trusted = waymark_enrich::TrustedProxies::parse(config.trusted_proxies.iter()).expect("proxies");
        let clock = Clock::system();
        let now = clock.now();
        let r = bootstrap(
            store.as_ref(),
            &BootstrapRequest {
                org_name: "Test".into(),
                admin_email: "admin@test.example".into(),
                admin_password: Some("s3cret-pass".into()),
                domain: "shop.example".into(),
            },
            now,
        )
        .await
        .expect("bootstrap");
        let state = AppState::new(
            store,
            Arc::new(waymark_enrich::Enricher::new(ua, geo)),
            config,
            clock.clone(),
            trusted,
            None,
        );
        let server = Server::start(state.clone()).await.expect("start server");
        TestServer {
            base: format!("http://{}", server.addr),
            server: Some(server),
            state,
            org: r.org_id,
            deployment: r.deployment_id,
            token: r.token,
            client: reqwest::Client::new(),
            epoch: clock.now(),
            clock,
            pg,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A `page_viewed` event for `cookie` on `url`, now.
    pub fn event(&self, cookie: &str, url: &str) -> Value {
        json!({
            "customerCookieId": cookie,
            "eventName": "page_viewed",
            "page": {"url": url, "title": "Page"},
            "createdDate": self.now().to_iso(),
            "userAgentString": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        })
    }

    pub fn webevents_path(&self) -> String {
        format!("/api/v2/journey/deployments/{}/webevents", self.deployment)
    }

    /// Open the live stream `GET /api/v2/journey/live?{query}` as the admin; the server must accept it.
    pub async fn live_stream(&self, query: &str) -> LiveStream {
        use futures_util::StreamExt;
        let resp = self
            .client
            .get(self.url(&format!("/api/v2/journey/live?{query}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("open the live stream");
        assert_eq!(resp.status().as_u16(), 200, "the live stream opens");
        Box::pin(eventsource_stream::EventStream::new(resp.bytes_stream()).map(|e| e.map_err(|e| e.to_string())))
    }

    /// POST web event(s) from the allowed origin.
    pub async fn post_events(&self, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(&self.webevents_path()))
            .header("origin", ORIGIN)
            .json(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET with a token.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(token).send().await.expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(&self.token, path).await
    }

    /// A token for a new user holding exactly `permissions` (and, if given, limited to `divisions`).
    pub async fn token_with(&self, permissions: &[&str], divisions: &[&str]) -> String {
        let now = self.now();
        let store = self.state.store.as_ref();
        let role = Role {
            id: RoleId::new_v7(now),
            org: self.org,
            name: format!("custom-{}", uuid::Uuid::new_v4()),
            permissions: permissions.iter().map(|s| s.to_string()).collect(),
            builtin: false,
        };
        put(store, RecordKind::Role, Some(self.org), &role.id.to_string(), &role.name, &role, now, true)
            .await
            .expect("role");
        let mut user = create_user(
            store,
            self.org,
            &format!("{}@test.example", uuid::Uuid::new_v4()),
            "Agent",
            None,
            vec![role.id],
            now,
        )
        .await
        .expect("user");
        if !divisions.is_empty() {
            user.division_ids = divisions.iter().map(|s| s.to_string()).collect();
            put(store, RecordKind::User, None, &user.id.to_string(), &user.email, &user, now, true)
                .await
                .expect("user divisions");
        }
        issue_token(store, self.org, user.id, TokenKind::Api, None, "test", now).await.expect("token").1
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}
