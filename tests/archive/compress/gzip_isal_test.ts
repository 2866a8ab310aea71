/**
 * gzip encoding by ISA-L (`_gzip_isal.ts`): what it writes is gzip that
 * node:zlib and GNU gzip decode to the input, whatever the chunking (empty,
 * one byte, across its 1 MiB call size), and `compressor("gzip")` uses it
 * where the library is, `CompressionStream` where it is disabled.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  disableIsalGzipForTests,
  IsalGzip,
  isalGzipAvailable,
} from "../../../src/archive/compress/_gzip_isal.ts";
import { compressor } from "../../../src/archive/compress/compress.ts";
import { isalHere } from "./_decoders.ts";
import { sameBytes } from "../../_bytes.ts";
import { prng } from "../../../bench/_util.ts";

const ISAL = isalHere();

function gzipOf(parts: Uint8Array[]): Uint8Array {
  const out: Uint8Array[] = [];
  const e = new IsalGzip((c) => out.push(c));
  for (const p of parts) e.push(p);
  e.end();
  const all = new Uint8Array(out.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of out) all.set(c, at), at += c.length;
  return all;
}

Deno.test({
  name:
    "gzip by ISA-L: node:zlib and GNU gzip decode it to the input, however it is chunked",
  ignore: !ISAL,
  fn: async () => {
    assert.equal(isalGzipAvailable(), true);
    const rnd = prng(3);
    const random = Uint8Array.from(
      { length: 3 << 20 },
      () => (rnd() * 256) | 0,
    );
    const text = new TextEncoder().encode(
      Array.from({ length: 200_000 }, (_, i) => `line ${i}\n`).join(""),
    );
    const cases: [string, Uint8Array[]][] = [
      ["empty", []],
      ["one byte", [new Uint8Array([7])]],
      ["random, one chunk", [random]],
      ["text, odd chunks", [
        text.subarray(0, 1),
        text.subarray(1, 70_001),
        text.subarray(70_001),
      ]],
    ];
    for (const [name, parts] of cases) {
      const gz = gzipOf(parts);
      assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b], name);
      const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) whole.set(p, at), at += p.length;
      assert.ok(sameBytes(zlib.gunzipSync(gz), whole), `${name}: node:zlib`);
      const gnu = await new Deno.Command("gzip", {
        args: ["-dc"],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      // Written while its output is read: a full pipe would stop gzip.
      const feed = (async () => {
        const w = gnu.stdin.getWriter();
        await w.write(gz);
        await w.close();
      })();
      const [out] = await Promise.all([gnu.output(), feed]);
      assert.ok(
        out.success && sameBytes(out.stdout, whole),
        `${name}: GNU gzip`,
      );
    }
    // It compresses: the text to under a quarter.
    assert.ok(gzipOf([text]).length < text.length / 4);
  },
});

Deno.test({
  name:
    "compressor(gzip): ISA-L where it is, CompressionStream where it is disabled; both decode alike",
  ignore: !ISAL,
  fn: async () => {
    const data = new TextEncoder().encode("layer ".repeat(100_000));
    const run = async () =>
      await new Response(
        new Blob([data]).stream().pipeThrough(compressor("gzip")),
      ).bytes();
    const fast = await run();
    disableIsalGzipForTests(true);
    let web: Uint8Array;
    try {
      web = await run();
    } finally {
      disableIsalGzipForTests(false);
    }
    assert.ok(sameBytes(zlib.gunzipSync(fast), data));
    assert.ok(sameBytes(zlib.gunzipSync(web), data));
    // Two encoders: the bytes differ (so the first was ISA-L's).
    assert.equal(sameBytes(fast, web), false);
  },
});
