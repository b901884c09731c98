//! The server over real sockets: every status code of docs/protocol.md §2, compression, uids,
//! the exchange end to end, liveness, the admin listener and the unix socket.

#[path = "../support/client.rs"]
mod client;
#[path = "../support/messages.rs"]
mod messages;
#[path = "../support/server.rs"]
mod server;

mod admin;
mod compression;
mod lifecycle;
mod status_codes;
mod uids;
mod unix_socket;
