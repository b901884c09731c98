//! Content negotiation: the request's Content-Type, and gzip for the response.

use std::io::Write;

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_TYPE};
use flate2::Compression;
use flate2::write::GzEncoder;

/// The only media type of requests and responses.
pub const PROTOBUF: &str = "application/x-protobuf";

/// Whether the request declares a protobuf body. Lenient: surrounding whitespace (the
/// Odigos Node agent sends a leading space), parameters and letter case are ignored.
pub(crate) fn is_protobuf(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    // What nearly every agent sends, compared first.
    value.as_bytes() == PROTOBUF.as_bytes()
        || value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case(PROTOBUF))
}

/// Whether `Accept-Encoding` allows gzip (q-values honoured; absent header: no).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: Option<bool> = None;
    let mut wildcard: Option<bool> = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let allowed = parts.filter_map(quality).next_back().unwrap_or(1.0) > 0.0;
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(gzip.unwrap_or(false) || allowed);
            } else if coding == "*" {
                wildcard = Some(allowed);
            }
        }
    }
    gzip.or(wildcard).unwrap_or(false)
}

/// The q-value of a parameter like ` q=0.5`; an unparsable q counts as 0 (not acceptable).
fn quality(param: &str) -> Option<f32> {
    let (name, value) = param.split_once('=')?;
    name.trim()
        .eq_ignore_ascii_case("q")
        .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
}

/// Gzip `data` quickly (responses are small; latency matters more than ratio).
pub(crate) fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: axum::http::header::HeaderName, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn content_type_matching_is_lenient() {
        for ok in [
            "application/x-protobuf",
            " application/x-protobuf",
            "Application/X-Protobuf; charset=x",
        ] {
            assert!(is_protobuf(&headers(CONTENT_TYPE, &[ok])), "{ok:?}");
        }
        for bad in ["application/json", "application/x-protobufs", ""] {
            assert!(!is_protobuf(&headers(CONTENT_TYPE, &[bad])), "{bad:?}");
        }
        assert!(!is_protobuf(&HeaderMap::new()));
    }

    #[test]
    fn gzip_only_when_accepted_with_positive_quality() {
        let accepts = |v: &[&str]| accepts_gzip(&headers(ACCEPT_ENCODING, v));
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["deflate, gzip;q=0.5"]));
        assert!(accepts(&["br", "GZIP"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0, *"]), "explicit gzip;q=0 wins over *");
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=nonsense"]));
    }
}
