/**
 * Internal: the unpack worker's entry module (see `_unpack_pool.ts`). It
 * imports only what one layer's unpack needs (`_unpack.ts`, `_wire.ts`),
 * so a worker starts quickly. Each message is one job: the layer as plain
 * data and a port carrying the blob's bytes in and progress and the
 * outcome back; or only its extraction, the plain tar coming in (decoded
 * and hashed by the posting thread, whose sha256 of it ends the stream).
 *
 * @module
 */

import type { StagedLayer } from "../store/_chain.ts";
import { extractHere, type UnpackJob, unpackLayer } from "./_unpack.ts";
import { ErrorBook, receiveStream, type WireError } from "./_wire.ts";

/** A job as posted to the worker: the whole unpack, or (`job` absent) only the extraction of a plain tar. */
export interface WorkerJob {
  job?: UnpackJob;
  staged: StagedLayer;
  /** Bytes in (see `receiveStream`): the blob's, or the plain tar's with its sha256 as the trailer. */
  bytes: MessagePort;
  /** Progress and the outcome out. */
  reply: MessagePort;
  /** Set (non-zero) by the main thread to stop the job at its next chunk. */
  stop: Int32Array;
}

/** What the worker posts on `reply` (`size` is -1 after an extraction only). */
export type WorkerReply =
  | { bytes: number }
  | { size: number }
  | { error: WireError };

// The worker's global scope (typed without the deno.worker lib, which a
// published module may not pull in).
const scope = self as unknown as {
  onmessage: ((ev: MessageEvent<WorkerJob>) => void) | null;
};

scope.onmessage = async (ev) => {
  const { job, staged, bytes, reply, stop } = ev.data;
  const book = new ErrorBook();
  const post = (m: WorkerReply) => reply.postMessage(m);
  const stopped = () => {
    // The main thread replaces this with the abort's reason.
    if (Atomics.load(stop, 0) !== 0) {
      throw new DOMException("The unpack was stopped", "AbortError");
    }
  };
  let last = 0;
  try {
    if (job === undefined) {
      let sha: string | undefined;
      // The stop flag at every batch too: the batches already here can
      // hold megabytes of tar.
      const tar = receiveStream(bytes, book, (t) => sha = t).pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, c) {
            stopped();
            c.enqueue(chunk);
          },
        }),
      );
      await extractHere(staged)(tar, () => {
        if (sha === undefined) {
          throw new Error("The tar came without its sha256");
        }
        return sha;
      });
      post({ size: -1 });
      return;
    }
    const size = await unpackLayer(
      job,
      receiveStream(bytes, book),
      staged,
      (n) => {
        // A few updates per MiB are plenty for a progress line.
        if (n - last >= 1 << 20 || n === job.size) {
          last = n;
          post({ bytes: n });
        }
      },
      stopped,
    );
    post({ size });
  } catch (e) {
    post({ error: book.encode(e) });
  } finally {
    reply.close();
  }
};
