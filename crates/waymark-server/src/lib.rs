//! Waymark's HTTP server.
//!
//! - [`tracking`]: public ingestion (web events, pings), keyed by deployment and origin.
//! - [`journey_api`]: the Genesys-compatible Journey read API, behind [`auth::Authorized`] guards; its listings
//!   are written from the stored JSON by [`journey_wire`].
//! - [`conversation_api`]: conversation lifecycle ingestion from the contact center; [`routing_api`]: queues,
//!   wrap-up codes and users.
//! - [`live_api`] and [`live`]: server push of journey changes to agents.
//! - [`rules_api`]: segment and outcome administration (Genesys CRUD).
//! - [`predictions`] and [`scores_api`]: live outcome predictions, their training and their read API.
//! - [`app`]: routes, middleware and the server lifecycle; [`maintenance`]: the background jobs.
//! - [`bootstrap`] and [`accounts`]: organisations, users, roles, tokens; [`sign_in`]: OAuth and password
//!   sign-in; [`admin_api`]: administration; [`openapi`]: the generated API document.
//! - [`agent_ui`]: the agent's Customer Journey view (embedded page and assets).
//! - [`actions_api`]: action maps CRUD and offer state reports (`actionevent`); [`sdk`]: the tracking script.

pub mod accounts;
pub mod actions_api;
pub mod admin_api;
pub mod agent_ui;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod conversation_api;
pub mod error;
pub mod journey_api;
pub mod journey_wire;
pub mod live;
pub mod live_api;
pub mod maintenance;
pub mod openapi;
pub mod predictions;
pub mod publish;
pub mod rate_limit;
pub mod routing_api;
pub mod rules_api;
pub mod scores_api;
pub mod sdk;
pub mod sign_in;
pub mod state;
pub mod tracking;

pub use app::Server;
pub use config::ServerConfig;
pub use state::AppState;
