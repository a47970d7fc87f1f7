//! Black-box tests of the `provisor` binary and its HTTP API, on SQLite and PostgreSQL.

mod abuse;
mod api;
mod auto;
mod bulk;
mod cache;
mod cli;
mod codes;
mod console;
mod contract;
mod firmware;
mod innovaphone;
mod isolation;
mod jobs;
mod nodes;
mod ops;
mod phones;
mod rollouts;
mod softphones;
mod startup;
mod templates;
mod tls;
mod webhooks;
