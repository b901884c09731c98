//! Heartbeat round-trip latency under a small, bounded local load.
//!
//! Registers `--agents` agents (each on its own keep-alive connection, like real agents),
//! then every agent sends `--heartbeats` heartbeats back to back, all agents concurrently.
//! Prints p50/p90/p99/max of one heartbeat round trip and the request rate. With `--pause`,
//! each agent waits between heartbeats, for latency under a load below saturation.
//!
//! ```sh
//! # Against the server embedded in this process (same runtime, same 2 cores):
//! cargo run --release -p odigos-opamp-server --example heartbeat_load
//! # Against a separately started release binary (agents identify by self-report):
//! cargo run --release -p odigos-opamp-server -- --trust-self-reported --listen 127.0.0.1:4320 &
//! cargo run --release -p odigos-opamp-server --example heartbeat_load -- --target 127.0.0.1:4320
//! ```

#[path = "../tests/support/client.rs"]
mod client;
#[path = "../tests/support/messages.rs"]
mod messages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use odigos_opamp_server::identity::StaticTableIdentity;
use odigos_opamp_server::{Server, Settings};

#[derive(Parser)]
struct Args {
    /// Concurrent agents (one connection each).
    #[arg(long, default_value_t = 100)]
    agents: u64,
    /// Heartbeats per agent (after its first message).
    #[arg(long, default_value_t = 200)]
    heartbeats: u64,
    /// Pause between one agent's heartbeats (0: back to back, i.e. saturation).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// An already running server; without it the server runs in this process.
    #[arg(long)]
    target: Option<SocketAddr>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let embedded = match args.target {
        Some(_) => None,
        None => {
            let identity = StaticTableIdentity::default().trust_self_reported(true);
            let settings = Settings {
                heartbeat_interval: Duration::from_secs(60),
                ..Settings::loopback()
            };
            Some(
                Server::builder(settings)
                    .identity(Arc::new(identity))
                    .start()
                    .await
                    .expect("server starts"),
            )
        }
    };
    let addr = args
        .target
        .or(embedded.as_ref().map(|s| s.agent_addr()))
        .expect("an address");

    // Register every agent first, so the measured phase is heartbeats only.
    let mut connections = Vec::new();
    for agent in 0..args.agents {
        let uid = format!("{agent:08x}-0000-7000-8000-000000000000").into_bytes();
        let mut first = messages::first_message(&uid, 0);
        let description = first.agent_description.as_mut().expect("description");
        description
            .identifying_attributes
            .retain(|kv| kv.key != "process.pid" && kv.key != "k8s.pod.name");
        description
            .identifying_attributes
            .push(messages::int("process.pid", 1000 + agent as i64));
        description
            .identifying_attributes
            .push(messages::string("k8s.pod.name", &format!("load-{agent}")));
        let mut connection = client::Connection::tcp(addr).await;
        let reply = connection.post(&first, &[]).await;
        assert!(
            reply.status.is_success(),
            "registering agent {agent}: HTTP {} {}",
            reply.status,
            reply.text()
        );
        connections.push((uid, connection));
    }

    let started = Instant::now();
    let heartbeats = args.heartbeats;
    let pause = args.pause;
    let agents = u32::try_from(args.agents.max(1)).unwrap_or(u32::MAX);
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, (uid, mut connection))| {
            // Spread the agents over one pause, as real agents start at different times.
            let offset = pause / agents * u32::try_from(index).unwrap_or(0);
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                let mut latencies = Vec::with_capacity(heartbeats as usize);
                for seq in 1..=heartbeats {
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    let msg = messages::heartbeat(&uid, seq);
                    let sent = Instant::now();
                    let reply = connection.post(&msg, &[]).await;
                    latencies.push(sent.elapsed());
                    assert!(
                        reply.status.is_success(),
                        "heartbeat: HTTP {}",
                        reply.status
                    );
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("agent task"));
    }
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{} agents x {} heartbeats = {} round trips in {:.2?} ({:.0} req/s)",
        args.agents,
        args.heartbeats,
        all.len(),
        elapsed,
        all.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "heartbeat round trip: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default()
    );
    if let Some(server) = embedded {
        server.shutdown().await;
    }
}
