//! The stored form of an artifact, the checks of keys and prefixes, and the one mapping of
//! `object_store` and I/O errors.
//!
//! An artifact is stored as one object: its content followed by a trailer of
//! [`TRAILER_LEN`] bytes, `tm-sha256:<64 lowercase hex>\n`, the SHA-256 of the content. One
//! object per artifact keeps `put_file` atomic on every backend (an object store replaces a
//! whole object at once; a sidecar would be a second object, replaced separately), and a
//! single read returns an artifact with its own checksum.

use std::io;

use object_store::path::Path as ObjectPath;

use crate::error::{Entity, Error, Result};
use crate::traits::validate_store_key;

/// Start of the trailer.
const TRAILER_TAG: &[u8] = b"tm-sha256:";
/// Length of the trailer: the tag, 64 hex digits and a newline.
pub(crate) const TRAILER_LEN: u64 = 75;

/// The trailer that records `sha256` (lowercase hex).
pub(super) fn trailer(sha256: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRAILER_LEN as usize);
    out.extend_from_slice(TRAILER_TAG);
    out.extend_from_slice(sha256.as_bytes());
    out.push(b'\n');
    out
}

/// The checksum a trailer records, or `None` when `bytes` is not a trailer.
pub(super) fn parse_trailer(bytes: &[u8]) -> Option<String> {
    let hex = bytes.strip_prefix(TRAILER_TAG)?.strip_suffix(b"\n")?;
    let ok = hex.len() == 64
        && hex
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    ok.then(|| String::from_utf8_lossy(hex).into_owned())
}

/// The object path of a key, after [`validate_store_key`].
pub(super) fn object_path(key: &str) -> Result<ObjectPath> {
    validate_store_key(key)?;
    ObjectPath::parse(key).map_err(|_| invalid_key())
}

fn invalid_key() -> Error {
    Error::invalid("key", "must be a relative path of [A-Za-z0-9._-] segments")
}

/// Checks a listing prefix: empty, or `[A-Za-z0-9._-/]` without `.`/`..` segments or a
/// leading `/`.
pub(crate) fn validate_store_prefix(prefix: &str) -> Result<()> {
    let ok = prefix.len() <= 512
        && !prefix.starts_with('/')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && prefix.split('/').all(|seg| seg != "." && seg != "..");
    if ok { Ok(()) } else { Err(invalid_prefix()) }
}

fn invalid_prefix() -> Error {
    Error::invalid(
        "prefix",
        "must be a relative path prefix of [A-Za-z0-9._-] segments",
    )
}

/// The directory to list for a string prefix: its part up to the last `/` (`None` for the
/// whole store). Listing is by directory in `object_store`; the string prefix filters after.
pub(super) fn list_root(prefix: &str) -> Result<Option<ObjectPath>> {
    validate_store_prefix(prefix)?;
    let dir = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
    if dir.is_empty() {
        return Ok(None);
    }
    ObjectPath::parse(dir)
        .map(Some)
        .map_err(|_| invalid_prefix())
}

/// Maps an I/O failure to [`Error::Unavailable`] (backend `filesystem`). The one place this
/// crate maps `std::io::Error`.
pub(crate) fn io_error(e: io::Error) -> Error {
    Error::unavailable("filesystem", e)
}

/// Maps an `object_store` failure on `key`: a missing object is `NotFound` (entity
/// `Backup`), anything else `Unavailable` (backend `object_store`) with the cause as source.
pub(super) fn store_error(key: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found(Entity::Backup, key),
        other => Error::unavailable("object_store", other),
    }
}

/// The message of a refused artifact.
pub(super) fn checksum_mismatch(key: &str) -> Error {
    Error::internal(format!("backup artifact {key} does not match its checksum"))
}

/// The message of an object that is not an artifact of this store.
pub(super) fn malformed(key: &str) -> Error {
    Error::internal(format!(
        "object {key} has no checksum trailer: it was not written by this store"
    ))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip_and_foreign_bytes_are_not_trailers() {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"x"));
        let t = trailer(&sha);
        assert_eq!(t.len() as u64, TRAILER_LEN);
        assert_eq!(parse_trailer(&t), Some(sha.clone()));
        assert_eq!(parse_trailer(&t[1..]), None);
        let upper = trailer(&sha.to_ascii_uppercase());
        assert_eq!(parse_trailer(&upper), None);
        assert_eq!(parse_trailer(&[b'x'; TRAILER_LEN as usize]), None);
    }

    #[test]
    fn list_roots_are_the_directory_part_of_a_prefix() {
        assert_eq!(list_root("").expect("root"), None);
        assert_eq!(list_root("t1").expect("root"), None);
        assert_eq!(
            list_root("a/t1").expect("dir").map(|p| p.to_string()),
            Some("a".into())
        );
        assert_eq!(
            list_root("a/b/").expect("dir").map(|p| p.to_string()),
            Some("a/b".into())
        );
        assert!(list_root("../").is_err());
    }
}
