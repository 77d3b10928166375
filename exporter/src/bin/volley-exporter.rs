//! `volley-exporter`: the daemon. All logic lives in the library.

// jemalloc, so that RSS over a long run follows the load (see `volley_window::allocator`).
volley_window::jemalloc!();

fn main() {
    std::process::exit(volley_exporter::daemon::main(std::env::args_os()));
}
