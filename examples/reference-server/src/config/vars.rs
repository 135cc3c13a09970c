//! Reading environment variables: every failure names the variable.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use tenant_manager::Secret;

pub use crate::startup_error::ConfigError;

/// Reads variables through a lookup function, so tests never touch the process environment.
pub(crate) struct Vars<F> {
    lookup: F,
}

impl<F> fmt::Debug for Vars<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vars")
    }
}

/// Quotes a non-secret value for an error message, shortened to 64 characters.
fn shown(value: &str) -> String {
    let short: String = value.chars().take(64).collect();
    if short.len() < value.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub(crate) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The trimmed value; unset and blank are the same.
    pub(crate) fn raw(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A secret value, kept out of every message.
    pub(crate) fn secret(&self, name: &'static str) -> Option<Secret> {
        self.raw(name).map(Secret::new)
    }

    /// A value parsed with `FromStr`; `expected` says what a valid value looks like.
    pub(crate) fn parse<T: FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ConfigError::new(name, format!("must be {expected} (got {})", shown(&v)))
                })
            })
            .transpose()
    }

    /// An integer within `range`, or `default` when unset.
    pub(crate) fn int_in<T>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        match self.parse::<T>(name, &expected)? {
            None => Ok(default),
            Some(v) if range.contains(&v) => Ok(v),
            Some(v) => Err(ConfigError::new(
                name,
                format!("must be {expected} (got {v})"),
            )),
        }
    }

    /// A boolean: `true/false`, `1/0`, `yes/no`, `on/off` (any case); `default` when unset.
    pub(crate) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                name,
                format!("must be true or false (got {})", shown(&v)),
            )),
        }
    }

    /// A Postgres name part: 1 to `max` lowercase ASCII letters, digits or `_`, starting
    /// with a letter; `default` when unset.
    pub(crate) fn identifier(
        &self,
        name: &'static str,
        max: usize,
        default: &str,
    ) -> Result<String, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(default.to_owned());
        };
        let ok = v.len() <= max
            && v.starts_with(|c: char| c.is_ascii_lowercase())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(v)
        } else {
            Err(ConfigError::new(
                name,
                format!(
                    "must be 1 to {max} lowercase letters, digits or _, starting with a letter \
                     (got {})",
                    shown(&v)
                ),
            ))
        }
    }

    /// A printable value of at most `max` characters.
    pub(crate) fn text(
        &self,
        name: &'static str,
        max: usize,
    ) -> Result<Option<String>, ConfigError> {
        match self.raw(name) {
            Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => Err(
                ConfigError::new(name, format!("must be at most {max} printable characters")),
            ),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Vars<impl Fn(&str) -> Option<String>> {
        Vars::new(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let v = vars(&[("A", "  "), ("B", " x ")]);
        assert_eq!(v.raw("A"), None);
        assert_eq!(v.raw("B").as_deref(), Some("x"));
    }

    #[test]
    fn integers_out_of_range_name_the_variable() {
        let v = vars(&[("PORT", "70000"), ("N", "abc")]);
        let err = v.int_in::<u32>("PORT", 1..=65535, 3001).err();
        assert_eq!(err.as_ref().map(|e| e.variable), Some("PORT"));
        assert!(err.is_some_and(|e| e.reason.contains("70000")));
        assert!(v.int_in::<u32>("N", 1..=5, 1).is_err());
        assert_eq!(v.int_in::<u32>("UNSET", 1..=5, 3).ok(), Some(3));
    }

    #[test]
    fn flags_accept_common_spellings_only() {
        let v = vars(&[("A", "TRUE"), ("B", "off"), ("C", "maybe")]);
        assert_eq!(v.flag("A", false).ok(), Some(true));
        assert_eq!(v.flag("B", true).ok(), Some(false));
        assert_eq!(v.flag("C", true).err().map(|e| e.variable), Some("C"));
        assert_eq!(v.flag("D", true).ok(), Some(true));
    }

    #[test]
    fn identifiers_are_lowercase_names() {
        let v = vars(&[("A", "tm_e2e"), ("B", "Tm"), ("C", "1x"), ("D", "a-b")]);
        assert_eq!(v.identifier("A", 24, "tm").ok().as_deref(), Some("tm_e2e"));
        assert_eq!(v.identifier("UNSET", 24, "tm").ok().as_deref(), Some("tm"));
        for bad in ["B", "C", "D"] {
            assert_eq!(
                v.identifier(bad, 24, "tm").err().map(|e| e.variable),
                Some(bad)
            );
        }
        assert!(v.identifier("A", 3, "tm").is_err());
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        assert!(shown(&"x".repeat(100)).ends_with("..."));
        assert_eq!(shown("ab"), "\"ab\"");
    }
}
