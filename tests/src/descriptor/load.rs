//! Both sides of the schema check as `prost_types::FileDescriptorSet`: the
//! reference from its proto3 JSON form, ours compiled from proto/ in pure Rust.

use std::path::{Path, PathBuf};

use prost_reflect::{DynamicMessage, ReflectMessage};
use prost_types::FileDescriptorSet;

#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("compiling the .proto files under {dir}: {source}")]
    Compile {
        dir: PathBuf,
        source: Box<protox::Error>,
    },
    #[error("no .proto files under {0}")]
    NoProtoFiles(PathBuf),
    #[error("{path} is not a proto3 JSON FileDescriptorSet: {detail}")]
    Json { path: PathBuf, detail: String },
}

/// Compiles every `.proto` file under `dir` (which is also the include path,
/// as in buf.yaml), without source info.
pub fn compile_proto_dir(dir: &Path) -> Result<FileDescriptorSet, DescriptorError> {
    let mut files = Vec::new();
    collect_proto_files(dir, &mut files)?;
    if files.is_empty() {
        return Err(DescriptorError::NoProtoFiles(dir.to_owned()));
    }
    files.sort();
    let compile_error = |source| DescriptorError::Compile {
        dir: dir.to_owned(),
        source: Box::new(source),
    };
    let mut compiler = protox::Compiler::new([dir]).map_err(compile_error)?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(&files).map_err(compile_error)?;
    Ok(compiler.file_descriptor_set())
}

fn collect_proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DescriptorError> {
    let io = |source| DescriptorError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_proto_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads a `FileDescriptorSet` written as proto3 JSON, through prost-reflect's
/// bundled descriptor.proto (unknown fields are an error).
pub fn load_reference(path: &Path) -> Result<FileDescriptorSet, DescriptorError> {
    let text = std::fs::read_to_string(path).map_err(|source| DescriptorError::Io {
        path: path.to_owned(),
        source,
    })?;
    let json_error = |detail: String| DescriptorError::Json {
        path: path.to_owned(),
        detail,
    };
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    let message =
        DynamicMessage::deserialize(FileDescriptorSet::default().descriptor(), &mut deserializer)
            .map_err(|err| json_error(err.to_string()))?;
    deserializer
        .end()
        .map_err(|err| json_error(err.to_string()))?;
    message
        .transcode_to::<FileDescriptorSet>()
        .map_err(|err| json_error(err.to_string()))
}

/// One set holding the files of all `sets`.
pub fn merge(sets: impl IntoIterator<Item = FileDescriptorSet>) -> FileDescriptorSet {
    FileDescriptorSet {
        file: sets.into_iter().flat_map(|set| set.file).collect(),
    }
}
