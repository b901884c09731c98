// Plays the Odigos agent's OpAMP conversation on gen/js's generated code
// (protobuf-es v2), one step per command, for the cargo harness
// (tests/src/interop/agents.rs documents the line protocol). Like the Odigos
// Node agent it may send `Content-Type: " application/x-protobuf"` (leading
// space) and start its sequence at 1: both come from the settings line.
//
// The harness copies this file next to gen/js and the pinned node_modules
// in .tools/test-js-<version>/run/ (see codec.mjs for why).
//
// stdin: one JSON settings line, then one {"step": ...} line per step.
// stdout: one JSON line per step: {"exchanges": [...]} or {"error": ...}.
import { request } from "node:http";
import { createInterface } from "node:readline";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnyValueSchema, KeyValueSchema } from "./gen/anyvalue_pb.js";
import {
  AgentDescriptionSchema,
  AgentDisconnectSchema,
  AgentToServerSchema,
  ComponentHealthSchema,
  RemoteConfigStatusSchema,
  ServerToAgentFlags,
  ServerToAgentSchema,
} from "./gen/opamp_pb.js";

const toHex = (bytes) => Buffer.from(bytes).toString("hex");
const sameBytes = (a, b) => Buffer.from(a).equals(Buffer.from(b));

// One POST over a fresh connection (agent: false), as the Odigos agents do.
function post(url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false, headers, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

class Agent {
  constructor(settings) {
    this.settings = settings;
    this.uid = new TextEncoder().encode(settings.uid);
    this.nextSeq = BigInt(settings.firstSequenceNum);
    this.configStatus = undefined;
  }

  description() {
    const identifyingAttributes = this.settings.identifyingAttributes.map((a) =>
      create(KeyValueSchema, {
        key: a.key,
        value: create(AnyValueSchema, {
          value: "string" in a ? { case: "stringValue", value: a.string } : { case: "intValue", value: BigInt(a.int) },
        }),
      }),
    );
    return create(AgentDescriptionSchema, { identifyingAttributes });
  }

  // Stamps uid, sequence number and the last remote config status, posts the
  // message and reports what came back.
  async send(label, message) {
    message.instanceUid = this.uid;
    message.sequenceNum = this.nextSeq++;
    if (this.configStatus) message.remoteConfigStatus = this.configStatus;
    const body = toBinary(AgentToServerSchema, message);
    const res = await post(
      this.settings.url,
      {
        "Content-Type": this.settings.contentType,
        "Content-Length": body.length,
        "X-Odigos-DeviceId": this.settings.deviceId,
      },
      body,
    );
    const answer = fromBinary(ServerToAgentSchema, res.body);
    const seen = {
      sent: label,
      sequenceNum: Number(message.sequenceNum),
      httpStatus: res.status,
      contentType: res.headers["content-type"] ?? "",
      uidEchoed: sameBytes(answer.instanceUid, this.uid),
      flags: Number(answer.flags),
      remoteConfig: null,
    };
    if (answer.remoteConfig) {
      // Like the Odigos agent: remember the hash and report it from now on.
      this.configStatus = create(RemoteConfigStatusSchema, { lastRemoteConfigHash: answer.remoteConfig.configHash });
      seen.remoteConfig = readConfig(answer.remoteConfig);
    }
    return [seen, answer];
  }

  async step(name) {
    let message;
    if (name === "start") {
      message = create(AgentToServerSchema, {
        agentDescription: this.description(),
        health: create(ComponentHealthSchema, { healthy: false, lastError: this.settings.startingError, status: "Starting" }),
      });
    } else if (name === "healthy") {
      message = create(AgentToServerSchema, { health: healthy() });
    } else if (name === "heartbeat") {
      message = create(AgentToServerSchema, {});
    } else if (name === "disconnect") {
      message = create(AgentToServerSchema, {
        health: create(ComponentHealthSchema, {
          healthy: false,
          lastError: this.settings.exitingError,
          status: "ProcessTerminated",
        }),
        agentDisconnect: create(AgentDisconnectSchema, {}),
      });
    } else {
      throw new Error(`unknown step ${JSON.stringify(name)}`);
    }
    const [seen, answer] = await this.send(name, message);
    const exchanges = [seen];
    if (answer.flags & BigInt(ServerToAgentFlags.ServerToAgentFlags_ReportFullState)) {
      const full = create(AgentToServerSchema, { agentDescription: this.description(), health: healthy() });
      exchanges.push((await this.send("fullState", full))[0]);
    }
    return exchanges;
  }
}

function healthy() {
  return create(ComponentHealthSchema, { healthy: true, status: "Healthy" });
}

function readConfig(config) {
  const configMap = config.config?.configMap ?? {};
  if (!configMap.SDK) throw new Error("remote config has no SDK section");
  const sdk = JSON.parse(Buffer.from(configMap.SDK.body).toString("utf8"));
  return {
    hash: toHex(config.configHash),
    sections: Object.keys(configMap).sort(),
    resourceAttributes: sdk.remoteResourceAttributes.map(({ key, value }) => ({ key, value })),
  };
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const agent = new Agent(JSON.parse((await lines.next()).value));
for (;;) {
  const { value, done } = await lines.next();
  if (done) break;
  let step;
  let reply;
  try {
    step = JSON.parse(value).step;
    reply = { exchanges: await agent.step(step) };
  } catch (err) {
    reply = { error: `${err.name}: ${err.message}` };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
  if (step === "disconnect") break;
}
process.exit(0);
