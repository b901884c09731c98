//! A gzip bomb gets 413 without the server allocating its inflated size.
//!
//! Its own test binary with a counting global allocator, so the peak heap use during the
//! request can be measured with nothing else running in the process.

#[path = "support/client.rs"]
mod client;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/server.rs"]
mod server;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::StatusCode;
use odigos_opamp_server::Settings;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;

/// 512 MiB of zeros as 8 concatenated gzip members of 64 MiB each (a valid multi-member
/// gzip stream), built without ever holding the inflated data.
fn bomb() -> Vec<u8> {
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; MIB];
    for _ in 0..64 {
        member.write_all(&zeros).expect("compress");
    }
    let member = member.finish().expect("compress");
    member.repeat(8)
}

#[tokio::test(flavor = "current_thread")]
async fn gzip_bomb_is_413_with_bounded_memory() {
    let limit = 4 * MIB;
    let body = bomb();
    assert!(
        body.len() < limit,
        "the compressed bomb ({} bytes) fits the limit",
        body.len()
    );
    let t = server::start(Settings {
        max_body_bytes: limit,
        ..Settings::loopback()
    })
    .await;
    let mut connection = client::Connection::tcp(t.server.agent_addr()).await;
    let request = client::opamp_request(body, &[("content-encoding", "gzip")]);

    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let reply = connection.send(request).await;
    let growth = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);

    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    // The inflated buffer never exceeds the limit; add the compressed body (~0.5 MiB) and
    // buffers. A plain `read_to_end` would already double its buffer to 8 MiB.
    assert!(
        growth < limit + limit / 2,
        "peak heap growth {} MiB during the request",
        growth / MIB
    );
    eprintln!(
        "gzip bomb: peak heap growth {:.1} MiB for a {} MiB bomb",
        growth as f64 / MIB as f64,
        512
    );
}
