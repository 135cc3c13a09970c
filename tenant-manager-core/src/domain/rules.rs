//! Character rules shared by several names: plan and server names, SQL identifiers chosen in
//! settings, regions. One function per rule, so every field that follows a rule refuses the
//! same inputs with the same reason.

use crate::error::{Error, Result};

/// Checks a short name (a plan, a database server): 1 to 32 lowercase ASCII letters, digits,
/// `_` or `-`.
///
/// # Errors
/// [`Error::InvalidInput`] on `field`.
pub(crate) fn validate_short_name(name: &str, field: &'static str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be 1 to 32 lowercase letters, digits, _ or -",
        ))
    }
}

/// Checks a lowercase SQL identifier (a shared database, a collection): 1 to 63 bytes of
/// lowercase ASCII letters, digits or `_`, starting with a letter. Such a name needs no
/// quoting, yet every SQL use still quotes it.
///
/// # Errors
/// [`Error::InvalidInput`] on `field`.
pub(crate) fn validate_identifier(name: &str, field: &'static str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be 1 to 63 lowercase letters, digits or _, starting with a letter",
        ))
    }
}

/// Checks a region: 1 to 64 bytes, no control characters.
///
/// # Errors
/// [`Error::InvalidInput`] on `region`.
pub(crate) fn validate_region(region: &str) -> Result<()> {
    if region.is_empty() || region.len() > 64 || region.chars().any(char::is_control) {
        return Err(Error::invalid(
            "region",
            "must be 1 to 64 printable characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_field_it_was_given() {
        assert!(validate_short_name("pro-2", "plan").is_ok());
        for bad in ["", "Pro", "a b", &"x".repeat(33)] {
            let err = validate_short_name(bad, "plan").err();
            assert_eq!(err.as_ref().and_then(Error::field), Some("plan"), "{bad:?}");
        }
        assert!(validate_identifier("tenant_shared", "shared_database").is_ok());
        for bad in ["", "1db", "_db", "db-x", "Db", &"x".repeat(64)] {
            let err = validate_identifier(bad, "collection").err();
            assert_eq!(
                err.as_ref().and_then(Error::field),
                Some("collection"),
                "{bad:?}"
            );
        }
        assert!(validate_region("eu-west-1").is_ok());
        assert!(validate_region("").is_err());
        assert!(validate_region("eu\nwest").is_err());
        assert!(validate_region(&"x".repeat(65)).is_err());
    }
}
