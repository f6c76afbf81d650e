//! Waymark's pure domain model.
//!
//! This crate owns the vocabulary of a customer journey — organisations, deployments, customers, external
//! contacts, sessions and events — and every rule that turns raw tracking input into a journey:
//! validation at the edge ([`web_event`]), URL/referrer/campaign/search enrichment ([`page`], [`referrer`]),
//! sessionization and identity stitching ([`journey`], [`identity`]), segments and outcomes
//! ([`segment`], [`outcome`]) and their incremental matcher ([`rules`]), permissions ([`permission`]) and the one
//! table of wire error codes ([`error_code`]).
//!
//! Invariant: **no I/O**. Nothing here reads a file, a socket or the clock; time is always passed in as a
//! [`time::Timestamp`]. That keeps every rule deterministic and property-testable.

pub mod action_map;
pub mod conversation;
pub mod deployment;
pub mod error_code;
pub mod event;
pub mod identity;
pub mod ids;
pub mod journey;
pub mod limits;
pub mod offer;
pub mod outcome;
pub mod page;
pub mod permission;
pub mod predict;
pub mod referrer;
pub mod rules;
pub mod segment;
pub mod session;
pub mod time;
pub mod url_cache;
pub mod web_event;
pub mod wire;

pub use error_code::{ErrorCode, Rejection};
pub use ids::*;
pub use time::Timestamp;
