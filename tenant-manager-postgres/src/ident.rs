//! SQL identifiers: validated, then quoted at every use.

use tenant_manager_core::Error;

/// Longest identifier Postgres keeps without truncating.
pub const MAX_IDENT_LEN: usize = 63;

/// A validated SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes). Display it with
/// [`Ident::quoted`] inside SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates an identifier, reporting `field` on failure.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when empty, longer than 63 bytes, or not `[a-z_][a-z0-9_]*`.
    pub fn new(value: &str, field: &'static str) -> Result<Self, Error> {
        let ok = !value.is_empty()
            && value.len() <= MAX_IDENT_LEN
            && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "must be 1 to 63 of [a-z0-9_], starting with a letter or _",
            ))
        }
    }

    /// The bare name (for binding as a value, e.g. in catalog lookups).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted for use inside SQL text.
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }
}

impl std::fmt::Display for Ident {
    /// Writes the quoted form, so `format!("... {ident} ...")` is always safe.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// Quotes any string as a Postgres identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes a string as a Postgres literal (doubling embedded single quotes), for the few
/// statements that take no bind parameters (`CREATE ROLE ... PASSWORD '...'`).
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated_and_quoted() {
        assert_eq!(
            Ident::new("tenant_acme", "schema")
                .map(|i| i.quoted())
                .ok()
                .as_deref(),
            Some("\"tenant_acme\"")
        );
        for bad in ["", "Acme", "a-b", "a\"b", "1a", "a;drop", &"a".repeat(64)] {
            assert!(Ident::new(bad, "schema").is_err(), "{bad:?}");
        }
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
