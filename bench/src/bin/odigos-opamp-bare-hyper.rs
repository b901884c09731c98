//! The ceiling of the HTTP stack: hyper (the HTTP/1.1 server under axum) answering every
//! request with the same small `ServerToAgent`, after reading the whole body.
//!
//! `odigos-opamp-bare-hyper --listen 127.0.0.1:PORT`; stops on SIGTERM or SIGINT.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use odigos_opamp_proto::opamp::proto::ServerToAgent;
use prost::Message;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4320")]
    listen: SocketAddr,
}

/// A plain acknowledgement as our server sends it: a uid and the capabilities.
fn fixed_reply() -> Bytes {
    let reply = ServerToAgent {
        instance_uid: b"0195e2a4-0000-7000-8000-000000000000".to_vec(),
        capabilities: 3,
        ..Default::default()
    };
    Bytes::from(reply.encode_to_vec())
}

async fn answer(
    request: Request<Incoming>,
    reply: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body, as any real server must; a broken body still gets the reply.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(reply));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let reply = fixed_reply();
    println!("bare hyper listening on {}", listener.local_addr()?);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    eprintln!("accept: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let reply = reply.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, reply.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
