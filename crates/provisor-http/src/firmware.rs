//! Firmware files: kept in the data directory under their SHA-256 (so a file is written
//! once however many names it has), indexed in the store, and served to phones under their
//! token with ETag, Last-Modified and single-range requests.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED,
    RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use provisor_domain::model::Firmware;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Largest firmware file accepted.
pub const MAX_FIRMWARE: usize = 512 * 1024 * 1024;

/// Where the contents with this digest are kept.
pub fn path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(sha256)
}

/// Writes `bytes` (atomically: a temporary file, then renamed) and returns its digest.
pub async fn save(dir: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let sha = provisor_domain::token::sha256_hex(bytes);
    tokio::fs::create_dir_all(dir).await?;
    let target = path(dir, &sha);
    if tokio::fs::try_exists(&target).await? {
        return Ok(sha);
    }
    let temp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
    tokio::fs::write(&temp, bytes).await?;
    if let Err(e) = tokio::fs::rename(&temp, &target).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    Ok(sha)
}

/// Removes contents nothing refers to any more.
pub async fn remove(dir: &Path, sha256: &str) {
    if let Err(e) = tokio::fs::remove_file(path(dir, sha256)).await {
        tracing::warn!(error = %e, sha256, "could not remove an unused firmware file");
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` as (start, end inclusive); `Err` if unsatisfiable,
/// `Ok(None)` for no (or an unsupported, multi-range) header: the whole file.
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        (Some(s), None) if b.is_empty() => (s, size.saturating_sub(1)),
        (None, Some(n)) if a.is_empty() && n > 0 => {
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return Err(()),
    };
    if size == 0 || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The file, whole or the requested range, or 304 if the phone has it.
pub async fn serve(dir: &Path, firmware: &Firmware, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", firmware.sha256);
    let modified = firmware
        .created_at
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let common = |response: &mut Response| {
        let h = response.headers_mut();
        for (name, value) in [(ETAG, &etag), (LAST_MODIFIED, &modified)] {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    };
    let unchanged = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == etag);
    if unchanged {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        common(&mut r);
        return r;
    }
    let size = firmware.size;
    let (status, start, end) = match range(headers, size) {
        Ok(None) => (StatusCode::OK, 0, size.saturating_sub(1)),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let file = match tokio::fs::File::open(path(dir, &firmware.sha256)).await {
        Ok(mut f) => match f.seek(SeekFrom::Start(start)).await {
            Ok(_) => f,
            Err(e) => return unavailable(e),
        },
        Err(e) => return unavailable(e),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(length)));
    let mut r = (status, body).into_response();
    common(&mut r);
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(length));
    let partial = (status == StatusCode::PARTIAL_CONTENT)
        .then(|| HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")).ok())
        .flatten();
    if let Some(v) = partial {
        h.insert(CONTENT_RANGE, v);
    }
    r
}

fn unavailable(e: std::io::Error) -> Response {
    tracing::error!(error = %e, "a firmware file in the index is not readable");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(range).unwrap());
        h
    }

    #[test]
    fn ranges() {
        assert_eq!(range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range(&with("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(range(&with("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&with("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&with("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(range(&with("bytes=100-"), 100), Err(()));
        assert_eq!(range(&with("bytes=9-0"), 100), Err(()));
        assert_eq!(range(&with("bytes=x-y"), 100), Err(()));
        assert_eq!(range(&with("bytes=0-1,5-6"), 100), Ok(None));
    }
}
