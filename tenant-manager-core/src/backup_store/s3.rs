//! Feature `s3`: an [`ObjectBackupStore`] in an S3-compatible bucket.

use std::fmt;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;

use super::ObjectBackupStore;
use crate::domain::Secret;
use crate::error::{Error, Result};

/// Where and as whom an S3-compatible store is reached. Its `Debug` never prints the
/// credentials.
#[derive(Clone)]
#[non_exhaustive]
pub struct S3Config {
    /// Bucket name; it must exist.
    pub bucket: String,
    /// Region (`us-east-1` by default; S3-compatible servers mostly ignore it).
    pub region: String,
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`); `None` for AWS.
    /// Requests use path-style addressing (`<endpoint>/<bucket>/<key>`).
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Whether a plain `http://` endpoint is allowed (a server on loopback).
    pub allow_http: bool,
}

impl S3Config {
    /// A bucket on AWS reached with static credentials.
    pub fn new(
        bucket: impl Into<String>,
        access_key_id: impl Into<Secret>,
        secret_access_key: impl Into<Secret>,
    ) -> Self {
        Self {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            endpoint: None,
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            allow_http: false,
        }
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the endpoint of an S3-compatible server.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the session token of temporary credentials.
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<Secret>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Allows a plain `http://` endpoint.
    #[must_use]
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl ObjectBackupStore {
    /// A store in the S3-compatible bucket `config` names. Nothing is sent until the first
    /// operation.
    ///
    /// # Errors
    /// `InvalidInput` (field `s3`) when the configuration is refused (a bad endpoint URL).
    pub fn s3(config: &S3Config) -> Result<Self> {
        // The HTTP client's TLS is rustls over ring, the provider the rest of the workspace
        // uses; installing it is a no-op when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(config.access_key_id.expose())
            .with_secret_access_key(config.secret_access_key.expose())
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token.expose());
        }
        let store = builder
            .build()
            .map_err(|e| Error::invalid("s3", format!("S3 configuration refused: {e}")))?;
        Ok(Self::new(Arc::new(store)))
    }
}
