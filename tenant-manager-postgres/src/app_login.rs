//! The app login: the unprivileged Postgres login of pools shared by schema- and row-isolated
//! tenants.
//!
//! Superusers and table owners bypass row-level security, and a superuser reads every
//! tenant's schema. Pools shared by tenants therefore log in as a role that can do neither:
//! `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT NOREPLICATION`, created
//! and kept so by [`PostgresProvisioner::ensure_app_login`](crate::PostgresProvisioner::ensure_app_login).
//! It is a member of no tenant role and owns nothing: it holds table privileges on tenant
//! schemas and shared tables directly, and the [`wall`](crate::wall)'s forced row-level security
//! admits it only to the rows of the tenant its session proved.
//!
//! Its password is an explicit [`Secret`]: [`AppLogin::new`] takes one, and
//! [`AppLogin::derived`] derives one (HMAC-SHA256, its own context) from the master secret the
//! tenants' passwords come from, so a deployment needs no second secret. The password reaches
//! the server only as a SCRAM verifier computed here.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenant_manager_core::{Error, Placement, Result, Secret};

use crate::credentials::MIN_MASTER_SECRET_LEN;
use crate::ident::Ident;

/// Default name of the app login (`StorageConfig::app_login`).
pub const DEFAULT_APP_LOGIN: &str = "tm_app";

/// Shortest explicit password [`AppLogin::new`] accepts, in bytes.
pub const MIN_APP_LOGIN_PASSWORD_LEN: usize = 16;

/// Domain separation of derived app login passwords; bump the version to rotate them.
const DERIVATION_CONTEXT: &[u8] = b"tenant-manager/postgres-app-login-password/v1/";

/// Validates the name of an app login: an identifier that cannot be a tenant's role of an
/// older version (`tenant_*`) nor a name Postgres reserves (`pg_*`); the storage also refuses
/// its tenants' namespace (`<prefix>_t_*`).
///
/// # Errors
/// [`Error::InvalidInput`] on field `app_login`.
pub(crate) fn app_login_name(name: &str) -> Result<Ident> {
    let ident = Ident::new(name, "app_login")?;
    if name.starts_with(Placement::PREFIX) || name.starts_with("pg_") {
        return Err(Error::invalid(
            "app_login",
            "must not start with tenant_ (tenants' roles) or pg_ (reserved by Postgres)",
        ));
    }
    Ok(ident)
}

/// The name and password of the app login. `Debug` never prints the password.
#[derive(Clone)]
pub struct AppLogin {
    name: Ident,
    password: Secret,
}

impl AppLogin {
    /// An app login with an explicit password.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `app_login` for a bad name (see
    /// [`StorageConfig::app_login`](crate::StorageConfig::app_login)), on field
    /// `app_login_password` for a password shorter than [`MIN_APP_LOGIN_PASSWORD_LEN`] bytes
    /// or with a character outside printable ASCII (space to `~`): the driver normalises the
    /// password with SASLprep before SCRAM (and refuses control characters), while the
    /// verifier stored on the server is computed from the bytes as given, so such a password
    /// could not log in.
    pub fn new(name: &str, password: Secret) -> Result<Self> {
        let name = app_login_name(name)?;
        if password.len() < MIN_APP_LOGIN_PASSWORD_LEN {
            return Err(Error::invalid(
                "app_login_password",
                "must be at least 16 bytes long",
            ));
        }
        if !password
            .expose()
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(Error::invalid(
                "app_login_password",
                "must be printable ASCII (space to ~)",
            ));
        }
        Ok(Self { name, password })
    }

    /// An app login whose password is derived from `master` (the master secret of
    /// [`DerivedCredentials`](crate::DerivedCredentials)) and its name: 64 hex characters,
    /// the same on every instance, never stored.
    ///
    /// # Errors
    /// As [`AppLogin::new`]; [`Error::InvalidInput`] on field `master_secret` when it is
    /// shorter than [`MIN_MASTER_SECRET_LEN`] bytes.
    pub fn derived(name: &str, master: &Secret) -> Result<Self> {
        let name = app_login_name(name)?;
        if master.len() < MIN_MASTER_SECRET_LEN {
            return Err(Error::invalid(
                "master_secret",
                "must be at least 32 bytes long",
            ));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(master.expose().as_bytes())
            .map_err(|e| Error::internal_with("hmac key refused", e.to_string()))?;
        mac.update(DERIVATION_CONTEXT);
        mac.update(name.as_str().as_bytes());
        let password = Secret::new(hex::encode(mac.finalize().into_bytes()));
        Ok(Self { name, password })
    }

    /// The role name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The validated role name.
    pub(crate) fn ident(&self) -> &Ident {
        &self.name
    }

    /// The password.
    pub fn password(&self) -> &Secret {
        &self.password
    }
}

impl fmt::Debug for AppLogin {
    /// The name; the password redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppLogin")
            .field("name", &self.name.as_str())
            .field("password", &self.password)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_passwords_hidden() {
        for bad in ["tenant_app", "pg_app", "App", "", "a-b"] {
            let err = AppLogin::new(bad, Secret::new("p".repeat(16))).err();
            assert_eq!(
                err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
                Some("app_login"),
                "{bad}"
            );
        }
        let long = "p".repeat(MIN_APP_LOGIN_PASSWORD_LEN);
        for bad in [
            "short".to_owned(),
            format!("{long}\t"),
            format!("{long}\0"),
            format!("{long}\u{7f}"),
            // SASLprep maps the no-break space to a space and NFKC folds the ligature.
            format!("{long}\u{a0}"),
            format!("{long}\u{fb01}"),
        ] {
            let err = AppLogin::new("tm_app", Secret::new(bad.clone())).err();
            assert_eq!(
                err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
                Some("app_login_password"),
                "{bad:?}"
            );
        }
        assert!(AppLogin::new("tm_app", Secret::new(format!(" {long}~!\"'"))).is_ok());
        let login = AppLogin::new("tm_app", Secret::new("hunter2-hunter2-hunter2"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(login.name(), "tm_app");
        assert!(!format!("{login:?}").contains("hunter2"));
    }

    #[test]
    fn derived_passwords_depend_on_the_master_and_the_name() {
        let master = Secret::new("m".repeat(32));
        let a = AppLogin::derived("tm_app", &master).unwrap_or_else(|e| panic!("{e}"));
        let again = AppLogin::derived("tm_app", &master).unwrap_or_else(|e| panic!("{e}"));
        let other = AppLogin::derived("crm_app", &master).unwrap_or_else(|e| panic!("{e}"));
        let rotated = AppLogin::derived("tm_app", &Secret::new("n".repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.password().ct_eq(again.password().expose().as_bytes()));
        assert!(!a.password().ct_eq(other.password().expose().as_bytes()));
        assert!(!a.password().ct_eq(rotated.password().expose().as_bytes()));
        assert_eq!(a.password().len(), 64);
        let err = AppLogin::derived("tm_app", &Secret::new("short")).err();
        assert_eq!(
            err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
            Some("master_secret")
        );
    }
}
