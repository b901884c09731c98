//! Starting the real server in-process on loopback, with handles on its edges.
#![allow(dead_code)]

use std::sync::Arc;

use odigos_opamp_server::config_source::MemoryConfigSource;
use odigos_opamp_server::identity::{
    DeviceTable, Identity, IdentityError, IdentityFuture, IdentityRequest, StaticTableIdentity,
};
use odigos_opamp_server::store::MemoryStore;
use odigos_opamp_server::{RunningServer, Server, Settings};

use crate::messages::DEVICES_YAML;

/// A running server with the test device table, and handles on its config and store.
pub struct TestServer {
    pub server: RunningServer,
    pub configs: Arc<MemoryConfigSource>,
    pub store: Arc<MemoryStore>,
}

/// The test device table as an identity.
pub fn table_identity() -> Arc<dyn Identity> {
    Arc::new(StaticTableIdentity::new(
        DeviceTable::from_yaml(DEVICES_YAML).expect("test device table"),
    ))
}

/// Start on loopback with the test device table.
pub async fn start(settings: Settings) -> TestServer {
    start_with(settings, table_identity()).await
}

/// Start on loopback with another identity.
pub async fn start_with(settings: Settings, identity: Arc<dyn Identity>) -> TestServer {
    let configs = Arc::new(MemoryConfigSource::new());
    let store = Arc::new(MemoryStore::new());
    let server = Server::builder(settings)
        .identity(identity)
        .config_source(configs.clone())
        .store(store.clone())
        .start()
        .await
        .expect("server starts on loopback");
    TestServer {
        server,
        configs,
        store,
    }
}

/// An identity whose backend is down: every resolution is a transient failure.
pub struct UnavailableIdentity;

impl Identity for UnavailableIdentity {
    fn resolve<'a>(&'a self, _request: &'a IdentityRequest) -> IdentityFuture<'a> {
        Box::pin(std::future::ready(Err(IdentityError::Unavailable {
            reason: "Kubernetes API unreachable".into(),
            retry_after: std::time::Duration::from_secs(5),
        })))
    }

    fn is_ready(&self) -> bool {
        false
    }
}
