//! `cargo xtask generate [--check]`: everything under `gen/`.
//!
//! [`render`] produces the whole wanted tree in memory: `buf generate` into a
//! temporary folder, a header on every file naming the command that made it,
//! and the package scaffolding from `xtask/templates/gen/` (go.mod, package.json,
//! Cargo.toml, ...). `generate` then syncs `gen/` to it; `--check` only compares.
//! Both go through the same function, so the check cannot disagree with the
//! generator. `generate --lang python,go` runs only those languages' plugins (and installs
//! only their tools) and touches only their folders; `--check` always covers them all.

use std::path::Path;
use std::process::Command;

use crate::files::{self, Drift, Tree};
use crate::tools::{self, CodegenTools, ToolError};

/// The command that regenerates `gen/`; named in headers and in `--check` failures.
pub const COMMAND: &str = "cargo xtask generate";

/// A generated language: its folder under `gen/`, its plugin in buf.gen.yaml (the one
/// whose `out` is in that folder) and the tools it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lang {
    Go,
    Python,
    Java,
    Js,
    Rust,
}

impl Lang {
    pub const ALL: [Lang; 5] = [Lang::Go, Lang::Python, Lang::Java, Lang::Js, Lang::Rust];

    /// Its folder under `gen/`, and its name on the command line.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Go => "go",
            Lang::Python => "python",
            Lang::Java => "java",
            Lang::Js => "js",
            Lang::Rust => "rust",
        }
    }
}

impl std::str::FromStr for Lang {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Lang::ALL
            .into_iter()
            .find(|l| l.dir() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Lang::ALL.iter().map(|l| l.dir()).collect();
                format!("unknown language {text:?}: one of {}", names.join(", "))
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("gen/ (or ../deploy/crds/) is out of date with proto/, buf.gen.yaml, the generators or the CRD types:\n{}\nRun `{COMMAND}` and commit the result.", list(.0))]
    Drift(Vec<Drift>),
    #[error("buf.gen.yaml: {0}")]
    Template(String),
}

fn list(drift: &[Drift]) -> String {
    drift
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// buf.gen.yaml with only the plugins of `langs`, as the JSON buf takes for `--template`.
fn template(root: &Path, langs: &[Lang]) -> Result<String, GenerateError> {
    let text =
        std::fs::read_to_string(root.join("buf.gen.yaml")).map_err(|source| GenerateError::Io {
            context: "reading buf.gen.yaml".into(),
            source,
        })?;
    let mut plan: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| GenerateError::Template(e.to_string()))?;
    let plugins = plan["plugins"]
        .as_array_mut()
        .ok_or_else(|| GenerateError::Template("no plugins list".into()))?;
    plugins.retain(|plugin| {
        let out = plugin["out"].as_str().unwrap_or_default();
        langs.iter().any(|l| {
            out.strip_prefix("gen/")
                .is_some_and(|rest| rest.split('/').next() == Some(l.dir()))
        })
    });
    if plugins.len() != langs.len() {
        return Err(GenerateError::Template(format!(
            "expected one plugin per language of {langs:?}, found {}",
            plugins.len()
        )));
    }
    Ok(plan.to_string())
}

/// The complete wanted contents of `gen/`.
pub fn render(root: &Path, tools: &CodegenTools) -> Result<Tree, GenerateError> {
    render_langs(root, tools, &Lang::ALL)
}

/// The wanted contents of `gen/` for `langs`: their folders (and, for all of them, the
/// top-level files).
pub fn render_langs(
    root: &Path,
    tools: &CodegenTools,
    langs: &[Lang],
) -> Result<Tree, GenerateError> {
    let staging = tempfile::tempdir().map_err(|source| GenerateError::Io {
        context: "temporary directory".into(),
        source,
    })?;
    // buf resolves the `local:` plugin paths from the current directory, hence the root;
    // `-o` prefixes every `out:` with the staging dir.
    tools::run(
        Command::new(&tools.buf)
            .args(["generate", "--template"])
            .arg(template(root, langs)?)
            .arg("-o")
            .arg(staging.path())
            .current_dir(root),
    )?;

    let generated =
        files::read_tree(&staging.path().join("gen")).map_err(|source| GenerateError::Io {
            context: "reading buf output".into(),
            source,
        })?;
    let templates = files::read_tree(&root.join("xtask/templates/gen")).map_err(|source| {
        GenerateError::Io {
            context: "reading xtask/templates/gen".into(),
            source,
        }
    })?;

    let all = langs.len() == Lang::ALL.len();
    let selected = |path: &str| {
        let top = path.split('/').next().unwrap_or_default();
        langs.iter().any(|l| l.dir() == top) || (all && !path.contains('/'))
    };
    let mut tree = Tree::new();
    for (path, contents) in generated.into_iter().chain(templates) {
        if selected(&path) {
            let stamped = stamp(&path, contents);
            tree.insert(path, stamped);
        }
    }
    Ok(tree)
}

/// Prepends the "generated, do not edit" header in the file's comment syntax.
/// Formats without comments (JSON, go.sum) carry the note elsewhere or not at all.
pub fn stamp(path: &str, contents: Vec<u8>) -> Vec<u8> {
    stamp_from(
        path,
        contents,
        "from proto/. DO NOT EDIT: change proto/ or buf.gen.yaml and rerun it.",
    )
}

/// [`stamp`], naming what the file is made from and what to change instead.
fn stamp_from(path: &str, contents: Vec<u8>, source: &str) -> Vec<u8> {
    let text = format!("Code generated by `{COMMAND}` {source}");
    let header = match path.rsplit('.').next().unwrap_or_default() {
        "go" | "rs" | "js" | "ts" | "mod" | "java" => format!("// {text}\n"),
        "py" | "pyi" | "toml" | "yaml" => format!("# {text}\n"),
        // An XML file may open with a comment when it has no `<?xml ?>` declaration.
        "md" | "xml" => format!("<!-- {text} -->\n"),
        _ => return contents,
    };
    let mut out = header.into_bytes();
    out.extend(contents);
    out
}

/// Where the CRDs go, from the workspace root.
pub const CRDS_DIR: &str = "deploy/crds";

/// The CRDs of `deploy/crds/`, from the server's Rust types (`server/src/kube/crds.rs`),
/// as the `odigos-opamp-crds` binary prints them.
pub fn render_crds(root: &Path) -> Result<Tree, GenerateError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let printed = tools::stdout_of(
        Command::new(cargo)
            .args([
                "run",
                "--quiet",
                "--locked",
                "-p",
                "odigos-opamp-server",
                "--bin",
                "odigos-opamp-crds",
            ])
            .current_dir(root),
    )?;
    let mut tree = Tree::new();
    for document in printed.split("--- ").filter(|d| !d.trim().is_empty()) {
        let (file, yaml) = document.split_once('\n').ok_or_else(|| {
            GenerateError::Template(format!("odigos-opamp-crds printed {document:?}"))
        })?;
        let source =
            "from server/src/kube/crds.rs. DO NOT EDIT: change the Rust types and rerun it.";
        let mut contents = yaml.trim_end().as_bytes().to_vec();
        contents.push(b'\n');
        tree.insert(file.trim().to_owned(), stamp_from(file, contents, source));
    }
    Ok(tree)
}

/// How `crds_dir` differs from the CRDs the types give (paths as `../deploy/crds/<file>`).
pub fn crds_drift(root: &Path, crds_dir: &Path) -> Result<Vec<Drift>, GenerateError> {
    let actual = files::read_tree(crds_dir).map_err(|source| GenerateError::Io {
        context: format!("reading {}", crds_dir.display()),
        source,
    })?;
    Ok(files::compare(&render_crds(root)?, &actual)
        .into_iter()
        .map(|change| change.within(&format!("../{CRDS_DIR}")))
        .collect())
}

/// What `generate` did to `gen/` and `deploy/crds/`.
pub fn generate(root: &Path) -> Result<Vec<Drift>, GenerateError> {
    generate_langs(root, &Lang::ALL)
}

/// What `generate --lang ...` did: only the folders of `langs` are written.
pub fn generate_langs(root: &Path, langs: &[Lang]) -> Result<Vec<Drift>, GenerateError> {
    let tools = tools::ensure_codegen_tools_for(root, langs)?;
    let wanted = render_langs(root, &tools, langs)?;
    let write = |dir: &Path, tree: &Tree| {
        files::sync_tree(dir, tree).map_err(|source| GenerateError::Io {
            context: format!("writing {}", dir.display()),
            source,
        })
    };
    if langs.len() == Lang::ALL.len() {
        let mut changes = write(&root.join("gen"), &wanted)?;
        let crds = render_crds(root)?;
        for change in write(&root.join(CRDS_DIR), &crds)? {
            changes.push(change.within(&format!("../{CRDS_DIR}")));
        }
        return Ok(changes);
    }
    let mut changes = Vec::new();
    for lang in langs {
        let prefix = format!("{}/", lang.dir());
        let mut part = Tree::new();
        for (path, contents) in &wanted {
            if let Some(rest) = path.strip_prefix(&prefix) {
                part.insert(rest.to_owned(), contents.clone());
            }
        }
        let dir = root.join("gen").join(lang.dir());
        for change in write(&dir, &part)? {
            changes.push(change.within(lang.dir()));
        }
    }
    Ok(changes)
}

/// Fails listing every file of `gen_dir` that differs from a fresh generation.
pub fn check(root: &Path, gen_dir: &Path) -> Result<(), GenerateError> {
    let tools = tools::ensure_codegen_tools(root)?;
    let wanted = render(root, &tools)?;
    let actual = files::read_tree(gen_dir).map_err(|source| GenerateError::Io {
        context: format!("reading {}", gen_dir.display()),
        source,
    })?;
    let mut drift = files::compare(&wanted, &actual);
    drift.extend(crds_drift(root, &root.join(CRDS_DIR))?);
    if drift.is_empty() {
        Ok(())
    } else {
        Err(GenerateError::Drift(drift))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_each_language_comment_syntax() {
        let go =
            String::from_utf8(stamp("go/opamp.pb.go", b"package protobufs\n".to_vec())).unwrap();
        assert!(go.starts_with("// Code generated by `cargo xtask generate`"));
        assert!(go.ends_with("package protobufs\n"));
        let py = String::from_utf8(stamp(
            "python/opamp/opamp_pb2.py",
            b"# -*- coding: utf-8 -*-\n".to_vec(),
        ))
        .unwrap();
        assert!(py.starts_with("# Code generated by"));
        assert_eq!(
            py.lines().nth(1),
            Some("# -*- coding: utf-8 -*-"),
            "the coding line must stay within the first two lines"
        );
        let java = String::from_utf8(stamp(
            "java/src/main/java/com/opamp/proto/OpampProto.java",
            b"// Generated by the protocol buffer compiler.  DO NOT EDIT!\n".to_vec(),
        ))
        .unwrap();
        assert!(java.starts_with("// Code generated by `cargo xtask generate`"));
        assert!(java.contains("DO NOT EDIT"));
        let pom = String::from_utf8(stamp("java/pom.xml", b"<project/>\n".to_vec())).unwrap();
        assert!(pom.starts_with("<!-- Code generated by"));
        assert!(pom.ends_with("-->\n<project/>\n"));
        assert_eq!(stamp("js/package.json", b"{}".to_vec()), b"{}");
        assert_eq!(stamp("go/go.sum", b"x".to_vec()), b"x");
    }

    #[test]
    fn the_template_keeps_one_plugin_per_chosen_language() {
        let root = crate::workspace_root();
        for lang in Lang::ALL {
            let plan: serde_json::Value =
                serde_json::from_str(&template(&root, &[lang]).unwrap()).unwrap();
            let outs: Vec<&str> = plan["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["out"].as_str().unwrap())
                .collect();
            assert_eq!(outs.len(), 1, "{lang:?}: {outs:?}");
            assert!(
                outs[0].starts_with(&format!("gen/{}", lang.dir())),
                "{outs:?}"
            );
        }
        assert_eq!("python".parse::<Lang>(), Ok(Lang::Python));
        assert!(
            "cobol"
                .parse::<Lang>()
                .unwrap_err()
                .contains("go, python, java, js, rust")
        );
    }

    #[test]
    fn drift_error_lists_files_and_the_fix() {
        let err = GenerateError::Drift(vec![
            Drift::Changed("go/opamp.pb.go".into()),
            Drift::Extra("js/old_pb.js".into()),
        ]);
        let text = err.to_string();
        assert!(text.contains("changed   go/opamp.pb.go"), "{text}");
        assert!(text.contains("stale     js/old_pb.js"), "{text}");
        assert!(text.contains("Run `cargo xtask generate`"), "{text}");
    }
}
