//! `volley-testbed`: reference target servers. All logic lives in the library.

fn main() -> anyhow::Result<()> {
    volley_testbed::cli::main()
}
