//! Java generation with protoc's built-in `java` generator, under the class
//! names the Odigos protos fork gives them.
//!
//! The fork generates with buf's managed mode, which sets three file options
//! before protoc sees the files: `java_package` = prefix + proto package
//! (`com.opamp.proto`), `java_multiple_files` = true (one top-level class per
//! message and enum) and `java_outer_classname` = the file name in PascalCase
//! followed by `Proto` (`OpampProto`, holding only the file's descriptor). This
//! plugin sets the same three on its copy of the descriptors, so the classes
//! are the fork's and proto/ stays the upstream schema; the other languages
//! never see these options. protoc then writes every byte.
//!
//! protoc is the full protoc of the release pinned for Python (grpcio-tools'
//! own protoc has no Java generator), because the protoc version decides the
//! protobuf-java runtime the code demands.

use std::process::Command;

use prost_types::compiler::CodeGeneratorRequest;
use prost_types::{FileDescriptorProto, FileDescriptorSet, FileOptions};

use crate::plugin::{GeneratedFile, Parameters};
use crate::protoc::{self, ProtocError};

#[derive(Debug, thiserror::Error)]
pub enum JavaGenError {
    #[error(
        "unknown parameter(s) {0:?}; known: protoc=<path of the pinned protoc>, java_package_prefix=<e.g. com>"
    )]
    UnknownParameters(Vec<String>),
    #[error("missing parameter {0}=...; buf.gen.yaml must name it in the plugin's opt")]
    MissingParameter(&'static str),
    #[error("java_package_prefix={0:?} is not a dotted Java package name")]
    BadPrefix(String),
    #[error(
        "{file} sets {option} itself, but this plugin chooses the Java names: remove the option from proto/ or the plugin from buf.gen.yaml"
    )]
    OptionAlreadySet { file: String, option: &'static str },
    #[error("{0} has no package; the Java package is derived from it")]
    NoPackage(String),
    #[error(transparent)]
    Protoc(#[from] ProtocError),
}

pub fn generate(request: &CodeGeneratorRequest) -> Result<Vec<GeneratedFile>, JavaGenError> {
    let params = Parameters::parse(request.parameter());
    let unknown = params.unknown(&["protoc", "java_package_prefix"]);
    if !unknown.is_empty() {
        return Err(JavaGenError::UnknownParameters(
            unknown.into_iter().map(String::from).collect(),
        ));
    }
    let protoc_path = params
        .get("protoc")
        .ok_or(JavaGenError::MissingParameter("protoc"))?;
    let prefix = params
        .get("java_package_prefix")
        .ok_or(JavaGenError::MissingParameter("java_package_prefix"))?;
    if !is_java_package(prefix) {
        return Err(JavaGenError::BadPrefix(prefix.to_owned()));
    }

    let descriptors = FileDescriptorSet {
        file: request
            .proto_file
            .iter()
            .map(|file| with_java_names(file, prefix))
            .collect::<Result<_, _>>()?,
    };
    Ok(protoc::generate(
        Command::new(protoc_path),
        &descriptors,
        &request.file_to_generate,
        &["java"],
    )?)
}

/// `file` with the three Java options set. Well-known types keep theirs: they
/// resolve to the classes of the protobuf-java runtime.
fn with_java_names(
    file: &FileDescriptorProto,
    prefix: &str,
) -> Result<FileDescriptorProto, JavaGenError> {
    let mut file = file.clone();
    if file.name().starts_with("google/protobuf/") {
        return Ok(file);
    }
    if file.package().is_empty() {
        return Err(JavaGenError::NoPackage(file.name().to_owned()));
    }
    let java_package = format!("{prefix}.{}", file.package());
    let outer = outer_classname(file.name());
    let options = file.options.get_or_insert_with(FileOptions::default);
    for (option, set) in [
        ("java_package", options.java_package.is_some()),
        ("java_multiple_files", options.java_multiple_files.is_some()),
        (
            "java_outer_classname",
            options.java_outer_classname.is_some(),
        ),
    ] {
        if set {
            return Err(JavaGenError::OptionAlreadySet {
                file: file.name.clone().unwrap_or_default(),
                option,
            });
        }
    }
    options.java_package = Some(java_package);
    options.java_multiple_files = Some(true);
    options.java_outer_classname = Some(outer);
    Ok(file)
}

/// `opamp.proto` → `OpampProto`, `dir/foo_bar.proto` → `FooBarProto`: the
/// file's base name in PascalCase, then `Proto`, as buf's managed mode names it.
fn outer_classname(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = base.strip_suffix(".proto").unwrap_or(base);
    let mut name: String = stem
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Proto");
    name
}

fn is_java_package(name: &str) -> bool {
    name.split('.').all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, package: &str) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            options: Some(FileOptions {
                go_package: Some("example.com/protobufs".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn outer_class_names_follow_the_file_name() {
        assert_eq!(outer_classname("opamp.proto"), "OpampProto");
        assert_eq!(outer_classname("anyvalue.proto"), "AnyvalueProto");
        assert_eq!(outer_classname("dir/foo_bar-baz.proto"), "FooBarBazProto");
    }

    #[test]
    fn the_three_java_options_are_set_and_the_rest_kept() {
        let named = with_java_names(&file("opamp.proto", "opamp.proto"), "com").unwrap();
        let options = named.options.unwrap();
        assert_eq!(options.java_package(), "com.opamp.proto");
        assert!(options.java_multiple_files());
        assert_eq!(options.java_outer_classname(), "OpampProto");
        assert_eq!(options.go_package(), "example.com/protobufs");
    }

    #[test]
    fn well_known_types_keep_their_own_options() {
        let any = file("google/protobuf/any.proto", "google.protobuf");
        assert_eq!(with_java_names(&any, "com").unwrap(), any);
    }

    #[test]
    fn an_option_already_in_proto_is_refused() {
        let mut own = file("opamp.proto", "opamp.proto");
        own.options.as_mut().unwrap().java_package = Some("io.example".into());
        let err = with_java_names(&own, "com").unwrap_err().to_string();
        assert!(err.contains("opamp.proto sets java_package"), "{err}");
    }

    #[test]
    fn parameters_are_checked() {
        let request = |parameter: &str| CodeGeneratorRequest {
            parameter: Some(parameter.into()),
            ..Default::default()
        };
        assert!(matches!(
            generate(&request("java_package_prefix=com")),
            Err(JavaGenError::MissingParameter("protoc"))
        ));
        assert!(matches!(
            generate(&request("protoc=protoc,java_package_prefix=com..x")),
            Err(JavaGenError::BadPrefix(_))
        ));
        assert!(matches!(
            generate(&request("protoc=protoc,java_package_prefix=com,multiple=1")),
            Err(JavaGenError::UnknownParameters(_))
        ));
    }

    #[test]
    fn a_missing_protoc_names_the_fix() {
        let request = CodeGeneratorRequest {
            parameter: Some("protoc=/nonexistent/protoc,java_package_prefix=com".into()),
            ..Default::default()
        };
        let err = generate(&request).unwrap_err().to_string();
        assert!(err.contains("cargo xtask generate"), "{err}");
    }
}
