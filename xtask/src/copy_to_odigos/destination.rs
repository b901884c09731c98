//! The three Odigos repositories that receive generated code: how to
//! recognise each one, and which generated file goes where in it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::CopyError;
use super::go_mod::GoMod;

/// The Go module path of the Odigos OpAMP server.
pub const OPAMPSERVER_MODULE: &str = "github.com/odigos-io/odigos/opampserver";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Odigos,
    PythonAgent,
    NodeAgent,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Odigos, Kind::PythonAgent, Kind::NodeAgent];

    /// The command-line flag that names this destination, used in every message about it.
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Odigos => "--odigos",
            Kind::PythonAgent => "--python-agent",
            Kind::NodeAgent => "--node-agent",
        }
    }

    /// The GitHub repository a destination of this kind is a clone of.
    pub fn repository(self) -> &'static str {
        match self {
            Kind::Odigos => "odigos-io/odigos",
            Kind::PythonAgent => "odigos-io/odigos-opentelemetry-python",
            Kind::NodeAgent => "odigos-io/opentelemetry-node",
        }
    }

    /// (path under gen/, path under the destination) of every file copied, per
    /// docs/protocol.md §9. Python takes the `.pyi` stubs too: protoc 29 builds the
    /// message classes at import time, so without stubs a type checker (the
    /// agent runs `ty`) sees no `opamp_pb2.AgentToServer` at all.
    pub fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Odigos => &[
                ("go/opamp.pb.go", "opampserver/protobufs/opamp.pb.go"),
                ("go/anyvalue.pb.go", "opampserver/protobufs/anyvalue.pb.go"),
            ],
            Kind::PythonAgent => &[
                ("python/opamp/opamp_pb2.py", "opamp/opamp_pb2.py"),
                ("python/opamp/anyvalue_pb2.py", "opamp/anyvalue_pb2.py"),
                ("python/opamp/opamp_pb2.pyi", "opamp/opamp_pb2.pyi"),
                ("python/opamp/anyvalue_pb2.pyi", "opamp/anyvalue_pb2.pyi"),
            ],
            Kind::NodeAgent => &[
                ("js/opamp_pb.js", "src/opamp/generated/opamp_pb.js"),
                ("js/opamp_pb.d.ts", "src/opamp/generated/opamp_pb.d.ts"),
                ("js/anyvalue_pb.js", "src/opamp/generated/anyvalue_pb.js"),
                (
                    "js/anyvalue_pb.d.ts",
                    "src/opamp/generated/anyvalue_pb.d.ts",
                ),
            ],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Odigos => "Odigos repository",
            Kind::PythonAgent => "Python agent",
            Kind::NodeAgent => "Node agent",
        })
    }
}

/// A destination that passed identification. `root` is canonical: every
/// later containment check compares against it.
#[derive(Debug, Clone)]
pub struct Destination {
    pub kind: Kind,
    pub root: PathBuf,
    /// What identified it, for the report ("opampserver/go.mod: module ...").
    pub evidence: String,
}

impl Destination {
    /// Checks that `path` is a clone of the repository `kind` names, without
    /// writing anything. Refuses folders inside `gen_dir`: copying gen/ onto
    /// itself would "succeed" and mean nothing.
    pub fn identify(kind: Kind, path: &Path, gen_dir: &Path) -> Result<Self, CopyError> {
        let wrong = |check: String| CopyError::WrongRepository {
            kind,
            path: path.to_owned(),
            check,
        };
        let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CopyError::Missing {
                kind,
                path: path.to_owned(),
            },
            _ => CopyError::Io {
                context: format!("{} {}", kind.flag(), path.display()),
                source,
            },
        })?;
        if !metadata.is_dir() {
            return Err(CopyError::NotADirectory {
                kind,
                path: path.to_owned(),
            });
        }
        let root = path.canonicalize().map_err(|source| CopyError::Io {
            context: format!("resolving {}", path.display()),
            source,
        })?;
        if gen_dir
            .canonicalize()
            .is_ok_and(|gen_dir| root.starts_with(gen_dir))
        {
            return Err(wrong(
                "it is inside this workspace's gen/ folder, the copy's source".into(),
            ));
        }
        let evidence = match kind {
            Kind::Odigos => {
                let go_mod_path = root.join("opampserver/go.mod");
                let text = std::fs::read_to_string(&go_mod_path).map_err(|_| {
                    wrong("there is no readable opampserver/go.mod (the Odigos repository keeps the OpAMP server's Go module in opampserver/)".into())
                })?;
                match GoMod::parse(&text).module {
                    Some(module) if module == OPAMPSERVER_MODULE => {
                        format!("opampserver/go.mod declares module {OPAMPSERVER_MODULE}")
                    }
                    Some(module) => {
                        return Err(wrong(format!(
                            "opampserver/go.mod declares module {module}, not {OPAMPSERVER_MODULE}"
                        )));
                    }
                    None => return Err(wrong("opampserver/go.mod has no module directive".into())),
                }
            }
            Kind::PythonAgent => {
                if !root.join("opamp/__init__.py").is_file() {
                    return Err(wrong(
                        "there is no opamp/__init__.py (the Python agent has its `opamp` package at the top level)".into(),
                    ));
                }
                "has the opamp package (opamp/__init__.py)".to_owned()
            }
            Kind::NodeAgent => {
                if !root.join("src/opamp/generated").is_dir() {
                    return Err(wrong(
                        "there is no src/opamp/generated/ folder (the Node agent keeps its generated OpAMP code there)".into(),
                    ));
                }
                "has src/opamp/generated/".to_owned()
            }
        };
        Ok(Self {
            kind,
            root,
            evidence,
        })
    }
}
