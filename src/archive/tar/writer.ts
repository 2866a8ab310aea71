/**
 * The tar writer: a stream of entries added one at a time, with
 * backpressure. Headers are encoded by ./encode.ts, which loads on the
 * first `add`: a process that imports mod.ts to apply tars does not load it
 * at start-up.
 *
 * @module
 */

import { BLOCK } from "./_block.ts";
import type { TarHeader } from "./header.ts";
import { loadModule } from "../../_load_module.ts";

/** Bytes of the two zero blocks that end an archive. */
const END_LENGTH = 2 * BLOCK;

let encoder: typeof import("./encode.ts") | undefined;
const loadEncoder = async () =>
  encoder ??= await loadModule<typeof import("./encode.ts")>(
    new URL("./encode.ts", import.meta.url),
  );

/**
 * Size of the chunks tar output is handed out in to a default reader (1 MiB),
 * by {@link TarWriter} and by the layer exporter. Each chunk costs a stream
 * round trip and, with `pipeTo(file.writable)`, an async write op, so chunks
 * are large: piping the bench corpus (800 MB, 48k files) to a file took
 * 2.0-2.3 s with 1 MiB chunks and 3.7 s or more with 64 KiB ones. To write a
 * file fastest, read the exporter's byte stream with a BYOB reader and
 * reused buffers instead (what `writeToFile` does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OUTPUT_CHUNK_SIZE } from "./writer.ts";
 * assert.equal(OUTPUT_CHUNK_SIZE, 1 << 20);
 * ```
 */
export const OUTPUT_CHUNK_SIZE = 1 << 20;

/** Options of {@link TarWriter}. */
export interface TarWriterOptions {
  /**
   * Size of the chunks the writer emits (small entries are batched into them).
   * @default {1048576} ({@link OUTPUT_CHUNK_SIZE})
   */
  chunkSize?: number;
  /**
   * Chunks queued in `readable` before `add` waits for the consumer.
   * @default {4}
   */
  highWaterMark?: number;
}

/** Bodies at least this large are passed through without copying into the batch. */
const PASS_THROUGH = 256 * 1024;

/**
 * Streams a tar archive: `add` entries, then `close`; read the bytes from
 * `readable`. Output comes in ~1 MiB chunks (small entries are batched), and
 * `add` waits while the consumer is behind (backpressure). A body's length
 * must equal `header.size`. Large `Uint8Array` bodies and stream chunks are
 * passed on without a copy: do not modify them after `add`. The header
 * encoder loads on the first `add` (from a local copy of layerfs, with read
 * access to it; see `PermissionRequired`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TarWriter } from "./writer.ts";
 * const w = new TarWriter();
 * const bytes = new Response(w.readable).bytes();
 * const base = {
 *   type: "file" as const, mode: 0o644, uid: 0, gid: 0, uname: "", gname: "",
 *   mtime: 0, mtimeNsec: 0, linkname: "", devmajor: 0, devminor: 0,
 *   xattrs: new Map<string, Uint8Array>(),
 * };
 * await w.add({ ...base, name: "a.txt", size: 2 }, new TextEncoder().encode("a\n"));
 * await w.close();
 * assert.equal((await bytes).length, 2048); // header, one body block, two end blocks
 * ```
 */
export class TarWriter {
  /** The archive bytes. */
  readonly readable: ReadableStream<Uint8Array>;
  #ctl!: ReadableStreamDefaultController<Uint8Array>;
  #size: number;
  #batch: Uint8Array;
  #fill = 0;
  #resume: (() => void) | null = null;
  #err: unknown = undefined;
  #closed = false;
  #busy = false;

  /**
   * Creates an empty archive; read it from {@link TarWriter.readable}.
   *
   * @param options Chunk size and queue length; see {@link TarWriterOptions}.
   */
  constructor(options: TarWriterOptions = {}) {
    // Loading starts now, so that the first `add` rarely waits for it.
    loadEncoder().catch(() => {}); // a refusal is the first add's error
    this.#size = options.chunkSize ?? OUTPUT_CHUNK_SIZE;
    this.#batch = new Uint8Array(this.#size);
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#ctl = c;
      },
      pull: () => {
        const r = this.#resume;
        this.#resume = null;
        r?.();
      },
      cancel: (reason) => {
        this.#err ??= reason ?? new Error("TarWriter output was cancelled");
        const r = this.#resume;
        this.#resume = null;
        r?.();
      },
    }, { highWaterMark: options.highWaterMark ?? 4 });
  }

  /**
   * Appends one entry. Resolves once its bytes are queued (after waiting for
   * the consumer when the queue is full).
   *
   * @param header The entry's header; `size` is the body length for files.
   *   It and the body must not change until the returned promise settles.
   * @param body The body of a file entry (none for other types or empty files).
   * @throws {RangeError} The body length differs from `header.size`. A body
   *   given as bytes (or none) is checked before anything is written: the
   *   writer stays usable. A streamed body is found too long or too short
   *   only as it is written: the writer is then failed and `readable` errors
   *   (the archive would be incomplete), so consume `readable` with its
   *   error handled.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TarWriter } from "./writer.ts";
   * import { tarHeader } from "./header.ts";
   * const w = new TarWriter();
   * const out = new Response(w.readable).bytes();
   * const hi = new TextEncoder().encode("hi");
   * // Bytes that do not match header.size: refused, nothing written.
   * await assert.rejects(w.add(tarHeader({ name: "a", size: 5 }), hi), RangeError);
   * await w.add(tarHeader({ name: "a", size: 2 }), hi);
   * await w.close();
   * assert.equal((await out).length, 512 + 512 + 1024);
   * ```
   */
  add(
    header: TarHeader,
    body?: Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const refused = wrongBytes(header, body);
    if (refused) return Promise.reject(refused);
    return this.#call(async () => {
      const { encodeHeaderInto } = encoder ?? await loadEncoder();
      // Encoded again after each wait for the consumer: a header changed
      // meanwhile needs room for what it is now. The batch past #fill is
      // zeros (a fresh batch, or bytes not yet written).
      for (;;) {
        const n = encodeHeaderInto(header, this.#batch, this.#fill);
        if (n >= 0) {
          this.#fill += n;
          break;
        }
        await this.#flush(-n);
      }
      const size = header.type === "file" ? header.size : 0;
      let written = 0;
      const mismatch = () =>
        new RangeError(
          `Body of ${JSON.stringify(header.name)} has ${
            written > size ? "more than" : "only"
          } ${written} bytes but header.size is ${size}; the archive is now incomplete`,
        );
      if (body instanceof Uint8Array) {
        written = body.length;
        if (written !== size) throw mismatch();
        await this.#put(body, written >= PASS_THROUGH);
      } else if (body !== undefined) {
        const stream = body instanceof ReadableStream;
        const it = stream
          ? body.values()
          : (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
        try {
          for (;;) {
            const r = await it.next();
            if (r.done) break;
            written += r.value.length;
            if (written > size) throw mismatch();
            // Stream chunks belong to us once read; iterator chunks may be a reused buffer.
            await this.#put(r.value, stream && r.value.length >= PASS_THROUGH);
          }
        } catch (e) {
          await it.return?.();
          throw e;
        }
        if (written !== size) throw mismatch();
      } else if (size !== 0) {
        throw mismatch();
      }
      await this.#pad(size);
    });
  }

  /**
   * Writes the end-of-archive marker and closes `readable`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TarWriter } from "./writer.ts";
   * const w = new TarWriter();
   * const bytes = new Response(w.readable).bytes();
   * await w.close();
   * assert.deepEqual(await bytes, new Uint8Array(1024)); // just the end blocks
   * ```
   */
  close(): Promise<void> {
    return this.#call(async () => {
      await this.#advance(END_LENGTH);
      await this.#emit(this.#batch.subarray(0, this.#fill));
      this.#batch = new Uint8Array(0);
      this.#fill = 0;
      this.#closed = true;
      this.#ctl.close();
    });
  }

  /**
   * Fails the archive: `readable` errors with `reason` and later calls throw.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TarWriter } from "./writer.ts";
   * const w = new TarWriter();
   * const bytes = new Response(w.readable).bytes();
   * w.abort(new Error("source vanished"));
   * await assert.rejects(bytes, /source vanished/);
   * await assert.rejects(w.close(), /source vanished/); // sticky
   * ```
   */
  abort(reason?: unknown): void {
    this.#fail(reason ?? new Error("TarWriter was aborted"));
  }

  /** One public call: exclusive, and its error fails the writer for good. */
  async #call(op: () => Promise<void>): Promise<void> {
    this.#enter();
    try {
      await op();
    } catch (e) {
      throw this.#fail(e);
    } finally {
      this.#busy = false;
    }
  }

  #enter(): void {
    if (this.#err !== undefined) throw this.#err;
    if (this.#closed) throw new TypeError("TarWriter is closed");
    if (this.#busy) {
      throw new TypeError(
        "TarWriter: add/close is already in progress; await it first",
      );
    }
    this.#busy = true;
  }

  #fail(e: unknown): unknown {
    if (this.#err === undefined) {
      this.#err = e;
      try {
        this.#ctl.error(e);
      } catch { /* already closed or errored */ }
    }
    return this.#err;
  }

  /** Emits the batch and starts a fresh zeroed one with room for `need` bytes. */
  async #flush(need: number): Promise<void> {
    if (this.#fill > 0) {
      await this.#emit(this.#batch.subarray(0, this.#fill));
    }
    this.#batch = new Uint8Array(Math.max(this.#size, need));
    this.#fill = 0;
  }

  async #emit(chunk: Uint8Array): Promise<void> {
    if (this.#err !== undefined) throw this.#err;
    this.#ctl.enqueue(chunk);
    while ((this.#ctl.desiredSize ?? 1) <= 0 && this.#err === undefined) {
      await new Promise<void>((r) => this.#resume = r);
    }
    if (this.#err !== undefined) throw this.#err;
  }

  async #put(data: Uint8Array, passThrough: boolean): Promise<void> {
    if (passThrough) {
      if (this.#fill > 0) await this.#flush(0);
      await this.#emit(data);
      return;
    }
    let at = 0;
    while (at < data.length) {
      if (this.#fill === this.#batch.length) await this.#flush(0);
      const n = Math.min(data.length - at, this.#batch.length - this.#fill);
      this.#batch.set(data.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
    }
  }

  /** Skips `n` bytes of the (zero-filled) batch. */
  async #advance(n: number): Promise<void> {
    while (n > 0) {
      if (this.#fill === this.#batch.length) await this.#flush(0);
      const k = Math.min(n, this.#batch.length - this.#fill);
      this.#fill += k;
      n -= k;
    }
  }

  #pad(size: number): Promise<void> {
    return this.#advance((BLOCK - (size % BLOCK)) % BLOCK);
  }
}

/**
 * Why a body given as bytes (or none) cannot be `header`'s, before anything
 * is written; undefined when it fits or is streamed (checked as it goes).
 */
function wrongBytes(
  header: TarHeader,
  body: unknown,
): RangeError | undefined {
  const size = header.type === "file" ? header.size : 0;
  const n = body instanceof Uint8Array
    ? body.length
    : body === undefined
    ? 0
    : -1;
  if (n < 0 || n === size) return undefined;
  const name = JSON.stringify(header.name);
  return new RangeError(
    header.type !== "file"
      ? `${name} is a ${header.type} entry, which has no body, but ${n} bytes were given; nothing was written`
      : `Body of ${name} has ${n} bytes but header.size is ${size}; nothing was written`,
  );
}
