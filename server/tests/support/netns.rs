//! Two network namespaces joined by a veth pair, made for a test and removed after it: a
//! listener in one and a client in the other are two hosts (this machine passes no traffic
//! between its own namespace and a new one, but does between two new ones).
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;

/// Namespaces `<tag>-s` (the server's end, [`Self::SERVER`]) and `<tag>-c` (the client's,
/// [`Self::CLIENT`]), removed on drop.
pub struct NetnsPair {
    server: String,
    client: String,
}

impl NetnsPair {
    pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    /// `tag`: a few letters, unique among the tests that run at once (interface names are
    /// at most 15 characters).
    pub fn create(tag: &str) -> NetnsPair {
        let tag = format!("{tag}{}", std::process::id() % 10_000);
        let pair = NetnsPair {
            server: format!("{tag}-s"),
            client: format!("{tag}-c"),
        };
        // Left over from a run that was killed: start clean.
        pair.remove();
        let (s, c) = (&pair.server, &pair.client);
        let steps: [Vec<&str>; 8] = [
            vec!["netns", "add", s],
            vec!["netns", "add", c],
            vec![
                "link", "add", "v0", "netns", s, "type", "veth", "peer", "name", "v1", "netns", c,
            ],
            vec!["-n", s, "addr", "add", "198.51.100.1/30", "dev", "v0"],
            vec!["-n", c, "addr", "add", "198.51.100.2/30", "dev", "v1"],
            vec!["-n", s, "link", "set", "v0", "up"],
            vec!["-n", c, "link", "set", "v1", "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
        ];
        for args in steps {
            let status = Command::new("ip").args(&args).status().unwrap_or_else(|e| {
                panic!("cannot run ip (iproute2), needed to make network namespaces: {e}")
            });
            assert!(
                status.success(),
                "`ip {}` failed: these tests need root and network namespaces",
                args.join(" ")
            );
        }
        pair
    }

    /// A TCP listener on [`Self::SERVER`] (port chosen by the kernel), made in the server's
    /// namespace: a socket stays in the namespace it was made in, whichever thread uses it.
    pub fn listen(&self) -> TcpListener {
        let path = format!("/run/netns/{}", self.server);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let namespace =
                        File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
                    // Only this short-lived thread moves.
                    // SAFETY: a valid namespace fd, and a flag setns documents.
                    let moved = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(
                        moved,
                        0,
                        "setns into {path}: {}",
                        std::io::Error::last_os_error()
                    );
                    TcpListener::bind(SocketAddr::from((Self::SERVER, 0)))
                        .unwrap_or_else(|e| panic!("cannot listen in {path}: {e}"))
                })
                .join()
                .expect("the listening thread")
        })
    }

    /// `ip netns exec <client namespace>`: a launcher that runs what follows it as a
    /// process of the client's host.
    pub fn client_launcher(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.client]
            .map(str::to_owned)
            .to_vec()
    }

    fn remove(&self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for name in [&self.server, &self.client] {
            let _ = Command::new("ip")
                .args(["netns", "delete", name])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        self.remove();
    }
}
