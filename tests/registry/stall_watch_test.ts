/**
 * The stall watch's countdowns: how long a request may wait with nothing
 * moving, by what it sends and what the registry must work through before
 * it replies; and that the caller's abort passes through.
 *
 * @module
 */

import assert from "node:assert/strict";
import { StallWatch } from "../../src/registry/_stall.ts";

const MIB = 1 << 20;

Deno.test("StallWatch: the reply wait grows with the bytes sent and the bytes the registry works through", async () => {
  const w = new StallWatch(1000);
  try {
    w.send(undefined);
    assert.equal(w.armedMs, 1000, "no body: one period");
    w.send(undefined, 600 * MIB);
    assert.equal(w.armedMs, 3000, "a 600 MiB commit: two periods more");
    w.send(new Uint8Array(3 * MIB));
    assert.equal(
      w.armedMs,
      4000,
      "3 MiB of bytes: three to send, one to reply",
    );
    w.send(new Uint8Array(10));
    assert.equal(w.armedMs, 2000, "a manifest: one to send, one to reply");
    // A stream: one period per piece while it is taken; after its end, the
    // reply wait counts what it sent.
    const piece = new Uint8Array(1000);
    let n = 0;
    const body = w.send(
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (n++ < 3) c.enqueue(piece);
          else c.close();
        },
      }),
      512 * MIB,
    ) as ReadableStream<Uint8Array>;
    assert.equal(w.armedMs, 1000);
    let got = 0;
    for await (const p of body) {
      got += p.length;
      assert.equal(w.armedMs, 1000);
    }
    assert.equal(got, 3000);
    assert.equal(w.armedMs, 3000, "after the end: the 512 MiB commit's wait");
    assert.equal(w.controller.signal.aborted, false);
  } finally {
    w.end();
  }
});

Deno.test("StallWatch: armed too long, it aborts as a stall; the caller's abort is the caller's", async () => {
  const w = new StallWatch(20);
  w.arm();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(w.controller.signal.aborted, true);
  assert.equal(w.stalled, true);
  w.end();

  const user = new AbortController();
  const v = new StallWatch(10_000, user.signal);
  user.abort(new Error("stop"));
  assert.equal(v.controller.signal.aborted, true);
  assert.equal(v.stalled, false);
  assert.equal((v.controller.signal.reason as Error).message, "stop");
  v.end();

  const off = new StallWatch(0);
  off.arm();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(off.controller.signal.aborted, false, "0: never");
  off.end();
});
