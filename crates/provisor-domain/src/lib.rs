//! Provisor's types and rules, without I/O.
//!
//! This crate owns what a value *is* and which values are valid: MAC addresses, names,
//! the data model shared by every layer, settings merging, secret encryption, password
//! and token hashing, and the bulk CSV format. It never touches a socket, a file or a
//! database, so every rule here is testable in isolation and reused unchanged by the
//! HTTP API, the CLI and the stores.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod code;
pub mod csv;
pub mod digest;
pub mod innovaphone;
pub mod mac;
#[macro_use]
pub mod model;
pub mod job;
pub mod names;
pub mod password;
pub mod phone;
pub mod secret;
pub mod settings;
pub mod template;
pub mod token;

mod invalid;

pub use invalid::Invalid;
pub use mac::Mac;
