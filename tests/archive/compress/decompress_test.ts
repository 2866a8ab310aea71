/**
 * src/archive/compress: gzip and zstd read to the end, against inputs made by
 * GNU gzip and zstd. Truncated, corrupt, padded and concatenated inputs; the
 * frame scanner at every chunk boundary; and `Store.applyDiff` taking a
 * compressed tar (stream, bytes, file) with no CLI involved.
 */
import assert from "node:assert/strict";
import {
  compressor,
  decompress,
  decompressStream,
  detectCompression,
} from "../../../src/archive/compress/mod.ts";
import { InvalidArchive, openStore } from "../../../mod.ts";
import { tempDir } from "../../_privileged.ts";
import { concat } from "../../_bytes.ts";
import { gzipDecoders } from "./_decoders.ts";

async function sh(cmd: string, cwd: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-c", cmd], cwd })
    .output();
  assert.equal(out.code, 0, `${cmd}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A tar (500 KB: random and text) and its gzip and zstd forms, by GNU tools. */
async function inputs(dir: string) {
  await sh(
    "mkdir -p src/etc && head -c 200000 /dev/urandom > src/etc/blob && seq 1 50000 > src/etc/seq && " +
      "tar -C src -cf t.tar . && gzip -kf t.tar && zstd -qf t.tar",
    dir,
  );
  return {
    tar: await Deno.readFile(`${dir}/t.tar`),
    gz: await Deno.readFile(`${dir}/t.tar.gz`),
    zst: await Deno.readFile(`${dir}/t.tar.zst`),
  };
}

/** Bytes as a stream of `size`-byte chunks. */
function chunked(bytes: Uint8Array, size = 65536): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Decompresses `bytes` (named "in") and returns the bytes or the error. */
async function run(bytes: Uint8Array, size?: number) {
  try {
    const d = await decompress(chunked(bytes, size), { name: "in" });
    return { out: await readAll(d.stream), compression: d.compression };
  } catch (e) {
    return { error: e };
  }
}

/** `parts` as a stream, one chunk each. */
function fromParts(parts: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull(c) {
      const p = parts.shift();
      if (p === undefined) c.close();
      else c.enqueue(p.slice());
    },
  });
}

/** `stream`, decoded as gzip, is refused with `why`. */
async function refusedStream(stream: ReadableStream<Uint8Array>, why: RegExp) {
  await assert.rejects(
    readAll(decompressStream(stream, "gzip", { name: "in" })),
    (e) => {
      assert.ok(e instanceof InvalidArchive, String(e));
      assert.match(e.message, why);
      return true;
    },
  );
}

async function refused(bytes: Uint8Array, why: RegExp, size?: number) {
  const r = await run(bytes, size);
  assert.ok(r.error instanceof InvalidArchive, `not refused: ${r.error}`);
  assert.match(r.error.message, /^Invalid archive in: /);
  assert.match(r.error.message, why);
  assert.equal(r.error.input, "in");
}

function u32le(n: number): number[] {
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24];
}

for (const decoder of gzipDecoders()) {
  Deno.test(`decompress (gzip by ${decoder.name}): what gzip and zstd accept comes back byte for byte, in any chunking`, async () => {
    using _ = decoder.use();
    await using tmp = await tempDir();
    const { tar, gz, zst } = await inputs(tmp.path);
    const skippable = new Uint8Array([
      ...u32le(0x184d2a53),
      ...u32le(3),
      1,
      2,
      3,
    ]);
    const cases: [string, Uint8Array, Uint8Array][] = [
      ["gzip", gz, tar],
      ["zstd", zst, tar],
      ["gzip members", concat([gz, gz]), concat([tar, tar])],
      ["zstd frames", concat([zst, zst]), concat([tar, tar])],
      ["skippable frames", concat([skippable, zst, skippable]), tar],
    ];
    for (const [what, input, want] of cases) {
      for (const size of [1 << 20, 4096, 7]) {
        if (size === 7 && input.length > 300000) continue; // slow, not different
        const r = await run(input, size);
        assert.equal(r.error, undefined, `${what}/${size}: ${r.error}`);
        assert.equal(r.out!.length, want.length, `${what}/${size}`);
        assert.ok(r.out!.every((b, i) => b === want[i]), `${what}/${size}`);
      }
    }
    // The reference tools agree on the concatenations.
    await Deno.writeFile(`${tmp.path}/two.zst`, concat([skippable, zst, zst]));
    await sh("zstd -t -q two.zst", tmp.path);
    // Small inputs through every chunk boundary of the frame scanner.
    const small = await readAll(
      new Blob(["hello, frames"]).stream().pipeThrough(compressor("zstd")),
    );
    for (let size = 1; size <= small.length; size++) {
      const r = await run(concat([small, skippable, small]), size);
      assert.equal(
        new TextDecoder().decode(r.out),
        "hello, frameshello, frames",
      );
    }
  });
}

Deno.test("decompress: a zstd cut anywhere, or missing its checksum, is truncated", async () => {
  await using tmp = await tempDir();
  const { zst } = await inputs(tmp.path);
  for (
    const n of [4, 5, 10, 100, 1000, 30000, zst.length - 4, zst.length - 1]
  ) {
    await refused(
      zst.subarray(0, n),
      /the zstd stream is truncated \(ends inside a frame\); the file is incomplete — download it again$/,
    );
  }
  // Cut inside the second frame too.
  await refused(
    concat([zst, zst.subarray(0, 1000)]),
    /zstd stream is truncated/,
  );
});

Deno.test("decompress: a zstd checksum mismatch and trailing garbage are refused", async () => {
  await using tmp = await tempDir();
  const { zst } = await inputs(tmp.path);
  const bad = zst.slice();
  bad[bad.length - 1] ^= 0xff;
  await refused(bad, /the zstd content checksum does not match the data/);
  await refused(
    concat([zst, new TextEncoder().encode("garbage!")]),
    /garbage after the end of the zstd data \(at byte \d+\)/,
  );
  await refused(
    concat([zst, new Uint8Array(100)]),
    /garbage after the end of the zstd data/,
  );
});

for (const decoder of gzipDecoders()) {
  Deno.test(`decompress (gzip by ${decoder.name}): gzip CRC, ISIZE, truncation and trailing bytes are checked`, async () => {
    using _ = decoder.use();
    await using tmp = await tempDir();
    const { gz } = await inputs(tmp.path);
    const crc = gz.slice();
    crc.fill(0, gz.length - 8, gz.length - 4);
    await refused(crc, /the gzip CRC-32 does not match the data/);
    const isize = gz.slice();
    isize.fill(0, gz.length - 4);
    await refused(isize, /the gzip length \(ISIZE\) does not match/);
    for (
      const n of [2, 10, 1000, gz.length >> 1, gz.length - 8, gz.length - 1]
    ) {
      await refused(
        gz.subarray(0, n),
        /the gzip stream is truncated \(ends inside a member\)/,
      );
    }
    await refused(
      concat([gz, new TextEncoder().encode("garbage!")]),
      /not another gzip member/,
    );
    // Zero padding too (GNU gzip ignores it; Go's reader, like ours, does not).
    await refused(
      concat([gz, new Uint8Array(100)]),
      /100 bytes after the end of the gzip data \(at byte \d+\)/,
    );
    // The trailer cut across chunks (the last 10 bytes one by one): CRC and
    // ISIZE still told apart.
    const spread = (b: Uint8Array) =>
      fromParts([
        b.subarray(0, b.length - 10),
        ...Array.from(b.subarray(b.length - 10), (x) => new Uint8Array([x])),
      ]);
    await refusedStream(spread(crc), /the gzip CRC-32 does not match the data/);
    await refusedStream(
      spread(isize),
      /the gzip length \(ISIZE\) does not match/,
    );
    await refusedStream(spread(gz.subarray(0, gz.length - 1)), /truncated/);
    const out = await readAll(decompressStream(spread(gz), "gzip"));
    assert.equal(out.length, (await inputs(tmp.path)).tar.length);
  });
}

Deno.test("detectCompression: gzip, zstd (also from a skippable frame), none; xz and bzip2 refused with the fix", () => {
  assert.equal(detectCompression(new Uint8Array([0x1f, 0x8b, 8])), "gzip");
  assert.equal(
    detectCompression(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd])),
    "zstd",
  );
  assert.equal(detectCompression(new Uint8Array(u32le(0x184d2a5f))), "zstd");
  assert.equal(detectCompression(new TextEncoder().encode("etc/")), null);
  assert.equal(detectCompression(new Uint8Array()), null);
  assert.throws(
    () =>
      detectCompression(
        new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]),
        "a.xz",
      ),
    /^InvalidArchive: Invalid archive a.xz: the input is xz-compressed.*xz -dc/,
  );
});

for (const decoder of gzipDecoders()) {
  Deno.test(`decompressStream (gzip by ${decoder.name}): cancelling the output cancels the input`, async () => {
    using _ = decoder.use();
    let cancelled: unknown;
    const gz = await readAll(
      new Blob([new Uint8Array(1 << 20)]).stream().pipeThrough(
        compressor("gzip"),
      ),
    );
    const input = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(gz.subarray(0, 1000));
      },
      cancel(r) {
        cancelled = r;
      },
    });
    const out = decompressStream(input, "gzip");
    const reader = out.getReader();
    await reader.read();
    await reader.cancel("enough");
    assert.equal(cancelled, "enough");
  });
}

Deno.test("applyDiff takes gzip and zstd tars as a stream, bytes or a file; a cut one leaves no layer", async () => {
  await using tmp = await tempDir();
  const { tar, gz, zst } = await inputs(tmp.path);
  const store = await openStore({ root: `${tmp.path}/store`, backend: "vfs" });
  try {
    const plain = await store.applyDiff("plain", undefined, tar);
    assert.equal(
      await store.applyDiff("gz-stream", undefined, chunked(gz)),
      plain,
    );
    assert.equal(await store.applyDiff("zst-bytes", undefined, zst), plain);
    {
      using f = await Deno.open(`${tmp.path}/t.tar.zst`);
      assert.equal(await store.applyDiff("zst-file", undefined, f), plain);
    }
    {
      using f = await Deno.open(`${tmp.path}/t.tar.gz`);
      assert.equal(await store.applyDiff("gz-file", undefined, f), plain);
    }
    const seq = `${store.root}/diff/zst-file/etc/seq`;
    assert.equal(
      await Deno.readTextFile(seq),
      await Deno.readTextFile(`${tmp.path}/src/etc/seq`),
    );
    // The tar inside is whole (only the gzip trailer or the zstd checksum is
    // missing), yet the input is refused: the stream is read to its end.
    const cuts: [string, Uint8Array, RegExp][] = [
      ["gz-cut", gz.subarray(0, gz.length - 8), /gzip stream is truncated/],
      ["zst-cut", zst.subarray(0, zst.length - 4), /zstd stream is truncated/],
      [
        "gz-padded",
        concat([gz, new Uint8Array(512)]),
        /after the end of the gzip data/,
      ],
      ["zst-30000", zst.subarray(0, 30000), /zstd stream is truncated/],
    ];
    for (const [id, bytes, why] of cuts) {
      for (const input of [bytes, chunked(bytes)]) {
        await assert.rejects(store.applyDiff(id, undefined, input), (e) => {
          assert.ok(e instanceof InvalidArchive, String(e));
          assert.match(e.message, why);
          return true;
        });
        assert.equal(await store.exists(id), false, id);
      }
    }
  } finally {
    store.close();
  }
});

Deno.test("applyDiff: what is not a tar source is a TypeError saying what is accepted, and leaves no layer", async () => {
  await using tmp = await tempDir();
  const store = await openStore({ root: `${tmp.path}/store`, backend: "vfs" });
  try {
    const bad: [unknown, RegExp][] = [
      [
        "/tmp/x.tar",
        /not the string "\/tmp\/x\.tar" \(open a file with Deno\.open\)/,
      ],
      [null, /not null/],
      [{}, /not object/],
      [new ArrayBuffer(8), /not an ArrayBuffer \(wrap it/],
      [[1, 2], /not an array/],
    ];
    for (const [input, re] of bad) {
      await assert.rejects(
        store.applyDiff("x", undefined, input as Uint8Array),
        (e) =>
          e instanceof TypeError &&
          /must be a ReadableStream<Uint8Array>, a Uint8Array or a Deno\.FsFile/
            .test(e.message) &&
          re.test(e.message),
      );
    }
    // A stream of strings: refused at its first chunk, the stream cancelled.
    let cancelled: unknown;
    const strings = new ReadableStream<string>({
      pull(c) {
        c.enqueue("not bytes");
      },
      cancel(r) {
        cancelled = r;
      },
    });
    await assert.rejects(
      store.applyDiff(
        "x",
        undefined,
        strings as unknown as ReadableStream<Uint8Array>,
      ),
      (e) =>
        e instanceof TypeError &&
        /Uint8Array chunks, not strings/.test(e.message),
    );
    assert.ok(cancelled instanceof TypeError);
    assert.equal(await store.exists("x"), false);
  } finally {
    store.close();
  }
});
