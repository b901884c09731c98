//! A tiny Odigos-style agent: sends the Python agent's first message, prints the server's
//! answer (remote config bodies decoded), then heartbeats, then disconnects.
//!
//! ```sh
//! cargo run -p odigos-opamp-server -- --devices server/examples/devices.yaml   # terminal 1
//! cargo run -p odigos-opamp-server --example agent                             # terminal 2
//! cargo run -p odigos-opamp-server --example agent -- --device-id 8497ec75-8928-4e80-90e0-4f29642a0fea
//! ```

#[path = "../tests/support/client.rs"]
mod client;
#[path = "../tests/support/messages.rs"]
mod messages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use odigos_opamp_proto::opamp::proto::ServerToAgent;

/// Send an Odigos-style first message and heartbeats to an OpAMP server.
#[derive(Parser)]
struct Args {
    /// Server address (TCP).
    #[arg(long, default_value = "127.0.0.1:4320")]
    addr: SocketAddr,
    /// Use this unix socket instead of TCP.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Send this X-Odigos-DeviceId header (otherwise identity is self-reported).
    #[arg(long)]
    device_id: Option<String>,
    /// Heartbeats to send after the first message.
    #[arg(long, default_value_t = 2)]
    heartbeats: u64,
    /// Pause between heartbeats.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// The response as pbjson JSON, with config bodies shown as JSON and the uid as text.
fn render(msg: &ServerToAgent, pretty: bool) -> String {
    let mut value = serde_json::to_value(msg).unwrap_or_default();
    if let Some(map) = value
        .pointer_mut("/remoteConfig/config/configMap")
        .and_then(|m| m.as_object_mut())
    {
        for file in map.values_mut() {
            let decoded = file["body"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if let Some(body) = decoded {
                file["body"] = body;
            }
        }
    }
    value["instanceUid"] = String::from_utf8_lossy(&msg.instance_uid)
        .into_owned()
        .into();
    let text = if pretty {
        serde_json::to_string_pretty(&value)
    } else {
        serde_json::to_string(&value)
    };
    text.unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let mut connection = match &args.unix {
        Some(path) => client::Connection::unix(path).await,
        None => client::Connection::tcp(args.addr).await,
    };
    let headers: Vec<(&str, &str)> = args
        .device_id
        .as_deref()
        .map(|id| ("x-odigos-deviceid", id))
        .into_iter()
        .collect();
    let uid = messages::PY_UID;

    let reply = connection
        .post(&messages::first_message(uid, 0), &headers)
        .await;
    println!("first message -> HTTP {}", reply.status);
    if !reply.status.is_success() {
        match prost::Message::decode(reply.body.clone()) {
            Ok(msg) => println!("{}", render(&msg, true)),
            Err(_) => println!("{}", reply.text()),
        }
        std::process::exit(1);
    }
    let first = reply.message();
    println!("{}", render(&first, true));
    let hash = first
        .remote_config
        .map(|c| c.config_hash)
        .unwrap_or_default();

    for seq in 1..=args.heartbeats {
        tokio::time::sleep(args.interval).await;
        let mut poll = messages::python_poll(uid, seq, &hash);
        if seq == 1 {
            poll.health = Some(messages::health(true, "Healthy", ""));
        }
        let reply = connection.post(&poll, &headers).await;
        println!(
            "heartbeat {seq} -> HTTP {}: {}",
            reply.status,
            render(&reply.message(), false)
        );
    }
    let bye = messages::disconnect(
        uid,
        args.heartbeats + 1,
        Some(messages::health(true, "ProcessTerminated", "")),
    );
    let reply = connection.post(&bye, &headers).await;
    println!("disconnect -> HTTP {}", reply.status);
}
