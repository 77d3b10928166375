//! Reference servers that Volley's demo, tests and benchmarks run against.
//!
//! # Layout
//! - [`http`]: `volley-testbed http`, a fast HTTP/1.1 target with delay,
//!   status, payload, JSON and echo endpoints and exact request counters.
//! - [`im`]: `volley-testbed im`, the reference IM gateway (JWT, PING/PONG,
//!   MSG routing across instances through Redis, fault injection).
//! - [`limits`]: raising the open-files limit for many connections.
//! - [`cli`]: the `volley-testbed` command line (one subcommand per server).

pub mod cli;
pub mod http;
pub mod im;
pub mod limits;

pub use http::{AuthConfig, HttpStats, HttpTestbed};
pub use im::{ImConfig, ImGateway, ImStats};
