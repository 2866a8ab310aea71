/**
 * Internal: reads a stream ahead of its consumer, into memory, up to a
 * bound. A small pull unpacks its layers one after another on the calling
 * thread (workers cost more than they share there, see `_store_image.ts`)
 * while every blob downloads at once: each layer's HTTP body is read ahead
 * so that the network waits overlap. The consumer sees exactly the bytes
 * the source gives, in order, and its errors where they happened: past
 * `limit` bytes of memory held nothing more is read ahead (the consumer
 * then reads on from the source itself, and its own size check fails a
 * blob that is too long), so what is held is bounded by the sizes the
 * caller vouched for.
 *
 * Memory, not payload, is what is bounded: a chunk of a `fetch` body is a
 * view of its own 64 KiB buffer however few bytes it carries (a server
 * that sends 1-byte HTTP chunks would make 16 MiB of blob hold 1 TiB), so
 * small chunks are copied into blocks of {@link BLOCK} bytes, and a chunk
 * kept as it is counts its whole buffer.
 *
 * @module
 */

/** Bytes of the blocks small chunks are gathered into. */
const BLOCK = 64 << 10;

/** A stream being read ahead: see {@link readAhead}. */
export interface ReadAhead {
  /** The bytes, from the first: held ones first, then the source's own. */
  readonly stream: ReadableStream<Uint8Array>;
  /** Settles when nothing more is read ahead (the end, an error, the limit, a cancel). */
  readonly filled: Promise<void>;
  /**
   * Stops reading (for a consumer that never comes): the source is
   * cancelled, and a consumer still reading gets an error, not an early end.
   */
  cancel(): void;
}

/**
 * Starts reading `source` now, holding up to `limit` bytes of memory and a
 * block (and the chunk that crosses that) until the consumer takes them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readAhead } from "./_read_ahead.ts";
 * const ahead = readAhead(ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([3])]), 16);
 * await ahead.filled; // all of it is held now
 * assert.deepEqual(await new Response(ahead.stream).bytes(), new Uint8Array([1, 2, 3]));
 * ```
 */
export function readAhead(
  source: ReadableStream<Uint8Array>,
  limit: number,
): ReadAhead {
  const reader = source.getReader();
  // Held chunks from `head` on; each costs its whole buffer.
  let held: Uint8Array[] = [];
  let head = 0;
  let heldBytes = 0;
  // The block small chunks are being copied into.
  let block: Uint8Array | null = null;
  let blockUsed = 0;
  const endBlock = () => {
    if (block !== null && blockUsed > 0) {
      held.push(block.subarray(0, blockUsed));
    } else if (block !== null) heldBytes -= block.buffer.byteLength;
    block = null;
    blockUsed = 0;
  };
  const hold = (v: Uint8Array) => {
    if (v.length >= BLOCK && v.buffer.byteLength <= 2 * v.length) {
      endBlock();
      held.push(v);
      heldBytes += v.buffer.byteLength;
      return;
    }
    for (let at = 0; at < v.length;) {
      if (block === null) {
        block = new Uint8Array(BLOCK);
        heldBytes += BLOCK;
      }
      const n = Math.min(v.length - at, BLOCK - blockUsed);
      block.set(v.subarray(at, at + n), blockUsed);
      blockUsed += n;
      at += n;
      if (blockUsed === BLOCK) endBlock();
    }
  };
  /** The next held bytes (a partly filled block too), or undefined. */
  const take = (): Uint8Array | undefined => {
    if (head === held.length && blockUsed > 0) endBlock();
    if (head === held.length) return undefined;
    const next = held[head++];
    heldBytes -= next.buffer.byteLength;
    if (head === held.length) {
      held = [];
      head = 0;
    } else if (head > 1024 && head * 2 > held.length) {
      held = held.slice(head);
      head = 0;
    }
    return next;
  };
  /** The filler's outcome, once it stopped: the end, an error, or "more" (the consumer reads on). */
  let outcome: { done: true } | { error: unknown } | { more: true } | null =
    null;
  let cancelled: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const filled = (async () => {
    try {
      // A blob held whole in blocks costs up to a block more than its size.
      while (heldBytes <= limit + BLOCK && cancelled === null) {
        const r = await reader.read();
        if (r.done) {
          outcome = { done: true };
          return;
        }
        hold(r.value);
        notify();
      }
      outcome = { more: true };
    } catch (e) {
      outcome = { error: e };
    } finally {
      notify();
    }
  })();
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      for (;;) {
        if (cancelled !== null) throw cancelled;
        const next = take();
        if (next !== undefined) {
          c.enqueue(next);
          return;
        }
        const o = outcome as typeof outcome; // set by the filler meanwhile
        if (o === null) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        if ("error" in o) throw o.error;
        if ("done" in o) {
          c.close();
          return;
        }
        // The filler stopped at the limit: the rest straight from the source.
        const r = await reader.read();
        if (cancelled !== null) throw cancelled;
        if (r.done) c.close();
        else c.enqueue(r.value);
        return;
      }
    },
    async cancel(reason) {
      cancelled = new Error("the read-ahead's consumer cancelled it");
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 }); // pulled only when read: no block ended early
  return {
    stream,
    filled,
    cancel() {
      cancelled ??= new Error("internal: a read-ahead was cancelled");
      held = [];
      head = 0;
      block = null;
      blockUsed = 0;
      notify();
      reader.cancel().catch(() => {});
    },
  };
}
