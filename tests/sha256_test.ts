/**
 * sha256 off Node while small (src/_sha256.ts): the same digests as
 * node:crypto below, at and past SMALL_STREAM, whatever the chunking and
 * whatever the caller says of the length; a digest is asked once and kept;
 * image digests built on it (chain ids, blob streams) agree with Node's.
 */

import assert from "node:assert/strict";
import { noiseBytes } from "./_bytes.ts";
import { createHash } from "node:crypto";
import { sha256Of, Sha256Stream, SMALL_STREAM } from "../src/_sha256.ts";
import { chainIds, chainIdsAsync } from "../src/image/digest.ts";
import { HashedStream } from "../src/image/_verify.ts";
import { loadedBuiltins } from "../src/_node.ts";

const nodeHex = (b: Uint8Array | string) =>
  createHash("sha256").update(b).digest("hex");

/** Bytes `0..n` of the deterministic data, fed to `h` in uneven chunks. */
const FEED = `
  const bytes = (n, seed) => {
    const out = new Uint8Array(n);
    let x = seed | 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  };
  const feed = (h, whole, seed) => {
    for (let at = 0; at < whole.length;) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const k = Math.min(whole.length - at, 1 + (seed % 900_000));
      const chunk = whole.slice(at, at + k);
      h.update(chunk);
      chunk.fill(0xee); // kept by copy, not by reference
      at += k;
    }
  };
`;
const { feed } = new Function(`${FEED}; return { feed };`)() as {
  feed: (h: Sha256Stream, whole: Uint8Array, seed: number) => void;
};

const SIZES = [0, 1, 65_537, SMALL_STREAM - 1, SMALL_STREAM];

Deno.test("sha256: small streams hashed by Web Crypto equal node:crypto, any chunking, and load no node: module", async () => {
  // A fresh process: node:crypto is loaded in this one, and once it is,
  // every stream uses it.
  const probe = `
    import { Sha256Stream, sha256Of } from "./src/_sha256.ts";
    import { loadedBuiltins } from "./src/_node.ts";
    ${FEED}
    const data = bytes(${SMALL_STREAM}, 3);
    const out = [];
    for (const n of ${JSON.stringify(SIZES)}) {
      const whole = data.subarray(0, n);
      for (const hint of [undefined, n, 0]) {
        const h = new Sha256Stream({ expectedSize: hint });
        feed(h, whole, n + (hint ?? 7));
        out.push({ n, hint: hint ?? null, large: h.large, size: h.size, hex: await h.digest(), again: await h.digest() });
      }
      out.push({ n, oneShot: await sha256Of(whole) });
    }
    console.log(JSON.stringify({ out, loaded: loadedBuiltins() }));
  `;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", probe],
    cwd: new URL("../", import.meta.url).pathname,
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  const got = JSON.parse(new TextDecoder().decode(r.stdout));
  assert.deepEqual(got.loaded, []);
  const data = noiseBytes(SMALL_STREAM, 3);
  const want: unknown[] = [];
  for (const n of SIZES) {
    const hex = nodeHex(data.subarray(0, n));
    for (const hint of [undefined, n, 0]) {
      want.push({
        n,
        hint: hint ?? null,
        large: false,
        size: n,
        hex,
        again: hex,
      });
    }
    want.push({ n, oneShot: hex });
  }
  assert.deepEqual(got.out, want);
});

Deno.test("sha256: streams past SMALL_STREAM, or known to be, equal node:crypto, any chunking", async () => {
  const data = noiseBytes(SMALL_STREAM + 200_000, 3);
  for (const n of [...SIZES, SMALL_STREAM + 1, data.length]) {
    const whole = data.subarray(0, n);
    const want = nodeHex(whole);
    for (const hint of [undefined, n, 0, SMALL_STREAM + 1]) {
      if (n <= SMALL_STREAM && (hint ?? 0) <= SMALL_STREAM) continue; // the test above
      const h = new Sha256Stream({ expectedSize: hint });
      feed(h, whole, n + (hint ?? 7));
      assert.equal(h.size, n);
      assert.equal(h.large, true, `large: ${n}, hint ${hint}`);
      assert.equal(await h.digest(), want, `${n} bytes, hint ${hint}`);
      assert.equal(await h.digest(), want, "asked again");
      assert.throws(() => h.update(new Uint8Array(1)), /after its digest/);
    }
    if (n > SMALL_STREAM) assert.equal(await sha256Of(whole), want);
  }
  // node:crypto is loaded now: a new small stream uses it right away.
  assert.ok(loadedBuiltins().includes("node:crypto"));
  const h = new Sha256Stream();
  assert.equal(h.large, true);
  h.update(data.subarray(0, 10));
  assert.equal(await h.digest(), nodeHex(data.subarray(0, 10)));
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
    const data = noiseBytes(n, n);
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
