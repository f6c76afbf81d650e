//! The shared state every handler sees: the store, enrichment, configuration, clock, live hub and the small
//! caches in front of the store (deployments, tokens, rate limiters).

use crate::auth::{AuthCache, new_auth_cache};
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::live::LiveHub;
use crate::rate_limit::RateLimiters;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_domain::deployment::Deployment;
use waymark_domain::ids::{DeploymentId, OrgId};
use waymark_domain::journey::SessionRules;
use waymark_enrich::{Enricher, TrustedProxies};
use waymark_store::{JourneyConfig, RecordKind, Store, StoreResult};

/// Cheap to clone: everything is behind `Arc`s.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub enricher: Arc<Enricher>,
    pub config: Arc<ServerConfig>,
    pub clock: Clock,
    pub hub: Arc<LiveHub>,
    pub trusted_proxies: Arc<TrustedProxies>,
    pub auth_cache: Arc<AuthCache>,
    pub limiters: Arc<RateLimiters>,
    deployments: Arc<Mutex<HashMap<DeploymentId, (Option<Arc<Deployment>>, Instant)>>>,
    journey_configs: Arc<Mutex<HashMap<OrgId, (Arc<JourneyConfig>, Instant)>>>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

const DEPLOYMENT_TTL: Duration = Duration::from_secs(5);

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
        AppState {
            store,
            enricher,
            hub: Arc::new(LiveHub::new(config.max_live_connections)),
            config: Arc::new(config),
            clock,
            trusted_proxies: Arc::new(trusted_proxies),
            auth_cache: new_auth_cache(),
            limiters,
            deployments: Arc::new(Mutex::new(HashMap::new())),
            journey_configs: Arc::new(Mutex::new(HashMap::new())),
            metrics,
        }
    }

    /// A deployment by id, cached for a few seconds (unknown ids too, so floods of bad ids stay cheap).
    pub async fn deployment(&self, id: DeploymentId) -> StoreResult<Option<Arc<Deployment>>> {
        if let Some((d, at)) = self.deployments.lock().get(&id).cloned()
            && at.elapsed() < DEPLOYMENT_TTL
        {
            return Ok(d);
        }
        let found = match self.store.get_record(RecordKind::Deployment, &id.to_string()).await? {
            Some(r) => Some(Arc::new(r.decode::<Deployment>()?)),
            None => None,
        };
        let mut cache = self.deployments.lock();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(id, (found.clone(), Instant::now()));
        Ok(found)
    }

    /// Forget a cached deployment after it changed.
    pub fn forget_deployment(&self, id: DeploymentId) {
        self.deployments.lock().remove(&id);
    }

    /// The journey rules in force for an organisation.
    pub async fn journey_config(&self, org: OrgId) -> StoreResult<Arc<JourneyConfig>> {
        if let Some((c, at)) = self.journey_configs.lock().get(&org).cloned()
            && at.elapsed() < DEPLOYMENT_TTL
        {
            return Ok(c);
        }
        let mut action_maps = Vec::new();
        for r in self.store.list_records(RecordKind::ActionMap, Some(org)).await? {
            action_maps.push(r.decode::<waymark_domain::action_map::ActionMap>()?);
        }
        let config = Arc::new(JourneyConfig {
            session: SessionRules { inactivity_timeout_secs: self.config.session_timeout_secs },
            action_maps,
            offer_policy: self.config.offers,
        });
        self.journey_configs.lock().insert(org, (config.clone(), Instant::now()));
        Ok(config)
    }

    /// Forget an organisation's cached journey rules after a definition changed.
    pub fn forget_journey_config(&self, org: OrgId) {
        self.journey_configs.lock().remove(&org);
    }
}
