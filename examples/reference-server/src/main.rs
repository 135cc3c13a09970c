//! `reference-server`: the multitenant service of the deployment guide.
//!
//! Configuration comes from the environment and `.env`; see the configuration table in docs/operations.md.

use std::process::ExitCode;

use reference_server::{App, Config, StartupError, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("reference-server: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run() -> Result<(), StartupError> {
    let config = Config::load()?;
    telemetry::init(&config)?;
    App::build(config).await?.serve().await
}
