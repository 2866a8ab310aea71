/**
 * Streams as tar inputs: a byte stream stays one through the compression
 * peek and is read into the reader's own 1 MiB buffers, every source is read
 * one chunk ahead without losing or reordering bytes, and a failed or
 * finished read leaves the stream released or cancelled.
 */
import assert from "node:assert/strict";
import { peek } from "../../src/archive/compress/_peek.ts";
import { chunkSource, READ_SIZE } from "../../src/archive/tar/_source.ts";
import {
  applyLayerTarRecorded,
  rebuildLayerTar,
} from "../../src/archive/tarsplit/mod.ts";
import { MAGIC_LENGTH } from "../../src/archive/compress/detect.ts";
import {
  encodeHeader,
  END_OF_ARCHIVE,
  paddingFor,
} from "../../src/archive/tar/mod.ts";
import { fileHeader } from "./tar/_blocks.ts";

/** `bytes` as a byte stream that records the size of every BYOB request it fills. */
function byteStream(bytes: Uint8Array, requests: number[], maxChunk = 1 << 30) {
  let at = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c: ReadableByteStreamController) {
      const req = c.byobRequest;
      if (at >= bytes.length) {
        c.close();
        req?.respond(0);
        return;
      }
      if (req?.view) {
        const v = req.view as Uint8Array;
        requests.push(v.byteLength);
        const n = Math.min(v.byteLength, bytes.length - at, maxChunk);
        v.set(bytes.subarray(at, at + n));
        at += n;
        req.respond(n);
      } else {
        requests.push(-1); // a default read: the stream hands out its own chunk
        const n = Math.min(64 * 1024, bytes.length - at, maxChunk);
        c.enqueue(bytes.slice(at, at + n));
        at += n;
      }
    },
  });
}

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 11)) & 0xff;
  return b;
}

async function drain(src: ReturnType<typeof chunkSource>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let c = await src.read(); c !== null; c = await src.read()) {
    parts.push(c.slice()); // valid until the next read: copy it now
  }
  return new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer());
}

Deno.test("peek: a byte stream stays a byte stream, with every byte, for any chunking", async () => {
  for (
    const [size, maxChunk] of [[0, 1], [3, 1], [5, 2], [4096, 7], [
      3 << 20,
      1 << 20,
    ]]
  ) {
    const bytes = pattern(size);
    const requests: number[] = [];
    const { head, stream } = await peek(
      byteStream(bytes, requests, maxChunk),
      6,
    );
    assert.deepEqual(head, bytes.subarray(0, 6));
    // BYOB still works on what peek gives back.
    const r = stream.getReader({ mode: "byob" });
    const parts: Uint8Array[] = [];
    for (;;) {
      const x = await r.read(new Uint8Array(1 << 20));
      if (x.done) break;
      parts.push(x.value.slice());
    }
    const got = new Uint8Array(
      await new Blob(parts as BlobPart[]).arrayBuffer(),
    );
    assert.deepEqual(got, bytes, `size ${size}, chunks of ${maxChunk}`);
    assert.ok(!requests.includes(-1), "only BYOB reads of the source");
  }
});

Deno.test("peek: cancelling the peeked stream cancels the source; a default stream is read as before", async () => {
  let reason: unknown;
  const src = new ReadableStream({
    type: "bytes",
    pull(c: ReadableByteStreamController) {
      c.enqueue(new Uint8Array(100).fill(1));
    },
    cancel(r) {
      reason = r;
    },
  });
  const { stream } = await peek(src, 6);
  await stream.cancel("stop");
  assert.equal(reason, "stop");
  const plain = ReadableStream.from([
    new Uint8Array([1, 2]),
    new Uint8Array([3, 4, 5, 6, 7]),
  ]);
  const p = await peek(plain, 3);
  assert.deepEqual(p.head, new Uint8Array([1, 2, 3]));
  assert.deepEqual(
    new Uint8Array(await new Response(p.stream).arrayBuffer()),
    new Uint8Array([1, 2, 3, 4, 5, 6, 7]),
  );
});

Deno.test("stream source: read ahead, every byte once and in order, BYOB into reused 1 MiB buffers", async () => {
  const bytes = pattern(5 * READ_SIZE + 12345);
  for (const maxChunk of [1 << 30, 300_000, 4096]) {
    const requests: number[] = [];
    const got = await drain(chunkSource(byteStream(bytes, requests, maxChunk)));
    assert.deepEqual(got, bytes);
    assert.ok(
      requests.every((n) => n === READ_SIZE),
      `BYOB reads of ${READ_SIZE}`,
    );
  }
  // A default stream (fresh chunks) and chunks of 1 byte at the start.
  const chunks = [
    bytes.subarray(0, 1),
    bytes.subarray(1, 2),
    bytes.subarray(2),
  ];
  assert.deepEqual(
    await drain(chunkSource(ReadableStream.from(chunks))),
    bytes,
  );
});

Deno.test("stream source: the chunk the caller holds is not written by the read ahead", async () => {
  // Each chunk is checked after the next read was started (the read ahead
  // runs while the caller holds the chunk), before the caller asks again.
  const bytes = pattern(4 * READ_SIZE);
  const src = chunkSource(byteStream(bytes, []));
  let at = 0;
  for (let c = await src.read(); c !== null; c = await src.read()) {
    await new Promise((r) => setTimeout(r, 0)); // let the read ahead complete
    assert.deepEqual(c, bytes.subarray(at, at + c.length));
    at += c.length;
  }
  assert.equal(at, bytes.length);
});

Deno.test("stream source: reads one chunk ahead; close with an error cancels the stream, close at the end releases it", async () => {
  let reason: unknown;
  let pulls = 0;
  const s = new ReadableStream({
    type: "bytes",
    pull(c: ReadableByteStreamController) {
      pulls++;
      c.enqueue(new Uint8Array(1000));
    },
    cancel(r) {
      reason = r;
    },
  }, { highWaterMark: 0 });
  const src = chunkSource(s);
  await src.read();
  await new Promise((r) => setTimeout(r, 0));
  // The next chunk was asked for while the caller held this one.
  assert.equal(pulls, 2);
  src.close(new Error("bad entry"));
  await new Promise((r) => setTimeout(r, 0));
  assert.match(String(reason), /bad entry/);
  const s2 = ReadableStream.from([new Uint8Array(10)]);
  const src2 = chunkSource(s2);
  await src2.read();
  src2.close();
  assert.equal(s2.locked, false);
});

Deno.test("applyLayerTarRecorded: a byte stream is read through BYOB in 1 MiB reads, and its record rebuilds it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A tar of one 3 MiB file and some small ones.
    const parts: Uint8Array[] = [];
    const body = pattern(3 << 20);
    parts.push(
      encodeHeader(fileHeader("big", body.length)),
      body,
      paddingFor(body.length),
    );
    for (let i = 0; i < 50; i++) {
      const b = new TextEncoder().encode(`file ${i}\n`);
      parts.push(
        encodeHeader(fileHeader(`f${i}`, b.length)),
        b,
        paddingFor(b.length),
      );
    }
    parts.push(END_OF_ARCHIVE);
    const tar = new Uint8Array(
      await new Blob(parts as BlobPart[]).arrayBuffer(),
    );
    const requests: number[] = [];
    await Deno.mkdir(`${dir}/layer`);
    const { tar: summary } = await applyLayerTarRecorded(
      { dir: `${dir}/layer`, format: "vfs", parentDirs: [] },
      byteStream(tar, requests),
      `${dir}/record`,
    );
    assert.equal(summary.size, tar.length);
    assert.deepEqual(await Deno.readFile(`${dir}/layer/big`), body);
    // The compression check's first read (6 bytes), then 1 MiB reads only.
    assert.equal(requests[0], MAGIC_LENGTH);
    assert.ok(requests.length > 1, `reads: ${requests}`);
    assert.ok(
      requests.slice(1).every((n) => n === READ_SIZE),
      `BYOB reads of 1 MiB: ${requests}`,
    );
    const rebuilt = new Uint8Array(
      await new Response(rebuildLayerTar("l", `${dir}/record`, `${dir}/layer`))
        .arrayBuffer(),
    );
    assert.deepEqual(rebuilt, tar);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
