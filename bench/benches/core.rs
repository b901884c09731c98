//! Micro-benchmarks of one heartbeat inside our server, without sockets: the profiling
//! loop's quick check (`cargo bench -p odigos-opamp-bench --bench core`).
//!
//! - `decode`: the request body into an `AgentToServer`;
//! - `handle_known`: the pure protocol core for a registered agent;
//! - `exchange`: registry lookup, slot lock, config lookup and the core;
//! - `router`: the whole agent listener (axum routing, content type, body, decode,
//!   exchange, encode, metrics), as hyper would call it, minus the socket.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group};
use odigos_opamp_bench::agents::{self, AgentId};
use odigos_opamp_proto::opamp::proto::AgentToServer;
use odigos_opamp_server::config_source::{MemoryConfigSource, WorkloadConfig};
use odigos_opamp_server::identity::{DeviceTable, NonUtf8Header, StaticTableIdentity};
use odigos_opamp_server::protocol::{self, Context};
use odigos_opamp_server::store::MemoryStore;
use odigos_opamp_server::{InProcess, OPAMP_PATH, Server, Settings};
use prost::Message;
use tower::ServiceExt;

const AGENTS: usize = 1000;

fn exchange() -> InProcess {
    let table = DeviceTable::from_yaml(&agents::devices_yaml(AGENTS)).expect("device table");
    let settings = Settings {
        node_name: "bench-node".into(),
        heartbeat_interval: Duration::from_secs(30),
        ..Settings::default()
    };
    Server::builder(settings)
        .identity(Arc::new(StaticTableIdentity::new(table)))
        .config_source(Arc::new(MemoryConfigSource::new()))
        .store(Arc::new(MemoryStore::new()))
        .in_process()
        .expect("valid settings")
}

/// Poll a future that never waits (a registered agent's exchange) to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// The device id header, as the transport passes it: read only for a new agent.
fn device_header(id: AgentId) -> impl FnOnce() -> Option<Result<String, NonUtf8Header>> {
    move || Some(Ok(id.device_id()))
}

fn register(exchange: &InProcess) {
    for index in 0..AGENTS {
        let id = AgentId(index);
        let outcome = ready(exchange.handle(id.first_message(&id.uid()), device_header(id)));
        assert!(
            outcome.response.remote_config.is_some(),
            "agent {index} registered"
        );
    }
}

fn core(c: &mut Criterion) {
    let id = AgentId(7);
    let uid = id.uid();
    let body = agents::heartbeat(&uid, 1).encode_to_vec();
    c.bench_function("decode", |b| {
        b.iter(|| AgentToServer::decode(body.as_slice()).expect("decodes"))
    });

    let ctx = Context {
        node_name: "bench-node",
        now: SystemTime::UNIX_EPOCH,
        heartbeat_interval: Duration::from_secs(30),
    };
    let config = std::sync::Arc::new(WorkloadConfig::default());
    let table = DeviceTable::from_yaml(&agents::devices_yaml(8)).expect("device table");
    let request = protocol::identity_request(
        &id.first_message(&uid),
        Some(Ok(id.device_id())),
        Default::default(),
    );
    let identity = StaticTableIdentity::new(table)
        .lookup(&request)
        .expect("resolves");
    let (_, state) = protocol::handle_new(
        id.first_message(&uid),
        identity,
        Default::default(),
        &config,
        &ctx,
    );
    let mut state = state.expect("a new agent's state");
    let mut seq = 0;
    c.bench_function("handle_known", |b| {
        b.iter(|| {
            seq += 1;
            protocol::handle_known(&mut agents::heartbeat(&uid, seq), &mut state, &config, &ctx)
        })
    });

    let shared = exchange();
    register(&shared);
    let mut seq = 0;
    c.bench_function("exchange", |b| {
        b.iter(|| {
            seq += 1;
            ready(shared.handle(agents::heartbeat(&uid, seq), device_header(id)))
        })
    });

    let shared = exchange();
    register(&shared);
    let router = shared.router();
    let device_id = id.device_id();
    let mut seq = 0;
    c.bench_function("router", |b| {
        b.iter(|| {
            seq += 1;
            let request = Request::post(OPAMP_PATH)
                .header("content-type", "application/x-protobuf")
                .header(agents::DEVICE_ID_HEADER, device_id.as_str())
                .body(Body::from(agents::heartbeat(&uid, seq).encode_to_vec()))
                .expect("a request");
            let response = ready(router.clone().oneshot(request)).expect("infallible");
            assert!(response.status().is_success());
            response
        })
    });
}

criterion_group!(benches, core);

/// With `CORE_ITERATIONS=N`, run `router` N times and exit, without criterion: under
/// `valgrind --tool=callgrind`, (instructions at N) − (instructions at 0), divided by N, is
/// the instruction count of one heartbeat, which a noisy shared machine cannot disturb.
fn main() {
    let Some(iterations) = std::env::var("CORE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    };
    // Only the router: requests in, answers out, as over a socket.
    let router = exchange().router();
    let post = |id: AgentId, message: AgentToServer| {
        let request = Request::post(OPAMP_PATH)
            .header("content-type", "application/x-protobuf")
            .header(agents::DEVICE_ID_HEADER, id.device_id())
            .body(Body::from(message.encode_to_vec()))
            .expect("a request");
        let response = ready(router.clone().oneshot(request)).expect("infallible");
        assert!(response.status().is_success());
    };
    for index in 0..AGENTS {
        let id = AgentId(index);
        post(id, id.first_message(&id.uid()));
    }
    let id = AgentId(7);
    let uid = id.uid();
    for seq in 1..=iterations {
        post(id, agents::heartbeat(&uid, seq));
    }
}
