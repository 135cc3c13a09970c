//! Which passwords are acceptable, and a clear reason when one is not.

use std::borrow::Cow;

use crate::domain::Email;
use crate::error::{Error, Result};

/// The password policy: length bounds, a mix of character classes (or a long passphrase),
/// and not the user's own e-mail address.
///
/// Classes are lowercase letters (and letters without case), uppercase letters, digits, and
/// symbols (everything else, including spaces). Lengths count characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// Fewest characters.
    pub min_chars: usize,
    /// Most characters.
    pub max_chars: usize,
    /// How many of the four classes a password shorter than `passphrase_chars` must mix.
    pub min_classes: usize,
    /// From this length on, any mix of classes is accepted.
    pub passphrase_chars: usize,
}

impl Default for PasswordPolicy {
    /// 8 to 128 characters; 3 of 4 classes, or at least 16 characters.
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_chars: 128,
            min_classes: 3,
            passphrase_chars: 16,
        }
    }
}

impl PasswordPolicy {
    /// Sets the length bounds.
    #[must_use]
    pub fn with_length(mut self, min_chars: usize, max_chars: usize) -> Self {
        self.min_chars = min_chars;
        self.max_chars = max_chars;
        self
    }

    /// Sets how many classes short passwords must mix.
    #[must_use]
    pub fn with_min_classes(mut self, min_classes: usize) -> Self {
        self.min_classes = min_classes;
        self
    }

    /// Sets the length from which any mix of classes is accepted.
    #[must_use]
    pub fn with_passphrase_chars(mut self, passphrase_chars: usize) -> Self {
        self.passphrase_chars = passphrase_chars;
        self
    }

    /// Checks that the policy itself is usable.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `password_policy` when the bounds contradict each other.
    pub fn validate(&self) -> Result<()> {
        let ok = self.min_chars >= 1
            && self.min_chars <= self.max_chars
            && self.max_chars <= 1024
            && (1..=4).contains(&self.min_classes);
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "password_policy",
                "needs 1 <= min_chars <= max_chars <= 1024 and 1 to 4 classes",
            ))
        }
    }

    /// Checks a password for the user with e-mail `email`, reporting `field` (`password`,
    /// `admin_password`, ...) and the rule that failed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `field`.
    pub fn check(&self, password: &str, email: Option<&Email>, field: &'static str) -> Result<()> {
        let fail = |reason: Cow<'static, str>| Err(Error::invalid(field, reason));
        let chars = password.chars().count();
        if chars < self.min_chars {
            return fail(format!("must be at least {} characters", self.min_chars).into());
        }
        if chars > self.max_chars {
            return fail(format!("must be at most {} characters", self.max_chars).into());
        }
        if password.chars().any(char::is_control) {
            return fail("must not contain control characters".into());
        }
        if chars < self.passphrase_chars && classes(password) < self.min_classes {
            return fail(
                format!(
                    "must mix at least {} of lowercase letters, uppercase letters, digits and \
                     symbols, or be at least {} characters long",
                    self.min_classes, self.passphrase_chars
                )
                .into(),
            );
        }
        if let Some(email) = email {
            let lowered = password.trim().to_lowercase();
            let local = email.as_str().split('@').next().unwrap_or_default();
            if lowered == email.as_str() || lowered == local {
                return fail("must not be the e-mail address".into());
            }
        }
        Ok(())
    }
}

/// How many of the four character classes occur in `password`.
fn classes(password: &str) -> usize {
    let (mut lower, mut upper, mut digit, mut symbol) = (false, false, false, false);
    for c in password.chars() {
        if c.is_uppercase() {
            upper = true;
        } else if c.is_alphabetic() {
            lower = true;
        } else if c.is_numeric() {
            digit = true;
        } else {
            symbol = true;
        }
    }
    [lower, upper, digit, symbol]
        .into_iter()
        .filter(|b| *b)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(password: &str, email: Option<&Email>) -> Option<String> {
        PasswordPolicy::default()
            .check(password, email, "admin_password")
            .err()
            .map(|e| {
                assert_eq!(e.field(), Some("admin_password"));
                e.to_string()
            })
    }

    #[test]
    fn accepts_mixed_and_long_passwords() {
        assert_eq!(reason("Test123!", None), None);
        assert_eq!(reason("correct horse battery", None), None);
        assert_eq!(reason("Пароль-2024", None), None);
    }

    #[test]
    fn says_which_rule_failed() {
        let short = reason("Ab1!", None).unwrap_or_default();
        assert!(short.contains("at least 8"), "{short}");
        let long = reason(&"Ab1!".repeat(33), None).unwrap_or_default();
        assert!(long.contains("at most 128"), "{long}");
        let weak = reason("password", None).unwrap_or_default();
        assert!(weak.contains("at least 3 of"), "{weak}");
        let ctl = reason("Abc123!\u{0}x", None).unwrap_or_default();
        assert!(ctl.contains("control"), "{ctl}");
        let email = Email::new("Long.Enough.Name@example.com").ok();
        let same = reason("Long.Enough.Name@example.com", email.as_ref()).unwrap_or_default();
        assert!(same.contains("e-mail"), "{same}");
    }

    #[test]
    fn a_contradictory_policy_is_refused() {
        assert!(
            PasswordPolicy::default()
                .with_length(10, 5)
                .validate()
                .is_err()
        );
        assert!(
            PasswordPolicy::default()
                .with_min_classes(5)
                .validate()
                .is_err()
        );
        assert!(PasswordPolicy::default().validate().is_ok());
    }
}
