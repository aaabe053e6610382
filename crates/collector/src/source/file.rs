//! A file written by `tailscale metrics write <path>`.

use std::path::Path;

use tokio::io::AsyncReadExt;

use super::{Fetched, SourceError, SourceOptions, SourceSpec};
use crate::TargetInfo;

/// Reads `path` whole, refusing more than `options.max_body` bytes.
///
/// The size is checked before reading, and at most `max_body + 1` bytes are read in case the
/// file grows meanwhile. A file says nothing about the process that wrote it: the target
/// info stays empty, and no content type is known.
pub(super) async fn fetch(
    path: &Path,
    spec: &SourceSpec,
    options: &SourceOptions,
) -> Result<Fetched, SourceError> {
    let io_error = |e| SourceError::from_io(spec, e);
    let too_large = || SourceError::TooLarge {
        endpoint: spec.describe(),
        limit: options.max_body,
    };
    let limit = u64::try_from(options.max_body).unwrap_or(u64::MAX);

    let file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let meta = file.metadata().await.map_err(io_error)?;
    if meta.is_dir() {
        return Err(io_error(std::io::ErrorKind::IsADirectory.into()));
    }
    let len = meta.len();
    if len > limit {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .await
        .map_err(io_error)?;
    if body.len() > options.max_body {
        return Err(too_large());
    }
    Ok(Fetched {
        body: body.into(),
        target: TargetInfo::default(),
        content_type: None,
        debug: None,
    })
}
