//! `tenant-cli wall ...`: the tenant wall of the deployment's schema and shared databases
//! (upgrade, key rotation, checks). Each command prints its report as JSON on stdout.

use std::time::Duration;

use super::WallCommand;
use super::exit::{CliError, Exit};
use super::ops::{Ops, print_json};

/// Longest grace period `retire-key` accepts.
const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs one `wall` action.
pub(crate) async fn run(ops: &Ops, action: WallCommand) -> Result<Exit, CliError> {
    let wall = ops.postgres.wall()?;
    match action {
        WallCommand::Migrate => {
            print_json(&wall.install().await?);
            Ok(Exit::Success)
        }
        WallCommand::RotateKey { key_id } => {
            let keys = ops.postgres.wall_key(&ops.config, key_id)?;
            print_json(&wall.add_key(&keys).await?);
            eprintln!(
                "wall key {key_id} is valid in every walled database: restart the instances \
                 with WALL_KEY_ID={key_id}, then retire the old key with `tenant-cli wall \
                 retire-key --key-id <old id>` (run with WALL_KEY_ID={key_id})"
            );
            Ok(Exit::Success)
        }
        WallCommand::RetireKey { key_id, grace } => {
            print_json(&wall.retire_key(key_id, grace).await?);
            Ok(Exit::Success)
        }
        WallCommand::PurgeKeys => {
            print_json(&wall.purge_keys().await?);
            Ok(Exit::Success)
        }
        WallCommand::Check => {
            let check = wall.check().await?;
            print_json(&check);
            for problem in &check.problems {
                eprintln!("problem: {problem}");
            }
            Ok(if check.is_ok() {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
    }
}

/// A grace period: a whole number followed by `s`, `m`, `h` or `d` (seconds when there is no
/// unit), at most 30 days.
///
/// # Errors
/// What is wrong with `text`, for clap to print.
pub(crate) fn parse_grace(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| "must be a whole number followed by s, m, h or d (10m)".to_owned())?;
    let grace = number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .filter(|grace| *grace <= MAX_GRACE)
        .ok_or_else(|| "must be at most 30 days".to_owned())?;
    Ok(grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_take_a_unit() {
        assert_eq!(parse_grace("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_grace("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_grace("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grace("30d"), Ok(MAX_GRACE));
        for bad in [
            "",
            "m",
            "10x",
            "-1m",
            "1.5h",
            "31d",
            "99999999999999999999d",
        ] {
            assert!(parse_grace(bad).is_err(), "{bad}");
        }
    }
}
