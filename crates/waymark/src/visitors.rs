//! The demo's live visitors: simulated shoppers ([`waymark_sim`]) who browse in real time and whose every
//! page view, search and custom event is posted through the public ingestion API
//! (`POST /api/v2/journey/deployments/{id}/webevents`), exactly like the tracking script would. A few
//! visitors are on the site at any moment; think times are the simulator's, sped up so the demo stays lively.

use std::time::Duration;
use tokio::time::Instant;
use waymark_domain::Timestamp;
use waymark_sim::{Simulator, Visit};

/// How the stream behaves.
#[derive(Debug, Clone)]
pub struct VisitorStream {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    pub deployment_id: String,
    /// New visitors per minute.
    pub per_minute: u32,
    /// At most this many visitors on the site at once.
    pub max_concurrent: usize,
    /// Think times are divided by this.
    pub speedup: f64,
    pub seed: u64,
}

struct OnSite {
    visit: Visit,
    next: usize,
    arrived: Instant,
}

impl VisitorStream {
    /// Run until the task is dropped or aborted.
    pub async fn run(self) {
        let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the demo visitors cannot start an HTTP client");
                return;
            }
        };
        let url = format!("{}/api/v2/journey/deployments/{}/webevents", self.base, self.deployment_id);
        let mut sim = Simulator::new(self.seed);
        let mut on_site: Vec<OnSite> = Vec::new();
        let arrival_every = Duration::from_secs_f64(60.0 / f64::from(self.per_minute.max(1)));
        let mut next_arrival = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut failures = 0u32;
        loop {
            tick.tick().await;
            let now = Instant::now();
            if now >= next_arrival && on_site.len() < self.max_concurrent {
                on_site.push(OnSite { visit: sim.visit(), next: 0, arrived: now });
                next_arrival = now + arrival_every;
            }
            for v in &mut on_site {
                while let Some(e) = v.visit.events.get(v.next) {
                    let due = v.arrived + Duration::from_secs_f64(e.offset_ms as f64 / 1000.0 / self.speedup.max(0.1));
                    if due > now {
                        break;
                    }
                    let body = e.request_at(Timestamp::from_unix_millis(unix_millis()));
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => failures = 0,
                        Ok(r) => {
                            failures += 1;
                            if failures <= 3 {
                                tracing::warn!(status = %r.status(), "a demo visitor's event was refused");
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if failures <= 3 {
                                tracing::warn!(error = %e, "a demo visitor's event could not be sent");
                            }
                        }
                    }
                    v.next += 1;
                }
            }
            on_site.retain(|v| v.next < v.visit.events.len());
        }
    }
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
