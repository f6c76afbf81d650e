//! Abuse limits on the public endpoints: per client IP and per deployment (GCRA via `governor`), and sign-in
//! attempts per IP and per user name. A limited request gets 429 with `Retry-After`.

use crate::config::RateLimits;
use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use waymark_domain::ErrorCode;
use waymark_domain::ids::DeploymentId;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub struct RateLimiters {
    per_ip: Keyed<IpAddr>,
    per_deployment: Keyed<DeploymentId>,
    login: Keyed<String>,
    clock: DefaultClock,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl RateLimiters {
    pub fn new(c: &RateLimits) -> Self {
        RateLimiters {
            per_ip: RateLimiter::keyed(Quota::per_second(nz(c.per_ip_per_sec)).allow_burst(nz(c.per_ip_burst))),
            per_deployment: RateLimiter::keyed(
                Quota::per_second(nz(c.per_deployment_per_sec)).allow_burst(nz(c.per_deployment_burst)),
            ),
            login: RateLimiter::keyed(Quota::per_minute(nz(c.login_per_minute))),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(&self, limiter: &Keyed<K>, key: &K, what: &str) -> Result<(), ApiError> {
        match limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                metrics::counter!("waymark_rate_limited_total", "limit" => what.to_string()).increment(1);
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!("too many requests ({what}); slow down and retry after {secs} s"),
                )
                .with_retry_after(secs.max(1)))
            }
        }
    }

    /// One tracking request from `ip` for `deployment`.
    pub fn tracking(&self, ip: IpAddr, deployment: DeploymentId) -> Result<(), ApiError> {
        self.check(&self.per_ip, &ip, "per client address")?;
        self.check(&self.per_deployment, &deployment, "per deployment")
    }

    /// One sign-in attempt.
    pub fn login(&self, ip: IpAddr, user: &str) -> Result<(), ApiError> {
        self.check(&self.login, &format!("ip:{ip}"), "sign-in attempts")?;
        self.check(&self.login, &format!("user:{}", user.to_lowercase()), "sign-in attempts")
    }

    /// Drop state of keys that are back to full capacity (bounded memory).
    pub fn shrink(&self) {
        self.per_ip.retain_recent();
        self.per_deployment.retain_recent();
        self.login.retain_recent();
        self.per_ip.shrink_to_fit();
    }
}
