//! Loopback ports for test servers that must keep their port across a restart (an agent
//! comes back to the address it was given) or be told it before they start (a control
//! plane's components find each other by port).
//!
//! They come from below the kernel's ephemeral range, where outgoing connections (of other
//! tests, say) never land, so a port freed by a stopped server is not taken meanwhile by a
//! client socket. Another process can still bind one first: callers that bind later must
//! handle the clash.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Ports from 10000 up to the start of the ephemeral range (Linux default 32768).
fn pickable_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|start| *start > 12_000)
        .unwrap_or(32_768);
    (10_000, ephemeral_start)
}

/// `count` distinct ports that were free on 127.0.0.1 a moment ago, below the ephemeral
/// range. Each call walks from a different offset (per process and per call), so parallel
/// tests rarely try the same ports.
pub fn stable_loopback_ports(count: usize) -> std::io::Result<Vec<u16>> {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let (low, high) = pickable_range();
    let span = u32::from(high - low);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut offset =
        (std::process::id().wrapping_mul(7919) ^ nanos ^ call.wrapping_mul(101)) % span;
    let mut found = Vec::with_capacity(count);
    for _ in 0..span.min(4096) {
        let port = low + offset as u16;
        offset = (offset + 104_729) % span;
        if !found.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            found.push(port);
            if found.len() == count {
                return Ok(found);
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("fewer than {count} free ports on 127.0.0.1 in {low}..{high}"),
    ))
}

/// One such port.
pub fn stable_loopback_port() -> std::io::Result<u16> {
    Ok(stable_loopback_ports(1)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let (low, high) = pickable_range();
        let ports = stable_loopback_ports(3).unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?}");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 3);
    }
}
