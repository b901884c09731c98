//! One PodResources `List` call over the kubelet's unix socket, never longer than a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use odigos_opamp_proto::v1::pod_resources_lister_client::PodResourcesListerClient;
use odigos_opamp_proto::v1::{ListPodResourcesRequest, ListPodResourcesResponse};
use tonic::transport::{Channel, Endpoint};

/// A node with hundreds of pods answers in well under a MiB; this leaves room.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why the kubelet could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubelet socket path {0} is not valid UTF-8; pass another --kubelet-socket")]
    BadPath(PathBuf),
    #[error("cannot set up the kubelet PodResources client for {path}: {source}")]
    Endpoint {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error(
        "kubelet PodResources List on {path} failed: {status}; is the kubelet running and the \
         socket mounted into this container?"
    )]
    Call {
        path: PathBuf,
        status: tonic::Status,
    },
    #[error("kubelet PodResources List on {path} took longer than {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
}

/// A client of one kubelet socket. Connects lazily and reconnects on the next call after a
/// failure, so a kubelet that restarts needs nothing from us.
#[derive(Clone, Debug)]
pub struct PodResourcesClient {
    path: PathBuf,
    channel: Channel,
    timeout: Duration,
}

impl PodResourcesClient {
    /// A client for the socket at `path`; each call (connecting included) gets `timeout`.
    /// Must be called inside a Tokio runtime.
    pub fn new(path: &Path, timeout: Duration) -> Result<Self, KubeletError> {
        let text = path
            .to_str()
            .ok_or_else(|| KubeletError::BadPath(path.to_owned()))?;
        let endpoint = Endpoint::from_shared(format!("unix:{text}"))
            .map_err(|source| KubeletError::Endpoint {
                path: path.to_owned(),
                source,
            })?
            .connect_timeout(timeout)
            .timeout(timeout);
        Ok(PodResourcesClient {
            path: path.to_owned(),
            channel: endpoint.connect_lazy(),
            timeout,
        })
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything the kubelet allocated on this node.
    pub async fn list(&self) -> Result<ListPodResourcesResponse, KubeletError> {
        let mut client = PodResourcesListerClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        // The endpoint timeout covers the request; this also covers a hung connect.
        let call = client.list(ListPodResourcesRequest {});
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::Cancelled => {
                Err(KubeletError::Timeout {
                    path: self.path.clone(),
                    timeout: self.timeout,
                })
            }
            Ok(Err(status)) => Err(KubeletError::Call {
                path: self.path.clone(),
                status,
            }),
            Err(_) => Err(KubeletError::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            }),
        }
    }
}
