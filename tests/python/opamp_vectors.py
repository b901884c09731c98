"""Encodes the golden vectors of tests/vectors with gen/python's generated code
and decodes wire bytes back to proto3 JSON. Shared by vectors.py (driven by
the cargo harness) and test_roundtrip.py."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
# gen/python is the package root: `from opamp import opamp_pb2`.
sys.path.insert(0, str(ROOT / "gen" / "python"))

import google.protobuf  # noqa: E402
from google.protobuf import descriptor_pool, json_format, message_factory  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

from opamp import anyvalue_pb2, opamp_pb2  # noqa: E402,F401  (registers the types)


def runtime():
    """Which protobuf library answers, e.g. protobuf 5.29.6 (upb)."""
    return {
        "language": "python",
        "library": f"protobuf ({api_implementation.Type()})",
        "version": google.protobuf.__version__,
    }


def message_class(type_name):
    descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    return message_factory.GetMessageClass(descriptor)


def read_vector(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def encode(type_name, message_json):
    """proto3 JSON (as parsed by json.load) -> wire bytes, map entries in key order."""
    message = json_format.ParseDict(message_json, message_class(type_name)())
    return message.SerializeToString(deterministic=True)


def decode(type_name, wire):
    """Wire bytes -> proto3 JSON (as a dict)."""
    message = message_class(type_name)()
    message.ParseFromString(wire)
    return json_format.MessageToDict(message)
