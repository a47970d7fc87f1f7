//! The `provisor` binary's library half: configuration, start-up, the command line.
//! `main.rs` only parses arguments and calls `cli::run`; tests drive the same functions.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod startup;
pub mod tls;
