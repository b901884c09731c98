// Every vector survives JSON -> bytes -> message -> JSON and bytes -> bytes
// unchanged with the generated JavaScript code alone. Run by the cargo
// harness as `node --test` with ODIGOS_VECTORS_DIR set to tests/vectors.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { decode, encode, readVector, runtime } from "./codec.mjs";

const dir = process.env.ODIGOS_VECTORS_DIR;

test("every vector round-trips", () => {
  assert.ok(dir, "set ODIGOS_VECTORS_DIR to the tests/vectors folder");
  const names = readdirSync(dir).filter((name) => name.endsWith(".json")).sort();
  assert.ok(names.length > 0, `no vectors found in ${dir}`);
  for (const name of names) {
    const vector = readVector(join(dir, name));
    const wire = encode(vector.type, vector.message);
    const decoded = decode(vector.type, wire);
    assert.deepEqual(decoded, vector.message, `${name}: decoded JSON differs from the vector`);
    assert.deepEqual(encode(vector.type, decoded), wire, `${name}: re-encoding changed the bytes`);
  }
  const { library, version } = runtime();
  console.log(`round-trip: ${names.length} vectors, ${library} ${version}`);
});
