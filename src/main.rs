//! The `rc1` binary: parse the command line, run, print errors.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rc1::cli::Cli::parse();
    match rc1::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`rc1 … | head`) is not an error worth a message.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("rc1: {err:#}");
            ExitCode::FAILURE
        }
    }
}
