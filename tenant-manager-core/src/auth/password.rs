//! argon2id password hashing off the async runtime, with a bound on concurrent hashes.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as Phc, Salt};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::domain::PasswordHash;
use crate::error::{Error, Result};

/// Longest password, in bytes, the hasher accepts (far above any policy; bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Most hashes that may run at once, whatever the configuration says.
const MAX_CONCURRENT_LIMIT: usize = 1024;

/// Largest memory cost (KiB) accepted from a stored hash, so a corrupted record cannot
/// make one verification allocate gigabytes.
const MAX_STORED_MEMORY_KIB: u32 = 1024 * 1024;

/// Largest time or parallelism cost accepted from a stored hash.
const MAX_STORED_COST: u32 = 64;

/// Parameters of [`PasswordHasher`].
///
/// The default is OWASP's recommendation for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
/// Cheaper parameters (for tests) must be set explicitly with [`HasherConfig::with_params`];
/// the hasher logs a warning when it runs below the OWASP floor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HasherConfig {
    /// Memory cost in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Degree of parallelism (`p`).
    pub parallelism: u32,
    /// Most hashes computed at once; callers beyond it wait their turn.
    pub max_concurrent: usize,
}

impl HasherConfig {
    /// OWASP memory cost: 19 MiB.
    pub const OWASP_MEMORY_KIB: u32 = 19_456;
    /// OWASP iterations.
    pub const OWASP_ITERATIONS: u32 = 2;
    /// OWASP parallelism.
    pub const OWASP_PARALLELISM: u32 = 1;

    /// The OWASP parameters, with one concurrent hash per CPU.
    pub fn owasp() -> Self {
        Self {
            memory_kib: Self::OWASP_MEMORY_KIB,
            iterations: Self::OWASP_ITERATIONS,
            parallelism: Self::OWASP_PARALLELISM,
            max_concurrent: std::thread::available_parallelism()
                .map(NonZeroUsize::get)
                .unwrap_or(1),
        }
    }

    /// Sets the argon2id costs explicitly (memory in KiB, iterations, lanes).
    #[must_use]
    pub fn with_params(mut self, memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        self.memory_kib = memory_kib;
        self.iterations = iterations;
        self.parallelism = parallelism;
        self
    }

    /// Sets how many hashes may run at once.
    #[must_use]
    pub fn with_max_concurrent(mut self, max_concurrent: usize) -> Self {
        self.max_concurrent = max_concurrent;
        self
    }

    /// Whether these parameters are at least as strong as OWASP's.
    pub fn meets_owasp(&self) -> bool {
        self.memory_kib >= Self::OWASP_MEMORY_KIB
            && self.iterations >= Self::OWASP_ITERATIONS
            && self.parallelism >= Self::OWASP_PARALLELISM
    }

    fn params(&self) -> Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None).map_err(|e| {
            Error::invalid("hasher_params", format!("are not valid argon2 costs: {e}"))
        })
    }
}

impl Default for HasherConfig {
    fn default() -> Self {
        Self::owasp()
    }
}

/// Hashes and verifies passwords with argon2id.
///
/// Work runs on tokio's blocking pool behind a semaphore, so at most
/// [`HasherConfig::max_concurrent`] hashes run at once and the async workers never block.
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    config: HasherConfig,
    params: Params,
    permits: Arc<Semaphore>,
    /// A PHC string with the configured costs that no password matches, verified in place of
    /// a missing user's hash so that an unknown e-mail costs as much as a wrong password.
    dummy: String,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("config", &self.inner.config)
            .field("available_permits", &self.inner.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with the given parameters.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `hasher_params` for costs argon2 refuses, or on
    /// `hasher_max_concurrent` when it is 0 or above 1024.
    pub fn new(config: HasherConfig) -> Result<Self> {
        let params = config.params()?;
        if !(1..=MAX_CONCURRENT_LIMIT).contains(&config.max_concurrent) {
            return Err(Error::invalid("hasher_max_concurrent", "must be 1 to 1024"));
        }
        if !config.meets_owasp() {
            tracing::warn!(
                memory_kib = config.memory_kib,
                iterations = config.iterations,
                parallelism = config.parallelism,
                "password hasher configured below the OWASP argon2id parameters"
            );
        }
        let dummy = dummy_phc(&params)?;
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_concurrent)),
                config,
                params,
                dummy,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &HasherConfig {
        &self.inner.config
    }

    /// Hashes a password into an argon2id PHC string with a fresh random salt.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `password` when it is longer than [`MAX_PASSWORD_BYTES`];
    /// [`Error::Internal`] when hashing fails or no tokio runtime is running.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash> {
        check_length(password)?;
        let params = self.inner.params.clone();
        let password = password.to_owned();
        let phc = self
            .run_blocking(move || {
                argon2(params)
                    .hash_password(password.as_bytes())
                    .map(|hash| hash.to_string())
                    .map_err(|e| Error::internal_with("password hashing failed", e))
            })
            .await??;
        Ok(PasswordHash::from_phc(phc))
    }

    /// Verifies a password against a stored hash.
    ///
    /// # Errors
    /// [`Error::Internal`] when the stored hash is not an argon2id PHC string within sane
    /// costs (a corrupted record), or when no tokio runtime is running.
    pub async fn verify(&self, password: &str, hash: &PasswordHash) -> Result<bool> {
        self.verify_or_dummy(password, Some(hash)).await
    }

    /// Verifies a password against `hash`, or, when there is no user (`None`), against a
    /// dummy hash with the same costs, so both cases take the same time. Always `false` for
    /// `None`.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`].
    pub async fn verify_or_dummy(
        &self,
        password: &str,
        hash: Option<&PasswordHash>,
    ) -> Result<bool> {
        let known = hash.is_some();
        let phc = hash.map_or_else(|| self.inner.dummy.clone(), |h| h.as_phc().to_owned());
        // An over-long password can match nothing; still spend a hash on a truncated copy so
        // that its timing says nothing either.
        let mut password = password.as_bytes().to_vec();
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        password.truncate(MAX_PASSWORD_BYTES);
        let matched = self
            .run_blocking(move || verify_phc(&password, &phc))
            .await??;
        Ok(known && !too_long && matched)
    }

    /// Whether a stored hash was made with other costs than the configured ones (and should
    /// be replaced at the next successful login).
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok((_, stored)) = parse_stored(hash.as_phc()) else {
            return true;
        };
        let current = &self.inner.params;
        stored.m_cost() != current.m_cost()
            || stored.t_cost() != current.t_cost()
            || stored.p_cost() != current.p_cost()
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit moves into the
    /// blocking task, so the bound holds even when the caller's future is dropped.
    async fn run_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::internal_with("password hashing needs a tokio runtime", e))?;
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::internal_with("password hasher closed", e))?;
        handle
            .spawn_blocking(move || {
                let out = work();
                drop(permit);
                out
            })
            .await
            .map_err(|e| Error::internal_with("password hashing task failed", e))
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn check_length(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid("password", "must be at most 4096 bytes"));
    }
    Ok(())
}

/// Parses a stored hash: an argon2id PHC string with a salt, an output, and costs in range.
fn parse_stored(phc: &str) -> Result<(Phc, Params)> {
    let parsed =
        Phc::new(phc).map_err(|e| Error::internal_with("stored password hash is malformed", e))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(Error::internal("stored password hash is not argon2id"));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(Error::internal(
            "stored password hash lacks its salt or output",
        ));
    }
    let stored = Params::try_from(&parsed)
        .map_err(|e| Error::internal_with("stored password hash has bad parameters", e))?;
    if stored.m_cost() > MAX_STORED_MEMORY_KIB
        || stored.t_cost() > MAX_STORED_COST
        || stored.p_cost() > MAX_STORED_COST
    {
        return Err(Error::internal(
            "stored password hash has out-of-range parameters",
        ));
    }
    Ok((parsed, stored))
}

/// Verifies on the calling thread, refusing stored hashes [`parse_stored`] refuses.
fn verify_phc(password: &[u8], phc: &str) -> Result<bool> {
    let (parsed, _) = parse_stored(phc)?;
    match Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(Error::internal_with("password verification failed", e)),
    }
}

/// A well-formed argon2id PHC string with the configured costs, a random salt and a random
/// output: verifying it costs one full hash and matches no password.
fn dummy_phc(params: &Params) -> Result<String> {
    let fail = |e: argon2::password_hash::phc::Error| Error::internal_with("dummy hash", e);
    let salt_bytes: [u8; 16] = rand::random();
    let output_bytes: [u8; Params::DEFAULT_OUTPUT_LEN] = rand::random();
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| Error::internal_with("dummy hash parameters", e))?,
        salt: Some(Salt::new(&salt_bytes).map_err(fail)?),
        hash: Some(Output::new(&output_bytes).map_err(fail)?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_parses_with_the_configured_costs() -> Result<()> {
        let params = HasherConfig::default().with_params(64, 1, 1).params()?;
        let dummy = dummy_phc(&params)?;
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{dummy}");
        assert!(!verify_phc(b"anything", &dummy)?);
        Ok(())
    }

    #[test]
    fn foreign_or_oversized_hashes_are_refused() {
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert_eq!(
            verify_phc(b"pw", argon2i).err().map(|e| e.code()),
            Some("internal")
        );
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert_eq!(
            verify_phc(b"pw", huge).err().map(|e| e.code()),
            Some("internal")
        );
        assert!(verify_phc(b"pw", "not a hash").is_err());
    }

    #[test]
    fn owasp_is_the_default() {
        let config = HasherConfig::default();
        assert_eq!(
            (config.memory_kib, config.iterations, config.parallelism),
            (19_456, 2, 1)
        );
        assert!(config.meets_owasp());
        assert!(!config.with_params(8, 1, 1).meets_owasp());
    }
}
