//! Just enough HTTP/1.1 framing to copy a message byte for byte: read one
//! request or response head, then its body by `Content-Length`, chunked
//! encoding or (responses only) until the connection closes. Nothing is
//! normalised: the bytes read are the bytes forwarded.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Largest head accepted; OpAMP heads are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (the server's own limit is 4 MiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(Duration),
    #[error("malformed HTTP/1.1 {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("connection closed in the middle of a message")]
    Truncated,
}

/// Which side of the exchange a head belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// One message as it crossed the wire.
#[derive(Clone, Debug, Default)]
pub struct Framed {
    /// The head, from the start line to the empty line, inclusive.
    pub head: Vec<u8>,
    /// The body bytes as framed on the wire (chunk sizes included when chunked).
    pub wire_body: Vec<u8>,
    /// The body with any chunked framing removed (still content-encoded).
    pub body: Vec<u8>,
}

impl Framed {
    /// The head followed by the body, exactly as read.
    pub fn wire(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        all.extend_from_slice(&self.wire_body);
        all
    }

    /// Every header line of the head as (name, raw value): the value is
    /// everything after the colon, whitespace included, so quirks such as a
    /// leading space stay visible.
    pub fn raw_headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.head);
        text.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    /// The raw value (see [`Framed::raw_headers`]) of the first header `name`.
    pub fn raw_header(&self, name: &str) -> Option<String> {
        self.raw_headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// A header's value as an HTTP parser sees it (surrounding whitespace removed).
    pub fn header(&self, name: &str) -> Option<String> {
        self.raw_header(name).map(|v| v.trim().to_owned())
    }

    /// The start line (`POST /v1/opamp HTTP/1.1`, `HTTP/1.1 200 OK`).
    pub fn start_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.head);
        text.split("\r\n").next().unwrap_or_default().to_owned()
    }

    /// A response's status code.
    pub fn status(&self) -> Option<u16> {
        self.start_line().split(' ').nth(1)?.parse().ok()
    }

    /// Whether either side asked to close the connection after this message.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Reads one message; `Ok(None)` when the peer closed before sending a byte.
pub async fn read<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    side: Side,
    timeout: Duration,
) -> Result<Option<Framed>, FramingError> {
    match tokio::time::timeout(timeout, read_untimed(reader, side)).await {
        Ok(result) => result,
        Err(_) => Err(FramingError::Timeout(timeout)),
    }
}

async fn read_untimed<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    side: Side,
) -> Result<Option<Framed>, FramingError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(FramingError::Truncated)
            };
        }
        if head.len() > MAX_HEAD {
            return Err(malformed(
                side,
                format!("head longer than {MAX_HEAD} bytes"),
            ));
        }
        if &head[before..] == b"\r\n" && before > 0 {
            break;
        }
    }
    let framing = body_framing(&head, side)?;
    let (wire_body, body) = match framing {
        Framing::Empty => (Vec::new(), Vec::new()),
        Framing::Length(len) => {
            if len > MAX_BODY {
                return Err(malformed(side, format!("body of {len} bytes")));
            }
            let mut body = vec![0; len];
            reader
                .read_exact(&mut body)
                .await
                .map_err(|_| FramingError::Truncated)?;
            (body.clone(), body)
        }
        Framing::Chunked => read_chunked(reader, side).await?,
        Framing::UntilClose => {
            let mut body = Vec::new();
            reader.read_to_end(&mut body).await?;
            (body.clone(), body)
        }
    };
    Ok(Some(Framed {
        head,
        wire_body,
        body,
    }))
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

fn body_framing(head: &[u8], side: Side) -> Result<Framing, FramingError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let (parsed_headers, status) = match side {
        Side::Request => {
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(head) {
                Ok(httparse::Status::Complete(_)) => {}
                other => return Err(malformed(side, format!("{other:?}"))),
            }
            (request.headers.to_vec(), None)
        }
        Side::Response => {
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(head) {
                Ok(httparse::Status::Complete(_)) => {}
                other => return Err(malformed(side, format!("{other:?}"))),
            }
            (response.headers.to_vec(), response.code)
        }
    };
    let find = |name: &str| {
        parsed_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if find("expect").is_some() {
        return Err(malformed(
            side,
            "Expect: 100-continue is not supported by the tap".into(),
        ));
    }
    if let Some(code) = status
        && (code < 200 || code == 204 || code == 304)
    {
        return Ok(Framing::Empty);
    }
    if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(Framing::Chunked);
    }
    match find("content-length") {
        Some(len) => len
            .parse()
            .map(Framing::Length)
            .map_err(|_| malformed(side, format!("Content-Length {len:?}"))),
        None if side == Side::Request => Ok(Framing::Empty),
        None => Ok(Framing::UntilClose),
    }
}

async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    side: Side,
) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
    let mut wire = Vec::new();
    let mut body = Vec::new();
    loop {
        let start = wire.len();
        if reader.read_until(b'\n', &mut wire).await? == 0 {
            return Err(FramingError::Truncated);
        }
        let line = String::from_utf8_lossy(&wire[start..]).into_owned();
        let size_text = line.trim().split(';').next().unwrap_or_default().to_owned();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| malformed(side, format!("chunk size {size_text:?}")))?;
        if body.len() + size > MAX_BODY {
            return Err(malformed(side, "chunked body too large".into()));
        }
        if size == 0 {
            // Trailers (none expected) up to the final empty line.
            loop {
                let start = wire.len();
                if reader.read_until(b'\n', &mut wire).await? == 0 {
                    return Err(FramingError::Truncated);
                }
                if &wire[start..] == b"\r\n" {
                    return Ok((wire, body));
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        reader
            .read_exact(&mut chunk)
            .await
            .map_err(|_| FramingError::Truncated)?;
        body.extend_from_slice(&chunk[..size]);
        wire.extend_from_slice(&chunk);
    }
}

fn malformed(side: Side, detail: String) -> FramingError {
    let what = match side {
        Side::Request => "request",
        Side::Response => "response",
    };
    FramingError::Malformed { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn raw_header_values_keep_their_whitespace() {
        let wire: &[u8] = b"POST /v1/opamp HTTP/1.1\r\nContent-Type:  application/x-protobuf\r\nContent-Length: 3\r\n\r\nabcPOST";
        let mut reader = tokio::io::BufReader::new(wire);
        let framed = block(read(&mut reader, Side::Request, Duration::from_secs(1)))
            .unwrap()
            .unwrap();
        assert_eq!(
            framed.raw_header("content-type").unwrap(),
            "  application/x-protobuf"
        );
        assert_eq!(
            framed.header("Content-Type").unwrap(),
            "application/x-protobuf"
        );
        assert_eq!(framed.body, b"abc");
        assert_eq!(framed.wire(), &wire[..wire.len() - 4]);
    }

    #[test]
    fn chunked_bodies_are_copied_and_unframed() {
        let wire: &[u8] =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let mut reader = tokio::io::BufReader::new(wire);
        let framed = block(read(&mut reader, Side::Response, Duration::from_secs(1)))
            .unwrap()
            .unwrap();
        assert_eq!(framed.status(), Some(200));
        assert_eq!(framed.body, b"abcde");
        assert_eq!(framed.wire(), wire);
    }

    #[test]
    fn a_closed_connection_is_none_and_half_a_message_an_error() {
        let mut empty = tokio::io::BufReader::new(&b""[..]);
        assert!(
            block(read(&mut empty, Side::Request, Duration::from_secs(1)))
                .unwrap()
                .is_none()
        );
        let mut half =
            tokio::io::BufReader::new(&b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab"[..]);
        let err = block(read(&mut half, Side::Request, Duration::from_secs(1))).unwrap_err();
        assert!(matches!(err, FramingError::Truncated), "{err}");
    }
}
