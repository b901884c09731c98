"""An application process instrumented by a released Odigos Python agent.

The agent (odigos-opentelemetry-python, installed unchanged from PyPI into the
venv that runs this file) is started the way Odigos starts it in a pod: its
environment carries the injection variables (ODIGOS_OPAMP_SERVER_HOST or
ODIGOS_OPAMP_UNIX_SOCKET, ODIGOS_WORKLOAD_NAMESPACE, ODIGOS_POD_NAME,
ODIGOS_CONTAINER_NAME or, for 2025 releases, ODIGOS_INSTRUMENTATION_DEVICE_ID),
and Odigos' configurator calls the agent's own `initialize_components()`.
Here that call hands it an in-memory span processor (the agent's eBPF export
path), so nothing leaves the machine and every span it records is seen.

The harness (server/tests/support/python_agent.rs) drives it with one command
per stdin line and reads one JSON object per stdout line:

- `state`: what the agent ended up with (tracer provider, resource, sampler
  config, the remote config it handed to span processors, its loggers, its
  OpAMP client) and what it does with two test spans.
- `exit`: return from the program normally, so the agent's atexit hook sends
  its disconnect, as when an application ends.
- `reexec`: replace the process with a fresh run of this program (`os.execv`, as some
  servers and launchers do): the same pid, a new agent with a new uid, and no disconnect
  from the old one. The new run answers `started` again.

Nothing in here changes the agent: it only reads its state.
"""

import gc
import json
import logging
import os
import sys
import threading

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

# Spans the harness checks the head-sampling rules with: the InstrumentationConfig
# of the tests drops this route (percentageAtMost 0), and keeps every other.
DROPPED_ROUTE = "/healthz"
KEPT_ROUTE = "/orders/{id}"


class Recorder(SpanProcessor):
    """Keeps every ended span, and every config the agent pushes to its processors."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ended = []
        self.configs = []

    def on_end(self, span):
        with self.lock:
            self.ended.append(span.name)

    # The agent calls update_config(conf) on every span processor that has it, with the
    # remote config it decoded (the first answer's, then each changed one).
    def update_config(self, conf):
        container_config = getattr(conf, "container_config", None)
        sample_config = getattr(conf, "sample_config", None)
        with self.lock:
            self.configs.append(
                {
                    "containerConfig": container_config if isinstance(container_config, dict) else None,
                    "sampleConfig": sample_config if isinstance(sample_config, dict) else None,
                }
            )


RECORDER = Recorder()


def opamp_client():
    """The agent's OpAMP client: from its registry where the release has one, else the
    one live instance of its client class."""
    try:
        from opamp import opamp_registry

        client = opamp_registry.get_client()
        if client is not None:
            return client
    except ImportError:
        pass
    from opamp.http_client import OpAMPHTTPClient

    clients = [o for o in gc.get_objects() if isinstance(o, OpAMPHTTPClient)]
    return clients[-1] if clients else None


def odigos_sampler(client):
    import initializer.components as components

    sampler = getattr(components, "_odigos_sampler", None)
    if sampler is None and client is not None:
        sampler = getattr(client, "sampler", None)
    return sampler


def try_span(tracer, route):
    """A server span for `route`, as a web framework's instrumentation starts one."""
    attributes = {"http.route": route, "http.request.method": "GET"}
    with tracer.start_as_current_span(f"GET {route}", kind=trace.SpanKind.SERVER, attributes=attributes) as span:
        context = span.get_span_context()
        return {
            "recording": span.is_recording(),
            "sampled": bool(context.trace_flags.sampled),
            "traceState": context.trace_state.to_header() if context.trace_state else "",
        }


def logger_state(name):
    logger = logging.getLogger(name)
    return {"disabled": logger.disabled, "level": logging.getLevelName(logger.level)}


def state():
    provider = trace.get_tracer_provider()
    tracer = trace.get_tracer("odigos-opamp-tests")
    spans = {route: try_span(tracer, route) for route in (DROPPED_ROUTE, KEPT_ROUTE)}
    client = opamp_client()
    sampler = odigos_sampler(client)
    resource = getattr(provider, "resource", None)
    status = getattr(client, "remote_config_status", None)
    with RECORDER.lock:
        ended = list(RECORDER.ended)
        configs = list(RECORDER.configs)
    return {
        "pid": os.getpid(),
        "tracerProvider": type(provider).__name__,
        "resource": dict(resource.attributes) if resource is not None else None,
        "samplerConfig": getattr(sampler, "_config", None) if sampler is not None else None,
        "spans": spans,
        "endedSpans": ended,
        "pushedConfigs": configs,
        "loggers": {name: logger_state(name) for name in ("odigos", "opentelemetry")},
        "client": None
        if client is None
        else {
            "instanceUid": client.instance_uid,
            "remoteConfigHash": status.last_remote_config_hash.hex() if status is not None else None,
            "containerConfig": getattr(client, "container_config", None),
            "signals": getattr(client, "signals", None),
            "resourceAttributes": getattr(client, "resource_attributes", None),
        },
    }


def reply(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def main():
    # Odigos' configurator does exactly this call; every pinned release takes the
    # span processor by this keyword.
    from initializer.components import initialize_components

    initialize_components(span_processor=RECORDER)
    reply({"started": True})
    for line in sys.stdin:
        command = line.strip()
        if command == "state":
            reply(state())
        elif command == "exit":
            reply({"exiting": True})
            return
        elif command == "reexec":
            reply({"reexecuting": True})
            os.execv(sys.executable, [sys.executable, *sys.argv])
        elif command:
            reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    main()
