//! The server binary's memory across the whole hostile suite (issue 8, part 3): VmRSS and
//! VmHWM before and after, printed for the note, and the resident size after bounded by a
//! ratio of the size before (the machine is noisy; a ratio, not an absolute).
//!
//! `cargo test -p odigos-opamp-server --test bounds_rss -- --nocapture` prints the figures
//! for the debug build; for a release build, build it and point the test at it:
//! `cargo build --release -p odigos-opamp-server && ODIGOS_OPAMP_TEST_BIN=target/release/odigos-opamp-server cargo test -p odigos-opamp-server --test bounds_rss -- --nocapture`.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/client.rs"]
mod client;
#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/messages.rs"]
mod messages;

use std::time::Duration;

use binary::Binary;

/// Resident size after the suite, as a multiple of the size with one agent before it.
const MAX_RSS_GROWTH: f64 = 6.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_bounded_across_the_hostile_suite() {
    hostile::raise_fd_limit();
    let mut server = Binary::start(&[
        "--trust-self-reported",
        "--header-read-timeout",
        "1s",
        "--request-timeout",
        "2s",
    ]);
    let addr = server.agent_addr;
    hostile::normal_agent_is_served(addr, 100).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = server.memory();

    hostile::malformed_bodies(addr).await;
    hostile::huge_body(addr).await;
    hostile::gzip_bomb_is_refused(addr).await;
    hostile::oversized_head(addr).await;
    hostile::oversized_descriptions(addr).await;
    hostile::invalid_utf8(addr).await;
    hostile::uid_lengths(addr).await;
    hostile::slowloris_headers(addr, Duration::from_secs(1)).await;
    hostile::slow_body(addr, Duration::from_secs(2)).await;
    hostile::many_concurrent_agents(addr, 1000).await;
    hostile::normal_agent_is_served(addr, 101).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = server.memory();

    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "server RSS before the hostile suite: {:.1} MiB (peak {:.1} MiB); after: {:.1} MiB \
         (peak {:.1} MiB), with 1,004 agents registered",
        mib(before.rss_kib),
        mib(before.peak_kib),
        mib(after.rss_kib),
        mib(after.peak_kib),
    );
    let ratio = after.rss_kib as f64 / before.rss_kib as f64;
    assert!(
        ratio <= MAX_RSS_GROWTH,
        "RSS grew {ratio:.1}x across the hostile suite (at most {MAX_RSS_GROWTH}x)"
    );
    let status = server.stop(libc::SIGTERM, Duration::from_secs(15));
    assert!(status.success(), "{status}");
}
