//! [`ControlPlane`]: etcd + kube-apiserver on loopback, with our CRDs and RBAC
//! installed, for tests and for `cargo xtask kube up`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};

use super::binaries::{self, Binaries};
use super::error::{KubeError, Result, api, io};
use super::kubeconfig;
use super::launch::{self, Ports};
use super::manifests;
use super::pki::{self, Pki, Token, random_hex};
use super::process::{Lifetime, Supervised, rss_kib};
use super::version::KubeVersion;
use super::workdir::WorkDir;

/// The Kubernetes user the OpAMP server runs as in a cluster: the `odiglet`
/// service account that `deploy/rbac.yaml` binds. The harness gives it a
/// static token, so tests run the server with exactly the deployed rights.
pub const ODIGLET_USER: &str = "system:serviceaccount:odigos-system:odiglet";
const ODIGLET_GROUPS: &[&str] = &[
    "system:serviceaccounts",
    "system:serviceaccounts:odigos-system",
];
const ADMIN_USER: &str = "odigos-test-admin";

/// How many times a start is tried when a picked port was taken meanwhile.
const PORT_ATTEMPTS: u32 = 4;
const ETCD_TIMEOUT: Duration = Duration::from_secs(20);
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long each step of a start took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Finding (warm) or fetching and building (cold) the binaries.
    pub binaries: Duration,
    /// From spawning etcd to its client port accepting connections.
    pub etcd: Duration,
    /// From spawning kube-apiserver to `/readyz` answering `ok`.
    pub apiserver: Duration,
    /// Applying `deploy/` CRDs (until Established) and RBAC.
    pub manifests: Duration,
}

impl Timings {
    pub fn total(&self) -> Duration {
        self.binaries + self.etcd + self.apiserver + self.manifests
    }
}

/// Options for [`ControlPlane`]; see [`ControlPlane::builder`].
pub struct ControlPlaneBuilder {
    /// `None`: what [`super::VERSION_ENV`] names, else the current release.
    version: Option<KubeVersion>,
    tokens: Vec<Token>,
    install_rbac: bool,
    work_dir: Option<PathBuf>,
    lifetime: Lifetime,
}

impl ControlPlaneBuilder {
    /// Which Kubernetes to run, whatever [`super::VERSION_ENV`] says.
    pub fn version(mut self, version: KubeVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// One more static token, for `user` in `groups`; returns the token.
    /// Static tokens are read at apiserver start, so add them before it.
    pub fn add_token(&mut self, user: &str, groups: &[&str]) -> Result<String> {
        let token = Token::new(user, groups)?;
        let text = token.token.clone();
        self.tokens.push(token);
        Ok(text)
    }

    /// Whether to apply `deploy/rbac.yaml` at start (default: yes). Without
    /// it the odiglet token authenticates but may do nothing.
    pub fn install_rbac(mut self, install: bool) -> Self {
        self.install_rbac = install;
        self
    }

    /// Runs in `dir` (kept afterwards) with processes that outlive this one.
    pub(crate) fn detached_in(mut self, dir: PathBuf) -> Self {
        self.work_dir = Some(dir);
        self.lifetime = Lifetime::Detached;
        self
    }

    /// Builds or finds the binaries, starts etcd and kube-apiserver, waits
    /// for `/readyz`, then installs `deploy/crds/*.yaml` (and `deploy/rbac.yaml`).
    pub async fn start(self) -> Result<ControlPlane> {
        let version = match self.version {
            Some(version) => version,
            None => KubeVersion::from_env()?,
        };
        let step = Instant::now();
        let binaries = tokio::task::spawn_blocking(move || binaries::ensure(version))
            .await
            .map_err(|e| KubeError::Io {
                context: "obtaining the control-plane binaries".into(),
                source: std::io::Error::other(e),
            })??;
        let binaries_time = step.elapsed();

        // Free ports are only free until someone binds them: a parallel test can
        // take one between our pick and etcd's or the apiserver's bind. Such a
        // clash is retried on fresh ports, a bounded number of times.
        let mut attempt = 1;
        loop {
            match self.start_once(&binaries, binaries_time).await {
                Err(err) if err.is_port_clash() && attempt < PORT_ATTEMPTS => {
                    eprintln!(
                        "xtask kube: a port was taken before we could bind it (attempt {attempt}); retrying on other ports"
                    );
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn start_once(
        &self,
        binaries: &Binaries,
        binaries_time: Duration,
    ) -> Result<ControlPlane> {
        let mut timings = Timings {
            binaries: binaries_time,
            ..Timings::default()
        };
        let work = WorkDir::create(self.work_dir.clone())?;
        let dir = work.path().to_path_buf();
        let admin = Token::new(ADMIN_USER, &["system:masters"])?;
        let odiglet = Token::new(ODIGLET_USER, ODIGLET_GROUPS)?;
        let tokens: Vec<Token> = [admin.clone(), odiglet.clone()]
            .into_iter()
            .chain(self.tokens.iter().cloned())
            .collect();
        let pki = pki::generate(&dir.join("pki"), &tokens)?;
        let ports = Ports::pick()?;

        let step = Instant::now();
        let data_dir = dir.join("etcd-data");
        // A kept folder may hold the data of an attempt on other ports.
        let _ = std::fs::remove_dir_all(&data_dir);
        let command = launch::etcd_command(&binaries.etcd, &data_dir, ports);
        let mut etcd = Supervised::spawn("etcd", command, &dir.join("etcd.log"), self.lifetime)?;
        launch::wait_for_port(ports.etcd_client, &mut etcd, ETCD_TIMEOUT).await?;
        timings.etcd = step.elapsed();

        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let kubeconfig = dir.join("kubeconfig");
        kubeconfig::write(&kubeconfig, &server, &pki.ca_cert(), "admin", &admin.token)?;
        let odiglet_kubeconfig = dir.join("kubeconfig-odiglet");
        kubeconfig::write(
            &odiglet_kubeconfig,
            &server,
            &pki.ca_cert(),
            "odiglet",
            &odiglet.token,
        )?;

        let mut plane = ControlPlane {
            apiserver: None,
            etcd,
            binaries: binaries.clone(),
            pki,
            ports,
            server,
            admin,
            odiglet,
            kubeconfig,
            odiglet_kubeconfig,
            lifetime: self.lifetime,
            timings,
            work,
        };
        let step = Instant::now();
        plane.start_apiserver().await?;
        plane.timings.apiserver = step.elapsed();

        let step = Instant::now();
        plane.install_deploy_manifests(self.install_rbac).await?;
        plane.timings.manifests = step.elapsed();
        plane.report_ready();
        Ok(plane)
    }
}

/// A running etcd + kube-apiserver on 127.0.0.1. Dropping it kills both
/// (also when a test panics) and deletes its temporary folder.
pub struct ControlPlane {
    // Processes first: they must be gone before the folder is removed.
    apiserver: Option<Supervised>,
    etcd: Supervised,
    binaries: Binaries,
    pki: Pki,
    ports: Ports,
    server: String,
    admin: Token,
    odiglet: Token,
    kubeconfig: PathBuf,
    odiglet_kubeconfig: PathBuf,
    lifetime: Lifetime,
    timings: Timings,
    work: WorkDir,
}

impl ControlPlane {
    /// A control plane with the default options, of the Kubernetes that
    /// [`super::VERSION_ENV`] names (`current` when unset).
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// A control plane with the default options, of `version`.
    pub async fn start_version(version: KubeVersion) -> Result<Self> {
        Self::builder().version(version).start().await
    }

    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            version: None,
            tokens: Vec::new(),
            install_rbac: true,
            work_dir: None,
            lifetime: Lifetime::ThisProcess,
        }
    }

    /// The Kubernetes this control plane runs.
    pub fn version(&self) -> KubeVersion {
        self.binaries.version
    }

    /// A kubeconfig for the admin (group `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig for [`ODIGLET_USER`], the least-privilege identity.
    pub fn odiglet_kubeconfig_path(&self) -> &Path {
        &self.odiglet_kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The CA certificate (PEM) that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    pub fn admin_token(&self) -> &str {
        &self.admin.token
    }

    /// The token of [`ODIGLET_USER`].
    pub fn odiglet_token(&self) -> &str {
        &self.odiglet.token
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The folder holding PKI, etcd data, logs and kubeconfigs.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    pub fn etcd_pid(&self) -> u32 {
        self.etcd.pid()
    }

    /// `None` while the apiserver is stopped.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.as_ref().map(Supervised::pid)
    }

    /// Resident memory in KiB of (etcd, kube-apiserver).
    pub fn rss_kib(&self) -> (Option<u64>, Option<u64>) {
        (
            rss_kib(self.etcd_pid()),
            self.apiserver_pid().and_then(rss_kib),
        )
    }

    /// An admin client.
    pub async fn client(&self) -> Result<kube::Client> {
        kubeconfig::client(&self.kubeconfig).await
    }

    /// A client authenticated as [`ODIGLET_USER`].
    pub async fn odiglet_client(&self) -> Result<kube::Client> {
        kubeconfig::client(&self.odiglet_kubeconfig).await
    }

    /// A kubeconfig that authenticates with `token` (e.g. one from
    /// [`ControlPlaneBuilder::add_token`]); written once per token.
    pub fn kubeconfig_for_token(&self, token: &str) -> Result<PathBuf> {
        let path = self
            .work
            .path()
            .join(format!("kubeconfig-{}", &token[..token.len().min(8)]));
        kubeconfig::write(&path, &self.server, &self.pki.ca_cert(), "token", token)?;
        Ok(path)
    }

    /// A fresh namespace named `<prefix>-<random>`, so each test has its own.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String> {
        let name = namespace_name(prefix)?;
        let namespaces: Api<Namespace> = Api::all(self.client().await?);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(api(format!("creating namespace {name}")))?;
        Ok(name)
    }

    /// Server-side applies every object in the YAML file at `path` as admin;
    /// namespaced objects without a namespace go to `default`. CRDs are
    /// waited on until Established.
    pub async fn apply_yaml(&self, path: &Path) -> Result<Vec<DynamicObject>> {
        let yaml =
            std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
        manifests::apply(
            &self.client().await?,
            &yaml,
            "default",
            &path.display().to_string(),
        )
        .await
    }

    /// Like [`Self::apply_yaml`] for YAML text, into `namespace` by default.
    pub async fn apply_manifest(&self, yaml: &str, namespace: &str) -> Result<Vec<DynamicObject>> {
        manifests::apply(&self.client().await?, yaml, namespace, "manifest text").await
    }

    /// The apiserver's own Prometheus metrics (`GET /metrics` as admin), e.g.
    /// to count writes in `apiserver_request_total`.
    pub async fn metrics_text(&self) -> Result<String> {
        self.get_text("/metrics").await
    }

    async fn get_text(&self, path: &str) -> Result<String> {
        if self.apiserver.is_none() {
            return Err(KubeError::ApiserverStopped);
        }
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| KubeError::Io {
                context: format!("building GET {path}"),
                source: std::io::Error::other(e),
            })?;
        self.client()
            .await?
            .request_text(request)
            .await
            .map_err(api(format!("GET {path}")))
    }

    /// Kills kube-apiserver (SIGKILL, like a crash); etcd and all data stay.
    /// Requests fail with connection refused until [`Self::start_apiserver`].
    pub fn stop_apiserver(&mut self) {
        if let Some(mut apiserver) = self.apiserver.take() {
            apiserver.kill();
        }
    }

    /// Starts kube-apiserver (again) on the same port with the same
    /// certificates and tokens, and waits for `/readyz`.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        self.stop_apiserver();
        let log = self.work.path().join("kube-apiserver.log");
        let command =
            launch::apiserver_command(&self.binaries.kube_apiserver, &self.pki, self.ports);
        self.apiserver = Some(Supervised::spawn(
            "kube-apiserver",
            command,
            &log,
            self.lifetime,
        )?);
        self.wait_ready().await
    }

    /// [`Self::stop_apiserver`], then [`Self::start_apiserver`].
    pub async fn restart_apiserver(&mut self) -> Result<()> {
        self.stop_apiserver();
        self.start_apiserver().await
    }

    /// `deploy/crds/*.yaml` (waiting until Established), then `deploy/rbac.yaml`.
    async fn install_deploy_manifests(&self, rbac: bool) -> Result<()> {
        let deploy = crate::workspace_root().join("deploy");
        for crd in yaml_files(&deploy.join("crds"))? {
            self.apply_yaml(&crd).await?;
        }
        if rbac {
            self.apply_yaml(&deploy.join("rbac.yaml")).await?;
        }
        Ok(())
    }

    fn report_ready(&self) {
        let t = self.timings;
        eprintln!(
            "xtask kube: control plane {} ready at {} in {:.1} s (binaries {:.1} s, etcd {:.1} s, apiserver {:.1} s, manifests {:.1} s); KUBECONFIG={}",
            self.binaries.version,
            self.server,
            t.total().as_secs_f64(),
            t.binaries.as_secs_f64(),
            t.etcd.as_secs_f64(),
            t.apiserver.as_secs_f64(),
            t.manifests.as_secs_f64(),
            self.kubeconfig.display()
        );
    }

    /// Kills both processes and removes the temporary folder.
    pub fn stop(self) {
        drop(self);
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            launch::ensure_running(&mut self.etcd)?;
            let apiserver = self.apiserver.as_mut().ok_or(KubeError::ApiserverStopped)?;
            launch::ensure_running(apiserver)?;
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| KubeError::Io {
                    context: "building GET /readyz".into(),
                    source: std::io::Error::other(e),
                })?;
            let last = match tokio::time::timeout(PROBE_TIMEOUT, client.request_text(request)).await
            {
                Ok(Ok(text)) if text.trim() == "ok" => return Ok(()),
                Ok(Ok(text)) => text,
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
            };
            if Instant::now() >= deadline {
                return Err(KubeError::NotReady {
                    what: format!(
                        "kube-apiserver /readyz at {} (last answer: {last})",
                        self.server
                    ),
                    seconds: READY_TIMEOUT.as_secs(),
                    log: apiserver.log().to_path_buf(),
                    tail: super::process::tail(apiserver.log(), 30),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lets both processes run on and keeps the folder; `kube down` stops
    /// them later by pid.
    pub(crate) fn detach(self) {
        let ControlPlane {
            apiserver,
            etcd,
            work,
            ..
        } = self;
        if let Some(apiserver) = apiserver {
            apiserver.release();
        }
        etcd.release();
        if let WorkDir::Temp(dir) = work {
            let _ = dir.keep();
        }
    }
}

/// A DNS-1123 label: `<prefix>-<6 hex>`, the prefix cleaned and shortened.
fn namespace_name(prefix: &str) -> Result<String> {
    let mut clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        clean = "test".to_owned();
    }
    Ok(format!("{clean}-{}", random_hex(3)?))
}

/// `*.yaml` files in `dir`, sorted, so the install order is stable.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(io(format!("reading {}", dir.display())))?
            .path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        let name = namespace_name("My_Test::case").expect("name");
        assert!(name.starts_with("my-test--case-"), "{name}");
        assert_eq!(name.len(), "my-test--case-".len() + 6);
        assert!(namespace_name("__").expect("name").starts_with("test-"));
        assert!(namespace_name(&"x".repeat(100)).expect("name").len() <= 63);
    }
}
