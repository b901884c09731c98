//! protoc plugins for the Odigos OpAMP workspace.
//!
//! buf runs these as local plugins (see `buf.gen.yaml`), so the Rust generator's
//! versions come from `Cargo.lock` instead of from whatever is on the machine.
//! Each plugin is a function from a `CodeGeneratorRequest` to generated files;
//! [`plugin::run`] does the stdin/stdout framing shared by the binaries, and
//! [`protoc`] runs protoc's built-in generators for the Python and Java ones.

pub mod java;
pub mod plugin;
pub mod protoc;
pub mod python;
pub mod rust;
