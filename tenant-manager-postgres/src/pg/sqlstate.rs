//! The SQLSTATEs the crate tells apart, in one place.

/// `unique_violation` (also two sessions creating one role or database at once).
pub(crate) const UNIQUE_VIOLATION: &str = "23505";
/// `foreign_key_violation`.
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";
/// `insufficient_privilege`.
pub(crate) const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// `duplicate_database`.
pub(crate) const DUPLICATE_DATABASE: &str = "42P04";
/// `duplicate_object` (a role that exists).
pub(crate) const DUPLICATE_OBJECT: &str = "42710";
/// `invalid_catalog_name`: the database does not exist.
pub(crate) const UNKNOWN_DATABASE: &str = "3D000";
/// `internal_error`, which "tuple concurrently updated" (concurrent `ALTER ROLE`s of one
/// role) raises.
pub(crate) const INTERNAL_ERROR: &str = "XX000";
/// `serialization_failure`.
pub(crate) const SERIALIZATION_FAILURE: &str = "40001";
/// `deadlock_detected`.
pub(crate) const DEADLOCK_DETECTED: &str = "40P01";
/// `read_only_sql_transaction`: a write where the storage is read-only for now (a tenant's
/// old storage fenced during a move, a server that became a standby).
pub(crate) const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// SQLSTATE class prefixes that mean "try again": connection exceptions (08), insufficient
/// resources (53), operator intervention such as a restart (57P).
pub(crate) const TRANSIENT_CLASSES: [&str; 3] = ["08", "53", "57P"];

/// Whether a driver error carries one of these SQLSTATEs.
pub(crate) fn has_state(err: &sqlx::Error, states: &[&str]) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| states.contains(&c.as_ref())),
        _ => false,
    }
}
