//! Wire-compatibility tests of the Odigos OpAMP schema and generated code.
//!
//! - [`descriptor`]: proto/ against the reference descriptors it must match.
//! - [`vectors`]: the golden vectors in `tests/vectors/` and the Rust codec for them.
//! - [`langs`]: the Go, Python, JavaScript and Java programs that encode and decode
//!   the vectors with each language's generated code, and how to run them.
//! - [`interop`]: our agents (Go, Python, JavaScript, Rust) and three
//!   third-party OpAMP clients against the server, through a recording tap.
//!
//! The tests themselves live in `tests/tests/`.

pub mod descriptor;
pub mod interop;
pub mod json;
pub mod langs;
pub mod vectors;

use std::path::PathBuf;

/// This crate's folder (`<workspace>/tests`).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
