//! Streaming an artifact between a local file and an object store, hashing as it goes.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, GetResultPayload, ObjectStore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::format::{TRAILER_LEN, checksum_mismatch, io_error, malformed, parse_trailer, trailer};
use crate::error::{Error, Result};

/// Bytes read from a source file at a time.
const READ_CHUNK: usize = 1024 * 1024;
/// Objects below this size are written with one request; larger ones as a multipart upload
/// of parts this size (S3 wants parts of at least 5 MiB).
pub(super) const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// What a put wrote: content size and SHA-256 (hex).
#[derive(Debug)]
pub(super) struct Written {
    pub(super) size: u64,
    pub(super) sha256: String,
}

/// Why a put stopped.
#[derive(Debug)]
pub(super) enum PutError {
    /// The content passed `limit` bytes; nothing was stored.
    TooLarge,
    /// Any other failure; nothing was stored.
    Failed(Error),
}

impl From<Error> for PutError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// Uploads the content of `source` followed by its trailer to `path`. The object appears
/// whole when the upload completes, or not at all: a failed upload is aborted. With `limit`,
/// content longer than `limit` bytes stops the upload ([`PutError::TooLarge`]).
pub(super) async fn put(
    store: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    source: &Path,
    limit: Option<u64>,
) -> std::result::Result<Written, PutError> {
    let mut file = tokio::fs::File::open(source)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::invalid("source", "file does not exist"),
            _ => io_error(e),
        })?;
    let mut writer = BufWriter::with_capacity(Arc::clone(store), path.clone(), PART_SIZE)
        .with_max_concurrency(PART_CONCURRENCY);
    match stream_into(&mut file, &mut writer, limit).await {
        // Completing the upload publishes the object; when that fails nothing was published.
        Ok(written) => match writer.shutdown().await {
            Ok(()) => Ok(written),
            Err(e) => Err(PutError::Failed(Error::unavailable("object_store", e))),
        },
        Err(e) => {
            // Nothing of a failed upload may become visible; an abort that fails leaves at
            // most an unfinished upload, which no reader sees.
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

async fn stream_into(
    file: &mut tokio::fs::File,
    writer: &mut BufWriter,
    limit: Option<u64>,
) -> std::result::Result<Written, PutError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let n = (&mut *file)
            .take(READ_CHUNK as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(io_error)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if limit.is_some_and(|limit| size > limit) {
            return Err(PutError::TooLarge);
        }
        hasher.update(&buf);
        put_bytes(writer, Bytes::from(buf)).await?;
    }
    let sha256 = hex::encode(hasher.finalize());
    put_bytes(writer, Bytes::from(trailer(&sha256))).await?;
    Ok(Written { size, sha256 })
}

async fn put_bytes(writer: &mut BufWriter, bytes: Bytes) -> Result<()> {
    writer
        .put(bytes)
        .await
        .map_err(|e| Error::unavailable("object_store", e))
}

/// Writes the content of `result` (a whole object, `key`) to `dest`, checks it against its
/// trailer, and returns its size and SHA-256. On any failure `dest` is removed.
pub(super) async fn get(key: &str, result: GetResult, dest: &Path) -> Result<Written> {
    let total = result.meta.size;
    let Some(content_len) = total.checked_sub(TRAILER_LEN) else {
        return Err(malformed(key));
    };
    let copied = match result.payload {
        // A local file: copy it on the blocking pool, from the file the store opened (an
        // overwrite renames another file over the name, this one stays whole).
        GetResultPayload::File(file, _) => {
            let dest = dest.to_owned();
            tokio::task::spawn_blocking(move || copy_file(file, &dest, content_len))
                .await
                .map_err(|e| Error::internal_with("filesystem task failed", e))?
        }
        GetResultPayload::Stream(stream) => copy_stream(stream, dest, content_len).await,
    };
    let outcome = copied.and_then(
        |(written, trailer_bytes)| match parse_trailer(&trailer_bytes) {
            None => Err(malformed(key)),
            Some(expected) if expected != written.sha256 => Err(checksum_mismatch(key)),
            Some(_) => Ok(written),
        },
    );
    if outcome.is_err() {
        let _ = tokio::fs::remove_file(dest).await;
    }
    outcome
}

/// Options that create files `0600` on Unix: artifacts hold tenants' data.
pub(super) fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Splits a stream of bytes into the first `content_len` bytes (hashed and written out) and
/// the rest (the trailer, kept).
#[derive(Debug)]
struct Splitter {
    left: u64,
    hasher: Sha256,
    tail: Vec<u8>,
}

impl Splitter {
    fn new(content_len: u64) -> Self {
        Self {
            left: content_len,
            hasher: Sha256::new(),
            tail: Vec::with_capacity(TRAILER_LEN as usize),
        }
    }

    /// The content part of `chunk`, hashed; the rest is kept as trailer.
    fn content<'a>(&mut self, chunk: &'a [u8]) -> io::Result<&'a [u8]> {
        let take = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        let (content, rest) = chunk.split_at(take);
        self.left -= take as u64;
        self.hasher.update(content);
        if self.tail.len() + rest.len() > TRAILER_LEN as usize {
            return Err(io::Error::other("object is longer than its metadata said"));
        }
        self.tail.extend_from_slice(rest);
        Ok(content)
    }

    /// The content's size and SHA-256, and the trailer bytes.
    fn finish(self, content_len: u64) -> (Written, Vec<u8>) {
        let sha256 = hex::encode(self.hasher.finalize());
        let size = content_len - self.left;
        (Written { size, sha256 }, self.tail)
    }
}

fn copy_file(mut src: std::fs::File, dest: &Path, content_len: u64) -> Result<(Written, Vec<u8>)> {
    let mut run = || -> io::Result<(Written, Vec<u8>)> {
        let out = private_options().open(dest)?;
        let mut out = io::BufWriter::with_capacity(READ_CHUNK, out);
        let mut split = Splitter::new(content_len);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(split.content(&buf[..n])?)?;
        }
        let out = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        out.sync_all()?;
        Ok(split.finish(content_len))
    };
    run().map_err(io_error)
}

async fn copy_stream(
    mut stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    dest: &Path,
    content_len: u64,
) -> Result<(Written, Vec<u8>)> {
    let out = tokio::fs::OpenOptions::from(private_options())
        .open(dest)
        .await
        .map_err(io_error)?;
    let mut out = tokio::io::BufWriter::with_capacity(READ_CHUNK, out);
    let mut split = Splitter::new(content_len);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::unavailable("object_store", e))?;
        let content = split.content(&chunk).map_err(io_error)?;
        out.write_all(content).await.map_err(io_error)?;
    }
    out.flush().await.map_err(io_error)?;
    out.get_ref().sync_all().await.map_err(io_error)?;
    Ok(split.finish(content_len))
}

/// The trailer of the object at `path` and the object's content size, read in one request
/// (so both are of the same version of the object). `None` when the object is gone.
pub(super) async fn read_trailer(
    store: &dyn ObjectStore,
    path: &ObjectPath,
) -> object_store::Result<Option<(Bytes, u64)>> {
    let options = object_store::GetOptions::new()
        .with_range(Some(object_store::GetRange::Suffix(TRAILER_LEN)));
    let result = match store.get_opts(path, options).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = result.meta.size;
    let bytes = result.bytes().await?;
    Ok(Some((bytes, size.saturating_sub(TRAILER_LEN))))
}
