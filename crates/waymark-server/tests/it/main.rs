//! Integration tests: a real server on port 0 with a real store, driven over HTTP.
//! Every test runs against every store backend (see `store_tests!`).

mod harness;

mod agent_ui;
mod auth;
mod conversations;
mod hostile;
mod identity;
mod limits;
mod live;
mod nodes;
mod openapi;
mod scores;
mod sdk_compat;
mod segments;
mod tracking;
