//! The `pgwarden` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    pgwarden::cli::main()
}
