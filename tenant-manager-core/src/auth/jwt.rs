//! JWT access tokens with one algorithm fixed by configuration.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use time::OffsetDateTime;
use uuid::Uuid;

use super::claims::{Claims, IssuedToken};
use super::verify::{Refusal, TokenVerifier, VerifyingKey};
use crate::domain::{Role, Secret, TenantId, User, UserId};
use crate::error::{Error, Result};

/// Shortest HS256 secret, in bytes.
const MIN_SECRET_BYTES: usize = 32;
/// Longest token `verify` looks at; anything longer is refused before decoding.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest token lifetime.
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest clock-skew allowance.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The signing algorithm and its keys. Tokens signed with any other algorithm are refused.
#[derive(Clone)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret of at least 32 bytes.
    Hs256 {
        /// The shared secret.
        secret: Secret,
    },
    /// Ed25519 signatures: a PKCS#8 private key signs, the public key verifies.
    EdDsa {
        /// PEM of the Ed25519 private key (`-----BEGIN PRIVATE KEY-----`).
        private_pem: Secret,
        /// PEM of the Ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
        public_pem: String,
    },
}

impl JwtAlgorithm {
    /// The JOSE name of the algorithm (`HS256`, `EdDSA`).
    pub fn name(&self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 { .. } => "HS256",
            JwtAlgorithm::EdDsa { .. } => "EdDSA",
        }
    }
}

impl fmt::Debug for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtAlgorithm::Hs256 { secret } => f
                .debug_struct("Hs256")
                .field("secret", &format_args!("***({} bytes)", secret.len()))
                .finish(),
            JwtAlgorithm::EdDsa { .. } => f
                .debug_struct("EdDsa")
                .field("private_pem", &format_args!("***"))
                .finish_non_exhaustive(),
        }
    }
}

/// Configuration of [`TokenService`].
///
/// The default has an empty HS256 secret, which [`TokenService::new`] refuses: set one with
/// [`JwtConfig::hs256`] or [`JwtConfig::eddsa`].
#[derive(Clone)]
#[non_exhaustive]
pub struct JwtConfig {
    /// Algorithm and keys.
    pub algorithm: JwtAlgorithm,
    /// `iss` of issued tokens, required on verified ones.
    pub issuer: String,
    /// `aud` of issued tokens, required on verified ones.
    pub audience: String,
    /// Lifetime of issued tokens (1 s to 30 days).
    pub ttl: Duration,
    /// Allowed clock skew when checking `exp`, `nbf` and `iat` (at most 5 minutes).
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::Hs256 {
                secret: Secret::default(),
            },
            issuer: "tenant-manager".to_owned(),
            audience: "tenant-manager".to_owned(),
            ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtConfig {
    /// HS256 with `secret` and the default issuer, audience, TTL and leeway.
    pub fn hs256(secret: impl Into<Secret>) -> Self {
        Self::default().with_algorithm(JwtAlgorithm::Hs256 {
            secret: secret.into(),
        })
    }

    /// EdDSA (Ed25519) with PEM keys and the default issuer, audience, TTL and leeway.
    pub fn eddsa(private_pem: impl Into<Secret>, public_pem: impl Into<String>) -> Self {
        Self::default().with_algorithm(JwtAlgorithm::EdDsa {
            private_pem: private_pem.into(),
            public_pem: public_pem.into(),
        })
    }

    /// Sets the algorithm and keys.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: JwtAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the issuer.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Sets the audience.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Sets the token lifetime.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the clock-skew allowance.
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    fn validate(&self) -> Result<()> {
        check_claim_text(&self.issuer, "jwt_issuer")?;
        check_claim_text(&self.audience, "jwt_audience")?;
        if self.ttl < Duration::from_secs(1) || self.ttl > MAX_TTL {
            return Err(Error::invalid("jwt_ttl", "must be 1 second to 30 days"));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(Error::invalid("jwt_leeway", "must be at most 5 minutes"));
        }
        Ok(())
    }
}

fn check_claim_text(value: &str, field: &'static str) -> Result<()> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "must be 1 to 256 printable characters",
        ));
    }
    Ok(())
}

/// Issues and verifies access tokens.
///
/// Keys and validation rules are built once in [`TokenService::new`]; `verify` splits the token
/// once, checks the header and the signature, then decodes the claims once and checks them.
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwtConfig,
    header: Header,
    encoding: EncodingKey,
    verifier: TokenVerifier,
    ttl_secs: i64,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Builds the keys and validation rules, then signs and verifies one token
    /// ([`TokenService::self_test`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `jwt_secret` (shorter than 32 bytes), `jwt_private_key`,
    /// `jwt_public_key` (unreadable or mismatched keys), `jwt_issuer`, `jwt_audience`, `jwt_ttl`
    /// or `jwt_leeway`; [`Error::Internal`] when no JWT crypto backend is compiled in.
    pub fn new(config: JwtConfig) -> Result<Self> {
        config.validate()?;
        let (algorithm, encoding, key) = keys(&config.algorithm)?;
        let header = Header::new(algorithm);
        let issued_header = serde_json::to_vec(&header)
            .map(|json| URL_SAFE_NO_PAD.encode(json))
            .map_err(|e| Error::internal_with("token header encoding failed", e))?;
        let verifier = TokenVerifier::new(
            key,
            issued_header,
            config.issuer.clone(),
            config.audience.clone(),
            i64::try_from(config.leeway.as_secs()).unwrap_or(0),
        );
        let service = Self {
            inner: Arc::new(Inner {
                header,
                encoding,
                verifier,
                ttl_secs: i64::try_from(config.ttl.as_secs()).unwrap_or(i64::MAX),
                config,
            }),
        };
        match service.self_test() {
            Err(Error::Unauthenticated { .. }) => Err(Error::invalid(
                "jwt_public_key",
                "does not verify tokens signed with the private key",
            )),
            other => other.map(|()| service),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &JwtConfig {
        &self.inner.config
    }

    /// Issues a token for `user`, valid from now for the configured TTL.
    ///
    /// # Errors
    /// [`Error::Internal`] when signing fails.
    pub fn issue(&self, user: &User) -> Result<IssuedToken> {
        self.issue_for(user.id, user.tenant_id, user.role)
    }

    fn issue_for(&self, sub: UserId, tid: TenantId, role: Role) -> Result<IssuedToken> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let config = &self.inner.config;
        let claims = Claims {
            sub,
            tid,
            role,
            jti: Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.inner.ttl_secs),
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
        };
        let token = jsonwebtoken::encode(&self.inner.header, &claims, &self.inner.encoding)
            .map_err(|e| Error::internal_with("token signing failed", e))?;
        Ok(IssuedToken::new(Secret::new(token), config.ttl, claims))
    }

    /// Verifies a token: the configured algorithm only (any other, `none` included, is
    /// refused), the signature, `exp` and `nbf` (with leeway), `iat` not in the future beyond
    /// the leeway, `iss`, `aud`, and every claim present.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] with a generic reason (`token expired` or `invalid token`)
    /// for any failure; the token is never echoed.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(invalid_token());
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.inner.verifier.verify(token, now).map_err(refused)
    }

    /// Signs and verifies one token: a start-up check that the crypto backend is present (a
    /// missing `jsonwebtoken` backend panics on first use) and that the keys work together.
    ///
    /// # Errors
    /// [`Error::Internal`] when the crypto backend is missing or signing fails;
    /// [`Error::Unauthenticated`] when the signed token does not verify.
    pub fn self_test(&self) -> Result<()> {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let issued = self.issue_for(UserId::new(), TenantId::new(), Role::Member)?;
            let verified = self.verify(issued.access_token.expose())?;
            if verified == issued.claims {
                Ok(())
            } else {
                Err(Error::internal("JWT self-test: claims changed in transit"))
            }
        }));
        outcome.unwrap_or_else(|_| {
            Err(Error::internal(
                "JWT crypto backend missing: enable exactly one of jsonwebtoken's `rust_crypto` \
                 or `aws_lc_rs` features",
            ))
        })
    }
}

fn keys(algorithm: &JwtAlgorithm) -> Result<(Algorithm, EncodingKey, VerifyingKey)> {
    match algorithm {
        JwtAlgorithm::Hs256 { secret } => {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(Error::invalid("jwt_secret", "must be at least 32 bytes"));
            }
            let bytes = secret.expose().as_bytes();
            Ok((
                Algorithm::HS256,
                EncodingKey::from_secret(bytes),
                VerifyingKey::hs256(bytes)?,
            ))
        }
        JwtAlgorithm::EdDsa {
            private_pem,
            public_pem,
        } => {
            let encoding =
                EncodingKey::from_ed_pem(private_pem.expose().as_bytes()).map_err(|_| {
                    Error::invalid(
                        "jwt_private_key",
                        "must be an Ed25519 private key in PKCS#8 PEM",
                    )
                })?;
            let decoding = DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(|_| {
                Error::invalid("jwt_public_key", "must be an Ed25519 public key in PEM")
            })?;
            Ok((Algorithm::EdDSA, encoding, VerifyingKey::EdDsa(decoding)))
        }
    }
}

fn invalid_token() -> Error {
    Error::unauthenticated("invalid token")
}

/// The one mapping of refusals: a generic reason, and a coarse category at debug level (never
/// the token or its content).
fn refused(refusal: Refusal) -> Error {
    tracing::debug!(reason = refusal.as_str(), "access token refused");
    match refusal {
        Refusal::Expired => Error::unauthenticated("token expired"),
        _ => invalid_token(),
    }
}
