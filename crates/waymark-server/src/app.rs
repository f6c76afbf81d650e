//! The HTTP application: routes, middleware, and the server's lifecycle. [`Server::start`] binds, spawns the
//! HTTP task and the maintenance task, and returns a handle that owns them; [`Server::shutdown`] stops and
//! joins both (one owner for every background task).

use crate::agent_ui;
use crate::error::ApiError;
use crate::openapi;
use crate::sdk;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::TraceLayer;
use waymark_domain::ErrorCode;

/// Build the router with every route and layer. Each feature module owns its routes (`routes()`); this
/// function only assembles them and adds the cross-cutting layers.
pub fn router(state: AppState) -> Router {
    // Documented API routes (see `openapi::api_routes`) and the document generated from them.
    let (api, doc) = openapi::api_routes(state.config.limits.max_body_bytes).split_for_parts();
    let body_deadline = Duration::from_secs(state.config.body_timeout_secs.max(1));
    Router::new()
        .merge(api)
        .merge(agent_ui::routes())
        .merge(sdk::routes())
        .route("/health", get(health))
        .route("/metrics", get(metrics_endpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .merge(openapi::routes(&doc))
        .layer(RequestBodyDeadlineLayer::new(body_deadline))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorCode::Internal, "an internal error occurred; it has been logged").into_response()
        }))
}

async fn health(State(state): State<AppState>) -> Response {
    match state.store.stats().await {
        Ok(s) => axum::Json(serde_json::json!({"status": "ok", "store": state.store.backend(), "events": s.events}))
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn metrics_endpoint(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, "no such endpoint; see /openapi.json for the API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this endpoint does not support that method")
}

/// A running server: its address and the tasks it owns.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    maintenance: JoinHandle<()>,
    /// Relays other nodes' changes to the live hub (stores shared by several nodes).
    feed: Option<JoinHandle<()>>,
}

impl Server {
    /// Bind `state.config.listen` (port 0 picks a free port) and serve.
    pub async fn start(state: AppState) -> std::io::Result<Server> {
        let listener = TcpListener::bind(state.config.listen).await?;
        let addr = listener.local_addr()?;
        // Writes go out at once: a live stream's small messages would otherwise wait behind an unacknowledged one
        // (Nagle's algorithm, up to a delayed ACK's 40 ms). Ingest throughput did not move either way.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        let (shutdown, mut rx) = watch::channel(false);
        let app = router(state.clone());
        let mut http_rx = rx.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = http_rx.wait_for(|v| *v).await;
                })
                .await
        });
        let hub = state.hub.clone();
        state.store.watch_remote(Arc::new(move |org| hub.watched(org)));
        let feed = state.store.remote_changes().map(|mut changes| {
            let (fstate, mut stop) = (state.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = changes.recv() => match r {
                            Ok(change) => crate::publish::publish_remote(&fstate, &change),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!(missed = n, "the live hub fell behind other nodes' changes");
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        },
                        _ = stop.wait_for(|v| *v) => break,
                    }
                }
            })
        });
        let mstate = state.clone();
        let maintenance = tokio::spawn(async move {
            let every = Duration::from_secs(mstate.config.maintenance_interval_secs.max(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stop = tokio::select! {
                    _ = tick.tick() => false,
                    r = rx.wait_for(|v| *v) => { let _ = r.map(|_| ()); true }
                };
                if stop {
                    break;
                }
                crate::maintenance::run_once(&mstate).await;
            }
        });
        tracing::info!(%addr, store = state.store.backend(), "waymark is listening");
        Ok(Server { addr, state, shutdown, http, maintenance, feed })
    }

    /// Stop accepting requests, finish in-flight ones, stop background work, and wait for all of it.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Live streams never end by themselves; give in-flight requests a moment, then stop.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http).await;
        let _ = self.maintenance.await;
        if let Some(feed) = self.feed {
            let _ = feed.await;
        }
    }

    /// Run until Ctrl-C / SIGTERM, then shut down.
    pub async fn run_until_signal(self) {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}
