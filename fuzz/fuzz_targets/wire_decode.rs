//! Any bytes a client can send must decode or be refused, never panic,
//! hang, or allocate beyond the frame limit; what decodes must re-encode to
//! something that decodes to the same message, and a decoded window must
//! pass the exporter's whole data path (merge, report, line protocol, OTLP)
//! without a panic.
#![no_main]

#[path = "../../exporter/tests/path/mod.rs"]
mod path;

use libfuzzer_sys::fuzz_target;
use volley_window::wire::{decode, encode, ToExporter, ToGenerator};

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode::<ToExporter>(data, LIMIT) {
        let again = encode(&msg);
        let back: ToExporter = decode(&again, usize::MAX).expect("a re-encoded message decodes");
        assert_eq!(encode(&back), again);
        if let ToExporter::Window(w) | ToExporter::WindowPart { report: w, .. } = msg {
            path::exercise(w);
        }
    }
    let _ = decode::<ToGenerator>(data, LIMIT);
});
