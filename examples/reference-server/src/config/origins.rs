//! `ALLOWED_ORIGINS`: which origins may call the API from a browser.

use crate::startup_error::ConfigError;

/// Which origins may call the API from a browser (`ALLOWED_ORIGINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowedOrigins {
    /// Any origin (`*`); credentials are never allowed with it.
    Any,
    /// Exactly these origins (`scheme://host[:port]`); empty means same-origin only.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses a comma-separated list of origins, or `*`.
    ///
    /// # Errors
    /// A [`ConfigError`] on `ALLOWED_ORIGINS` naming the first bad entry.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let entries: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries == ["*"] {
            return Ok(Self::Any);
        }
        entries
            .into_iter()
            .map(|entry| {
                validate_origin(entry).map_err(|reason| {
                    ConfigError::new("ALLOWED_ORIGINS", format!("{entry:?} {reason}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }
}

fn validate_origin(entry: &str) -> Result<String, &'static str> {
    if entry == "*" {
        return Err("cannot be mixed with other origins");
    }
    let uri: http::Uri = entry
        .parse()
        .map_err(|_| "is not an origin (scheme://host[:port])")?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
    let authority_ok = uri
        .authority()
        .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    if !(scheme_ok && path_ok && authority_ok) {
        return Err("must be scheme://host[:port] with scheme http or https and no path");
    }
    Ok(entry.trim_end_matches('/').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_validated_and_normalised() {
        assert_eq!(AllowedOrigins::parse("*").ok(), Some(AllowedOrigins::Any));
        assert_eq!(
            AllowedOrigins::parse("https://App.example.com, http://localhost:3000/").ok(),
            Some(AllowedOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ]))
        );
        for bad in [
            "example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://u:p@x.com",
            "*,https://x.com",
            "https://x.com?q=1",
        ] {
            let err = AllowedOrigins::parse(bad).err();
            assert_eq!(err.map(|e| e.variable), Some("ALLOWED_ORIGINS"), "{bad}");
        }
    }
}
