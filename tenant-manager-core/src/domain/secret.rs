//! A string that never shows in `Debug` or `Display` output.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// A secret value (password, key, token secret). Its `Debug` prints `Secret(***)`.
///
/// Compare two secrets with [`Secret::ct_eq`], which runs in constant time.
///
/// The value is held in a [`secrecy::SecretString`]: its memory is zeroized when the secret
/// is dropped. A clone is a second zeroized copy (`SecretString` is cloneable; a
/// `SecretBox<S>` in general is only when `S: CloneableSecret`).
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Constant-time comparison with a candidate value.
    pub fn ct_eq(&self, candidate: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(candidate).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_comparison_works() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(s.ct_eq(b"hunter2-hunter2"));
        assert!(!s.ct_eq(b"hunter2"));
    }

    #[test]
    fn clones_default_and_conversions_keep_the_value() {
        let s = Secret::from("pw-1");
        let copy = s.clone();
        drop(s);
        assert_eq!(copy.expose(), "pw-1");
        assert_eq!(copy.len(), 4);
        assert_eq!(Secret::from(String::from("x")).expose(), "x");
        let empty = Secret::default();
        assert!(empty.is_empty());
        assert_eq!(format!("{empty:?}"), "Secret(***)");
    }
}
