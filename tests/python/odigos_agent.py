"""Plays the Odigos agent's OpAMP conversation on gen/python's generated code,
one step per command, for the cargo harness (tests/src/interop/agents.rs
documents the line protocol).

stdin: one JSON settings line, then one {"step": ...} line per step.
stdout: one JSON line per step: {"exchanges": [...]} or {"error": ...}.
"""

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

# gen/python is the package root: `from opamp import opamp_pb2`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "gen" / "python"))

from opamp import anyvalue_pb2, opamp_pb2  # noqa: E402

# No proxies from the environment: the harness's tap is on loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Agent:
    def __init__(self, settings):
        self.settings = settings
        self.uid = settings["uid"].encode("utf-8")
        self.next_seq = settings["firstSequenceNum"]
        self.config_status = None

    def description(self):
        attributes = []
        for attribute in self.settings["identifyingAttributes"]:
            if "string" in attribute:
                value = anyvalue_pb2.AnyValue(string_value=attribute["string"])
            else:
                value = anyvalue_pb2.AnyValue(int_value=attribute["int"])
            attributes.append(anyvalue_pb2.KeyValue(key=attribute["key"], value=value))
        return opamp_pb2.AgentDescription(identifying_attributes=attributes)

    def send(self, label, message):
        """Stamps uid, sequence number and the last remote config status, posts
        the message and reports what came back."""
        message.instance_uid = self.uid
        message.sequence_num = self.next_seq
        self.next_seq += 1
        if self.config_status is not None:
            message.remote_config_status.CopyFrom(self.config_status)
        request = urllib.request.Request(
            self.settings["url"],
            data=message.SerializeToString(),
            headers={
                "Content-Type": self.settings["contentType"],
                "X-Odigos-DeviceId": self.settings["deviceId"],
            },
            method="POST",
        )
        try:
            with _opener.open(request, timeout=5) as response:
                status, content_type, payload = response.status, response.headers.get("Content-Type"), response.read()
        except urllib.error.HTTPError as err:
            status, content_type, payload = err.code, err.headers.get("Content-Type"), err.read()
        answer = opamp_pb2.ServerToAgent()
        answer.ParseFromString(payload)
        seen = {
            "sent": label,
            "sequenceNum": message.sequence_num,
            "httpStatus": status,
            "contentType": content_type or "",
            "uidEchoed": answer.instance_uid == self.uid,
            "flags": answer.flags,
            "remoteConfig": None,
        }
        if answer.HasField("remote_config"):
            # Like the Odigos agent: remember the hash and report it from now on.
            config = answer.remote_config
            self.config_status = opamp_pb2.RemoteConfigStatus(last_remote_config_hash=config.config_hash)
            seen["remoteConfig"] = read_config(config)
        return seen, answer

    def step(self, name):
        if name == "start":
            message = opamp_pb2.AgentToServer(
                agent_description=self.description(),
                health=opamp_pb2.ComponentHealth(
                    healthy=False, last_error=self.settings["startingError"], status="Starting"
                ),
            )
        elif name == "healthy":
            message = opamp_pb2.AgentToServer(health=healthy())
        elif name == "heartbeat":
            message = opamp_pb2.AgentToServer()
        elif name == "disconnect":
            message = opamp_pb2.AgentToServer(
                health=opamp_pb2.ComponentHealth(
                    healthy=False, last_error=self.settings["exitingError"], status="ProcessTerminated"
                ),
                agent_disconnect=opamp_pb2.AgentDisconnect(),
            )
        else:
            raise ValueError(f"unknown step {name!r}")
        seen, answer = self.send(name, message)
        exchanges = [seen]
        if answer.flags & opamp_pb2.ServerToAgentFlags_ReportFullState:
            full = opamp_pb2.AgentToServer(agent_description=self.description(), health=healthy())
            exchanges.append(self.send("fullState", full)[0])
        return exchanges


def healthy():
    return opamp_pb2.ComponentHealth(healthy=True, status="Healthy")


def read_config(config):
    config_map = config.config.config_map
    if "SDK" not in config_map:
        raise ValueError("remote config has no SDK section")
    sdk = json.loads(config_map["SDK"].body.decode("utf-8"))
    return {
        "hash": config.config_hash.hex(),
        "sections": sorted(config_map.keys()),
        "resourceAttributes": [{"key": a["key"], "value": a["value"]} for a in sdk["remoteResourceAttributes"]],
    }


def main():
    agent = Agent(json.loads(sys.stdin.readline()))
    for line in sys.stdin:
        step = None
        try:
            step = json.loads(line)["step"]
            reply = {"exchanges": agent.step(step)}
        except Exception as err:  # reported to the harness, which fails the test with it
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if step == "disconnect":
            return


if __name__ == "__main__":
    main()
