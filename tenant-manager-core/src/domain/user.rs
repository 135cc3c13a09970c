//! Users of a tenant, their roles, and validated e-mail addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{TenantId, UserId};
use crate::error::Error;

/// A validated, lowercased e-mail address. Unique within a tenant; one address may belong to
/// users of several tenants (one user per tenant).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates and normalises (trims, lowercases) an address.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `email` when the shape is wrong.
    pub fn new(value: &str) -> Result<Self, Error> {
        Self::parse_field(value, "email")
    }

    /// Like [`Email::new`], reporting `field` on failure.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `field` when the shape is wrong.
    pub fn parse_field(value: &str, field: &'static str) -> Result<Self, Error> {
        let value = value.trim().to_lowercase();
        if value.len() > 254 {
            return Err(Error::invalid(field, "must be at most 254 characters"));
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err(Error::invalid(field, "must contain @"));
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !local_ok || !domain_ok {
            return Err(Error::invalid(field, "is not a valid e-mail address"));
        }
        Ok(Self(value))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl FromStr for Email {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A user's role within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and writes the tenant's data.
    Member,
    /// Also manages users and settings.
    Admin,
    /// Created the organisation; can do everything, including deleting it.
    Owner,
}

impl Role {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Whether this role includes the rights of `other`.
    pub fn includes(self, other: Role) -> bool {
        self >= other
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(Error::invalid(
                "role",
                "must be one of owner, admin, member",
            )),
        }
    }
}

/// An argon2id PHC string. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by [`crate::auth::PasswordHasher`] or read from storage.
    pub fn from_phc(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identity.
    pub id: UserId,
    /// Tenant the user belongs to.
    pub tenant_id: TenantId,
    /// Login e-mail, unique within the tenant.
    pub email: Email,
    /// Role within the tenant.
    pub role: Role,
    /// argon2id hash of the password.
    #[serde(skip_serializing)]
    pub password_hash: PasswordHash,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a registry needs to create a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewUser {
    /// Identity (fresh by default).
    pub id: UserId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// E-mail.
    pub email: Email,
    /// Role.
    pub role: Role,
    /// Password hash.
    pub password_hash: PasswordHash,
}

impl NewUser {
    /// A new user with a fresh id.
    pub fn new(tenant_id: TenantId, email: Email, role: Role, password_hash: PasswordHash) -> Self {
        Self {
            id: UserId::new(),
            tenant_id,
            email,
            role,
            password_hash,
        }
    }

    /// The user record this creates.
    pub fn into_user(self, now: OffsetDateTime) -> User {
        User {
            id: self.id,
            tenant_id: self.tenant_id,
            email: self.email,
            role: self.role,
            password_hash: self.password_hash,
            created_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_and_normalised() {
        assert_eq!(
            Email::new(" Test@Test.com ").map(|e| e.0).ok(),
            Some("test@test.com".into())
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.com",
            "a@.com",
            "a@b..com",
            "a b@c.com",
            "a'--@x.com",
            "ü@x.com",
        ] {
            assert_eq!(
                Email::new(bad)
                    .err()
                    .and_then(|e| e.field().map(str::to_owned))
                    .as_deref(),
                Some("email"),
                "{bad}"
            );
        }
    }

    #[test]
    fn roles_are_ordered_and_hashes_hidden() {
        assert!(Role::Owner.includes(Role::Admin));
        assert!(!Role::Member.includes(Role::Admin));
        assert_eq!(
            format!("{:?}", PasswordHash::from_phc("$argon2id$x")),
            "PasswordHash(***)"
        );
    }
}
