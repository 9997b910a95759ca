//! Command-line parsing and wiring; the work is done in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("camwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
