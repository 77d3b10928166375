//! k6 duration strings; the parser lives in `volley-window`, shared with the
//! exporter so that every Volley binary reads durations the same way.

pub use volley_window::duration::{format_duration, parse_duration};
