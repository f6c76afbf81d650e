//! Integration tests: a real server on port 0 with a real store, driven over HTTP.
//! Every test runs against every store backend (see `store_tests!`).

mod harness;

mod actions;
mod auth;
mod identity;
mod live;
mod tracker_browser;
mod tracking;
