/**
 * `readAhead` (src/image/_read_ahead.ts): what a small pull's downloads go
 * through while they wait for their turn to unpack. The consumer gets the
 * source's bytes in order and its error where it happened; what is held
 * ahead stops at the limit (a block and a chunk more) until the consumer
 * takes it, tiny chunks gathered into blocks; a cancel on either side
 * reaches the source, and a consumer still reading gets an error.
 * `readAheadUnpacker` lets a download go when its job fails before reading
 * it, and `close()` stops those no job took.
 */

import assert from "node:assert/strict";
import { openStore } from "../../mod.ts";
import { readAhead } from "../../src/image/_read_ahead.ts";
import { readAheadUnpacker } from "../../src/image/_unpack_pool.ts";
import { tempDir } from "../_privileged.ts";

/** A source of `chunks` chunks of `size` bytes (byte i of chunk c is c), counting what was pulled. */
function counted(chunks: number, size: number, fail?: Error) {
  const state = { pulled: 0, cancelled: undefined as unknown };
  let c = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (c === chunks) {
        if (fail) ctl.error(fail);
        else ctl.close();
        return;
      }
      state.pulled += size;
      ctl.enqueue(new Uint8Array(size).fill(c++));
    },
    cancel(reason) {
      state.cancelled = reason ?? "cancelled";
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

const flush = () => new Promise((r) => setTimeout(r, 20));

Deno.test("readAhead: the consumer gets every byte in order, whatever was held", async () => {
  for (
    const [chunks, size, limit] of [[0, 1, 10], [1, 5, 0], [7, 3, 10], [
      40,
      1000,
      4096,
    ]]
  ) {
    const { stream } = counted(chunks, size);
    const ahead = readAhead(stream, limit);
    await flush(); // the filler runs ahead before anyone reads
    const got = await new Response(ahead.stream).bytes();
    const want = new Uint8Array(chunks * size);
    for (let c = 0; c < chunks; c++) want.fill(c, c * size, (c + 1) * size);
    assert.deepEqual(got, want, `${chunks} x ${size}, limit ${limit}`);
    await ahead.filled;
  }
});

Deno.test("readAhead: holds at most the limit, a block and the chunk crossing it until the consumer reads", async () => {
  const BLOCK = 64 << 10;
  // Small chunks (copied into blocks) and whole-buffer 64 KiB ones (kept).
  for (const [size, limit] of [[1000, 4500], [65536, 200_000]]) {
    const { stream, state } = counted(100, size);
    const ahead = readAhead(stream, limit);
    await ahead.filled; // stopped at the limit, not at the end
    // The source stream may have queued one chunk more itself.
    const pulled = state.pulled;
    assert.ok(pulled >= limit, `${pulled} bytes pulled`);
    assert.ok(pulled <= limit + 2 * BLOCK + 2 * size, `${pulled} bytes pulled`);
    await flush();
    assert.equal(state.pulled, pulled); // nothing more without a reader
    const got = await new Response(ahead.stream).bytes();
    assert.equal(got.length, 100 * size); // the rest straight from the source
    assert.equal(got[100 * size - 1], 99);
  }
});

Deno.test("readAhead: tiny chunks are held in blocks, not one buffer each", async () => {
  // A fetch body's chunk is a view of its own 64 KiB buffer: kept as they
  // are, 1-byte chunks would hold 65,536 times the blob.
  const n = 5000;
  let i = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i === n) return c.close();
      c.enqueue(new Uint8Array(new ArrayBuffer(65536), i % 1000, 1).fill(i++));
    },
  }, { highWaterMark: 0 });
  const ahead = readAhead(source, n);
  await ahead.filled;
  assert.equal(i, n); // all of it held
  const chunks: Uint8Array[] = [];
  for await (const c of ahead.stream) chunks.push(c);
  assert.equal(chunks.length, 1, `${chunks.length} chunks`);
  assert.deepEqual(chunks[0], Uint8Array.from({ length: n }, (_, j) => j));
});

Deno.test("readAhead: a source error reaches the consumer after the bytes before it", async () => {
  const boom = new Error("connection reset, test");
  for (const size of [10, 100_000]) {
    const { stream } = counted(3, size, boom);
    const ahead = readAhead(stream, 1 << 20);
    await ahead.filled;
    const reader = ahead.stream.getReader();
    const got: number[] = [];
    await assert.rejects(
      (async () => {
        for (;;) {
          const r = await reader.read();
          if (r.done) return;
          got.push(...r.value);
        }
      })(),
      (e) => e === boom,
    );
    assert.equal(got.length, 3 * size);
    assert.deepEqual([got[0], got[size], got[3 * size - 1]], [0, 1, 2]);
  }
});

Deno.test("readAhead: a cancel, before the consumer came or from it, reaches the source", async () => {
  {
    const { stream, state } = counted(1000, 1000);
    const ahead = readAhead(stream, 50);
    await ahead.filled; // a block's worth held, the rest not read
    ahead.cancel(); // its job ended without reading it
    await flush();
    assert.notEqual(state.cancelled, undefined);
    // A consumer that still reads gets an error, not an early end.
    await assert.rejects(new Response(ahead.stream).bytes(), /cancelled/);
  }
  {
    const { stream } = counted(1000, 10);
    const ahead = readAhead(stream, 50);
    const reader = ahead.stream.getReader();
    await reader.read();
    ahead.cancel();
    await assert.rejects(
      (async () => {
        for (;;) if ((await reader.read()).done) return;
      })(),
      /cancelled/,
    );
  }
  {
    const { stream, state } = counted(1000, 10);
    const ahead = readAhead(stream, 50);
    const reader = ahead.stream.getReader();
    await reader.read();
    await reader.cancel(new Error("unpack failed, test"));
    await ahead.filled;
    assert.match(String(state.cancelled), /unpack failed, test/);
  }
});

Deno.test("readAheadUnpacker: a job that fails before it reads lets its download go; close() stops a read-ahead no job took", async () => {
  await using tmp = await tempDir();
  const store = await openStore({ root: `${tmp.path}/s`, backend: "vfs" });
  const job = (keepTmp?: string) => ({
    subject: "test layer",
    label: "test blob",
    size: 1_000_000,
    diffId: `sha256:${"0".repeat(64)}`,
    keepTmp,
  });
  try {
    // Its kept copy cannot be made: the unpack fails before reading.
    const one = counted(3000, 1000); // longer than said: not all read ahead
    const u = readAheadUnpacker(2);
    await assert.rejects(
      store.applyDiffStaged("a", undefined, (staged) =>
        u.run(
          job(`${tmp.path}/no/such/dir/blob`),
          () => ({ stream: one.stream, size: 1_000_000 }),
          staged,
          () => {},
        )),
      Deno.errors.NotFound,
    );
    await flush();
    assert.notEqual(one.state.cancelled, undefined, "the download let go");
    u.close();

    // Two jobs handed in: the first unpacks from a source that sends
    // nothing, the second's download reads ahead meanwhile (two may run).
    // close() stops both: each fails, nothing is published.
    const stuck = { cancelled: undefined as unknown };
    const silent = new ReadableStream<Uint8Array>({
      pull: () => new Promise(() => {}),
      cancel(reason) {
        stuck.cancelled = reason ?? "cancelled";
      },
    }, { highWaterMark: 0 });
    const two = counted(3000, 1000);
    const v = readAheadUnpacker(2);
    const [first, second] = [v.place(), v.place()];
    const runs = [[first, "b", silent], [second, "c", two.stream]] as const;
    const running = runs.map(([place, id, stream]) => {
      const p = store.applyDiffStaged(id, undefined, (staged) =>
        place.run(
          job(),
          () => ({ stream, size: 1_000_000 }),
          staged,
          () => {},
        ));
      p.catch(() => {});
      return p;
    });
    await flush();
    assert.ok(two.state.pulled > 0, "read ahead before its turn");
    v.close();
    for (const p of running) await assert.rejects(p, /cancelled/);
    assert.notEqual(stuck.cancelled, undefined, "close() let the first go");
    assert.notEqual(
      two.state.cancelled,
      undefined,
      "close() let the second go",
    );
    assert.deepEqual(await store.list(), []);
  } finally {
    store.close();
  }
});
