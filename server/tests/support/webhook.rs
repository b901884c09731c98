//! An admission webhook over TLS that denies every request with a chosen status code (e.g.
//! 409): the API server passes that code on to the client, which is how a test makes a real
//! kube-apiserver answer conflicts. It serves with the control plane's own serving
//! certificate (valid for 127.0.0.1), so the webhook's CA bundle is the plane's CA.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub struct DenyingWebhook {
    pub addr: SocketAddr,
    denied: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for DenyingWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DenyingWebhook {
    /// Serve on a loopback port with the certificate and key in `pki_dir`.
    pub async fn start(pki_dir: &Path, code: u16) -> DenyingWebhook {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki_dir.join("apiserver.crt"))
                .expect("the plane's serving certificate")
                .collect::<Result<_, _>>()
                .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(pki_dir.join("apiserver.key"))
            .expect("the plane's serving key");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let denied = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&denied);
        let task = tokio::spawn(async move {
            // Ends when the test drops the webhook (the task is aborted).
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        let count = Arc::clone(&count);
                        async move { Ok::<_, Infallible>(deny(request, code, &count).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        DenyingWebhook { addr, denied, task }
    }

    /// Admission requests denied so far.
    pub fn denied(&self) -> usize {
        self.denied.load(Ordering::SeqCst)
    }
}

/// Answer an `AdmissionReview` with `allowed: false` and `code`.
async fn deny(request: Request<Incoming>, code: u16, count: &AtomicUsize) -> Response<Full<Bytes>> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let uid = review["request"]["uid"].clone();
    count.fetch_add(1, Ordering::SeqCst);
    let answer = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": false,
            "status": {"code": code, "reason": "Conflict", "message": "injected by the fault test"},
        },
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .expect("a valid response")
}
