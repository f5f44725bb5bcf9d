//! The `rc1` binary: parse the command line, run, print errors.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rc1::cli::Cli::parse();
    match rc1::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Output writers ignore a closed stdout (`rc1 … | head`), so an
            // error here is a real one, a socket's broken pipe included.
            // (And a closed stderr must not turn the error into a panic.)
            let _ = writeln!(std::io::stderr(), "rc1: {err:#}");
            ExitCode::FAILURE
        }
    }
}
