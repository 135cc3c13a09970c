//! Where backup artifacts go: `BACKUP_STORE=local` (files under `BACKUP_DIR`) or `s3` (an
//! S3-compatible bucket, `BACKUP_S3_*`).

use std::path::PathBuf;
use std::sync::Arc;

use tenant_manager::BackupStore;
use tenant_manager::backup_store::{ObjectBackupStore, S3Config};

use super::env::EnvVars;
use crate::startup_error::ConfigError;

/// The backup store of the server and `tenant-cli`. `Debug` never shows the S3 credentials.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BackupStoreConfig {
    /// Files under a directory (`BACKUP_STORE=local`, the default; `BACKUP_DIR`).
    Local(PathBuf),
    /// An S3-compatible bucket (`BACKUP_STORE=s3`).
    S3(S3Config),
}

impl Default for BackupStoreConfig {
    fn default() -> Self {
        Self::Local(PathBuf::from("backups"))
    }
}

impl BackupStoreConfig {
    /// The store from the variables: `BACKUP_STORE` (`local` or `s3`), and for `s3` the
    /// bucket, access key id and secret access key (required), region and endpoint.
    pub(super) fn from_vars(vars: &EnvVars) -> Result<Self, ConfigError> {
        match vars.backup_store.as_str() {
            "local" => Ok(Self::Local(vars.backup_dir.clone())),
            "s3" => {
                let mut config = S3Config::new(
                    required(&vars.backup_s3_bucket, "BACKUP_S3_BUCKET")?,
                    required(&vars.backup_s3_access_key_id, "BACKUP_S3_ACCESS_KEY_ID")?,
                    required(
                        &vars.backup_s3_secret_access_key,
                        "BACKUP_S3_SECRET_ACCESS_KEY",
                    )?,
                )
                .with_region(vars.backup_s3_region.clone());
                if let Some(endpoint) = &vars.backup_s3_endpoint {
                    // A plain-HTTP endpoint is an operator's choice (a server on loopback).
                    let http = endpoint.starts_with("http://");
                    config = config.with_endpoint(endpoint).with_allow_http(http);
                }
                // Refused now rather than at the first backup.
                ObjectBackupStore::s3(&config)
                    .map_err(|e| ConfigError::new("BACKUP_S3_ENDPOINT", e.to_string()))?;
                Ok(Self::S3(config))
            }
            other => Err(ConfigError::new(
                "BACKUP_STORE",
                format!("must be local or s3 (got {other})"),
            )),
        }
    }

    /// The store; `dir` replaces the directory of a local store (`tenant-cli --destination`).
    ///
    /// # Errors
    /// The store's refusal of its configuration.
    pub fn open(
        &self,
        dir: Option<&std::path::Path>,
    ) -> tenant_manager::Result<Arc<dyn BackupStore>> {
        Ok(match self {
            Self::Local(default) => Arc::new(ObjectBackupStore::local(dir.unwrap_or(default))),
            Self::S3(config) => Arc::new(ObjectBackupStore::s3(config)?),
        })
    }
}

/// A variable `BACKUP_STORE=s3` needs.
fn required<T: Clone>(value: &Option<T>, name: &'static str) -> Result<T, ConfigError> {
    value
        .clone()
        .ok_or_else(|| ConfigError::new(name, "is required when BACKUP_STORE=s3"))
}
