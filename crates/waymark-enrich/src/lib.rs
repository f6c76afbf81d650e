//! Enrichment from outside data: what a visitor's User-Agent and IP address say about them.
//!
//! - [`UserAgentParser`] turns a User-Agent into browser, OS and device (built-in rules, or uap-core's
//!   `regexes.yaml` loaded at run time), and [`device::device_category`] derives desktop/mobile/tablet/bot.
//! - [`GeoProvider`] looks an address up in a MaxMind `.mmdb` file the operator configured (or does nothing).
//! - [`client_ip`] finds the visitor's address behind trusted reverse proxies.
//! - [`Enricher`] puts them together into the domain's [`Enrichment`] for one event.
//!
//! Nothing here needs a data file to build or run: without configuration the User-Agent parser uses built-in
//! rules and geolocation stays empty.

pub mod client_ip;
pub mod device;
mod enricher;
mod error;
pub mod geo;
#[cfg(test)]
mod shared_test_data;
pub mod user_agent;

pub use client_ip::{TrustedProxies, client_ip};
pub use enricher::{Enricher, RequestEnrichments};
pub use error::EnrichError;
pub use geo::GeoProvider;
pub use user_agent::{ParsedUserAgent, UserAgentParser};
pub use waymark_domain::journey::Enrichment;
