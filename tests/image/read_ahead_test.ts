/**
 * `readAhead` (src/image/_read_ahead.ts): what a small pull's downloads go
 * through while they wait for their turn to unpack. The consumer gets the
 * source's bytes in order and its error where it happened; what is held
 * ahead stops at the limit (and one chunk) until the consumer takes it; a
 * cancel on either side reaches the source.
 */

import assert from "node:assert/strict";
import { readAhead } from "../../src/image/_read_ahead.ts";

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

Deno.test("readAhead: holds at most the limit and the chunk crossing it until the consumer reads", async () => {
  const { stream, state } = counted(100, 1000);
  const ahead = readAhead(stream, 4500);
  await ahead.filled; // stopped at the limit, not at the end
  // Five chunks held; the source stream may have queued one more itself.
  const pulled = state.pulled;
  assert.ok(pulled >= 5000 && pulled <= 6000, `${pulled} bytes pulled`);
  await flush();
  assert.equal(state.pulled, pulled); // nothing more without a reader
  const got = await new Response(ahead.stream).bytes();
  assert.equal(got.length, 100_000); // the rest comes straight from the source
  assert.equal(got[99_999], 99);
});

Deno.test("readAhead: a source error reaches the consumer after the bytes before it", async () => {
  const boom = new Error("connection reset, test");
  const { stream } = counted(3, 10, boom);
  const ahead = readAhead(stream, 1 << 20);
  await ahead.filled;
  const reader = ahead.stream.getReader();
  for (let c = 0; c < 3; c++) {
    const r = await reader.read();
    assert.deepEqual(r.value, new Uint8Array(10).fill(c));
  }
  await assert.rejects(reader.read(), (e) => e === boom);
});

Deno.test("readAhead: a cancel, before the consumer came or from it, reaches the source", async () => {
  {
    const { stream, state } = counted(1000, 10);
    const ahead = readAhead(stream, 50);
    await ahead.filled;
    ahead.cancel(); // its job ended without reading it
    await flush();
    assert.notEqual(state.cancelled, undefined);
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
