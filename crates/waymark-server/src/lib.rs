//! Waymark's HTTP server.
//!
//! - [`tracking`]: public ingestion (web events, pings), keyed by deployment and origin.
//! - [`journey_api`]: the Genesys-compatible Journey read API, behind [`auth::Authorized`] guards.
//! - [`live_api`] and [`live`]: server push of journey changes to agents.
//! - [`app`]: routes, middleware and the server lifecycle; [`maintenance`]: the background jobs.
//! - [`actions_api`]: action maps CRUD and offer state reports (`actionevent`).
//! - [`sdk`]: the tracking script (`/sdk/waymark.js`).
//! - [`bootstrap`] and [`accounts`]: organisations, users, roles, tokens.

pub mod accounts;
pub mod actions_api;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod error;
pub mod journey_api;
pub mod live;
pub mod live_api;
pub mod maintenance;
pub mod publish;
pub mod rate_limit;
pub mod sdk;
pub mod state;
pub mod tracking;

pub use app::Server;
pub use config::ServerConfig;
pub use state::AppState;
