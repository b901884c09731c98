//! `--verify`: after copying, prove each destination accepts the new code
//! with the runtime it pins.
//!
//! - Go: `go build ./...` in the destination's opampserver/ module.
//! - Python: import both `_pb2` modules under the lowest `protobuf` the agent
//!   admits, in a venv under `.tools/`, and round-trip a message. The `opamp`
//!   package is stubbed so that the agent's own `opamp/__init__.py` (which may
//!   import third-party packages) never runs; `-I -B` keeps the environment
//!   out and writes no bytecode into the agent.
//! - Node: load both `_pb.js` files with the lowest `@bufbuild/protobuf` the
//!   agent admits (installed under `.tools/`), and round-trip a message. The
//!   files are loaded from a scratch copy, since the agent compiles them with
//!   tsc rather than running them as they are.

use std::path::Path;
use std::process::Command;

use super::CopyError;
use super::destination::{Destination, Kind};
use super::runtime::{JS_RUNTIME, PYTHON_RUNTIME};
use super::version::Version;
use crate::tools::{self, ToolError, ToolsLock};

/// Runs the check for `destination`; returns what was proven, for the report.
pub fn verify(
    destination: &Destination,
    lowest: Option<&Version>,
    tools_dir: &Path,
) -> Result<String, CopyError> {
    match destination.kind {
        Kind::Odigos => go(destination),
        Kind::PythonAgent => python(
            destination,
            pinned(destination.kind, lowest, PYTHON_RUNTIME)?,
            tools_dir,
        ),
        Kind::NodeAgent => node(
            destination,
            pinned(destination.kind, lowest, JS_RUNTIME)?,
            tools_dir,
        ),
    }
}

fn pinned<'a>(
    kind: Kind,
    lowest: Option<&'a Version>,
    runtime: &str,
) -> Result<&'a Version, CopyError> {
    lowest.ok_or_else(|| CopyError::CannotVerify {
        kind,
        reason: format!("the destination pins no lowest {runtime} version to test with (see the runtime warning above)"),
    })
}

fn tool_error(kind: Kind, step: impl Into<String>) -> impl FnOnce(ToolError) -> CopyError {
    let step = step.into();
    move |source| CopyError::Tool { kind, step, source }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CopyError {
    let context = context.into();
    move |source| CopyError::Io { context, source }
}

fn go(destination: &Destination) -> Result<String, CopyError> {
    let kind = destination.kind;
    let go = tools::require_go().map_err(tool_error(kind, "finding go"))?;
    let module = destination.root.join("opampserver");
    tools::run(
        Command::new(go)
            .args(["build", "./..."])
            .current_dir(&module),
    )
    .map_err(tool_error(
        kind,
        format!("`go build ./...` in {}", module.display()),
    ))?;
    Ok(format!("go build ./... in {}: ok", module.display()))
}

/// Imports `opamp.anyvalue_pb2` and `opamp.opamp_pb2` from argv[1] without
/// running `opamp/__init__.py`, round-trips a message, prints the runtime version.
const PYTHON_CHECK: &str = r#"
import importlib, os, sys, types
package = types.ModuleType("opamp")
package.__path__ = [os.path.join(sys.argv[1], "opamp")]
sys.modules["opamp"] = package
anyvalue_pb2 = importlib.import_module("opamp.anyvalue_pb2")
opamp_pb2 = importlib.import_module("opamp.opamp_pb2")
sent = opamp_pb2.AgentToServer(sequence_num=7)
sent.agent_description.identifying_attributes.add(key="service.name", value=anyvalue_pb2.AnyValue(string_value="x"))
received = opamp_pb2.AgentToServer.FromString(sent.SerializeToString())
assert received == sent, "AgentToServer did not survive a round trip"
from google.protobuf import __version__
print(__version__)
"#;

fn python(
    destination: &Destination,
    version: &Version,
    tools_dir: &Path,
) -> Result<String, CopyError> {
    let kind = destination.kind;
    let scratch = tools_dir.join("copy-to-odigos");
    let venv = scratch.join(format!("python-protobuf-{version}"));
    let interpreter = {
        let _lock = ToolsLock::acquire(tools_dir).map_err(tool_error(kind, "locking .tools/"))?;
        std::fs::create_dir_all(&scratch)
            .map_err(io_error(format!("creating {}", scratch.display())))?;
        let requirements = scratch.join(format!("python-protobuf-{version}.txt"));
        std::fs::write(&requirements, format!("{PYTHON_RUNTIME}=={version}\n"))
            .map_err(io_error(format!("writing {}", requirements.display())))?;
        tools::ensure_venv(&venv, &requirements).map_err(tool_error(
            kind,
            format!(
                "installing {PYTHON_RUNTIME}=={version} into {}",
                venv.display()
            ),
        ))?
    };
    let found = tools::stdout_of(
        Command::new(&interpreter)
            .args(["-I", "-B", "-c", PYTHON_CHECK])
            .arg(&destination.root)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
    .map_err(tool_error(kind, format!("importing opamp/opamp_pb2.py and opamp/anyvalue_pb2.py under {PYTHON_RUNTIME} {version}")))?;
    same_runtime(kind, version, found.lines().last().unwrap_or_default())?;
    Ok(format!(
        "imported opamp.opamp_pb2 and opamp.anyvalue_pb2 from {} under {PYTHON_RUNTIME} {version} and round-tripped a message: ok",
        destination.root.display()
    ))
}

/// Loads both modules with the installed runtime, round-trips a message,
/// prints the runtime version.
const NODE_CHECK: &str = r#"import { readFileSync } from "node:fs";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AgentToServerSchema } from "./opamp_pb.js";
import { AnyValueSchema, KeyValueSchema } from "./anyvalue_pb.js";

const attribute = create(KeyValueSchema, {
  key: "service.name",
  value: create(AnyValueSchema, { value: { case: "stringValue", value: "x" } }),
});
const sent = create(AgentToServerSchema, { sequenceNum: 7n, agentDescription: { identifyingAttributes: [attribute] } });
const received = fromBinary(AgentToServerSchema, toBinary(AgentToServerSchema, sent));
if (!equals(AgentToServerSchema, sent, received)) {
  throw new Error("AgentToServer did not survive a round trip");
}
const runtime = new URL("../node_modules/@bufbuild/protobuf/package.json", import.meta.url);
console.log(JSON.parse(readFileSync(runtime, "utf8")).version);
"#;

fn node(
    destination: &Destination,
    version: &Version,
    tools_dir: &Path,
) -> Result<String, CopyError> {
    let kind = destination.kind;
    let (node, npm) = tools::require_node().map_err(tool_error(kind, "finding node and npm"))?;
    let install = tools_dir
        .join("copy-to-odigos")
        .join(format!("node-protobuf-{version}"));
    {
        let _lock = ToolsLock::acquire(tools_dir).map_err(tool_error(kind, "locking .tools/"))?;
        let installed = install
            .join("node_modules")
            .join(JS_RUNTIME)
            .join("package.json");
        let current = std::fs::read(&installed)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|json| json["version"].as_str().map(str::to_owned));
        if current.as_deref() != Some(version.to_string().as_str()) {
            std::fs::create_dir_all(&install)
                .map_err(io_error(format!("creating {}", install.display())))?;
            let manifest = serde_json::json!({ "private": true, "dependencies": { JS_RUNTIME: version.to_string() } });
            std::fs::write(install.join("package.json"), manifest.to_string()).map_err(
                io_error(format!("writing {}/package.json", install.display())),
            )?;
            eprintln!(
                "xtask: npm install {JS_RUNTIME}@{version} in {}",
                install.display()
            );
            tools::run(
                Command::new(&npm)
                    .args([
                        "install",
                        "--ignore-scripts",
                        "--no-audit",
                        "--no-fund",
                        "--no-package-lock",
                        "--loglevel=error",
                    ])
                    .current_dir(&install),
            )
            .map_err(tool_error(
                kind,
                format!("installing {JS_RUNTIME}@{version}"),
            ))?;
        }
    }
    // A scratch ES-module folder beside node_modules, so the bare import resolves.
    let scratch = tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(&install)
        .map_err(io_error(format!(
            "creating a scratch folder in {}",
            install.display()
        )))?;
    let generated = destination.root.join("src/opamp/generated");
    for file in ["opamp_pb.js", "anyvalue_pb.js"] {
        std::fs::copy(generated.join(file), scratch.path().join(file)).map_err(io_error(
            format!("copying {} for the check", generated.join(file).display()),
        ))?;
    }
    std::fs::write(
        scratch.path().join("package.json"),
        r#"{"private":true,"type":"module"}"#,
    )
    .and_then(|()| std::fs::write(scratch.path().join("check.mjs"), NODE_CHECK))
    .map_err(io_error("writing the Node check"))?;
    let found = tools::stdout_of(
        Command::new(node)
            .arg("check.mjs")
            .current_dir(scratch.path()),
    )
    .map_err(tool_error(
        kind,
        format!("loading src/opamp/generated/*_pb.js with {JS_RUNTIME} {version}"),
    ))?;
    same_runtime(kind, version, found.lines().last().unwrap_or_default())?;
    Ok(format!(
        "loaded src/opamp/generated/opamp_pb.js and anyvalue_pb.js under {JS_RUNTIME} {version} and round-tripped a message: ok"
    ))
}

/// The check must have run on the runtime it was meant to, not some other one.
fn same_runtime(kind: Kind, wanted: &Version, reported: &str) -> Result<(), CopyError> {
    if Version::parse(reported).as_ref() == Some(wanted) {
        return Ok(());
    }
    Err(CopyError::CannotVerify {
        kind,
        reason: format!("the check ran on runtime {reported:?}, not {wanted}"),
    })
}
