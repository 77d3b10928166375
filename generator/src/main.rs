//! `volley`: the generator CLI. All logic lives in the library.

fn main() {
    std::process::exit(volley::app::main(std::env::args_os()));
}
