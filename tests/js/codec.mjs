// Encodes the golden vectors of tests/vectors with gen/js's generated code
// (protobuf-es v2) and decodes wire bytes back to proto3 JSON. Shared by
// vectors.mjs and roundtrip.test.mjs.
//
// The cargo harness copies these files and gen/js (as ./gen) into
// .tools/test-js-<version>/run/, next to the node_modules holding that
// @bufbuild/protobuf version: Node resolves a bare import from the importing
// file's real path upwards, so gen/js must sit below the node_modules it uses.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import * as anyvalue from "./gen/anyvalue_pb.js";
import * as opamp from "./gen/opamp_pb.js";

// Every generated message schema, by full name (e.g. opamp.proto.AgentToServer).
const schemas = new Map(
  [...Object.values(opamp), ...Object.values(anyvalue)]
    .filter((value) => value && value.kind === "message")
    .map((schema) => [schema.typeName, schema]),
);

function schemaOf(typeName) {
  const schema = schemas.get(typeName);
  if (!schema) throw new Error(`unknown message type ${typeName}`);
  return schema;
}

// Which @bufbuild/protobuf answers: the package.json above its entry point.
export function runtime() {
  let dir = dirname(fileURLToPath(import.meta.resolve("@bufbuild/protobuf")));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      if (manifest.name === "@bufbuild/protobuf") {
        return { language: "javascript", library: `@bufbuild/protobuf (node ${process.version})`, version: manifest.version };
      }
    } catch {
      // no package.json here; keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find @bufbuild/protobuf's package.json");
    dir = parent;
  }
}

export function readVector(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}

// proto3 JSON -> wire bytes. Map entries keep the JSON's key order, which is
// why the vectors keep their keys sorted.
export function encode(typeName, json) {
  const schema = schemaOf(typeName);
  return toBinary(schema, fromJson(schema, json));
}

// Wire bytes -> proto3 JSON.
export function decode(typeName, bytes) {
  const schema = schemaOf(typeName);
  return toJson(schema, fromBinary(schema, bytes));
}

export const toHex = (bytes) => Buffer.from(bytes).toString("hex");
export const fromHex = (text) => new Uint8Array(Buffer.from(text, "hex"));
