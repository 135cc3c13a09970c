//! Authentication: argon2id password hashing, the password policy, and JWT access tokens.
//!
//! - [`PasswordHasher`] hashes and verifies passwords with argon2id (OWASP parameters by
//!   default) on a few dedicated threads (at most half the CPUs) that reuse their memory; a
//!   hash that finds no thread free within a short wait is shed with a retryable error.
//! - [`PasswordPolicy`] says which passwords are acceptable and why one is not.
//! - [`TokenService`] issues and verifies JWTs with one algorithm fixed by configuration; its
//!   verifier keys the HMAC once and decodes each part of a token once.

mod claims;
mod hash_pool;
mod jwt;
mod password;
mod phc;
mod policy;
mod verify;

pub use claims::{Claims, IssuedToken};
pub use jwt::{JwtAlgorithm, JwtConfig, TokenService};
pub use password::{HashSlot, HasherConfig, HasherStats, MAX_PASSWORD_BYTES, PasswordHasher};
pub use policy::PasswordPolicy;
