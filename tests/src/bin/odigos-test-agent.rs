//! Plays the Odigos agent's OpAMP conversation on gen/rust's generated code
//! (prost), one step per command, for the interop harness. The line protocol
//! and the conversation are in `odigos_opamp_tests::interop::agent_protocol`.

use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use odigos_opamp_proto::opamp::proto::{
    AgentDescription, AgentDisconnect, AgentRemoteConfig, AgentToServer, AnyValue, ComponentHealth,
    KeyValue, RemoteConfigStatus, ServerToAgent, ServerToAgentFlags, any_value::Value,
};
use odigos_opamp_tests::interop::agent_protocol::{
    AgentSettings, ReceivedConfig, ResourceAttribute, SeenExchange, Step, StepCommand, StepReply,
};
use prost::Message;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Agent {
    settings: AgentSettings,
    next_seq: u64,
    config_status: Option<RemoteConfigStatus>,
    runtime: tokio::runtime::Runtime,
}

impl Agent {
    fn description(&self) -> AgentDescription {
        let identifying_attributes = self
            .settings
            .identifying_attributes
            .iter()
            .map(|a| KeyValue {
                key: a.key.clone(),
                value: Some(AnyValue {
                    value: match (&a.string, a.int) {
                        (Some(s), _) => Some(Value::StringValue(s.clone())),
                        (None, Some(i)) => Some(Value::IntValue(i)),
                        (None, None) => None,
                    },
                }),
            })
            .collect();
        AgentDescription {
            identifying_attributes,
            ..Default::default()
        }
    }

    /// Stamps uid, sequence number and the last remote config status, posts
    /// the message and reports what came back.
    fn send(
        &mut self,
        label: &str,
        mut msg: AgentToServer,
    ) -> Result<(SeenExchange, ServerToAgent), Error> {
        msg.instance_uid = self.settings.uid.as_bytes().to_vec();
        msg.sequence_num = self.next_seq;
        self.next_seq += 1;
        if let Some(status) = &self.config_status {
            msg.remote_config_status = Some(status.clone());
        }
        let (status, content_type, body) = self
            .runtime
            .block_on(post(&self.settings, msg.encode_to_vec()))?;
        let answer = ServerToAgent::decode(body)?;
        let mut seen = SeenExchange {
            sent: label.to_owned(),
            sequence_num: msg.sequence_num,
            http_status: status,
            content_type,
            uid_echoed: answer.instance_uid == msg.instance_uid,
            flags: answer.flags,
            remote_config: None,
        };
        if let Some(config) = &answer.remote_config {
            // Like the Odigos agent: remember the hash and report it from now on.
            self.config_status = Some(RemoteConfigStatus {
                last_remote_config_hash: config.config_hash.clone(),
                ..Default::default()
            });
            seen.remote_config = Some(read_config(config)?);
        }
        Ok((seen, answer))
    }

    fn step(&mut self, step: Step) -> Result<Vec<SeenExchange>, Error> {
        let (label, msg) = match step {
            Step::Start => (
                "start",
                AgentToServer {
                    agent_description: Some(self.description()),
                    health: Some(ComponentHealth {
                        healthy: false,
                        last_error: self.settings.starting_error.clone(),
                        status: "Starting".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ),
            Step::Healthy => (
                "healthy",
                AgentToServer {
                    health: Some(healthy()),
                    ..Default::default()
                },
            ),
            Step::Heartbeat => ("heartbeat", AgentToServer::default()),
            Step::Disconnect => (
                "disconnect",
                AgentToServer {
                    health: Some(ComponentHealth {
                        healthy: false,
                        last_error: self.settings.exiting_error.clone(),
                        status: "ProcessTerminated".into(),
                        ..Default::default()
                    }),
                    agent_disconnect: Some(AgentDisconnect {}),
                    ..Default::default()
                },
            ),
        };
        let (seen, answer) = self.send(label, msg)?;
        let mut exchanges = vec![seen];
        if answer.flags & ServerToAgentFlags::ReportFullState as u64 != 0 {
            let full = AgentToServer {
                agent_description: Some(self.description()),
                health: Some(healthy()),
                ..Default::default()
            };
            exchanges.push(self.send("fullState", full)?.0);
        }
        Ok(exchanges)
    }
}

fn healthy() -> ComponentHealth {
    ComponentHealth {
        healthy: true,
        status: "Healthy".into(),
        ..Default::default()
    }
}

fn read_config(config: &AgentRemoteConfig) -> Result<ReceivedConfig, Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Sdk {
        remote_resource_attributes: Vec<ResourceAttribute>,
    }
    let map = config.config.as_ref().map(|c| &c.config_map);
    let sdk = map
        .and_then(|m| m.get("SDK"))
        .ok_or("remote config has no SDK section")?;
    let sdk: Sdk = serde_json::from_slice(&sdk.body)?;
    Ok(ReceivedConfig {
        hash: hex::encode(&config.config_hash),
        // A BTreeMap: keys already sorted.
        sections: map.map(|m| m.keys().cloned().collect()).unwrap_or_default(),
        resource_attributes: sdk.remote_resource_attributes,
    })
}

/// One POST over a fresh connection, as the Odigos agents do.
async fn post(settings: &AgentSettings, body: Vec<u8>) -> Result<(u16, String, Bytes), Error> {
    let exchange = async {
        let (authority, path) = settings
            .url
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
            .ok_or("url must be http://host:port/path")?;
        let stream = tokio::net::TcpStream::connect(authority).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::post(format!("/{path}"))
            .header("host", authority)
            .header("content-type", settings.content_type.as_str())
            .header("x-odigos-deviceid", settings.device_id.as_str())
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Error>((status, content_type, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| "request timed out")?
}

fn main() -> Result<(), Error> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let settings: AgentSettings =
        serde_json::from_str(&lines.next().ok_or("no settings line on stdin")??)?;
    let mut agent = Agent {
        next_seq: settings.first_sequence_num,
        settings,
        config_status: None,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let command = serde_json::from_str::<StepCommand>(&line?);
        let reply = match &command {
            Ok(command) => match agent.step(command.step) {
                Ok(exchanges) => StepReply {
                    exchanges: Some(exchanges),
                    error: None,
                },
                Err(error) => StepReply {
                    exchanges: None,
                    error: Some(error.to_string()),
                },
            },
            Err(error) => StepReply {
                exchanges: None,
                error: Some(error.to_string()),
            },
        };
        writeln!(stdout, "{}", serde_json::to_string(&reply)?)?;
        stdout.flush()?;
        if matches!(
            command,
            Ok(StepCommand {
                step: Step::Disconnect
            })
        ) {
            break;
        }
    }
    Ok(())
}
