"""Answers one harness exchange: a request as JSON on stdin, the response as
JSON on stdout (see tests/src/langs/protocol.rs)."""

import json
import sys

import opamp_vectors as v


def answer(request):
    encoded = []
    for item in request["encode"]:
        try:
            vector = v.read_vector(item["path"])
            encoded.append({"id": item["id"], "hex": v.encode(vector["type"], vector["message"]).hex()})
        except Exception as err:  # reported per item, so one bad vector does not hide the rest
            encoded.append({"id": item["id"], "error": f"{type(err).__name__}: {err}"})
    decoded = []
    for item in request["decode"]:
        try:
            decoded.append({"id": item["id"], "json": v.decode(item["type"], bytes.fromhex(item["hex"]))})
        except Exception as err:
            decoded.append({"id": item["id"], "error": f"{type(err).__name__}: {err}"})
    return {"runtime": v.runtime(), "encoded": encoded, "decoded": decoded}


if __name__ == "__main__":
    json.dump(answer(json.load(sys.stdin)), sys.stdout)
