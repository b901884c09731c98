// Answers one harness exchange: a request as JSON on stdin, the response as
// JSON on stdout (see tests/src/langs/protocol.rs and codec.mjs).
import { readFileSync } from "node:fs";
import { decode, encode, fromHex, readVector, runtime, toHex } from "./codec.mjs";

function attempt(id, produce) {
  try {
    return { id, ...produce() };
  } catch (err) {
    // Reported per item, so one bad vector does not hide the rest.
    return { id, error: String(err && err.stack ? err.stack : err) };
  }
}

const request = JSON.parse(readFileSync(0, "utf8"));
const response = {
  runtime: runtime(),
  encoded: request.encode.map(({ id, path }) =>
    attempt(id, () => {
      const vector = readVector(path);
      return { hex: toHex(encode(vector.type, vector.message)) };
    }),
  ),
  decoded: request.decode.map(({ id, type, hex }) => attempt(id, () => ({ json: decode(type, fromHex(hex)) }))),
};
process.stdout.write(JSON.stringify(response));
