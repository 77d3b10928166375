//! Reference servers that Volley's demo, tests and benchmarks run against.
//!
//! # Layout
//! - [`http`]: `volley-testbed http`, a fast HTTP/1.1 target with delay,
//!   status, payload, JSON and echo endpoints and exact request counters.
//! - [`cli`]: the `volley-testbed` command line (one subcommand per server).

pub mod cli;
pub mod http;

pub use http::{HttpStats, HttpTestbed};
