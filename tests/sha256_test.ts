/**
 * sha256 off Node while small (src/_sha256.ts): the same digests as
 * node:crypto below, at and past SMALL_STREAM, whatever the chunking and
 * whatever the caller says of the length; a digest is asked once and kept;
 * image digests built on it (chain ids, blob streams) agree with Node's.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha256Of, Sha256Stream, SMALL_STREAM } from "../src/_sha256.ts";
import { chainIds, chainIdsAsync } from "../src/image/digest.ts";
import { HashedStream } from "../src/image/_verify.ts";

const nodeHex = (b: Uint8Array | string) =>
  createHash("sha256").update(b).digest("hex");

/** Deterministic bytes (xorshift32). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

Deno.test("sha256: streams equal node:crypto around SMALL_STREAM, any chunking, any length hint", async () => {
  const data = bytes(SMALL_STREAM + 200_000, 3);
  for (
    const n of [
      0,
      1,
      65_537,
      SMALL_STREAM - 1,
      SMALL_STREAM,
      SMALL_STREAM + 1,
      data.length,
    ]
  ) {
    const whole = data.subarray(0, n);
    const want = nodeHex(whole);
    for (const hint of [undefined, n, 0, SMALL_STREAM + 1]) {
      const h = new Sha256Stream({ expectedSize: hint });
      let seed = n + (hint ?? 7);
      for (let at = 0; at < n;) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const k = Math.min(n - at, 1 + (seed % 900_000));
        const chunk = whole.slice(at, at + k);
        h.update(chunk);
        chunk.fill(0xee); // kept by copy, not by reference
        at += k;
      }
      assert.equal(h.size, n);
      assert.equal(
        h.large,
        n > SMALL_STREAM || (hint ?? 0) > SMALL_STREAM,
        `large: ${n}, hint ${hint}`,
      );
      assert.equal(await h.digest(), want, `${n} bytes, hint ${hint}`);
      assert.equal(await h.digest(), want, "asked again");
      assert.throws(() => h.update(new Uint8Array(1)), /after its digest/);
    }
    assert.equal(await sha256Of(whole), want, `sha256Of ${n}`);
  }
  assert.equal(await sha256Of("héllo"), nodeHex("héllo"));
});

Deno.test("sha256: chain ids hashed off Node equal chainIds'", async () => {
  const diffIds = Array.from(
    { length: 40 },
    (_, i) => `sha256:${nodeHex(String(i))}`,
  );
  assert.deepEqual(await chainIdsAsync(diffIds), chainIds(diffIds));
  assert.deepEqual(await chainIdsAsync([]), []);
  await assert.rejects(chainIdsAsync(["md5:abc"]), /not a sha256 digest/);
});

Deno.test("sha256: a HashedStream's digest is Node's for small and large blobs, and only after its end", async () => {
  for (
    const [n, max] of [[1000, 1000], [SMALL_STREAM + 10, SMALL_STREAM + 10], [
      SMALL_STREAM + 10,
      Infinity,
    ]]
  ) {
    const data = bytes(n, n);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < n; at += 300_000) {
      chunks.push(data.slice(at, at + 300_000));
    }
    const h = new HashedStream(ReadableStream.from(chunks), "test blob", max);
    const reader = h.stream.getReader();
    await reader.read();
    assert.throws(() => h.digest(), /before its end/);
    reader.releaseLock();
    await h.drain();
    assert.equal(h.bytes, n);
    assert.equal(h.digest(), nodeHex(data), `${n} bytes, max ${max}`);
  }
});
