//! Snapshot tests of the pure protocol core: every row of docs/protocol.md §4 and every error
//! case of §2 that the core decides, as readable JSON (pbjson, with config bodies parsed and
//! hashes in hex).

#[path = "../support/messages.rs"]
mod messages;

mod driver;
mod errors;
mod exchange;
mod remote_config;
mod status;
