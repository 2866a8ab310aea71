/**
 * Internal: a byte stream whose source is opened on the first read and
 * released exactly once when the stream ends, errors or is cancelled. The
 * store's `diff` uses it so that a diff stream never read mounts nothing,
 * and a diff that needed mounts gives them back.
 *
 * BYOB reads are passed through to the source (which is a byte stream too),
 * so a consumer reusing one buffer keeps doing so end to end.
 *
 * @module
 */

import { OUTPUT_CHUNK_SIZE } from "../archive/tar/writer.ts";

/** What `open` yields: the byte stream to read, and how to give back what opening it took. */
export interface OpenedSource {
  /** A byte stream (`type: "bytes"`), read with a BYOB reader. */
  stream: ReadableStream<Uint8Array>;
  /** Called once after the last read, an error or a cancel. */
  release: () => Promise<void>;
}

/**
 * A byte stream over `open()`'s stream, opened lazily (no pull happens before
 * the first read) and released once.
 */
export function deferredByteStream(
  open: () => Promise<OpenedSource>,
): ReadableStream<Uint8Array> {
  let opening: Promise<OpenedSource> | undefined;
  let reader: ReadableStreamBYOBReader | undefined;
  // No more reads: the source ended, failed or was cancelled.
  let finished = false;
  // One release for every caller, each of which waits until it is done.
  let finishing: Promise<void> | undefined;
  const finish = (): Promise<void> => {
    finished = true;
    return finishing ??= (async () => {
      const o = await opening?.catch(() => undefined);
      if (!o) return;
      try {
        if (!reader) await o.stream.cancel().catch(() => {});
      } finally {
        await o.release();
      }
    })();
  };
  return new ReadableStream({
    type: "bytes",
    async pull(c) {
      opening ??= open();
      let o: OpenedSource;
      try {
        o = await opening;
      } catch (e) {
        finished = true; // nothing was taken
        throw e;
      }
      if (finished) return; // cancelled while opening
      reader ??= o.stream.getReader({ mode: "byob" });
      const req = c.byobRequest;
      const view = req?.view
        ? new Uint8Array(
          req.view.buffer,
          req.view.byteOffset,
          req.view.byteLength,
        )
        : new Uint8Array(OUTPUT_CHUNK_SIZE);
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        // Transfers `view`'s buffer to the source; it comes back in r.value.
        r = await reader.read(view);
      } catch (e) {
        await finish();
        throw e;
      }
      if (finished) return; // cancelled during the read
      if (r.done) {
        await finish();
        c.close();
        if (req && r.value) req.respondWithNewView(r.value);
        return;
      }
      if (req) req.respondWithNewView(r.value);
      else c.enqueue(r.value);
    },
    async cancel(reason) {
      try {
        await reader?.cancel(reason);
      } finally {
        await finish();
      }
    },
  });
}
