//! The one place where sqlx errors become tenant-manager errors.

use tenant_manager_core::{Entity, Error};

use super::sqlstate::{
    DEADLOCK_DETECTED, FOREIGN_KEY_VIOLATION, INSUFFICIENT_PRIVILEGE, READ_ONLY_SQL_TRANSACTION,
    SERIALIZATION_FAILURE, TRANSIENT_CLASSES, UNIQUE_VIOLATION,
};

/// Maps a sqlx error to [`Error`]: connection failures become `Unavailable`, a unique
/// violation becomes `Conflict` on the constraint's field, a foreign key violation on a
/// `tenant_id` column becomes `NotFound` (tenant), `RowNotFound` becomes `NotFound`,
/// a refused privilege becomes `Forbidden`.
///
/// `entity` names what the statement was about, for `Conflict` and `NotFound`.
pub fn map_sqlx(entity: Entity, err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::RowNotFound => Error::not_found(entity, "row"),
        _ if is_unavailable(&err) => Error::unavailable("postgres", err),
        sqlx::Error::Database(db) if db.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            let field = db
                .constraint()
                .map(constraint_field)
                .unwrap_or("unique")
                .to_owned();
            Error::conflict(entity, field, "already taken")
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some(FOREIGN_KEY_VIOLATION) => {
            match db.constraint() {
                Some(c) if c.contains("tenant_id") => Error::not_found(Entity::Tenant, "tenant_id"),
                _ => Error::internal_with("postgres foreign key violation", err),
            }
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) => {
            Error::forbidden(db.message().to_owned())
        }
        _ => Error::internal_with("postgres query failed", err),
    }
}

/// Connection failures and transient server states: the caller may try again.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => is_transient(db.code().as_deref()),
        _ => false,
    }
}

/// SQLSTATEs that mean "try again": the transient classes, serialization failures,
/// deadlocks, and writes refused by storage that is read-only for now.
fn is_transient(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            TRANSIENT_CLASSES
                .iter()
                .any(|class| code.starts_with(class))
                || code == SERIALIZATION_FAILURE
                || code == DEADLOCK_DETECTED
                || code == READ_ONLY_SQL_TRANSACTION
        }
        None => false,
    }
}

/// The field a unique constraint guards, by the naming convention `<table>_<field>_key`
/// (Postgres' default) or `<table>_<field>_uniq`.
fn constraint_field(constraint: &str) -> &str {
    for field in ["email", "slug", "domain", "pkey"] {
        if constraint.contains(field) {
            return if field == "pkey" { "id" } else { field };
        }
    }
    "unique"
}

/// Maps a failure of a `sqlx` migrator. Driver errors go through [`map_sqlx`]; a failing
/// migration script, a dirty or changed migration become `Internal` naming the version.
pub fn map_migrate(err: sqlx::migrate::MigrateError) -> Error {
    use sqlx::migrate::MigrateError as M;
    match err {
        M::Execute(e) => map_sqlx(Entity::Record, e),
        // The database's own error stays the source: it names what the script broke.
        M::ExecuteMigration(e, _) if is_unavailable(&e) => Error::unavailable("postgres", e),
        M::ExecuteMigration(e, version) => {
            Error::internal_with(format!("migration {version} failed"), e)
        }
        other => Error::internal_with("migrations cannot be applied", other),
    }
}

/// Shorthand for `map_err(|e| map_sqlx(entity, e))`.
pub trait SqlxResultExt<T> {
    /// Maps the error with [`map_sqlx`].
    fn map_db(self, entity: Entity) -> Result<T, Error>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn map_db(self, entity: Entity) -> Result<T, Error> {
        self.map_err(|e| map_sqlx(entity, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_give_fields_and_io_is_unavailable() {
        assert_eq!(constraint_field("tm_users_email_key"), "email");
        assert_eq!(constraint_field("tm_tenants_slug_key"), "slug");
        assert_eq!(constraint_field("tm_tenants_pkey"), "id");
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(map_sqlx(Entity::Tenant, io).code(), "backend_unavailable");
        assert_eq!(
            map_sqlx(Entity::User, sqlx::Error::RowNotFound).code(),
            "user_not_found"
        );
        assert!(is_transient(Some("25006")), "read-only storage: try again");
        assert!(!is_transient(Some("42501")));
        let failed = map_migrate(sqlx::migrate::MigrateError::VersionMissing(3));
        assert_eq!(failed.code(), "internal");
    }
}
