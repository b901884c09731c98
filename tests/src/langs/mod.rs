//! The Go, Python, JavaScript and Java sides of the vector tests. Each language has
//! a small program under `tests/<lang>/` that answers one [`protocol::Request`]
//! (encode these vector files, decode these bytes) with gen/'s code for that
//! language, and a round-trip test of its own. [`Runtime`] installs what a
//! program needs (pinned, under `.tools/`) and runs it.

mod process;
pub mod protocol;
mod runtime;

pub use runtime::{GO_PROTOBUF, LangError, PROTOBUF_ES, PROTOBUF_JAVA, PYTHON_PROTOBUF, Runtime};
