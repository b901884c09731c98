//! One request per connection, errors returned rather than panicking: for agents that must
//! ride out a server restart or shutdown.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgent};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A complete answer: its status and decoded body (when it is a protobuf reply).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub message: Option<ServerToAgent>,
}

/// POST `msg` with `Connection: close` and read the whole answer within `timeout`. An
/// answer cut short (no full head, or fewer body bytes than its Content-Length) is an error.
pub async fn post(
    addr: SocketAddr,
    msg: &AgentToServer,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Answer> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let body = msg.encode_to_vec();
        let mut head = format!(
            "POST /v1/opamp HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             content-type: application/x-protobuf\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await?;
        parse(&all)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

fn parse(all: &[u8]) -> io::Result<Answer> {
    let cut = |what: &str| io::Error::new(io::ErrorKind::UnexpectedEof, what.to_owned());
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| cut("no complete head"))?;
    let head = String::from_utf8_lossy(&all[..end]);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| cut("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| cut("no content-length"))?;
    let body = &all[end + 4..];
    if body.len() < length {
        return Err(cut("body cut short"));
    }
    let protobuf = head
        .to_ascii_lowercase()
        .contains("content-type: application/x-protobuf");
    let message = protobuf
        .then(|| ServerToAgent::decode(&body[..length]))
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Answer { status, message })
}
