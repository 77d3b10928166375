//! Reference servers that Volley's demo, tests and benchmarks run against.
//!
//! # Layout
//! - [`http`]: `volley-testbed http`, a fast HTTP/1.1 target with delay,
//!   status, payload, JSON, echo and peer-address endpoints and exact
//!   request counters.
//! - [`im`]: `volley-testbed im`, the reference IM gateway (JWT, PING/PONG,
//!   MSG routing across instances through Redis, fault injection).
//! - [`limits`]: raising the open-files limit for many connections.
//! - [`peers`]: connections (and `/peer` requests) per client address.
//! - [`cli`]: the `volley-testbed` command line (one subcommand per server).

pub mod cli;
pub mod http;
pub mod im;
pub mod limits;
pub mod peers;

pub use http::{AuthConfig, HttpStats, HttpTestbed};
pub use im::{ImConfig, ImGateway, ImStats};
