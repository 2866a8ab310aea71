/**
 * Internal: reads a stream ahead of its consumer, into memory, up to a
 * bound. A small pull unpacks its layers one after another on the calling
 * thread (workers cost more than they share there, see `_store_image.ts`)
 * while every blob downloads at once: each layer's HTTP body is read ahead
 * so that the network waits overlap. The consumer sees exactly the bytes
 * the source gives, in order, and its errors where they happened: past
 * `limit` bytes nothing more is read ahead (the consumer then reads on
 * from the source itself, and its own size check fails a blob that is too
 * long), so what is held is bounded by the sizes the caller vouched for.
 *
 * @module
 */

/** A stream being read ahead: see {@link readAhead}. */
export interface ReadAhead {
  /** The bytes, from the first: buffered ones first, then the source's own. */
  readonly stream: ReadableStream<Uint8Array>;
  /** Settles when nothing more is read ahead (the end, an error, the limit, a cancel). */
  readonly filled: Promise<void>;
  /** Stops reading (for a consumer that never comes); the stream then ends early. */
  cancel(): void;
}

/**
 * Starts reading `source` now, holding up to `limit` bytes (and the chunk
 * that crosses it) until the consumer takes them.
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
  const held: Uint8Array[] = [];
  let heldBytes = 0;
  /** The filler's outcome, once it stopped: the end, an error, or "more" (the consumer reads on). */
  let outcome: { done: true } | { error: unknown } | { more: true } | null =
    null;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  let cancelled = false;
  const filled = (async () => {
    try {
      while (heldBytes <= limit && !cancelled) {
        const r = await reader.read();
        if (r.done) {
          outcome = { done: true };
          return;
        }
        held.push(r.value);
        heldBytes += r.value.length;
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
        const next = held.shift();
        if (next !== undefined) {
          heldBytes -= next.length;
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
        if (r.done) c.close();
        else c.enqueue(r.value);
        return;
      }
    },
    async cancel(reason) {
      cancelled = true;
      await reader.cancel(reason).catch(() => {});
    },
  });
  return {
    stream,
    filled,
    cancel() {
      cancelled = true;
      held.length = 0;
      reader.cancel().catch(() => {});
    },
  };
}
