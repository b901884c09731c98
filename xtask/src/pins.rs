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
/// The protoc inside [`GRPCIO_TOOLS`]. Its major.minor sets the minimum Python runtime (5.29).
pub const PROTOC: &str = "29.0";

/// Oldest Go that builds protoc-gen-go at [`PROTOC_GEN_GO`] and `gen/go`.
pub const MIN_GO: (u32, u32) = (1, 23);
/// Oldest Node.js that runs buf's npm wrapper and protoc-gen-es v2.
pub const MIN_NODE: u32 = 18;
/// Oldest Python that grpcio-tools 1.71 ships wheels for.
pub const MIN_PYTHON: (u32, u32) = (3, 9);
