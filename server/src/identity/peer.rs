//! Who is on the other end of an agent's connection, as the kernel tells it
//! (docs/protocol.md §3.1). No header or attribute can fake this.
//!
//! - TCP: the peer's address. A pod's packets carry its pod IP; `hostNetwork` pods and the
//!   node's own processes share the node's addresses.
//! - Unix socket: the peer process (`SO_PEERCRED`), held as a pidfd (`SO_PEERPIDFD`, Linux
//!   6.5 and later) where the kernel has it, so that a pid recycled after the peer exited
//!   cannot stand in for it: [`ProcessPeer::is_alive`] is asked before every use.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

/// The peer of one connection, read once when it is accepted.
#[derive(Clone, Debug, Default)]
pub enum Peer {
    /// A TCP peer's address.
    Tcp(IpAddr),
    /// A unix-socket peer: the process.
    Process(ProcessPeer),
    /// Not known: a request that did not come over a socket (in-process use, fuzzing).
    #[default]
    Unknown,
}

/// A peer process of a unix socket.
#[derive(Clone, Debug)]
pub struct ProcessPeer {
    /// Its pid, in the server's pid namespace (the host's, with `hostPID: true`).
    pub pid: i32,
    /// When it started (`/proc/<pid>/stat`, in clock ticks since boot): with the pid, names
    /// the process across connections even after its pid is reused.
    pub start_time: Option<u64>,
    /// The process itself, where the kernel gives one: a pidfd stays bound to the process
    /// even when its pid is reused.
    pidfd: Option<Arc<OwnedFd>>,
}

/// What the connection says about who the agent is, found by the identity edge from a
/// [`Peer`]: the input of the verification rules (`protocol::verify_peer`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "peer")]
pub enum PeerFacts {
    /// A TCP peer whose address is this pod's IP.
    Pod { namespace: String, pod: String },
    /// A unix-socket peer running in this pod's container, seeing itself as `vpid`.
    Container {
        namespace: String,
        pod: String,
        container: String,
        vpid: Option<i64>,
    },
    /// A TCP peer from outside this node (a pod of another node, or outside the cluster):
    /// its address is neither a pod's of this node nor the node's own, while the claimed pod
    /// lists its IPs, so it cannot be that pod.
    OffNode { address: IpAddr },
    /// The connection names no pod: why (the node's address, a `hostNetwork` pod, a process
    /// outside any pod's container, no `/proc` to read, embedded mode).
    Unresolved { why: String },
}

impl PeerFacts {
    pub fn unresolved(why: impl Into<String>) -> Self {
        PeerFacts::Unresolved { why: why.into() }
    }
}

/// Whether `ip` is this node's own: a loopback address or one of its interfaces' (the
/// server's network namespace is the node's, with `hostNetwork`). Connections from host
/// processes and `hostNetwork` pods come from these. `Err`: the interfaces could not be
/// listed (why).
pub fn is_node_address(ip: IpAddr) -> Result<bool, String> {
    if ip.is_loopback() {
        return Ok(true);
    }
    let interfaces = if_addrs::get_if_addrs()
        .map_err(|e| format!("cannot list this node's network interfaces: {e}"))?;
    Ok(interfaces.iter().any(|interface| interface.ip() == ip))
}

impl PartialEq for Peer {
    /// The same peer: the same address, or the same process (pid and start time).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Peer::Tcp(a), Peer::Tcp(b)) => a == b,
            (Peer::Process(a), Peer::Process(b)) => a.pid == b.pid && a.start_time == b.start_time,
            (Peer::Unknown, Peer::Unknown) => true,
            _ => false,
        }
    }
}

impl Eq for Peer {}

impl Peer {
    /// The peer of an accepted TCP connection (IPv4-mapped IPv6 addresses as IPv4).
    pub fn of_tcp(stream: &tokio::net::TcpStream) -> Peer {
        stream
            .peer_addr()
            .map_or(Peer::Unknown, |addr| Peer::Tcp(addr.ip().to_canonical()))
    }

    /// The peer of an accepted unix-socket connection.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Peer {
        let Some(pid) = stream
            .peer_cred()
            .ok()
            .and_then(|cred| cred.pid())
            .filter(|pid| *pid > 0)
        else {
            return Peer::Unknown;
        };
        Peer::Process(ProcessPeer {
            pid,
            pidfd: peer_pidfd(stream.as_raw_fd()).map(Arc::new),
            start_time: start_time(pid),
        })
    }
}

impl ProcessPeer {
    /// Whether the process is still there: through its pidfd where the kernel gave one,
    /// else by its pid (which a new process may have taken).
    pub fn is_alive(&self) -> bool {
        match &self.pidfd {
            Some(fd) => pidfd_alive(fd),
            None => std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
        }
    }

    /// Whether a recycled pid is ruled out (the kernel gave a pidfd).
    pub fn has_pidfd(&self) -> bool {
        self.pidfd.is_some()
    }
}

/// Field 22 of `/proc/<pid>/stat`: the process's start time. The command (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields count from its end.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; start time is field 22.
    after_command.split_whitespace().nth(19)?.parse().ok()
}

/// `SO_PEERPIDFD` (asm-generic; Linux 6.5 and later).
#[cfg(target_os = "linux")]
const SO_PEERPIDFD: libc::c_int = 77;

#[cfg(target_os = "linux")]
fn peer_pidfd(socket: std::os::fd::RawFd) -> Option<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `fd`, a c_int of that size, for a
    // socket descriptor the caller's stream owns for the duration of the call.
    let done = unsafe {
        libc::getsockopt(
            socket,
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    // SAFETY: on success the kernel handed us a new descriptor that nothing else owns.
    (done == 0 && fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn peer_pidfd(_: std::os::fd::RawFd) -> Option<OwnedFd> {
    None
}

#[cfg(target_os = "linux")]
fn pidfd_alive(fd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with signal 0 only checks that the process can be signalled;
    // the descriptor is a pidfd this value owns.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sent == 0
}

#[cfg(not(target_os = "linux"))]
fn pidfd_alive(_: &OwnedFd) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_unix_peer_is_this_process_and_stays_alive() {
        let (ours, theirs) = tokio::net::UnixStream::pair().expect("a socket pair");
        let Peer::Process(peer) = Peer::of_unix(&ours) else {
            panic!("no peer credentials");
        };
        assert_eq!(peer.pid, std::process::id() as i32);
        assert!(peer.is_alive());
        drop(theirs);
        assert!(peer.is_alive(), "this process is still alive");
    }

    #[test]
    fn the_start_time_is_field_22_even_with_odd_commands() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        let own = start_time(std::process::id() as i32);
        assert!(own.is_some_and(|t| t > 0), "{own:?}");
    }

    #[test]
    fn peers_compare_by_address_or_process() {
        let ip = |s: &str| Peer::Tcp(s.parse().unwrap());
        assert_eq!(ip("10.0.0.7"), ip("10.0.0.7"));
        assert_ne!(ip("10.0.0.7"), ip("10.0.0.8"));
        assert_ne!(ip("10.0.0.7"), Peer::Unknown);
    }
}
