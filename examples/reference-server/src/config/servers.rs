//! `TENANT_SERVERS`: the Postgres servers tenants are placed on, besides the server of
//! `GLOBAL_DATABASE_URL` / `POSTGRES_ADMIN_*` (id `default`).
//!
//! One entry per server, entries separated by blanks or new lines:
//! `<id>=<postgres URL>[;capacity=<tenants>][;region=<region>][;budget=<connections>]`
//! `[;replica=<postgres URL>]...` (`budget`: connections of all instances together to this
//! server, overriding `CLUSTER_CONNECTION_BUDGET`; `replica=` repeatable: streaming replicas
//! that may serve reads). The URL is the server's admin
//! login (a `;` in its password is written `%3B`); `id` is 1 to 32 of `[a-z0-9_-]`. An entry
//! with id `default` replaces the server of the other variables (to give it a capacity or a
//! region). Errors name the entry by position and id, never show the URL.

use std::fmt;
use std::str::FromStr;

use tenant_manager::postgres::sqlx::postgres::PgConnectOptions;
use tenant_manager::{Secret, ServerId, ServerSpec};

use super::pg_url::{PgShown, url_password};
use crate::startup_error::ConfigError;

/// The variable.
const VAR: &str = "TENANT_SERVERS";

/// One Postgres server of the list.
#[derive(Clone)]
#[non_exhaustive]
pub struct TenantServer {
    /// Its id, capacity and region, as the placement policy sees it.
    pub spec: ServerSpec,
    /// Its admin login, on the maintenance database `postgres`.
    pub admin: PgConnectOptions,
    /// The admin login's password (for `pg_dump`), from the URL.
    pub admin_password: Option<Secret>,
    /// Connections of all instances together to this server (`budget=N`).
    pub budget: Option<u32>,
    /// Its streaming replicas (`replica=<URL>`), as the lag monitor logs in there.
    pub replicas: Vec<PgConnectOptions>,
}

impl fmt::Debug for TenantServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantServer")
            .field("spec", &self.spec)
            .field("admin", &PgShown(&self.admin))
            .field("admin_password", &self.admin_password)
            .field("budget", &self.budget)
            .field(
                "replicas",
                &self.replicas.iter().map(PgShown).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Parses the list; empty when unset.
pub(super) fn parse(value: Option<&Secret>) -> Result<Vec<TenantServer>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut servers: Vec<TenantServer> = Vec::new();
    for (n, entry) in value.expose().split_whitespace().enumerate() {
        let server = parse_entry(entry)
            .map_err(|reason| ConfigError::new(VAR, format!("entry {} {reason}", n + 1)))?;
        if servers.iter().any(|s| s.spec.id == server.spec.id) {
            return Err(ConfigError::new(
                VAR,
                format!("entry {} names server {} twice", n + 1, server.spec.id),
            ));
        }
        servers.push(server);
    }
    Ok(servers)
}

/// One `<id>=<url>[;capacity=N][;region=R]`; the error says why, without the URL.
fn parse_entry(entry: &str) -> Result<TenantServer, String> {
    let Some((id, rest)) = entry.split_once('=') else {
        return Err("must be <id>=<postgres URL>[;capacity=N][;region=R]".to_owned());
    };
    let id = ServerId::new(id)
        .map_err(|_| "has an invalid id: 1 to 32 lowercase letters, digits, _ or -".to_owned())?;
    let mut parts = rest.split(';');
    let url = parts.next().unwrap_or_default();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "({id}) must have a postgres:// or postgresql:// URL"
        ));
    }
    let admin = PgConnectOptions::from_str(url)
        .map_err(|_| format!("({id}) has an invalid Postgres URL"))?
        .database("postgres");
    let admin_password = url_password(url);
    let mut spec = ServerSpec::new(id.clone());
    let mut budget = None;
    let mut replicas = Vec::new();
    for option in parts {
        match option.split_once('=') {
            Some(("capacity", n)) => {
                let capacity = n.parse::<u64>().map_err(|_| {
                    format!("({id}) has an invalid capacity: a number of tenants, 0 or more")
                })?;
                spec = spec.with_capacity(Some(capacity));
            }
            Some(("budget", n)) => {
                budget = Some(
                    n.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| {
                            format!("({id}) has an invalid budget: 1 to 100000 connections")
                        })?,
                );
            }
            Some(("region", region)) => {
                spec = spec
                    .with_region(Some(region.to_owned()))
                    .map_err(|_| format!("({id}) has an invalid region: 1 to 64 characters"))?;
            }
            Some(("replica", url))
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                let replica = PgConnectOptions::from_str(url)
                    .map_err(|_| format!("({id}) has an invalid replica URL"))?
                    .database("postgres");
                replicas.push(replica);
            }
            Some(("replica", _)) => {
                return Err(format!(
                    "({id}) must have a postgres:// or postgresql:// replica URL"
                ));
            }
            _ => {
                return Err(format!(
                    "({id}) has an unknown option: only capacity=N, region=R, budget=N and \
                     replica=URL follow the URL"
                ));
            }
        }
    }
    Ok(TenantServer {
        spec,
        admin,
        admin_password,
        budget,
        replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> Result<Vec<TenantServer>, ConfigError> {
        parse(Some(&Secret::new(value)))
    }

    #[test]
    fn entries_carry_id_url_capacity_and_region() {
        let servers = parsed(
            "pg2=postgres://root:s%3Bcr3t@db2:5433/x;capacity=5000;region=eu;budget=90\n \
             pg3=postgresql://root@db3",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].spec.id.as_str(), "pg2");
        assert_eq!(servers[0].spec.capacity, Some(5000));
        assert_eq!(servers[0].spec.region.as_deref(), Some("eu"));
        assert_eq!(servers[0].admin.get_port(), 5433);
        assert_eq!(servers[0].admin.get_database(), Some("postgres"));
        assert_eq!(
            servers[0].admin_password.as_ref().map(Secret::expose),
            Some("s;cr3t")
        );
        assert!(!format!("{servers:?}").contains("cr3t"));
        assert_eq!(servers[0].budget, Some(90));
        assert_eq!(servers[1].spec.capacity, None);
        assert_eq!(servers[1].budget, None);
        assert!(parse(None).map(|s| s.is_empty()).unwrap_or(false));
    }

    #[test]
    fn replicas_follow_the_url_and_repeat() {
        let servers = parsed(
            "pg2=postgres://root:hunter2@db2/x;replica=postgres://mon:s3cr3t@db2r1:5433/y\
             ;capacity=5;replica=postgresql://mon@db2r2",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let replicas = &servers[0].replicas;
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[0].get_host(), "db2r1");
        assert_eq!(replicas[0].get_port(), 5433);
        assert_eq!(replicas[0].get_database(), Some("postgres"));
        assert_eq!(replicas[1].get_host(), "db2r2");
        assert_eq!(servers[0].spec.capacity, Some(5));
        assert!(!format!("{servers:?}").contains("s3cr3t"));
        for bad in [
            "pg2=postgres://root@db2;replica=mysql://mon:s3cr3t@db2r1",
            "pg2=postgres://root@db2;replica=",
        ] {
            let err = parsed(bad).err().unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn bad_entries_are_named_without_their_url() {
        for bad in [
            "postgres://root:hunter2@db2",
            "Bad=postgres://root:hunter2@db2",
            "pg2=mysql://root:hunter2@db2",
            "pg2=postgres://root:hunter2@db2;capacity=lots",
            "pg2=postgres://root:hunter2@db2;weight=3",
            "pg2=postgres://root:hunter2@db2;budget=0",
            "pg2=postgres://root:hunter2@db2 pg2=postgres://root:hunter2@db3",
        ] {
            let err = parsed(bad).err().unwrap_or_else(|| panic!("{bad} parsed"));
            assert_eq!(err.variable, VAR);
            assert!(!err.reason.contains("hunter2"), "{}", err.reason);
        }
    }
}
