//! Does each destination pin a protobuf runtime that our generated code runs on?
//!
//! The minimums, and why:
//! - Go: protoc-gen-go output needs `google.golang.org/protobuf` at least as
//!   new as the generator ([`pins::PROTOC_GEN_GO`]).
//! - Python: protoc 29.0 output calls `ValidateProtobufRuntimeVersion(5, 29, 0)`
//!   at import, which raises on an older runtime; 6.x and 7.x accept it.
//! - JavaScript: the output imports `@bufbuild/protobuf/codegenv2`, which the
//!   runtime exports from 2.5.0 on (2.0 to 2.4 fail to load it); 2.11.0 is the
//!   oldest this project supports (the Node agent's own range), so that is the
//!   line we warn below.

use std::path::Path;

use super::destination::{Destination, Kind};
use super::go_mod::{GoMod, Requirement};
use super::version::Version;
use super::{npm_range, python_pin};
use crate::pins;

pub const GO_RUNTIME: &str = "google.golang.org/protobuf";
pub const PYTHON_RUNTIME: &str = "protobuf";
pub const JS_RUNTIME: &str = "@bufbuild/protobuf";

pub const PYTHON_MINIMUM: Version = Version::new(5, 29, 0);
pub const JS_MINIMUM: Version = Version::new(2, 11, 0);
pub const JS_CODEGENV2_SINCE: Version = Version::new(2, 5, 0);

pub fn go_minimum() -> Version {
    Version::parse(pins::PROTOC_GEN_GO).unwrap_or(Version::new(1, 36, 11))
}

/// What one destination pins, and what is wrong with it.
#[derive(Debug, Clone)]
pub struct RuntimeCheck {
    pub kind: Kind,
    /// One line for the report: the pin as written, where, and the verdict.
    pub summary: String,
    pub warnings: Vec<String>,
    /// The oldest runtime the pin lets in: what `--verify` tests with.
    pub lowest: Option<Version>,
}

pub fn check(destination: &Destination) -> RuntimeCheck {
    let root = &destination.root;
    let (summary, mut warnings, lowest) = match destination.kind {
        Kind::Odigos => go(root),
        Kind::PythonAgent => python(root),
        Kind::NodeAgent => node(root),
    };
    if destination.kind == Kind::PythonAgent {
        warnings.extend(python_stub_lint(root));
    }
    RuntimeCheck {
        kind: destination.kind,
        summary,
        warnings,
        lowest,
    }
}

type Outcome = (String, Vec<String>, Option<Version>);

/// The verdict on a pin whose lowest admitted version is `lowest`.
/// `prefix` is how the ecosystem writes versions (Go: `v1.36.11`).
fn verdict(
    pinned: String,
    lowest: Option<Version>,
    (prefix, minimum): (&str, &Version),
    why: &str,
    fix: &str,
) -> Outcome {
    match &lowest {
        Some(low) if low >= minimum => (
            format!("{pinned}: ok, the generated code needs {prefix}{minimum} or newer"),
            vec![],
            lowest,
        ),
        Some(low) => (
            format!("{pinned}: TOO OLD"),
            vec![format!(
                "{pinned} admits {prefix}{low}, older than {prefix}{minimum}, which the generated code needs: {why}. {fix}"
            )],
            lowest,
        ),
        None => (
            format!("{pinned}: no lower bound"),
            vec![format!(
                "{pinned} sets no lower bound, and the generated code needs {prefix}{minimum} or newer: {why}. {fix}"
            )],
            None,
        ),
    }
}

fn go(root: &Path) -> Outcome {
    let minimum = go_minimum();
    let why = format!(
        "protoc-gen-go v{} output requires the same or a newer runtime",
        pins::PROTOC_GEN_GO
    );
    let fix = format!("Run `go get {GO_RUNTIME}@v{minimum} && go mod tidy` in opampserver/.");
    let text = std::fs::read_to_string(root.join("opampserver/go.mod")).unwrap_or_default();
    match GoMod::parse(&text).requirement(GO_RUNTIME) {
        Requirement::Version(version) => {
            let pinned = format!("{GO_RUNTIME} {version} (opampserver/go.mod)");
            match Version::parse(&version) {
                Some(parsed) => verdict(pinned, Some(parsed), ("v", &minimum), &why, &fix),
                None => unreadable(
                    pinned,
                    &format!("cannot read the version `{version}`"),
                    &minimum,
                ),
            }
        }
        Requirement::Replaced(by) => unreadable(
            format!("{GO_RUNTIME} (opampserver/go.mod)"),
            &format!("it is replaced by `{by}`"),
            &minimum,
        ),
        Requirement::Absent => (
            format!("{GO_RUNTIME}: not required by opampserver/go.mod"),
            vec![format!(
                "opampserver/go.mod does not require {GO_RUNTIME}; the generated code needs v{minimum} or newer. {fix}"
            )],
            None,
        ),
    }
}

fn python(root: &Path) -> Outcome {
    let why = "protoc 29.0 output checks the runtime when it is imported and raises VersionError on an older one";
    let fix =
        format!("Pin {PYTHON_RUNTIME} {PYTHON_MINIMUM} or newer (5.29.x, 6.x and 7.x all work).");
    match python_pin::find(root, PYTHON_RUNTIME) {
        Ok(Some(pin)) => {
            let pinned = format!("`{}` ({})", pin.requirement, pin.source);
            match python_pin::lowest(&pin.requirement) {
                Ok(lowest) => verdict(pinned, lowest, ("", &PYTHON_MINIMUM), why, &fix),
                Err(err) => unreadable(pinned, &err.to_string(), &PYTHON_MINIMUM),
            }
        }
        Ok(None) => (
            format!("{PYTHON_RUNTIME}: no pin found"),
            vec![format!(
                "found no {PYTHON_RUNTIME} requirement in pyproject.toml [project] dependencies, setup.py install_requires \
                 or requirements.txt; the generated code needs {PYTHON_MINIMUM} or newer ({why})"
            )],
            None,
        ),
        Err(err) => unreadable(
            PYTHON_RUNTIME.to_owned(),
            &format!("reading the agent's pins: {err}"),
            &PYTHON_MINIMUM,
        ),
    }
}

fn node(root: &Path) -> Outcome {
    let declared = match std::fs::read(root.join("package.json"))
        .map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes))
    {
        Err(err) => {
            return unreadable(
                JS_RUNTIME.to_owned(),
                &format!("reading package.json: {err}"),
                &JS_MINIMUM,
            );
        }
        Ok(Err(err)) => {
            return unreadable(
                JS_RUNTIME.to_owned(),
                &format!("parsing package.json: {err}"),
                &JS_MINIMUM,
            );
        }
        Ok(Ok(json)) => ["dependencies", "peerDependencies", "devDependencies"]
            .into_iter()
            .find_map(|table| {
                json[table][JS_RUNTIME]
                    .as_str()
                    .map(|range| (range.to_owned(), table))
            }),
    };
    let Some((range, table)) = declared else {
        return (
            format!("{JS_RUNTIME}: not a dependency in package.json"),
            vec![format!(
                "package.json does not depend on {JS_RUNTIME}; the generated code needs it, ^{JS_MINIMUM}."
            )],
            None,
        );
    };
    let pinned = format!("{JS_RUNTIME} `{range}` (package.json {table})");
    let lowest = match npm_range::lowest(&range) {
        Ok(lowest) => lowest,
        Err(err) => return unreadable(pinned, &err.to_string(), &JS_MINIMUM),
    };
    let fix = format!("Set the range to ^{JS_MINIMUM}.");
    match &lowest {
        Some(low) if low.major() > JS_MINIMUM.major() => (
            format!("{pinned}: other major version"),
            vec![format!(
                "{pinned} admits only {}.x and later, but protoc-gen-es {} output is for the {}.x runtime. {fix}",
                low.major(),
                pins::PROTOC_GEN_ES,
                JS_MINIMUM.major()
            )],
            lowest,
        ),
        Some(low) if *low < JS_CODEGENV2_SINCE => verdict(
            pinned,
            lowest.clone(),
            ("", &JS_MINIMUM),
            &format!(
                "{low} has no `{JS_RUNTIME}/codegenv2` export (added in {JS_CODEGENV2_SINCE}), so the generated code will not load"
            ),
            &fix,
        ),
        _ => verdict(
            pinned,
            lowest.clone(),
            ("", &JS_MINIMUM),
            &format!(
                "the generated code loads from {JS_CODEGENV2_SINCE} on, but {JS_MINIMUM} is the oldest runtime this project supports and tests"
            ),
            &fix,
        ),
    }
}

fn unreadable(pinned: String, problem: &str, minimum: &Version) -> Outcome {
    (
        format!("{pinned}: not checked"),
        vec![format!(
            "{pinned}: {problem}; check by hand that it admits nothing older than {minimum}"
        )],
        None,
    )
}

/// The agent lints every .py/.pyi it does not exclude. Our stubs are protoc's
/// output: lines longer than its ruff limit, not ruff-formatted, and protoc's
/// enum classes upset ty. Its config excludes `*_pb2.py` only, so say what to add.
fn python_stub_lint(root: &Path) -> Vec<String> {
    let Ok(pyproject) = std::fs::read_to_string(root.join("pyproject.toml")) else {
        return vec![];
    };
    let mut missing = Vec::new();
    if pyproject.contains("[tool.ruff") && !pyproject.contains("_pb2.pyi") {
        missing.push("\"*_pb2.pyi\" to [tool.ruff] extend-exclude");
    }
    if pyproject.contains("[tool.ty") && !pyproject.contains("_pb2.pyi") {
        missing.push("\"opamp/*_pb2.pyi\" to [tool.ty.src] exclude");
    }
    if missing.is_empty() {
        return vec![];
    }
    vec![format!(
        "pyproject.toml lints the copied opamp/*_pb2.pyi stubs, which are protoc's output (ruff E501 and format, ty \
         conflicting-metaclass); add {} in the agent",
        missing.join(" and ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimums_match_what_gen_contains() {
        let gen_dir = crate::workspace_root().join("gen");
        let go = std::fs::read_to_string(gen_dir.join("go/opamp.pb.go")).unwrap();
        assert!(
            go.contains(&format!("protoc-gen-go v{}", go_minimum())),
            "gen/go was made by another protoc-gen-go"
        );
        let py = std::fs::read_to_string(gen_dir.join("python/opamp/opamp_pb2.py")).unwrap();
        assert!(
            py.contains(&format!("# Protobuf Python Version: {PYTHON_MINIMUM}")),
            "gen/python needs another runtime"
        );
        for file in ["js/opamp_pb.js", "js/anyvalue_pb.js"] {
            let js = std::fs::read_to_string(gen_dir.join(file)).unwrap();
            assert!(
                js.contains("from \"@bufbuild/protobuf/codegenv2\""),
                "{file} no longer imports codegenv2"
            );
        }
    }
}
