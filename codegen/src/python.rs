//! Python generation with protoc's built-in `python` and `pyi` generators, laid
//! out as one importable package.
//!
//! protoc names a Python module after the proto file's path, so `opamp.proto`
//! importing `anyvalue.proto` becomes `import anyvalue_pb2`, a top-level module
//! that does not exist in the Odigos layout. This plugin presents the files to
//! protoc as `<package>/<name>.proto`, so protoc itself writes
//! `opamp/opamp_pb2.py` with `from opamp import anyvalue_pb2`. Nothing is
//! patched afterwards; protoc produces every byte.
//!
//! protoc comes from a pinned `grpcio-tools` (`python -m grpc_tools.protoc`),
//! because the protoc version decides the runtime the code demands.

use std::process::Command;

use prost_types::FileDescriptorSet;
use prost_types::compiler::CodeGeneratorRequest;

use crate::plugin::{GeneratedFile, Parameters};
use crate::protoc::{self, ProtocError};

#[derive(Debug, thiserror::Error)]
pub enum PythonGenError {
    #[error(
        "unknown parameter(s) {0:?}; known: python=<interpreter with grpcio-tools>, package=<python package dir>"
    )]
    UnknownParameters(Vec<String>),
    #[error("package={0:?} is not a plain Python package directory name")]
    BadPackage(String),
    #[error(transparent)]
    Protoc(#[from] ProtocError),
}

pub fn generate(request: &CodeGeneratorRequest) -> Result<Vec<GeneratedFile>, PythonGenError> {
    let params = Parameters::parse(request.parameter());
    let unknown = params.unknown(&["python", "package"]);
    if !unknown.is_empty() {
        return Err(PythonGenError::UnknownParameters(
            unknown.into_iter().map(String::from).collect(),
        ));
    }
    let python = params.get("python").unwrap_or("python3").to_owned();
    let package = params.get("package").unwrap_or("opamp").to_owned();
    if package.is_empty()
        || !package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(PythonGenError::BadPackage(package));
    }

    let (descriptors, to_generate) = under_package(request, &package);
    let mut grpc_tools = Command::new(&python);
    grpc_tools.args(["-m", "grpc_tools.protoc"]);
    Ok(protoc::generate(
        grpc_tools,
        &descriptors,
        &to_generate,
        &["python", "pyi"],
    )?)
}

/// The request's files renamed under `package/`, and the renamed names to
/// generate. Well-known types keep their names: they resolve to the
/// `google.protobuf` modules of the runtime.
fn under_package(
    request: &CodeGeneratorRequest,
    package: &str,
) -> (FileDescriptorSet, Vec<String>) {
    let rename = |name: &str| {
        if name.starts_with("google/protobuf/") {
            name.to_owned()
        } else {
            format!("{package}/{name}")
        }
    };
    let files = request
        .proto_file
        .iter()
        .map(|file| {
            let mut file = file.clone();
            file.name = Some(rename(file.name()));
            file.dependency = file.dependency.iter().map(|d| rename(d)).collect();
            file
        })
        .collect();
    let to_generate = request.file_to_generate.iter().map(|n| rename(n)).collect();
    (FileDescriptorSet { file: files }, to_generate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::FileDescriptorProto;

    fn file(name: &str, deps: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            dependency: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn files_and_imports_move_under_the_package() {
        let request = CodeGeneratorRequest {
            file_to_generate: vec!["opamp.proto".into(), "anyvalue.proto".into()],
            proto_file: vec![
                file("google/protobuf/any.proto", &[]),
                file("anyvalue.proto", &[]),
                file(
                    "opamp.proto",
                    &["anyvalue.proto", "google/protobuf/any.proto"],
                ),
            ],
            ..Default::default()
        };
        let (set, names) = under_package(&request, "opamp");
        assert_eq!(names, ["opamp/opamp.proto", "opamp/anyvalue.proto"]);
        let got: Vec<(&str, Vec<&str>)> = set
            .file
            .iter()
            .map(|f| (f.name(), f.dependency.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            got,
            [
                ("google/protobuf/any.proto", vec![]),
                ("opamp/anyvalue.proto", vec![]),
                (
                    "opamp/opamp.proto",
                    vec!["opamp/anyvalue.proto", "google/protobuf/any.proto"]
                ),
            ]
        );
    }

    #[test]
    fn rejects_a_package_that_is_a_path() {
        let request = CodeGeneratorRequest {
            parameter: Some("package=../x".into()),
            ..Default::default()
        };
        assert!(matches!(
            generate(&request),
            Err(PythonGenError::BadPackage(_))
        ));
    }

    #[test]
    fn a_missing_interpreter_names_the_fix() {
        let request = CodeGeneratorRequest {
            parameter: Some("python=/nonexistent/python".into()),
            ..Default::default()
        };
        let err = generate(&request).unwrap_err().to_string();
        assert!(err.contains("cargo xtask generate"), "{err}");
    }
}
