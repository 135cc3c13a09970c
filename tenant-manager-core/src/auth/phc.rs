//! argon2id PHC strings: parse stored ones, make new ones, and verify passwords against them,
//! all on memory blocks the caller provides.
//!
//! The strings are exactly those of the `argon2` crate's own `PasswordHasher` (the format every
//! stored hash has): `$argon2id$v=19$m=..,t=..,p=..$<salt>$<output>`.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as Phc, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;

use crate::error::{Error, Result};

/// Largest memory cost (KiB) accepted from a stored hash, so a corrupted record cannot
/// make one verification allocate gigabytes.
const MAX_STORED_MEMORY_KIB: u32 = 1024 * 1024;

/// Largest time or parallelism cost accepted from a stored hash.
const MAX_STORED_COST: u32 = 64;

/// Bytes of salt in new hashes (the `argon2` crate's recommendation).
const SALT_BYTES: usize = 16;

/// Memory blocks for one hash: a slice of at least the block count the parameters need.
pub(super) trait Memory {
    /// Runs `work` on `count` blocks.
    ///
    /// # Errors
    /// [`Error::Internal`] when that much memory cannot be had.
    fn with_blocks<T>(&mut self, count: usize, work: impl FnOnce(&mut [Block]) -> T) -> Result<T>;
}

/// Fresh memory for every hash (tests and one-off checks).
pub(super) struct FreshMemory;

impl Memory for FreshMemory {
    fn with_blocks<T>(&mut self, count: usize, work: impl FnOnce(&mut [Block]) -> T) -> Result<T> {
        let mut blocks = alloc_blocks(count)?;
        Ok(work(&mut blocks))
    }
}

/// `count` zeroed blocks, or [`Error::Internal`] when the allocation fails.
pub(super) fn alloc_blocks(count: usize) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(count)
        .map_err(|e| Error::internal_with("no memory for password hashing", e))?;
    blocks.resize(count, Block::new());
    Ok(blocks)
}

/// Hashes `password` with `params` and a fresh random salt into a PHC string.
///
/// # Errors
/// [`Error::Internal`] when hashing fails.
pub(super) fn hash(params: &Params, password: &[u8], memory: &mut impl Memory) -> Result<String> {
    let salt_bytes: [u8; SALT_BYTES] = rand::random();
    let fail = |e: argon2::Error| Error::internal_with("password hashing failed", e);
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..len)
        .ok_or_else(|| Error::internal("password hash output too long"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    memory
        .with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &salt_bytes, &mut *out, blocks)
        })?
        .map_err(fail)?;
    to_phc(params, &salt_bytes, out)
}

/// Verifies `password` against the stored PHC string `phc`, refusing stored hashes
/// [`parse_stored`] refuses. The comparison takes constant time.
///
/// # Errors
/// [`Error::Internal`] for a stored hash that is not an argon2id PHC string within sane costs.
pub(super) fn verify(password: &[u8], phc: &str, memory: &mut impl Memory) -> Result<bool> {
    let (parsed, params) = parse_stored(phc)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(Error::internal(
            "stored password hash lacks its salt or output",
        ));
    };
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| Error::internal_with("stored password hash has a bad version", e))?
        .unwrap_or_default();
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..expected.len())
        .ok_or_else(|| Error::internal("stored password hash output too long"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params.clone());
    memory
        .with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, salt, &mut *out, blocks)
        })?
        .map_err(|e| Error::internal_with("password verification failed", e))?;
    Ok(bool::from(out.ct_eq(expected.as_bytes())))
}

/// Parses a stored hash: an argon2id PHC string with a salt, an output, and costs in range.
/// The parameters carry the stored output length.
pub(super) fn parse_stored(phc: &str) -> Result<(Phc, Params)> {
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

/// A well-formed argon2id PHC string with the configured costs, a random salt and a random
/// output: verifying it costs one full hash and matches no password.
pub(super) fn dummy(params: &Params) -> Result<String> {
    let salt: [u8; SALT_BYTES] = rand::random();
    let output: [u8; Params::DEFAULT_OUTPUT_LEN] = rand::random();
    to_phc(params, &salt, &output)
}

fn to_phc(params: &Params, salt: &[u8], output: &[u8]) -> Result<String> {
    let fail = |e: argon2::password_hash::phc::Error| Error::internal_with("password hash", e);
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| Error::internal_with("password hash parameters", e))?,
        salt: Some(Salt::new(salt).map_err(fail)?),
        hash: Some(Output::new(output).map_err(fail)?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher as _;

    use super::*;

    fn params(m: u32) -> Params {
        Params::new(m, 1, 1, None).unwrap_or_default()
    }

    #[test]
    fn hashes_are_those_of_the_argon2_crate() -> Result<()> {
        // Made by the argon2 crate's own hasher, as every stored hash was.
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(64))
            .hash_password(b"Test123!")
            .map_err(|e| Error::internal_with("argon2", e))?
            .to_string();
        assert!(verify(b"Test123!", &theirs, &mut FreshMemory)?);
        assert!(!verify(b"Test123?", &theirs, &mut FreshMemory)?);
        let ours = hash(&params(64), b"Test123!", &mut FreshMemory)?;
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{ours}");
        assert_eq!(ours.len(), theirs.len());
        let parsed = Phc::new(&ours).map_err(|e| Error::internal_with("phc", e))?;
        use argon2::PasswordVerifier as _;
        assert!(
            Argon2::default()
                .verify_password(b"Test123!", &parsed)
                .is_ok()
        );
        Ok(())
    }

    #[test]
    fn a_buffer_larger_than_needed_gives_the_same_answer() -> Result<()> {
        let phc = hash(&params(64), b"pw-long-enough", &mut FreshMemory)?;
        // 256 blocks where the hash needs 64: only the first 64 are used, twice.
        let mut big = alloc_blocks(256)?;
        assert!(verify(b"pw-long-enough", &phc, &mut SliceMemory(&mut big))?);
        assert!(verify(b"pw-long-enough", &phc, &mut SliceMemory(&mut big))?);
        assert!(!verify(
            b"pw-long-enougH",
            &phc,
            &mut SliceMemory(&mut big)
        )?);
        Ok(())
    }

    struct SliceMemory<'a>(&'a mut [Block]);

    impl Memory for SliceMemory<'_> {
        fn with_blocks<T>(
            &mut self,
            count: usize,
            work: impl FnOnce(&mut [Block]) -> T,
        ) -> Result<T> {
            let blocks = self
                .0
                .get_mut(..count)
                .ok_or_else(|| Error::internal("too small"))?;
            Ok(work(blocks))
        }
    }

    #[test]
    fn dummy_hash_parses_with_the_configured_costs() -> Result<()> {
        let dummy = dummy(&params(64))?;
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{dummy}");
        assert!(!verify(b"anything", &dummy, &mut FreshMemory)?);
        Ok(())
    }

    #[test]
    fn foreign_or_oversized_hashes_are_refused() {
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        let code = |phc: &str| verify(b"pw", phc, &mut FreshMemory).err().map(|e| e.code());
        assert_eq!(code(argon2i), Some("internal"));
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert_eq!(code(huge), Some("internal"));
        assert_eq!(code("not a hash"), Some("internal"));
    }
}
