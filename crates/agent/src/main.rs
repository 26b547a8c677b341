//! The `cronfleet` command. Everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    cronfleet::cli::main()
}
