"""Runs opentelemetry-opamp-client (module opentelemetry._opamp) against the
server for the cargo harness (tests/src/interop/thirdparty.rs).

stdin: one JSON line of settings, later {"command":"stop"}.
stdout: one JSON event per line: started, remoteConfig (what the client
received, after it queued the APPLIED status), stopped.
"""

import atexit
import json
import sys
import threading

from opentelemetry._opamp import OpAMPAgent, OpAMPCallbacks, OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2

_out = threading.Lock()


def emit(event):
    # Callbacks run on the agent's worker thread.
    with _out:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def attribute_value(attribute):
    return attribute["string"] if "string" in attribute else attribute["int"]


def describe(remote_config):
    """What the client received: hash, section names, SDK resource attributes."""
    event = {"event": "remoteConfig", "hash": remote_config.config_hash.hex()}
    sections = dict(OpAMPClient.decode_remote_config(remote_config))
    event["sections"] = sorted(sections)
    sdk = sections.get("SDK")
    if sdk is not None:
        event["resourceAttributes"] = [
            {"key": a["key"], "value": a["value"]} for a in sdk["remoteResourceAttributes"]
        ]
    return event


class Callbacks(OpAMPCallbacks):
    def on_message(self, agent, client, message):
        if message.remote_config is None:
            return
        event = describe(message.remote_config)
        status = client.update_remote_config_status(
            remote_config_hash=message.remote_config.config_hash,
            status=opamp_pb2.RemoteConfigStatuses_APPLIED,
        )
        if status is not None:
            agent.send(client.build_remote_config_status_response_message(status))
        emit(event)

    def on_error(self, agent, client, error_response):
        print(f"server error response: {error_response}", file=sys.stderr, flush=True)


def main():
    settings = json.loads(sys.stdin.readline())
    client = OpAMPClient(
        endpoint=settings["url"],
        headers={"X-Odigos-DeviceId": settings["deviceId"]},
        agent_identifying_attributes={
            a["key"]: attribute_value(a) for a in settings["identifyingAttributes"]
        },
    )
    agent = OpAMPAgent(
        interval=settings["heartbeatSeconds"],
        callbacks=Callbacks(),
        client=client,
    )
    agent.start()
    emit({"event": "started"})
    for line in sys.stdin:
        if json.loads(line).get("command") == "stop":
            break
    # stop() sends AgentDisconnect, then joins the worker threads. start()
    # registered it at exit too: once is what an application does.
    atexit.unregister(agent.stop)
    agent.stop(timeout=10)
    emit({"event": "stopped"})


if __name__ == "__main__":
    main()
