//! Server configuration: every tunable in one place, with the product's defaults. Loaded by the binary from
//! file, environment and flags.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use waymark_domain::limits::InputLimits;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The address users reach the server at, used in printed links.
    pub public_url: Option<String>,
    pub limits: InputLimits,
    /// Web sessions end after this many seconds without events.
    pub session_timeout_secs: i64,
    /// Data older than this is never shown and is purged.
    pub retention_days: i64,
    /// Proxies whose `X-Forwarded-For` is believed (CIDR list).
    pub trusted_proxies: Vec<String>,
    pub rate_limits: RateLimits,
    /// Open live streams at most (per node).
    pub max_live_connections: usize,
    /// Mark session cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Region for phone numbers written without a country code (`US`, `KR`, …).
    pub default_phone_region: Option<String>,
    pub geoip_city_db: Option<PathBuf>,
    pub ua_regexes: Option<PathBuf>,
    /// Seconds between retention runs.
    pub maintenance_interval_secs: u64,
    /// How often the tracker should ping, in milliseconds.
    pub ping_interval_ms: i64,
    /// A request body must arrive completely within this many seconds (slow-body / slowloris defence).
    pub body_timeout_secs: u64,
    /// Origins allowed to embed the agent view in an iframe (CSP `frame-ancestors`), e.g.
    /// `https://desk.example.com`; empty = only Waymark's own pages.
    pub ui_frame_ancestors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct RateLimits {
    /// Tracking requests per second per client IP (sustained) and burst.
    pub per_ip_per_sec: u32,
    pub per_ip_burst: u32,
    /// Tracking requests per second per deployment and burst.
    pub per_deployment_per_sec: u32,
    pub per_deployment_burst: u32,
    /// Sign-in attempts per minute per IP and per user name.
    pub login_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_ip_per_sec: 50,
            per_ip_burst: 200,
            per_deployment_per_sec: 20_000,
            per_deployment_burst: 40_000,
            login_per_minute: 10,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            limits: InputLimits::default(),
            session_timeout_secs: 20 * 60,
            retention_days: 60,
            trusted_proxies: Vec::new(),
            rate_limits: RateLimits::default(),
            max_live_connections: 20_000,
            secure_cookies: false,
            default_phone_region: None,
            geoip_city_db: None,
            ua_regexes: None,
            maintenance_interval_secs: 60,
            ping_interval_ms: 5_000,
            body_timeout_secs: 10,
            ui_frame_ancestors: Vec::new(),
        }
    }
}
