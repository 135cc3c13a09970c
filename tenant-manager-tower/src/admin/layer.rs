//! [`AdminKeyLayer`]: the configured key, hashed once.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tenant_manager_core::{Error, Result, Secret};
use tower::Layer;

use super::{ADMIN_KEY_HEADER, AdminKeyService};

/// Requires the header `X-Admin-Key` to equal a configured key, for operator routes.
///
/// The comparison runs in constant time over SHA-256 digests of both values, so neither the
/// key's bytes nor its length leak through timing. A missing or wrong key is answered with
/// `401 unauthenticated` and a JSON body; the inner service is not called.
///
/// ```
/// use tenant_manager_core::Secret;
/// use tenant_manager_tower::AdminKeyLayer;
/// let layer = AdminKeyLayer::new(Secret::new("0123456789abcdef0123456789abcdef"))?;
/// # Ok::<(), tenant_manager_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AdminKeyLayer {
    key: Arc<AdminKey>,
}

impl AdminKeyLayer {
    /// Shortest accepted key, in bytes (`openssl rand -base64 32` gives 44).
    pub const MIN_KEY_LEN: usize = 32;

    /// A layer that admits requests carrying `key`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `admin_key` when the key is shorter than
    /// [`MIN_KEY_LEN`](Self::MIN_KEY_LEN) bytes or is not a valid header value.
    pub fn new(key: Secret) -> Result<Self> {
        if key.len() < Self::MIN_KEY_LEN {
            return Err(Error::invalid(
                "admin_key",
                "must be at least 32 bytes (generate one with `openssl rand -base64 32`)",
            ));
        }
        if !key.expose().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "admin_key",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self {
            key: Arc::new(AdminKey {
                digest: Sha256::digest(key.expose().as_bytes()).into(),
            }),
        })
    }
}

impl<S> Layer<S> for AdminKeyLayer {
    type Service = AdminKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdminKeyService::new(inner, self.key.clone())
    }
}

/// The SHA-256 digest of the configured key.
pub(super) struct AdminKey {
    digest: [u8; 32],
}

impl AdminKey {
    /// Whether `headers` carry the key (exactly one `X-Admin-Key` value, equal to it).
    pub(super) fn accepts(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&ADMIN_KEY_HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let candidate: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        self.digest.ct_eq(&candidate).into()
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(***)")
    }
}
