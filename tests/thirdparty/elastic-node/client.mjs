// Runs @elastic/opamp-client-node against the server for the cargo harness
// (tests/src/interop/thirdparty.rs). The harness copies this file next to
// the pinned node_modules in .tools/.
//
// stdin: one JSON line of settings, later {"command":"stop"}.
// stdout: one JSON event per line: started, remoteConfig (what the client
// received, after it set the APPLIED status), stopped.
import { createInterface } from "node:readline";
import {
  AgentCapabilities,
  RemoteConfigStatuses,
  createOpAMPClient,
} from "@elastic/opamp-client-node";

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

// Integers are passed as plain JS numbers, the way this client's users pass
// `process.pid`: the client sends them as double AnyValues, which the server must
// accept for the pid.
function attributeValue(attribute) {
  return "string" in attribute ? attribute.string : Number(attribute.int);
}

function describe(remoteConfig) {
  const hex = Buffer.from(remoteConfig.configHash).toString("hex");
  const configMap = remoteConfig.config?.configMap ?? {};
  const event = { event: "remoteConfig", hash: hex, sections: Object.keys(configMap).sort() };
  const sdk = configMap.SDK;
  if (sdk) {
    const parsed = JSON.parse(Buffer.from(sdk.body).toString("utf8"));
    event.resourceAttributes = parsed.remoteResourceAttributes.map(({ key, value }) => ({ key, value }));
  }
  return event;
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const settings = JSON.parse((await lines.next()).value);

const client = createOpAMPClient({
  endpoint: settings.url,
  headers: { "X-Odigos-DeviceId": settings.deviceId },
  instanceUid: Uint8Array.from(Buffer.from(settings.instanceUid, "hex")),
  capabilities:
    AgentCapabilities.AgentCapabilities_AcceptsRemoteConfig |
    AgentCapabilities.AgentCapabilities_ReportsRemoteConfig,
  heartbeatIntervalSeconds: settings.heartbeatSeconds,
  onMessage: ({ remoteConfig }) => {
    if (!remoteConfig) return;
    const event = describe(remoteConfig);
    client.setRemoteConfigStatus({
      status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      lastRemoteConfigHash: remoteConfig.configHash,
    });
    emit(event);
  },
});
client.setAgentDescription({
  identifyingAttributes: Object.fromEntries(
    settings.identifyingAttributes.map((a) => [a.key, attributeValue(a)]),
  ),
});
client.start();
emit({ event: "started" });

for (;;) {
  const { value, done } = await lines.next();
  if (done || JSON.parse(value).command === "stop") break;
}
// The client has no AgentDisconnect: shutdown() stops its timer and closes
// its connections.
await client.shutdown();
emit({ event: "stopped" });
process.exit(0);
