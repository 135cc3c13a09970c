//! Value parsers of the environment variables: clap runs them, and their messages are the
//! reasons of [`ConfigError`](super::ConfigError) (the variable's name is added by
//! [`EnvVars::from_lookup`](super::env::EnvVars::from_lookup)).
//!
//! A message quotes a value only where it cannot be a secret.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use tenant_manager::{Isolation, Secret, StorageNaming};

use super::app_env::{AppEnv, LogFormat};
use super::origins::AllowedOrigins;
use super::self_service::SelfService;

/// Quotes a non-secret value for an error message, shortened to 64 characters.
pub(super) fn shown(value: &str) -> String {
    let short: String = value.chars().take(64).collect();
    if short.len() < value.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// An integer from `LO` to `HI`.
pub(super) fn ranged<T, const LO: u64, const HI: u64>(value: &str) -> Result<T, String>
where
    T: FromStr + TryFrom<u64> + PartialOrd + fmt::Display + Copy,
{
    let expected = format!("an integer from {LO} to {HI}");
    let parsed: T = value
        .parse()
        .map_err(|_| format!("must be {expected} (got {})", shown(value)))?;
    let in_range = T::try_from(LO).is_ok_and(|lo| parsed >= lo)
        && T::try_from(HI).is_ok_and(|hi| parsed <= hi);
    if in_range {
        Ok(parsed)
    } else {
        Err(format!("must be {expected} (got {parsed})"))
    }
}

/// A boolean: `true/false`, `1/0`, `yes/no`, `on/off` (any case).
pub(super) fn flag(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("must be true or false (got {})", shown(value))),
    }
}

/// A Postgres name part: 1 to `MAX` lowercase ASCII letters, digits or `_`, starting with a
/// letter.
pub(super) fn identifier<const MAX: usize>(value: &str) -> Result<String, String> {
    let ok = value.len() <= MAX
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "must be 1 to {MAX} lowercase letters, digits or _, starting with a letter (got {})",
            shown(value)
        ))
    }
}

/// `TENANT_STORAGE_PREFIX`: an identifier that is a valid [`StorageNaming`] prefix.
pub(super) fn storage_prefix(value: &str) -> Result<String, String> {
    let prefix = identifier::<{ StorageNaming::MAX_PREFIX_LEN }>(value)?;
    StorageNaming::new(&prefix)
        .map_err(|e| format!("{e} (no _: tenants are named <prefix>_t_<slug>)"))?;
    Ok(prefix)
}

/// A printable value of at most `MAX` characters.
pub(super) fn text<const MAX: usize>(value: &str) -> Result<String, String> {
    if value.chars().count() > MAX || value.chars().any(char::is_control) {
        return Err(format!("must be at most {MAX} printable characters"));
    }
    Ok(value.to_owned())
}

/// A secret: any value, kept out of every message.
pub(super) fn secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

/// `APP_ENV` / `NODE_ENV`.
pub(super) fn app_env(value: &str) -> Result<AppEnv, String> {
    value.parse().map_err(|()| {
        format!(
            "must be production, development or test (got {})",
            shown(value)
        )
    })
}

/// `BIND_ADDRESS`.
pub(super) fn ip_address(value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("must be an IP address (got {})", shown(value)))
}

/// `POSTGRES_PORT`.
pub(super) fn port_number(value: &str) -> Result<u16, String> {
    value
        .parse()
        .map_err(|_| format!("must be a port number (got {})", shown(value)))
}

/// `POSTGRES_ADMIN_PORT`: a port number other than 0.
pub(super) fn nonzero_port(value: &str) -> Result<u16, String> {
    match port_number(value)? {
        0 => Err("must not be 0".to_owned()),
        port => Ok(port),
    }
}

/// `ALLOWED_ORIGINS`.
pub(super) fn origins(value: &str) -> Result<AllowedOrigins, String> {
    AllowedOrigins::parse(value).map_err(|e| e.reason)
}

/// `LOG_LEVEL`: any `EnvFilter` directive.
pub(super) fn log_level(value: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|_| {
            "must be error, warn, info, debug, trace or a tracing filter directive".to_owned()
        })
}

/// `LOG_FORMAT`.
pub(super) fn log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        _ => Err("must be json or text".to_owned()),
    }
}

/// `PASSWORD_HASHING`: whether the cheap test parameters are asked for.
pub(super) fn fast_hashing(value: &str) -> Result<bool, String> {
    match value {
        "owasp" => Ok(false),
        "fast" => Ok(true),
        _ => Err("must be owasp or fast".to_owned()),
    }
}

/// `REDIS_KEY_PREFIX`.
pub(super) fn redis_key_prefix(value: &str) -> Result<String, String> {
    let ok = value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_-.".contains(&b));
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be at most 64 of [A-Za-z0-9:_.-]".to_owned())
    }
}

/// `SELF_SERVICE_ISOLATION`: a comma-separated list of isolations, without repeats.
pub(super) fn self_service(value: &str) -> Result<SelfService, String> {
    let mut isolations = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let isolation = entry
            .to_ascii_lowercase()
            .parse::<Isolation>()
            .map_err(|_| format!("{entry:?} is not database, schema or shared"))?;
        if !isolations.contains(&isolation) {
            isolations.push(isolation);
        }
    }
    if isolations.is_empty() {
        return Err("must list at least one of database, schema, shared".to_owned());
    }
    Ok(SelfService::default().with_isolations(isolations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_out_of_range_are_refused_with_the_value() {
        let err = ranged::<u16, 1, 65535>("70000").err();
        assert!(err.is_some_and(|e| e.contains("70000")));
        assert!(ranged::<u32, 1, 5>("abc").is_err());
        assert_eq!(ranged::<u32, 1, 5>("3").ok(), Some(3));
        assert_eq!(
            ranged::<i32, 1, 2_147_483_647>("-1").err().as_deref(),
            Some("must be an integer from 1 to 2147483647 (got -1)")
        );
    }

    #[test]
    fn flags_accept_common_spellings_only() {
        assert_eq!(flag("TRUE"), Ok(true));
        assert_eq!(flag("off"), Ok(false));
        assert!(flag("maybe").is_err());
    }

    #[test]
    fn identifiers_are_lowercase_names() {
        assert_eq!(identifier::<24>("tm_e2e").ok().as_deref(), Some("tm_e2e"));
        for bad in ["Tm", "1x", "a-b"] {
            assert!(identifier::<24>(bad).is_err(), "{bad}");
        }
        assert!(identifier::<3>("tm_e2e").is_err());
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        assert!(shown(&"x".repeat(100)).ends_with("..."));
        assert_eq!(shown("ab"), "\"ab\"");
    }
}
