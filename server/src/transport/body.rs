//! Reading a request body: a size limit enforced before and after gzip decompression, so
//! neither a large body nor a gzip bomb can make the server hold more than the limit.

use std::io::Read;

use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body exceeds {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("request body is not valid gzip: {0}")]
    BadGzip(std::io::Error),
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// A request body as the listeners and the router hand it over.
pub(crate) trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send
{
}

impl<B> RequestBody for B where B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Read the whole body, decompressing gzip, holding at most `limit` bytes of content.
pub(crate) async fn read(
    headers: &HeaderMap,
    body: impl RequestBody,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let gzip = match headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().map(str::trim))
    {
        None => false,
        Some(Ok(e)) if e.is_empty() || e.eq_ignore_ascii_case("identity") => false,
        Some(Ok(e)) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => true,
        Some(Ok(other)) => return Err(BodyError::UnsupportedEncoding(other.to_owned())),
        Some(Err(_)) => return Err(BodyError::UnsupportedEncoding("<not ASCII>".into())),
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let raw = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<LengthLimitError>().is_some() {
            BodyError::TooLarge { limit }
        } else {
            BodyError::Read(e.to_string())
        }
    })?;
    let raw = raw.to_bytes();
    if gzip {
        inflate(&raw, limit).map(Bytes::from)
    } else {
        Ok(raw)
    }
}

/// Decompress gzip (one or more members) into a buffer whose capacity never exceeds
/// `limit`: growth is capped, and one byte past the limit is an error.
pub(crate) fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut decoder = MultiGzDecoder::new(compressed);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::BadGzip(e)),
        };
        if out.len() + n > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if out.capacity() - out.len() < n {
            let grow = out.capacity().max(n).min(limit - out.len());
            out.reserve_exact(grow);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflates_within_the_limit_and_rejects_past_it() {
        let data = vec![7u8; 10_000];
        assert_eq!(inflate(&gzip(&data), 10_000).unwrap(), data);
        assert!(matches!(
            inflate(&gzip(&data), 9_999),
            Err(BodyError::TooLarge { limit: 9_999 })
        ));
    }

    #[test]
    fn capacity_never_exceeds_the_limit() {
        let limit = 100_000;
        let out = inflate(&gzip(&vec![1u8; limit]), limit).unwrap();
        assert!(out.capacity() <= limit, "capacity {}", out.capacity());
    }

    #[test]
    fn concatenated_members_and_garbage() {
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(inflate(&two, 10).unwrap(), b"abcd");
        assert!(matches!(
            inflate(b"not gzip", 10),
            Err(BodyError::BadGzip(_))
        ));
    }
}
