//! Postgres URLs of the configuration: the password of a URL, and connect options shown
//! without it.

use std::fmt;

use percent_encoding::percent_decode_str;
use tenant_manager::Secret;
use tenant_manager::postgres::sqlx::postgres::PgConnectOptions;

/// The percent-decoded password of a `postgres://user:password@host/db` URL.
pub(super) fn url_password(url: &str) -> Option<Secret> {
    let parsed = url::Url::parse(url).ok()?;
    let password = percent_decode_str(parsed.password()?).decode_utf8().ok()?;
    Some(Secret::new(password.into_owned()))
}

/// Host, port, user and database of connect options: never the password.
pub(crate) struct PgShown<'a>(pub(crate) &'a PgConnectOptions);

impl fmt::Debug for PgShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.0.get_username(),
            self.0.get_host(),
            self.0.get_port(),
            self.0.get_database().unwrap_or("")
        )
    }
}
