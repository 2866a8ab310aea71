/**
 * src/archive/compress/lazy.ts, the decompression entry points mod.ts
 * exports: each gives what its implementation gives (bytes, errors), and the
 * stream `decompressStream` returns before its decoder is loaded behaves as
 * the decoder's own (errors pass through typed, cancelling cancels the
 * input, before or after the first read).
 */
import assert from "node:assert/strict";
import * as mod from "../../../mod.ts";
import * as impl from "../../../src/archive/compress/mod.ts";
import { InvalidArchive } from "../../../mod.ts";

async function bytesOf(
  s: ReadableStream<Uint8Array>,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** 300 KB of text, gzip-compressed by the platform's CompressionStream. */
async function sample(): Promise<
  { plain: Uint8Array<ArrayBuffer>; gz: Uint8Array<ArrayBuffer> }
> {
  const plain = new TextEncoder().encode(
    Array.from({ length: 40_000 }, (_, i) => `line ${i}\n`).join(""),
  );
  const gz = await bytesOf(
    new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip")),
  );
  return { plain, gz };
}

/** A stream of `bytes` that records why it was cancelled. */
function recording(bytes: Uint8Array) {
  const state: { cancelled?: unknown } = {};
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(bytes);
    },
    cancel(r) {
      state.cancelled = r;
    },
  });
  return { stream, state };
}

Deno.test("compress lazy: mod.ts's decompression entry points are the lazy ones and give what the implementations give", async () => {
  const { plain, gz } = await sample();
  for (
    const name of [
      "decompress",
      "decompressStream",
      "decompressTarSource",
      "peekCompression",
    ] as const
  ) {
    assert.notEqual(mod[name], impl[name], `${name} is not the eager one`);
  }
  const a = await mod.decompress(new Blob([gz]).stream());
  assert.equal(a.compression, "gzip");
  assert.deepEqual(await bytesOf(a.stream), plain);
  assert.deepEqual(
    await bytesOf(mod.decompressStream(new Blob([gz]).stream(), "gzip")),
    plain,
  );
  assert.equal((await mod.peekCompression(gz)).compression, "gzip");
  const src = await mod.decompressTarSource(gz);
  assert.equal(src.compression, "gzip");
  assert.deepEqual(
    await bytesOf(
      ReadableStream.from(
        (src.tar as ReadableStream<Uint8Array>).values({ preventCancel: true }),
      ),
    ),
    plain,
  );
  await src.finish();
});

Deno.test("compress lazy: a truncated or corrupt input errors the lazy stream with InvalidArchive, as the decoder does", async () => {
  const { gz } = await sample();
  const cut = gz.slice(0, gz.length - 4);
  for (const f of [mod.decompressStream, impl.decompressStream]) {
    await assert.rejects(
      bytesOf(f(new Blob([cut]).stream(), "gzip", { name: "cut.gz" })),
      (e) =>
        e instanceof InvalidArchive &&
        /Invalid archive cut\.gz: the gzip stream is truncated/.test(e.message),
    );
  }
  const zst = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff]);
  await assert.rejects(
    bytesOf(mod.decompressStream(new Blob([zst]).stream(), "zstd")),
    InvalidArchive,
  );
  await assert.rejects(
    mod.peekCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])),
    /xz/,
  );
});

Deno.test("compress lazy: cancelling the lazy stream cancels the input, before the first read and after it", async () => {
  const { gz } = await sample();
  const before = recording(gz);
  await mod.decompressStream(before.stream, "gzip").cancel("not needed");
  assert.equal(before.state.cancelled, "not needed");

  // The start of 1 MiB of zeros: enough for a first chunk, and no end.
  const zeros = await bytesOf(
    new Blob([new Uint8Array(1 << 20)]).stream().pipeThrough(
      new CompressionStream("gzip"),
    ),
  );
  const after = recording(zeros.subarray(0, 1000));
  const reader = mod.decompressStream(after.stream, "gzip").getReader();
  const first = await reader.read();
  assert.equal(first.done, false);
  await reader.cancel("enough");
  assert.equal(after.state.cancelled, "enough");

  // A cancel while the first read is still loading the decoder.
  const racing = recording(gz);
  const r2 = mod.decompressStream(racing.stream, "gzip").getReader();
  const pending = r2.read();
  await r2.cancel("changed my mind");
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.equal(racing.state.cancelled, "changed my mind");
});
