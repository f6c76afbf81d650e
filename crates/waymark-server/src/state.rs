//! The shared state every handler sees: the store, enrichment, configuration, clock, live hub and the small
//! caches in front of the store (deployments, tokens, rate limiters).

use crate::auth::{AuthCache, new_auth_cache};
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::live::LiveHub;
use crate::predictions::Predictions;
use crate::rate_limit::RateLimiters;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_domain::deployment::Deployment;
use waymark_domain::ids::{DeploymentId, OrgId};
use waymark_domain::journey::SessionRules;
use waymark_domain::outcome::OutcomeDefinition;
use waymark_domain::rules::RuleSet;
use waymark_domain::segment::SegmentDefinition;
use waymark_domain::url_cache::UrlCache;
use waymark_enrich::{Enricher, TrustedProxies};
use waymark_store::{JourneyConfig, Record, RecordKind, Store, StoreResult};

/// A stored definition, or `None` (logged) when its body does not decode.
fn decoded<T: serde::de::DeserializeOwned>(r: &Record) -> Option<T> {
    r.decode()
        .map_err(
            |e| tracing::error!(kind = r.kind.as_str(), id = %r.id, error = %e, "skipping an unreadable definition"),
        )
        .ok()
}

/// Cheap to clone: one reference count. Every request's extractor clones the state and drops the clone; with a
/// dozen `Arc`s inline that was a dozen atomic increments and decrements per request, on counters that both
/// worker threads shared.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct AppParts {
    pub store: Arc<dyn Store>,
    pub enricher: Arc<Enricher>,
    pub config: Arc<ServerConfig>,
    pub clock: Clock,
    pub hub: Arc<LiveHub>,
    /// Outcome models and live session scores.
    pub predictions: Arc<Predictions>,
    pub trusted_proxies: Arc<TrustedProxies>,
    pub auth_cache: Arc<AuthCache>,
    pub limiters: Arc<RateLimiters>,
    deployments: Arc<Mutex<HashMap<DeploymentId, CachedDeployment>>>,
    journey_configs: Arc<Mutex<HashMap<OrgId, CachedConfig>>>,
    /// Serializes segment/outcome writes, so that the per-organisation limits hold under concurrency.
    pub definitions_lock: Arc<tokio::sync::Mutex<()>>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The tracking endpoint's counters, looked up once (by name and label it was a registry lookup each).
    pub web_events_ingested: metrics::Counter,
    pub web_events_rejected: metrics::Counter,
}

/// A deployment as read from the store (`None`: no such deployment), with its URL cache, and when it was read.
#[derive(Clone)]
struct CachedDeployment {
    found: Option<(Arc<Deployment>, Arc<UrlCache>)>,
    at: Instant,
}

const DEPLOYMENT_TTL: Duration = Duration::from_secs(5);

/// A compiled journey configuration, when it was checked, and the (kind, id, version) stamp it was built from.
#[derive(Clone)]
struct CachedConfig {
    config: Arc<JourneyConfig>,
    checked: Instant,
    stamp: u64,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        enricher: Arc<Enricher>,
        config: ServerConfig,
        clock: Clock,
        trusted_proxies: TrustedProxies,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        let limiters = Arc::new(RateLimiters::new(&config.rate_limits));
        AppState(Arc::new(AppParts {
            store,
            enricher,
            hub: Arc::new(LiveHub::new(config.max_live_connections)),
            predictions: Arc::new(Predictions::new()),
            config: Arc::new(config),
            clock,
            trusted_proxies: Arc::new(trusted_proxies),
            auth_cache: new_auth_cache(),
            limiters,
            deployments: Arc::new(Mutex::new(HashMap::new())),
            journey_configs: Arc::new(Mutex::new(HashMap::new())),
            definitions_lock: Arc::new(tokio::sync::Mutex::new(())),
            metrics,
            web_events_ingested: metrics::counter!("waymark_events_ingested_total", "kind" => "web"),
            web_events_rejected: metrics::counter!("waymark_events_rejected_total", "kind" => "web"),
        }))
    }

    /// A deployment by id, cached for a few seconds (unknown ids too, so floods of bad ids stay cheap).
    pub async fn deployment(&self, id: DeploymentId) -> StoreResult<Option<Arc<Deployment>>> {
        Ok(self.tracked_deployment(id).await?.map(|(d, _)| d))
    }

    /// [`AppState::deployment`] with the cache of the page URLs and referrers its visitors sent, which lives as
    /// long as the deployment's page rules do not change (a refresh that finds the same rules keeps it).
    pub async fn tracked_deployment(&self, id: DeploymentId) -> StoreResult<Option<(Arc<Deployment>, Arc<UrlCache>)>> {
        let previous = self.deployments.lock().get(&id).cloned();
        if let Some(c) = &previous
            && c.at.elapsed() < DEPLOYMENT_TTL
        {
            return Ok(c.found.clone());
        }
        let found = match self.store.get_record(RecordKind::Deployment, &id.to_string()).await? {
            Some(r) => {
                let d = Arc::new(r.decode::<Deployment>()?);
                let urls = match previous.and_then(|p| p.found) {
                    Some((_, urls)) if urls.fits(&d) => urls,
                    _ => Arc::new(UrlCache::new(&d)),
                };
                Some((d, urls))
            }
            None => None,
        };
        let mut cache = self.deployments.lock();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(id, CachedDeployment { found: found.clone(), at: Instant::now() });
        Ok(found)
    }

    /// Forget a cached deployment after it changed.
    pub fn forget_deployment(&self, id: DeploymentId) {
        self.deployments.lock().remove(&id);
    }

    /// The journey rules in force for an organisation: sessionization settings and the compiled segments and
    /// outcomes. Re-checked against the store every few seconds (so other nodes' edits arrive) and recompiled
    /// only when a definition changed; [`AppState::forget_journey_config`] makes a local edit apply at once.
    pub async fn journey_config(&self, org: OrgId) -> StoreResult<Arc<JourneyConfig>> {
        let cached = self.journey_configs.lock().get(&org).cloned();
        if let Some(c) = &cached
            && c.checked.elapsed() < DEPLOYMENT_TTL
        {
            return Ok(c.config.clone());
        }
        let segments = self.store.list_records(RecordKind::Segment, Some(org)).await?;
        let outcomes = self.store.list_records(RecordKind::Outcome, Some(org)).await?;
        let action_maps = self.store.list_records(RecordKind::ActionMap, Some(org)).await?;
        let mut stamp = std::hash::DefaultHasher::new();
        for r in segments.iter().chain(outcomes.iter()).chain(action_maps.iter()) {
            (r.kind.as_str(), &r.id, r.version).hash(&mut stamp);
        }
        let stamp = stamp.finish();
        let session = SessionRules { inactivity_timeout_secs: self.config.session_timeout_secs };
        let config = match cached {
            Some(c) if c.stamp == stamp && c.config.session == session => c.config,
            _ => {
                let segs: Vec<SegmentDefinition> = segments.iter().filter_map(decoded).collect();
                let outs: Vec<OutcomeDefinition> = outcomes.iter().filter_map(decoded).collect();
                let rules = RuleSet::new(&segs, &outs).unwrap_or_else(|e| {
                    tracing::error!(%org, error = %e, "segments and outcomes cannot be compiled; matching is off");
                    RuleSet::default()
                });
                let action_maps = action_maps.iter().filter_map(decoded).collect();
                Arc::new(JourneyConfig {
                    session,
                    rules: Arc::new(rules),
                    action_maps,
                    offer_policy: self.config.offers,
                    client_event_window_secs: Some(
                        self.config.limits.max_event_age_secs + self.config.limits.max_clock_skew_secs,
                    ),
                })
            }
        };
        let mut cache = self.journey_configs.lock();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(org, CachedConfig { config: config.clone(), checked: Instant::now(), stamp });
        Ok(config)
    }

    /// Forget an organisation's cached journey rules after a definition changed.
    pub fn forget_journey_config(&self, org: OrgId) {
        self.journey_configs.lock().remove(&org);
        self.predictions.forget(org);
    }
}
