//! The `cen-poller` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    cen_poller::cli::run(cen_poller::cli::Cli::parse())
}
