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
 * (`parallel: 1`, backends that copy the parent, small loads);
 * {@link readAheadUnpacker} too, for small pulls, but opens each job's
 * source as soon as the job is handed in (at most `parallel` at once) and
 * reads it ahead into memory, so that downloads still overlap.
 *
 * A job's source is opened when the job starts and read only as fast as
 * it unpacks, so `size` bounds the downloads too; jobs start in the order
 * their places were taken ({@link Unpacker.place}; `storeImage` takes the
 * largest layer's first, then the others bottom first),
 * whatever order their callers reach `run` in, so `parallel: 1` fetches one
 * blob after another, bottom first, like podman's `--max-parallel-downloads`.
 * An aborted job stops at its next chunk, even one already handed over (a
 * worker polls a shared flag: a small compressed chunk can hold megabytes
 * of tar), and settles only once the worker has let go of its staging.
 * A worker that dies (its module fails, it runs out of memory) fails the
 * job it runs and is terminated; the file descriptors it had opened
 * through libc cannot be closed from here and stay open until the process
 * ends (a crash, not a path any input can take).
 *
 * @module
 */

import type { StagedLayer } from "../store/_chain.ts";
import { type ReadAhead, readAhead } from "./_read_ahead.ts";
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

/** One layer's unpack, handed to {@link Unpacker} (`run`, `place().run`). */
export type RunUnpack = (
  job: UnpackJob,
  open: () => Opened,
  staged: StagedLayer,
  onBytes: (total: number) => void,
  signal?: AbortSignal,
) => Promise<number>;

/** A job's place in an {@link Unpacker}'s queue. */
export interface Place {
  /**
   * Unpacks one layer once this place is the first still waiting and a
   * slot is free: `open` is called then (the size it knows wins over the
   * job's). Resolves with the uncompressed tar's length once every check
   * passed; rejects with `signal.reason` soon after `signal` aborts.
   */
  run: RunUnpack;
  /** Gives the place up unused (its layer needs no unpack after all); a no-op once run. */
  release(): void;
}

/** Runs unpack jobs; {@link close} stops whatever it started. */
export interface Unpacker {
  /** A place at the end of the queue: take them in the order jobs must start. */
  place(): Place;
  /** A place, run at once (`place().run`). */
  run: RunUnpack;
  /** Terminates idle workers (call when no job runs any more). */
  close(): void;
  /** Jobs it runs at once. */
  readonly slots: number;
}

/** Runs at most `n` of the given jobs at once, in the order they were handed in. */
export function semaphore(
  n: number,
): <T>(job: () => Promise<T>) => Promise<T> {
  const slot = ordered(n);
  return (job) => slot().run(job);
}

/** A slot for a job, taken in queue order: see {@link ordered}. */
interface Slot {
  /** Runs `job` when the slot's turn came. */
  run<T>(job: () => Promise<T>): Promise<T>;
  /** Gives the slot up unused. */
  release(): void;
}

/**
 * At most `n` jobs at once, started in the order their slots were taken
 * (not the order `run` is called in): a slot whose `run` has not come yet
 * holds back those after it until it runs or is released.
 */
export function ordered(n: number): () => Slot {
  let free = n;
  const queue: { go?: () => void; gone: boolean }[] = [];
  const pump = () => {
    while (free > 0 && queue.length > 0) {
      const head = queue[0];
      if (!head.gone && !head.go) return; // its job has not come yet
      queue.shift();
      if (head.gone) continue;
      free--;
      head.go!();
    }
  };
  return () => {
    const entry: { go?: () => void; gone: boolean } = { gone: false };
    queue.push(entry);
    let used = false;
    return {
      run<T>(job: () => Promise<T>): Promise<T> {
        if (used || entry.gone) {
          return Promise.reject(new Error("A slot runs one job"));
        }
        used = true;
        const { promise, resolve } = Promise.withResolvers<T>();
        // Started by pump itself, so jobs start in exactly the queue's order.
        entry.go = () =>
          resolve(
            new Promise<T>((r) => r(job())).finally(() => {
              free++;
              pump();
            }),
          );
        pump();
        return promise;
      },
      release() {
        if (used || entry.gone) return;
        entry.gone = true;
        pump();
      },
    };
  };
}

/** An {@link Unpacker} of `runOne` jobs, `n` at once in queue order. */
function queued(
  n: number,
  runOne: RunUnpack,
  close: () => void,
): Unpacker {
  const slot = ordered(n);
  const place = (): Place => {
    const s = slot();
    return {
      run: (job, open, staged, onBytes, signal) =>
        s.run(async () => {
          try {
            return await runOne(job, open, staged, onBytes, signal);
          } catch (e) {
            // Whatever either thread made of a stop, the abort's reason.
            throw signal?.aborted ? signal.reason : e;
          }
        }),
      release: () => s.release(),
    };
  };
  return {
    place,
    run: (job, open, staged, onBytes, signal) =>
      place().run(job, open, staged, onBytes, signal),
    close,
    slots: n,
  };
}

/** One job's unpack on the calling thread, from its opened source. */
function unpackHere(
  job: UnpackJob,
  o: Opened,
  staged: StagedLayer,
  onBytes: (total: number) => void,
  signal?: AbortSignal,
): Promise<number> {
  return unpackLayer(
    { ...job, size: o.size ?? job.size },
    o.stream,
    staged,
    onBytes,
    () => signal?.throwIfAborted(),
  );
}

/** Jobs on the calling thread, one at a time. */
export function inlineUnpacker(): Unpacker {
  return queued(
    1,
    (job, open, staged, onBytes, signal) =>
      unpackHere(job, open(), staged, onBytes, signal),
    () => {},
  );
}

/**
 * Jobs on the calling thread, one at a time, as {@link inlineUnpacker}, but
 * each job's source is opened as soon as the job is handed in (at most
 * `downloads` at once, in place order) and read ahead into memory, so that
 * the waits of several downloads overlap while one layer unpacks. For
 * sources whose sizes are known and small in all: what each holds is
 * bounded by its size (`_read_ahead.ts`).
 */
export function readAheadUnpacker(downloads: number): Unpacker {
  const unpackSlot = ordered(1);
  const downloadSlot = ordered(downloads);
  const reading = new Set<ReadAhead>();
  const place = (): Place => {
    const unpack = unpackSlot();
    const download = downloadSlot();
    return {
      run(job, open, staged, onBytes, signal) {
        // Opened when its download slot comes; the slot is held until the
        // read-ahead stopped (its end, an error, its job's end).
        const opened = Promise.withResolvers<
          { ahead: ReadAhead; size?: number }
        >();
        opened.promise.catch(() => {}); // taken by the unpack below
        download.run(async () => {
          let o: Opened;
          try {
            o = open();
          } catch (e) {
            opened.reject(e);
            return;
          }
          const ahead = readAhead(o.stream, o.size ?? job.size ?? 0);
          reading.add(ahead);
          opened.resolve({ ahead, size: o.size });
          await ahead.filled;
        }).catch(() => {});
        return unpack.run(async () => {
          let ahead: ReadAhead | undefined;
          try {
            const o = await opened.promise;
            ahead = o.ahead;
            return await unpackHere(
              job,
              { stream: ahead.stream, size: o.size },
              staged,
              onBytes,
              signal,
            );
          } catch (e) {
            throw signal?.aborted ? signal.reason : e;
          } finally {
            if (ahead) {
              ahead.cancel();
              reading.delete(ahead);
            }
          }
        });
      },
      release() {
        unpack.release();
        download.release();
      },
    };
  };
  return {
    place,
    run: (job, open, staged, onBytes, signal) =>
      place().run(job, open, staged, onBytes, signal),
    close() {
      for (const a of reading) a.cancel();
      reading.clear();
    },
    slots: 1,
  };
}

const WORKER_URL = new URL("./_unpack_worker.ts", import.meta.url).href;

/** Bytes of plain tar per message to an extracting worker. */
const TAR_BATCH = 512 << 10;

/**
 * Least bytes per message to a worker (chunks gathered, see `sendStream`):
 * a 4-layer pull took 6% less CPU so (1.08 against 1.15 s) than with a
 * message per 16-64 KiB chunk of its HTTP bodies.
 */
const BATCH = 256 << 10;

/** How {@link workerUnpacker} splits jobs between threads. */
export interface PoolOptions {
  /**
   * Jobs decoded and hashed on the calling thread at once, their plain tar
   * extracted in a worker (two threads on one layer); the others unpack
   * whole in their worker.
   * @default {0}
   */
  decodeHere?: number;
  /**
   * The worker module (tests give one that fails to load).
   * @default {the unpack worker, `_unpack_worker.ts`}
   */
  workerUrl?: string;
}

/** Jobs in up to `size` workers, started as jobs need them. */
export function workerUnpacker(
  size: number,
  options: PoolOptions = {},
): Unpacker {
  const idle: Worker[] = [];
  const all = new Set<Worker>();
  let decodeFree = options.decodeHere ?? 0;
  /** Workers that died, with why; and the job each one runs, to fail it. */
  const dead = new Map<Worker, Error>();
  const running = new Map<Worker, (e: Error) => void>();
  const take = (): Worker => {
    const w = idle.pop();
    if (w) return w;
    const made = new Worker(options.workerUrl ?? WORKER_URL, {
      type: "module",
    });
    // Handled from the start, not only while a job is posted: an error
    // event nobody handles (the module failed to load while the job still
    // awaited its first bytes, an idle worker died) ends the process.
    made.onerror = (ev) => {
      ev.preventDefault();
      const e = new Error(`The unpack worker failed: ${ev.message}`);
      dead.set(made, e);
      running.get(made)?.(e);
      const i = idle.indexOf(made);
      if (i >= 0) {
        idle.splice(i, 1);
        all.delete(made);
        made.terminate();
      }
    };
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
    signal: AbortSignal | undefined,
    trailer?: () => string,
  ): Promise<number> => {
    const book = new ErrorBook();
    const bytes = new MessageChannel();
    const reply = new MessageChannel();
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const sent = sendStream(stream, bytes.port1, book, trailer, BATCH);
    // The worker polls the flag at every chunk (it may be busy with bytes
    // it has already); the failed stream wakes it if it waits for more.
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => {
      Atomics.store(stop, 0, 1);
      sent.fail(signal!.reason);
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    // Thrown in this handler it would be uncaught (and end the process): a
    // failing progress callback fails the job instead, as on the calling
    // thread. The worker is stopped and the job settles with that error
    // once the worker let go of its staging (its reply, whatever it says).
    let progressError: { e: unknown } | undefined;
    reply.port1.onmessage = (ev: MessageEvent<WorkerReply>) => {
      const m = ev.data;
      if ("bytes" in m) {
        if (progressError) return;
        try {
          onBytes(m.bytes);
        } catch (e) {
          progressError = { e };
          Atomics.store(stop, 0, 1);
          sent.fail(e);
        }
      } else if (progressError) reject(progressError.e);
      else if ("size" in m) resolve(m.size);
      else reject(book.decode(m.error)); // an abort's reason: see queued()
    };
    // A worker that dies (its module failed to load, it ran out of
    // memory) takes its job with it.
    const died = dead.get(w);
    if (died) reject(died);
    running.set(w, reject);
    w.postMessage(
      {
        job,
        staged,
        bytes: bytes.port2,
        reply: reply.port2,
        stop,
      } satisfies WorkerJob,
      [bytes.port2, reply.port2],
    );
    return promise.finally(async () => {
      running.delete(w);
      signal?.removeEventListener("abort", onAbort);
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
    signal: AbortSignal | undefined,
  ): Promise<number> => {
    if (decodeFree <= 0) {
      return await runOn(w, job, stream, staged, onBytes, signal);
    }
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
            signal,
            tarSha256,
          );
        },
        onBytes,
        () => signal?.throwIfAborted(),
      );
    } finally {
      decodeFree++;
    }
  };
  return queued(size, async (job, open, staged, onBytes, signal) => {
    const o = open();
    const w = take();
    try {
      return await unpackOn(
        w,
        { ...job, size: o.size ?? job.size },
        o.stream,
        staged,
        onBytes,
        signal,
      );
    } finally {
      // A job that failed on its own terms leaves a working worker.
      if (!dead.has(w)) idle.push(w);
      else {
        all.delete(w);
        w.terminate();
      }
    }
  }, () => {
    // A job still running fails (terminate() fires no event: it would
    // never settle, and its source would stay open).
    for (const fail of running.values()) {
      fail(new Error("The unpack pool was closed while a layer unpacked"));
    }
    for (const w of all) w.terminate();
    all.clear();
    idle.length = 0;
  });
}
