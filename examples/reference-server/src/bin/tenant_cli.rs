//! `tenant-cli`: operate a tenant-manager deployment from the shell.

use std::process::ExitCode;

fn main() -> ExitCode {
    reference_server::cli::main()
}
