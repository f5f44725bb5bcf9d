//! The `rc1` binary: parse the command line, run, print errors.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rc1::cli::Cli::parse();
    match rc1::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Output writers ignore a closed stdout (`rc1 … | head`), so an
            // error here is a real one, a socket's broken pipe included.
            eprintln!("rc1: {err:#}");
            ExitCode::FAILURE
        }
    }
}
