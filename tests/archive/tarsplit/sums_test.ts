/**
 * Tar-split sums and frames off Node for small streams: the sha256 and
 * crc32s equal node:crypto's and node:zlib's on either side of
 * SMALL_STREAM (and across it, mid-chunk and mid-file), stored frames read
 * back and refuse damage, a layer recorded on either side of the threshold
 * is exported byte for byte, and a small apply plus its export load no
 * `node:` built-in at all.
 */

import assert from "node:assert/strict";
import { noiseBytes } from "../../_bytes.ts";
import { createHash } from "node:crypto";
import { crc32 as zlibCrc32, gunzipSync } from "node:zlib";
import { openStore, tarHeader, TarWriter } from "../../../mod.ts";
import {
  crc32,
  SMALL_STREAM,
  StreamSums,
} from "../../../src/archive/tarsplit/_sums.ts";
import {
  FRAME_RAW,
  gunzipFrame,
  MAGIC,
  storedGzip,
} from "../../../src/archive/tarsplit/_format.ts";
import { StoreLayout } from "../../../src/layout.ts";
import { tempDir } from "../../_privileged.ts";

Deno.test("tarsplit sums: JS crc32 equals node:zlib's, any length and alignment, continued", () => {
  const data = noiseBytes(5000, 7);
  for (
    const [off, len] of [[0, 0], [0, 1], [1, 7], [3, 8], [5, 9], [0, 4096], [
      13,
      4987,
    ]]
  ) {
    const part = data.subarray(off, off + len);
    assert.equal(crc32(part, 0), zlibCrc32(part), `${off}+${len}`);
    const half = len >> 1;
    assert.equal(
      crc32(part.subarray(half), crc32(part.subarray(0, half), 0)),
      zlibCrc32(part),
      `${off}+${len} in two calls`,
    );
  }
  assert.equal(crc32(new TextEncoder().encode("123456789"), 0), 0xcbf43926);
});

Deno.test("tarsplit sums: sha256 and crc32 equal Node's below, at and past SMALL_STREAM", async () => {
  const data = noiseBytes(SMALL_STREAM + 300_000, 11);
  for (
    const n of [
      0,
      1,
      SMALL_STREAM - 1,
      SMALL_STREAM,
      SMALL_STREAM + 1,
      data.length,
    ]
  ) {
    const whole = data.subarray(0, n);
    const sums = new StreamSums();
    let crc = 0;
    // Chunks of uneven sizes, so one straddles the threshold.
    let seed = n + 1;
    for (let at = 0; at < n;) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const k = Math.min(n - at, 1 + (seed % 700_000));
      const chunk = whole.slice(at, at + k);
      sums.update(chunk);
      chunk.fill(0); // the sums keep no reference to it
      crc = sums.crc32(whole.subarray(at, at + k), crc);
      at += k;
    }
    assert.equal(sums.size, n);
    assert.equal(sums.large, n > SMALL_STREAM, `large at ${n}`);
    assert.equal(
      await sums.digest(),
      createHash("sha256").update(whole).digest("hex"),
      `sha256 of ${n}`,
    );
    assert.equal(crc, zlibCrc32(whole), `crc32 of ${n}`);
  }
  const unhashed = new StreamSums({ hash: false });
  unhashed.update(data.subarray(0, 10));
  assert.equal(unhashed.size, 10);
  await assert.rejects(() => unhashed.digest(), /without hash/);
});

Deno.test("tarsplit frames: stored gzip members read back by node:zlib and here; damage is refused", () => {
  for (const n of [0, 1, 0xffff, 0x10000, FRAME_RAW]) {
    const raw = noiseBytes(n, n + 3);
    const z = storedGzip(raw);
    assert.deepEqual(new Uint8Array(gunzipSync(z)), raw, `node reads ${n}`);
    assert.deepEqual(gunzipFrame(z), raw, `read here ${n}`);
  }
  const raw = noiseBytes(100_000, 5);
  const z = storedGzip(raw);
  assert.throws(() => gunzipFrame(z.subarray(0, z.length - 1)), /truncated/);
  assert.throws(() => gunzipFrame(z.subarray(0, 40)), /truncated/);
  const extra = new Uint8Array(z.length + 1);
  extra.set(z);
  assert.throws(() => gunzipFrame(extra), /bytes after the member/);
  const nlen = z.slice();
  nlen[13] ^= 0xff; // the first block's NLEN
  assert.throws(() => gunzipFrame(nlen), /complement/);
  const size = z.slice();
  size[size.length - 1] ^= 1; // ISIZE
  assert.throws(() => gunzipFrame(size), /length of the content/);
  const body = z.slice();
  body[50_000] ^= 1;
  assert.throws(() => gunzipFrame(body), /CRC-32/);
});

/** A tar of files of `sizes` (bytes), as TarWriter writes it. */
async function tarOf(sizes: number[]): Promise<Uint8Array> {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  let i = 0;
  for (const size of sizes) {
    await w.add(tarHeader({ name: `f${i}`, size }), noiseBytes(size, ++i));
  }
  await w.close();
  return await out;
}

/** The gzip members of a record file, in order. */
async function frames(path: string): Promise<Uint8Array[]> {
  const rec = await Deno.readFile(path);
  assert.deepEqual(rec.subarray(0, MAGIC.length), MAGIC);
  const out: Uint8Array[] = [];
  const v = new DataView(rec.buffer);
  for (let at = MAGIC.length; at < rec.length;) {
    const zlen = v.getUint32(at, true);
    out.push(rec.subarray(at + 8, at + 8 + zlen));
    at += 8 + zlen;
  }
  return out;
}

/** Whether a gzip member (no optional header fields) starts with a stored block. */
const isStored = (z: Uint8Array) => z[3] === 0 && (z[10] & 6) === 0;

Deno.test("tarsplit: layers below and past SMALL_STREAM are recorded (stored vs compressed frames) and exported byte for byte", async () => {
  await using tmp = await tempDir();
  const store = await openStore({ root: `${tmp.path}/s`, backend: "vfs" });
  const layout = new StoreLayout(`${tmp.path}/s`);
  try {
    const cases = {
      // Many headers (more than one frame of ops) in a small stream.
      small: await tarOf(Array.from({ length: 2500 }, (_, i) => i % 700)),
      // A file whose content crosses the threshold: read from a file in
      // 1 MiB chunks, its crc32 is begun in JS and continued by node:zlib.
      crossing: await tarOf([1000, SMALL_STREAM - 600_000, 1_200_000, 20]),
    };
    for (const [id, tar] of Object.entries(cases)) {
      await Deno.writeFile(`${tmp.path}/${id}.tar`, tar);
      using f = await Deno.open(`${tmp.path}/${id}.tar`);
      await store.applyDiff(id, undefined, f.readable);
      const again = await new Response(await store.exactDiff(id)).bytes();
      assert.deepEqual(again, tar, `${id} round-trips`);
      const size = tar.length;
      const fs = await frames(layout.tarsplit(id));
      assert.ok(fs.length >= 1);
      if (id === "small") {
        assert.ok(
          size <= SMALL_STREAM && fs.length >= 2,
          `${id}: ${size} bytes, ${fs.length} frames`,
        );
        assert.ok(fs.every(isStored), "a small stream's frames are stored");
      } else {
        assert.ok(size > SMALL_STREAM);
        assert.ok(
          !isStored(fs[fs.length - 1]),
          "frames past the threshold are compressed",
        );
      }
      for (const z of fs) {
        assert.deepEqual(gunzipFrame(z), new Uint8Array(gunzipSync(z)));
      }
    }
  } finally {
    store.close();
  }
});

Deno.test("tarsplit: a small Store.applyDiff and its exactDiff load no node: built-in", async () => {
  // A fresh process: this one loaded node:crypto and node:zlib above.
  const probe = `
    import { openStore, tarHeader, TarWriter } from "./mod.ts";
    import { loadedBuiltins } from "./src/_node.ts";
    const w = new TarWriter();
    const out = new Response(w.readable).bytes();
    for (let i = 0; i < 50; i++) {
      const body = new TextEncoder().encode("file " + i + "\\n");
      await w.add(tarHeader({ name: "d/f" + i, size: body.length }), body);
    }
    await w.close();
    const tar = await out;
    const root = await Deno.makeTempDir();
    const store = await openStore({ root, backend: "vfs" });
    await store.applyDiff("l", undefined, tar);
    const again = await new Response(await store.exactDiff("l")).bytes();
    store.close();
    await Deno.remove(root, { recursive: true });
    const same = again.length === tar.length && again.every((b, i) => b === tar[i]);
    console.log(JSON.stringify({ same, loaded: loadedBuiltins() }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", probe],
    cwd: new URL("../../../", import.meta.url).pathname,
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    same: true,
    loaded: [],
  });
});

Deno.test("tarsplit: a tar known to be large (a file, a byte array) is summed by Node from its first frame; a stream of it only past SMALL_STREAM", async () => {
  await using tmp = await tempDir();
  const store = await openStore({ root: `${tmp.path}/s`, backend: "vfs" });
  const layout = new StoreLayout(`${tmp.path}/s`);
  try {
    // 2200 empty files (1.1 MB of headers: the first frame fills early),
    // then one file that takes the tar past the threshold.
    const tar = await tarOf([
      ...Array.from({ length: 2200 }, () => 0),
      SMALL_STREAM,
    ]);
    await Deno.writeFile(`${tmp.path}/l.tar`, tar);
    const sources = {
      file: () => Deno.open(`${tmp.path}/l.tar`),
      bytes: () => Promise.resolve(tar),
      stream: async () => (await Deno.open(`${tmp.path}/l.tar`)).readable,
    };
    for (const [id, open] of Object.entries(sources)) {
      const src = await open();
      try {
        await store.applyDiff(id, undefined, src);
      } finally {
        if (src instanceof Deno.FsFile) src.close();
      }
      const fs = await frames(layout.tarsplit(id));
      assert.ok(fs.length >= 2, `${id}: ${fs.length} frames`);
      assert.equal(isStored(fs[0]), id === "stream", `${id}: first frame`);
      assert.ok(!isStored(fs[fs.length - 1]), `${id}: last frame`);
      const again = await new Response(await store.exactDiff(id)).bytes();
      assert.ok(
        again.length === tar.length && again.every((b, i) => b === tar[i]),
        `${id} round-trips`,
      );
    }
  } finally {
    store.close();
  }
});
