//! `SELF_SERVICE_ISOLATION`: which isolation modes an anonymous registration may ask for.

use tenant_manager::Isolation;

/// The isolation modes `POST /api/auth/register-organization` accepts from anonymous callers
/// (`SELF_SERVICE_ISOLATION`, comma-separated, default `schema,shared`).
///
/// A database per tenant costs the operator a database and a login role on the server, so it
/// is off for self-service unless listed; the admin API and `tenant-cli tenants create`
/// create tenants of any isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelfService {
    /// The modes allowed, in the order given, without repeats.
    pub isolations: Vec<Isolation>,
}

impl Default for SelfService {
    fn default() -> Self {
        Self {
            isolations: vec![Isolation::Schema, Isolation::Shared],
        }
    }
}

impl SelfService {
    /// Allows exactly `isolations`.
    #[must_use]
    pub fn with_isolations(mut self, isolations: Vec<Isolation>) -> Self {
        self.isolations = isolations;
        self
    }

    /// Whether anonymous registration may ask for `isolation`.
    pub fn allows(&self, isolation: Isolation) -> bool {
        self.isolations.contains(&isolation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn load(value: Option<&str>) -> Result<SelfService, ConfigError> {
        let value = value.map(str::to_owned);
        Config::from_lookup(move |name| {
            (name == "SELF_SERVICE_ISOLATION")
                .then(|| value.clone())
                .flatten()
        })
        .map(|config| config.self_service)
    }

    #[test]
    fn database_isolation_is_off_for_self_service_by_default() {
        let default = load(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default, SelfService::default());
        assert!(default.allows(Isolation::Schema) && default.allows(Isolation::Shared));
        assert!(!default.allows(Isolation::Database));
    }

    #[test]
    fn lists_are_parsed_deduplicated_and_validated() {
        let all = load(Some(" Database, shared ,database,")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.isolations, [Isolation::Database, Isolation::Shared]);
        for bad in ["rows", ",", "schema,tables"] {
            assert_eq!(
                load(Some(bad)).err().map(|e| e.variable),
                Some("SELF_SERVICE_ISOLATION"),
                "{bad}"
            );
        }
    }
}
