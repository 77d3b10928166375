//! `volley-exporter`: the daemon. All logic lives in the library.

fn main() {
    std::process::exit(volley_exporter::daemon::main(std::env::args_os()));
}
