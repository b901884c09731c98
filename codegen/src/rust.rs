//! Rust generation: prost message types, pbjson serde impls (proto3 JSON) and
//! tonic clients and servers for services, plus a `lib.rs` that mounts one
//! module per protobuf package.
//!
//! Run with buf's `strategy: all`, so one invocation sees every file and can
//! write `lib.rs` for all packages at once.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use prost_build::Module;
use prost_types::compiler::CodeGeneratorRequest;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::plugin::{GeneratedFile, Parameters};

#[derive(Debug, thiserror::Error)]
pub enum RustGenError {
    #[error("unknown parameter(s) {0:?}; protoc-gen-odigos-rust takes none")]
    UnknownParameters(Vec<String>),
    #[error("prost-build failed: {0}")]
    Prost(std::io::Error),
    #[error("pbjson-build failed: {0}")]
    Pbjson(std::io::Error),
    #[error("pbjson-build wrote invalid UTF-8 for package {0}")]
    NotUtf8(String),
    #[error("file {0:?} has no package; every proto file in this workspace must declare one")]
    NoPackage(String),
}

pub fn generate(request: &CodeGeneratorRequest) -> Result<Vec<GeneratedFile>, RustGenError> {
    let params = Parameters::parse(request.parameter());
    let unknown = params.unknown(&[]);
    if !unknown.is_empty() {
        return Err(RustGenError::UnknownParameters(
            unknown.into_iter().map(String::from).collect(),
        ));
    }

    let wanted: BTreeSet<&str> = request
        .file_to_generate
        .iter()
        .map(String::as_str)
        .collect();
    let targets: Vec<&FileDescriptorProto> = request
        .proto_file
        .iter()
        .filter(|f| wanted.contains(f.name()))
        .collect();
    if let Some(file) = targets.iter().find(|f| f.package().is_empty()) {
        return Err(RustGenError::NoPackage(file.name().to_owned()));
    }
    let packages: BTreeSet<&str> = targets.iter().map(|f| f.package()).collect();

    let mut files = BTreeMap::new();
    for (package, code) in prost_modules(&targets)? {
        files.insert(format!("{package}.rs"), code);
    }
    for (package, code) in pbjson_modules(&request.proto_file, &packages)? {
        files.insert(format!("{package}.serde.rs"), code);
    }
    files.insert("lib.rs".to_owned(), lib_rs(&packages, &files));

    Ok(files
        .into_iter()
        .map(|(name, content)| GeneratedFile { name, content })
        .collect())
}

/// prost message types, with tonic service code appended per package.
fn prost_modules(
    targets: &[&FileDescriptorProto],
) -> Result<BTreeMap<String, String>, RustGenError> {
    let mut config = prost_build::Config::new();
    config.service_generator(
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .build_transport(true)
            .service_generator(),
    );
    // Maps as BTreeMap: encoding then follows key order, so the server's
    // responses (and the golden vectors) are byte-for-byte reproducible.
    config.btree_map(["."]);
    let package_of: BTreeMap<Module, &str> = targets
        .iter()
        .map(|f| (Module::from_protobuf_package_name(f.package()), f.package()))
        .collect();
    let requests = targets
        .iter()
        .map(|f| {
            (
                Module::from_protobuf_package_name(f.package()),
                (*f).clone(),
            )
        })
        .collect();
    let modules = config.generate(requests).map_err(RustGenError::Prost)?;
    Ok(modules
        .into_iter()
        .filter_map(|(module, code)| package_of.get(&module).map(|p| (p.to_string(), code)))
        .collect())
}

/// proto3 JSON (serde) impls for every message and enum of the target packages.
fn pbjson_modules(
    all_files: &[FileDescriptorProto],
    packages: &BTreeSet<&str>,
) -> Result<BTreeMap<String, String>, RustGenError> {
    let descriptors = FileDescriptorSet {
        file: all_files.to_vec(),
    }
    .encode_to_vec();
    let mut builder = pbjson_build::Builder::new();
    builder
        .register_descriptors(&descriptors)
        .map_err(RustGenError::Pbjson)?;
    builder.btree_map(["."]);
    let prefixes: Vec<String> = packages.iter().map(|p| format!(".{p}")).collect();
    let written = builder
        .generate(&prefixes, |_| Ok(Vec::<u8>::new()))
        .map_err(RustGenError::Pbjson)?;
    written
        .into_iter()
        .map(|(package, bytes)| {
            let name = package.to_string();
            String::from_utf8(bytes)
                .map(|code| (name.clone(), code))
                .map_err(|_| RustGenError::NotUtf8(name))
        })
        .collect()
}

/// `lib.rs`: one nested module per package (`opamp.proto` → `opamp::proto`),
/// including whichever generated files exist for it.
fn lib_rs(packages: &BTreeSet<&str>, files: &BTreeMap<String, String>) -> String {
    let mut tree = ModuleTree::default();
    for package in packages {
        let includes = [format!("{package}.rs"), format!("{package}.serde.rs")]
            .into_iter()
            .filter(|name| files.contains_key(name))
            .collect();
        tree.insert(
            Module::from_protobuf_package_name(package).parts(),
            includes,
        );
    }
    let mut out = String::from(
        "// Generated by protoc-gen-odigos-rust (crate `codegen`). Mounts one module per protobuf package.\n",
    );
    tree.render(&mut out, 0);
    out
}

#[derive(Default)]
struct ModuleTree {
    includes: Vec<String>,
    children: BTreeMap<String, ModuleTree>,
}

impl ModuleTree {
    fn insert<'a>(&mut self, mut path: impl Iterator<Item = &'a str>, includes: Vec<String>) {
        match path.next() {
            Some(segment) => self
                .children
                .entry(segment.to_owned())
                .or_default()
                .insert(path, includes),
            None => self.includes.extend(includes),
        }
    }

    fn render(&self, out: &mut String, depth: usize) {
        let indent = "    ".repeat(depth);
        for include in &self.includes {
            out.push_str(&format!("{indent}include!(\"{include}\");\n"));
        }
        for (name, child) in &self.children {
            out.push_str(&format!("{indent}pub mod {name} {{\n"));
            child.render(out, depth + 1);
            out.push_str(&format!("{indent}}}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(files: &[(&str, &str)], generate: &[&str]) -> CodeGeneratorRequest {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        let set = protox::compile(&names, [dir.path()]).unwrap();
        CodeGeneratorRequest {
            file_to_generate: generate.iter().map(|s| s.to_string()).collect(),
            proto_file: set.file,
            ..Default::default()
        }
    }

    #[test]
    fn generates_types_json_services_and_lib() {
        let req = request(
            &[(
                "a.proto",
                "syntax = \"proto3\"; package x.y; message Ping { string id = 1; }\
                 service Echo { rpc Call(Ping) returns (Ping); }",
            )],
            &["a.proto"],
        );
        let files = generate(&req).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["lib.rs", "x.y.rs", "x.y.serde.rs"]);
        let get = |n: &str| &files.iter().find(|f| f.name == n).unwrap().content;
        assert!(get("x.y.rs").contains("pub struct Ping"));
        assert!(get("x.y.rs").contains("pub mod echo_client"));
        assert!(get("x.y.rs").contains("pub mod echo_server"));
        assert!(get("x.y.serde.rs").contains("impl serde::Serialize for Ping"));
        assert!(
            get("lib.rs").contains("pub mod x {\n    pub mod y {\n        include!(\"x.y.rs\");")
        );
    }

    #[test]
    fn rejects_unknown_parameters() {
        let mut req = request(
            &[("a.proto", "syntax = \"proto3\"; package p; message M {}")],
            &["a.proto"],
        );
        req.parameter = Some("bogus=1".into());
        assert!(
            matches!(generate(&req), Err(RustGenError::UnknownParameters(p)) if p == ["bogus"])
        );
    }

    #[test]
    fn output_is_deterministic() {
        let files = [(
            "a.proto",
            "syntax = \"proto3\"; package p; message A { map<string, B> m = 1; } message B { int64 v = 1; }",
        )];
        let first = generate(&request(&files, &["a.proto"])).unwrap();
        for _ in 0..3 {
            assert_eq!(generate(&request(&files, &["a.proto"])).unwrap(), first);
        }
    }
}
