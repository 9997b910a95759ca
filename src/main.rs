//! Command-line parsing and wiring; the work is done in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before the first allocation worth keeping (see the function).
    camwatch::device::reuse_freed_memory();
    let args = cli::Cli::parse();
    // A panic is a bug, but it still ends in one line naming what failed, not a
    // backtrace and status 101.
    let outcome = camwatch::isolate::isolated(|| cli::run(args).map_err(|e| format!("{e:#}")))
        .unwrap_or_else(Err);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // File names and names from files can hold terminal escape sequences.
            eprintln!("camwatch: {}", camwatch::paths::for_terminal(&e));
            ExitCode::FAILURE
        }
    }
}
