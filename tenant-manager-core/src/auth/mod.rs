//! Authentication: argon2id password hashing, the password policy, and JWT access tokens.
//!
//! - [`PasswordHasher`] hashes and verifies passwords with argon2id (OWASP parameters by
//!   default) on the blocking pool, with a semaphore bounding how many hashes run at once.
//! - [`PasswordPolicy`] says which passwords are acceptable and why one is not.
//! - [`TokenService`] issues and verifies JWTs with one algorithm fixed by configuration; its
//!   verifier keys the HMAC once and decodes each part of a token once.

mod claims;
mod jwt;
mod password;
mod policy;
mod verify;

pub use claims::{Claims, IssuedToken};
pub use jwt::{JwtAlgorithm, JwtConfig, TokenService};
pub use password::{HasherConfig, MAX_PASSWORD_BYTES, PasswordHasher};
pub use policy::PasswordPolicy;
