//! The optional unix socket listener: same protocol, mode 0666, stale file replaced, removed
//! at exit.

use std::os::unix::fs::PermissionsExt;

use hyper::StatusCode;
use odigos_opamp_server::Settings;

use crate::client::Connection;
use crate::messages::{PY_UID, first_message, heartbeat};
use crate::server::start;

#[tokio::test]
async fn agents_are_served_over_the_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("exchange/exchange.sock");
    let t = start(Settings {
        unix_socket: Some(path.clone()),
        ..Settings::loopback()
    })
    .await;
    assert_eq!(t.server.unix_socket(), Some(path.as_path()));
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666);

    let mut c = Connection::unix(&path).await;
    let reply = c.post(&first_message(PY_UID, 0), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/x-protobuf");
    assert!(reply.message().remote_config.is_some());
    // The same agent continues over TCP: one registry behind both listeners.
    let mut tcp = Connection::tcp(t.server.agent_addr()).await;
    assert_eq!(
        tcp.post(&heartbeat(PY_UID, 1), &[]).await.message().flags,
        0
    );

    t.server.shutdown().await;
    assert!(!path.exists(), "socket file removed at exit");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_but_a_regular_file_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("exchange.sock");
    // A socket file nobody listens on, as left by a crashed server.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let t = start(Settings {
        unix_socket: Some(path.clone()),
        ..Settings::loopback()
    })
    .await;
    let mut c = Connection::unix(&path).await;
    assert_eq!(
        c.post(&heartbeat(PY_UID, 0), &[]).await.status,
        StatusCode::OK
    );

    // A second server must not steal a live socket.
    let error = odigos_opamp_server::Server::builder(Settings {
        unix_socket: Some(path.clone()),
        ..Settings::loopback()
    })
    .start()
    .await
    .err()
    .expect("live socket refused");
    assert!(
        error.to_string().contains("another server is listening"),
        "{error}"
    );
    t.server.shutdown().await;

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"data").expect("regular file");
    let error = odigos_opamp_server::Server::builder(Settings {
        unix_socket: Some(file.clone()),
        ..Settings::loopback()
    })
    .start()
    .await
    .err()
    .expect("regular file refused");
    assert!(error.to_string().contains("not a socket"), "{error}");
    assert_eq!(std::fs::read(&file).expect("file intact"), b"data");
}
