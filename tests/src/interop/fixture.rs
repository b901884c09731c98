//! The server under test, on the embedded default: a device table (one row
//! per client), a memory config source and a memory store whose handles stay
//! with the test. A restart keeps the agent port, the config source and the
//! store (the cluster's custom resources outlive the server) and empties the
//! registry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use odigos_opamp_server::config_source::{MemoryConfigSource, WorkloadConfig, WorkloadKey};
use odigos_opamp_server::identity::{
    DeviceRow, DeviceTable, StaticTableIdentity, Workload, WorkloadKind,
};
use odigos_opamp_server::store::MemoryStore;
use odigos_opamp_server::{RunningServer, Server, Settings, StartError};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::runtime::Handle;

use super::InteropError;
use super::agent_protocol::ResourceAttribute;
use super::http1::{self, Side};

/// One row of the device table, and the workload config its pod gets.
#[derive(Clone, Debug)]
pub struct Device {
    pub id: &'static str,
    pub namespace: &'static str,
    pub pod: &'static str,
    pub container: &'static str,
    /// `None`: a bare pod.
    pub workload: Option<(WorkloadKind, &'static str)>,
    /// `None`: no `InstrumentationConfig` (the defaults).
    pub config: Option<WorkloadConfig>,
}

impl Device {
    fn workload_kind(&self) -> WorkloadKind {
        self.workload.map_or(WorkloadKind::Pod, |(kind, _)| kind)
    }

    fn workload_name(&self) -> &'static str {
        self.workload.map_or(self.pod, |(_, name)| name)
    }

    fn row(&self) -> DeviceRow {
        DeviceRow {
            device_id: Some(self.id.to_owned()),
            namespace: self.namespace.to_owned(),
            pod: self.pod.to_owned(),
            container: self.container.to_owned(),
            pod_uid: None,
            workload_kind: self.workload.map(|(kind, _)| kind.as_str().to_owned()),
            workload_name: self.workload.map(|(_, name)| name.to_owned()),
            // The workload's config (and its container entries) is set on the
            // config source, as in Kubernetes mode.
            container_config: None,
        }
    }

    /// The `SDK` section's resource attributes this device's agent must
    /// receive, in docs/protocol.md §5's order, derived from the row (not
    /// from the server's code).
    pub fn expected_resource_attributes(&self, node_name: &str) -> Vec<ResourceAttribute> {
        let workload_key = match self.workload_kind() {
            WorkloadKind::Deployment => "k8s.deployment.name",
            WorkloadKind::StatefulSet => "k8s.statefulset.name",
            WorkloadKind::DaemonSet => "k8s.daemonset.name",
            WorkloadKind::Job => "k8s.job.name",
            WorkloadKind::CronJob => "k8s.cronjob.name",
            WorkloadKind::Rollout => "k8s.argoproj.rollout.name",
            _ => "k8s.pod.name",
        };
        let service_name = self
            .config
            .as_ref()
            .and_then(|c| c.service_name.as_deref())
            .unwrap_or(self.workload_name());
        [
            ("k8s.node.name", node_name),
            ("k8s.namespace.name", self.namespace),
            ("service.name", service_name),
            ("k8s.pod.name", self.pod),
            ("k8s.container.name", self.container),
            (workload_key, self.workload_name()),
        ]
        .into_iter()
        .map(|(key, value)| ResourceAttribute {
            key: key.to_owned(),
            value: value.to_owned(),
        })
        .collect()
    }

    /// The `instrumented-app` label: `<lowercase kind>-<workload name>`.
    pub fn instrumented_app(&self) -> String {
        format!(
            "{}-{}",
            self.workload_kind().as_str().to_ascii_lowercase(),
            self.workload_name()
        )
    }
}

/// A running server (or one between restarts) and its edges' handles.
pub struct ServerUnderTest {
    runtime: Handle,
    settings: Settings,
    table: DeviceTable,
    configs: Arc<MemoryConfigSource>,
    store: Arc<MemoryStore>,
    running: Option<RunningServer>,
}

impl ServerUnderTest {
    /// Starts a server on loopback with `devices` as its device table. The
    /// agent port comes from below the kernel's ephemeral range, so no
    /// outgoing connection or port-0 listener can take it during a restart.
    pub fn start(
        runtime: &Handle,
        mut settings: Settings,
        devices: &[Device],
    ) -> Result<Self, InteropError> {
        settings.listen = free_stable_port()?;
        let table = DeviceTable::from_rows(devices.iter().map(Device::row).collect())
            .map_err(|e| InteropError::Check(format!("the test's device table: {e}")))?;
        let configs = Arc::new(MemoryConfigSource::new());
        for device in devices {
            if let Some(config) = &device.config {
                let workload = Workload {
                    kind: device.workload_kind(),
                    name: device.workload_name().to_owned(),
                };
                let key = WorkloadKey {
                    namespace: device.namespace.to_owned(),
                    workload,
                };
                configs.set(key, config.clone());
            }
        }
        let mut server = ServerUnderTest {
            runtime: runtime.clone(),
            settings,
            table,
            configs,
            store: Arc::new(MemoryStore::new()),
            running: None,
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> Result<(), InteropError> {
        let builder = || {
            Server::builder(self.settings.clone())
                .identity(Arc::new(StaticTableIdentity::new(self.table.clone())))
                .config_source(self.configs.clone())
                .store(self.store.clone())
        };
        // Another test process may briefly hold the port we picked; bounded.
        let mut attempts = 0;
        let running = loop {
            match self.runtime.block_on(builder().start()) {
                Ok(running) => break running,
                Err(StartError::Bind { .. }) if attempts < 20 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(error.into()),
            }
        };
        // A restart binds the same port: clients keep their URL.
        self.settings.listen = running.agent_addr();
        self.running = Some(running);
        Ok(())
    }

    fn running(&self) -> Result<&RunningServer, InteropError> {
        self.running
            .as_ref()
            .ok_or_else(|| InteropError::Check("the server is not running".into()))
    }

    /// The agent listener's address (stable across restarts).
    pub fn agent_addr(&self) -> SocketAddr {
        self.settings.listen
    }

    /// This server's node name (`k8s.node.name`).
    pub fn node_name(&self) -> &str {
        &self.settings.node_name
    }

    /// The instance store, which survives restarts.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Graceful shutdown, then a new server with an empty registry on the
    /// same agent port.
    pub fn restart(&mut self) -> Result<(), InteropError> {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown());
        }
        self.launch()
    }

    /// `GET /agents` on the admin listener, as JSON.
    pub fn agents_view(&self) -> Result<Value, InteropError> {
        let admin = self.running()?.admin_addr();
        let response = self.runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(admin).await?;
            let (read, mut write) = stream.into_split();
            write
                .write_all(b"GET /agents HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
                .await?;
            let mut read = BufReader::new(read);
            http1::read(&mut read, Side::Response, Duration::from_secs(10))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
        let response = response
            .map_err(|e| InteropError::io(format!("GET http://{admin}/agents"), e))?
            .ok_or_else(|| InteropError::Check("GET /agents: no response".into()))?;
        if response.status() != Some(200) {
            return Err(InteropError::Check(format!(
                "GET /agents answered {}",
                response.start_line()
            )));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| InteropError::Check(format!("GET /agents is not JSON: {e}")))
    }

    /// Stops the server gracefully.
    pub fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown());
        }
    }
}

/// A free loopback port below the ephemeral range ([`xtask::ports`]).
fn free_stable_port() -> Result<SocketAddr, InteropError> {
    let port = xtask::ports::stable_loopback_port().map_err(|error| {
        InteropError::Check(format!(
            "no free loopback port for the agent listener: {error}"
        ))
    })?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}
