/**
 * Internal: where layers are unpacked. Decompression, hashing and
 * extraction are CPU work on the JS thread that runs them (node:zlib and
 * node:crypto in Deno 2.9.6 included), so layers unpacked "at once" on one
 * thread take as long as one after another. {@link workerUnpacker} runs each
 * job in a Web Worker of a small pool (started on demand, at most `size`,
 * each importing only `_unpack_worker.ts`'s few modules); the main thread
 * keeps opening the sources (file regions, HTTP bodies with the registry
 * client's retries and Range resumes) and sends their bytes over a
 * `MessagePort` (buffers transferred, not copied), and keeps every lock and
 * all store state. With `decodeHere`, that many jobs at once are split
 * across two threads: the calling thread decodes and hashes the blob and
 * sends the plain tar (with its sha256 at the end) to the worker, which
 * only extracts; the checks stay on the calling thread either way
 * (`unpackChecked`). On one gzip layer of a rootfs the two halves cost
 * about the same CPU, so a layer left alone still keeps two cores busy.
 * {@link inlineUnpacker} runs jobs on the calling thread, one at a time
 * (`parallel: 1`, and backends that copy the parent).
 *
 * @module
 */

import type { StagedLayer } from "../store/_chain.ts";
import { unpackChecked, type UnpackJob, unpackLayer } from "./_unpack.ts";
import type { WorkerJob, WorkerReply } from "./_unpack_worker.ts";
import { ErrorBook, owned, sendStream } from "./_wire.ts";

/** A layer's blob, opened: its bytes, and its size when known. */
export interface Opened {
  /** The bytes. */
  stream: ReadableStream<Uint8Array>;
  /** The size, when known. */
  size?: number;
}

/** Runs unpack jobs; {@link close} stops whatever it started. */
export interface Unpacker {
  /**
   * Unpacks one layer: `open` is called when the job gets its turn (the
   * size it knows wins over the job's). Resolves with the uncompressed
   * tar's length once every check passed.
   */
  run(
    job: UnpackJob,
    open: () => Opened,
    staged: StagedLayer,
    onBytes: (total: number) => void,
  ): Promise<number>;
  /** Terminates idle workers (call when no job runs any more). */
  close(): void;
}

/** Runs at most `n` of the given jobs at once, in the order they were handed in. */
export function semaphore(
  n: number,
): <T>(job: () => Promise<T>) => Promise<T> {
  let free = n;
  const waiting: (() => void)[] = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((r) => waiting.push(r));
    try {
      return await job();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

/** Jobs on the calling thread, one at a time. */
export function inlineUnpacker(): Unpacker {
  const one = semaphore(1);
  return {
    run: (job, open, staged, onBytes) =>
      one(() => {
        const o = open();
        return unpackLayer(
          { ...job, size: o.size ?? job.size },
          o.stream,
          staged,
          onBytes,
        );
      }),
    close() {},
  };
}

const WORKER_URL = new URL("./_unpack_worker.ts", import.meta.url).href;

/** Bytes of plain tar per message to an extracting worker. */
const TAR_BATCH = 512 << 10;

/** How {@link workerUnpacker} splits jobs between threads. */
export interface PoolOptions {
  /**
   * Jobs decoded and hashed on the calling thread at once, their plain tar
   * extracted in a worker (two threads on one layer); the others unpack
   * whole in their worker.
   * @default {0}
   */
  decodeHere?: number;
}

/** Jobs in up to `size` workers, started as jobs need them. */
export function workerUnpacker(
  size: number,
  options: PoolOptions = {},
): Unpacker {
  const idle: Worker[] = [];
  const all = new Set<Worker>();
  const turn = semaphore(size);
  let decodeFree = options.decodeHere ?? 0;
  const take = (): Worker => {
    const w = idle.pop();
    if (w) return w;
    const made = new Worker(WORKER_URL, { type: "module" });
    all.add(made);
    return made;
  };
  /** Posts one job to `w` with `stream` as its bytes; settles with its reply. */
  const runOn = (
    w: Worker,
    job: UnpackJob | undefined,
    stream: ReadableStream<Uint8Array>,
    staged: StagedLayer,
    onBytes: (total: number) => void,
    trailer?: () => string,
  ): Promise<number> => {
    const book = new ErrorBook();
    const bytes = new MessageChannel();
    const reply = new MessageChannel();
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const sent = sendStream(stream, bytes.port1, book, trailer);
    reply.port1.onmessage = (ev: MessageEvent<WorkerReply>) => {
      const m = ev.data;
      if ("bytes" in m) onBytes(m.bytes);
      else if ("size" in m) resolve(m.size);
      else reject(book.decode(m.error));
    };
    // A worker that dies (its module failed to load, it ran out of
    // memory) takes its job with it.
    w.onerror = (ev) => {
      ev.preventDefault();
      reject(new Error(`The unpack worker failed: ${ev.message}`));
    };
    w.postMessage(
      {
        job,
        staged,
        bytes: bytes.port2,
        reply: reply.port2,
      } satisfies WorkerJob,
      [bytes.port2, reply.port2],
    );
    return promise.finally(async () => {
      reply.port1.close();
      // The worker is done with the bytes: release the source (a file, a
      // connection) if it stopped before their end.
      await sent.stop();
    });
  };
  /** The job on `w`: whole, or decoded here and extracted there. */
  const unpackOn = async (
    w: Worker,
    job: UnpackJob,
    stream: ReadableStream<Uint8Array>,
    staged: StagedLayer,
    onBytes: (total: number) => void,
  ): Promise<number> => {
    if (decodeFree <= 0) return await runOn(w, job, stream, staged, onBytes);
    decodeFree--;
    try {
      return await unpackChecked(
        job,
        stream,
        async (tar, tarSha256) => {
          await runOn(
            w,
            undefined,
            owned(tar, TAR_BATCH),
            staged,
            () => {},
            tarSha256,
          );
        },
        onBytes,
      );
    } finally {
      decodeFree++;
    }
  };
  return {
    run: (job, open, staged, onBytes) =>
      turn(async () => {
        const o = open();
        const w = take();
        let healthy = false;
        try {
          const size = await unpackOn(
            w,
            { ...job, size: o.size ?? job.size },
            o.stream,
            staged,
            onBytes,
          );
          healthy = true;
          return size;
        } catch (e) {
          // A job that failed on its own terms leaves a working worker.
          healthy = !(e instanceof Error && e.message.startsWith(
            "The unpack worker failed",
          ));
          throw e;
        } finally {
          w.onerror = null;
          if (healthy) idle.push(w);
          else {
            all.delete(w);
            w.terminate();
          }
        }
      }),
    close() {
      for (const w of all) w.terminate();
      all.clear();
      idle.length = 0;
    },
  };
}
