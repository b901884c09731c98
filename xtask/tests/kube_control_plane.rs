//! The control-plane harness against real etcd and kube-apiserver processes.
//! The first run on a machine builds kube-apiserver (about 5 minutes); the
//! tests then fail, never skip, if the control plane cannot start.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use xtask::kube::{ControlPlane, KubeError, KubeVersion, daemon};

const CRDS: [&str; 2] = [
    "instrumentationinstances.odigos.io",
    "instrumentationconfigs.odigos.io",
];

async fn start() -> ControlPlane {
    match ControlPlane::start().await {
        Ok(plane) => plane,
        Err(err) => panic!("the Kubernetes control plane did not start: {err}"),
    }
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

async fn readyz(plane: &ControlPlane) -> Result<String, kube::Error> {
    let client = plane.client().await.expect("admin client");
    client
        .request_text(
            http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request"),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_ready_with_crds_established_and_a_namespace_per_test() {
    let started = Instant::now();
    let plane = start().await;
    let t = plane.timings();
    let (etcd_rss, apiserver_rss) = plane.rss_kib();
    eprintln!(
        "start-up {:.2} s (binaries {:.2} s, etcd {:.2} s, apiserver /readyz {:.2} s, CRDs+RBAC {:.2} s); RSS etcd {} MiB, kube-apiserver {} MiB",
        started.elapsed().as_secs_f64(),
        t.binaries.as_secs_f64(),
        t.etcd.as_secs_f64(),
        t.apiserver.as_secs_f64(),
        t.manifests.as_secs_f64(),
        etcd_rss.unwrap_or_default() / 1024,
        apiserver_rss.unwrap_or_default() / 1024,
    );

    assert_eq!(readyz(&plane).await.expect("GET /readyz"), "ok");
    // The release ODIGOS_KUBE_VERSION names (the current one when unset), as `kubectl
    // version` would show it.
    let wanted = KubeVersion::from_env().expect("ODIGOS_KUBE_VERSION");
    assert_eq!(plane.version(), wanted);
    let client = plane.client().await.expect("admin client");
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(info.git_version, wanted.git_version(), "{info:?}");
    assert!(
        plane.server_url().starts_with("https://127.0.0.1:"),
        "{}",
        plane.server_url()
    );
    assert!(plane.ca_pem().contains("BEGIN CERTIFICATE"));
    assert!(plane.kubeconfig_path().is_file());

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name} not Established: {conditions:?}"
        );
    }

    let first = plane.create_namespace("harness").await.expect("namespace");
    let second = plane.create_namespace("harness").await.expect("namespace");
    assert_ne!(first, second);
    let namespaces: Api<Namespace> = Api::all(client);
    for name in [&first, &second] {
        namespaces
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    }

    let metrics = plane.metrics_text().await.expect("GET /metrics");
    assert!(
        metrics.contains("apiserver_request_total{"),
        "no apiserver_request_total in /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_manifest_creates_objects_in_the_given_namespace() {
    let plane = start().await;
    let namespace = plane.create_namespace("apply").await.expect("namespace");
    let applied = plane
        .apply_manifest(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  k: v\n---\n\
             apiVersion: odigos.io/v1alpha1\nkind: InstrumentationConfig\nmetadata:\n  name: deployment-coupon\n\
             spec:\n  serviceName: coupon\n",
            &namespace,
        )
        .await
        .expect("apply");
    assert_eq!(applied.len(), 2);
    assert!(
        applied
            .iter()
            .all(|o| o.metadata.namespace.as_deref() == Some(namespace.as_str()))
    );
    assert_eq!(applied[1].data["spec"]["serviceName"], "coupon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_tokens_authenticate_and_rbac_is_opt_out() {
    let mut builder = ControlPlane::builder().install_rbac(false);
    let alice = builder.add_token("alice", &["developers"]).expect("token");
    let plane = builder
        .start()
        .await
        .unwrap_or_else(|e| panic!("the Kubernetes control plane did not start: {e}"));

    // Authenticated as alice (so 403, not 401), with no rights.
    let client = kubeconfig_client(&plane.kubeconfig_for_token(&alice).expect("kubeconfig")).await;
    let denied = Api::<Namespace>::all(client)
        .list(&Default::default())
        .await;
    match denied {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(status.message.contains("\"alice\""), "{}", status.message);
        }
        other => panic!("expected 403 for alice, got {other:?}"),
    }

    // Without deploy/rbac.yaml the odiglet identity may read nothing.
    let odiglet = plane.odiglet_client().await.expect("odiglet client");
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::all(odiglet)
        .list(&Default::default())
        .await;
    assert!(
        matches!(pods, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{pods:?}"
    );
}

async fn kubeconfig_client(path: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_both_processes_and_removes_the_folder() {
    let plane = start().await;
    let etcd = plane.etcd_pid();
    let apiserver = plane.apiserver_pid().expect("apiserver running");
    let dir = plane.work_dir().to_path_buf();
    assert!(process_alive(etcd) && process_alive(apiserver));

    plane.stop();
    assert!(!process_alive(etcd), "etcd (pid {etcd}) still running");
    assert!(
        !process_alive(apiserver),
        "kube-apiserver (pid {apiserver}) still running"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn a_panicking_test_still_stops_its_control_plane() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let plane = runtime.block_on(start());
        tx.send((
            plane.etcd_pid(),
            plane.apiserver_pid(),
            plane.work_dir().to_path_buf(),
        ))
        .expect("send");
        panic!("deliberate panic while the control plane runs");
    })
    .join();
    assert!(outcome.is_err(), "the thread should have panicked");
    let (etcd, apiserver, dir) = rx.recv().expect("the control plane started");
    assert!(!process_alive(etcd), "etcd (pid {etcd}) survived the panic");
    assert!(
        !apiserver.is_some_and(process_alive),
        "kube-apiserver survived the panic"
    );
    assert!(!dir.exists(), "{} survived the panic", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_outage_keeps_the_data_and_the_address() {
    let mut plane = start().await;
    let namespace = plane.create_namespace("outage").await.expect("namespace");
    let url = plane.server_url().to_owned();
    let etcd = plane.etcd_pid();
    let old = plane.apiserver_pid().expect("apiserver running");

    plane.stop_apiserver();
    assert!(!process_alive(old));
    assert_eq!(plane.apiserver_pid(), None);
    assert!(
        process_alive(etcd),
        "etcd must keep running through an apiserver outage"
    );
    let during = readyz(&plane).await;
    assert!(
        during.is_err(),
        "the API answered during the outage: {during:?}"
    );
    assert!(matches!(
        plane.metrics_text().await,
        Err(KubeError::ApiserverStopped)
    ));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted = Instant::now();
    plane.start_apiserver().await.expect("restart");
    eprintln!(
        "apiserver restart to /readyz: {:.2} s",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(plane.server_url(), url);
    assert_ne!(plane.apiserver_pid(), Some(old));
    assert_eq!(readyz(&plane).await.expect("GET /readyz"), "ok");
    let namespaces: Api<Namespace> = Api::all(plane.client().await.expect("client"));
    namespaces
        .get(&namespace)
        .await
        .expect("the namespace survived the outage");

    plane.restart_apiserver().await.expect("restart_apiserver");
    assert_eq!(readyz(&plane).await.expect("GET /readyz"), "ok");
}

#[test]
fn kube_up_env_down_manage_a_background_control_plane() {
    let run_dir = tempfile::tempdir().expect("temp dir");
    let run_dir = run_dir.path().join("run");
    let xtask = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env(daemon::RUN_DIR_ENV, &run_dir)
            .output()
            .expect("running xtask");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "xtask {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    };

    let up = xtask(&["kube", "up"]);
    let version = KubeVersion::from_env().expect("ODIGOS_KUBE_VERSION");
    assert!(
        up.contains(&format!("Kubernetes {version} at https://127.0.0.1:")),
        "{up}"
    );
    let kubeconfig = run_dir.join("kubeconfig");
    assert!(
        up.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{up}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("state.json")).expect("state.json"),
    )
    .expect("JSON");
    let pids: Vec<u32> = ["etcd_pid", "apiserver_pid"]
        .iter()
        .map(|k| state[k].as_u64().expect("pid") as u32)
        .collect();
    assert!(
        pids.iter().all(|pid| process_alive(*pid)),
        "the background processes must outlive `kube up`"
    );

    // The background apiserver answers through the kubeconfig `up` wrote.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answer = runtime.block_on(async {
        kubeconfig_client(&kubeconfig)
            .await
            .request_text(
                http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("request"),
            )
            .await
    });
    assert_eq!(answer.expect("GET /readyz"), "ok");

    assert_eq!(
        xtask(&["kube", "env"]).trim(),
        format!("export KUBECONFIG={}", kubeconfig.display())
    );
    assert!(xtask(&["kube", "up"]).contains("already running"));
    // Another release while one runs: refused, with what to do.
    let other = match version {
        KubeVersion::Current => KubeVersion::Oldest,
        KubeVersion::Oldest => KubeVersion::Current,
    };
    let refused = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["kube", "up", "--version", other.minor()])
        .env(daemon::RUN_DIR_ENV, &run_dir)
        .output()
        .expect("running xtask");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("cargo xtask kube down"),
        "{stderr}"
    );

    let down = xtask(&["kube", "down"]);
    assert!(down.contains("stopped"), "{down}");
    assert!(
        pids.iter().all(|pid| !process_alive(*pid)),
        "`kube down` left a process running"
    );
    assert!(!Path::new(&run_dir).exists());
    assert!(xtask(&["kube", "down"]).contains("no control plane"));
}
