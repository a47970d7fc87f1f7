//! Provisor's rendering: the vendor catalog and templates (built in from `vendors/`, or
//! overridden from a directory), and the template environment that turns a device's
//! context into the files its phone asks for.
//!
//! Rendering is pure: it takes a `Context` (built by the caller from the store) and returns
//! text. What a value may contain is decided per output format here, once: XML and HTML
//! files escape every value; line-based formats (`key = value`) cannot carry a line break,
//! so breaks in values become spaces and a value can never add a key of its own.
#![forbid(unsafe_code)]

pub mod context;
mod env;
mod load;
pub mod stored;
pub mod threecx;
pub mod timezone;

pub use context::{Context, Detected, DeviceInfo, Line, Provisioning};
pub use env::{RenderError, Rendered, Renderer, Unstorable, escape_xml};
pub use load::{LoadError, Vendors};
pub use stored::TemplateProblem;
