/**
 * Internal: what crosses between the main thread and an unpack worker.
 *
 * - Errors, typed: structured clone keeps only an Error's message (and
 *   turns every class into `Error`), so errors are sent as their class
 *   name, message, stack, own fields and cause, and rebuilt as instances of
 *   the same class (every class of `errors.ts`, `SysError`, `Deno.errors`,
 *   the built-in errors, `DOMException`). An error that came from the other
 *   side keeps a token and goes back as that token, so the thread that
 *   threw it first gets its own object again (an abort's reason, a
 *   registry error of the download).
 * - Byte streams over a `MessagePort`, pulled: the reader asks for chunks
 *   (a few ahead, so reading and unpacking overlap) and the sender posts
 *   each chunk's buffer as a transfer (no copy) when the chunk owns it.
 *   The end can carry a trailer: what the sender knows only then (the
 *   sha256 of the bytes it sent).
 *
 * @module
 */

import * as errors from "../errors.ts";
import { SysError } from "../sys/libc_linux.ts";

/** An error as posted. */
export type WireError =
  | { ref: number }
  | {
    name: string;
    message: string;
    stack?: string;
    fields: Record<string, unknown>;
    cause?: WireError;
    /** Its class: a DOMException, one of `Deno.errors` (whose names layerfs reuses: `Interrupted`), else by name. */
    kind?: "dom" | "deno";
  };

type ErrorClass = { prototype: object };

const CLASSES: Record<string, ErrorClass> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  SysError,
  ...Object.fromEntries(
    Object.entries(errors).filter(([, v]) =>
      typeof v === "function" && v.prototype instanceof Error
    ),
  ) as Record<string, ErrorClass>,
};
const DENO_ERRORS = Deno.errors as unknown as Record<string, ErrorClass>;

/** Where errors received from the other side are remembered by token. */
const TOKEN = Symbol("wire token");

/** Errors this thread sent away, by token, to be recognised on the way back. */
export class ErrorBook {
  readonly #sent = new Map<number, unknown>();
  #next = 1;

  /** Encodes `e` for posting. */
  encode(e: unknown, depth = 0): WireError {
    if (typeof e === "object" && e !== null && TOKEN in e) {
      return { ref: (e as { [TOKEN]: number })[TOKEN] };
    }
    const err = e instanceof Error || e instanceof DOMException
      ? e
      : new Error(String(e));
    const ref = this.#next++;
    this.#sent.set(ref, e);
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(err)) {
      if (k === "cause" || k === "name") continue;
      if (v === null || ["string", "number", "boolean"].includes(typeof v)) {
        fields[k] = v;
      }
    }
    const out: WireError = {
      name: err.name,
      message: err.message,
      stack: err.stack,
      fields: { ...fields, [REF_FIELD]: ref },
    };
    if (err instanceof DOMException) out.kind = "dom";
    else if (
      Object.hasOwn(DENO_ERRORS, err.name) &&
      err instanceof (DENO_ERRORS[err.name] as unknown as typeof Error)
    ) out.kind = "deno";
    const cause = (err as Error).cause;
    if (cause !== undefined && depth < 8) {
      out.cause = this.encode(cause, depth + 1);
    }
    return out;
  }

  /** Rebuilds a posted error: the same class, message and fields; this side's own object when it is one it sent. */
  decode(w: WireError): Error {
    if ("ref" in w) {
      const mine = this.#sent.get(w.ref);
      if (mine !== undefined) return mine as Error;
      return new Error(`error ${w.ref} of the other thread`);
    }
    let e: Error;
    if (w.kind === "dom") {
      e = new DOMException(w.message, w.name) as unknown as Error;
    } else {
      const C = w.kind === "deno" && Object.hasOwn(DENO_ERRORS, w.name)
        ? DENO_ERRORS[w.name]
        : Object.hasOwn(CLASSES, w.name)
        ? CLASSES[w.name]
        : Error;
      e = Object.create(C.prototype) as Error;
      Object.defineProperty(e, "message", {
        value: w.message,
        writable: true,
        configurable: true,
      });
      e.name = w.name;
    }
    const { [REF_FIELD]: ref, ...fields } = w.fields;
    Object.assign(e, fields);
    if (w.stack !== undefined) {
      Object.defineProperty(e, "stack", {
        value: w.stack,
        writable: true,
        configurable: true,
      });
    }
    if (w.cause !== undefined) {
      Object.defineProperty(e, "cause", {
        value: this.decode(w.cause),
        writable: true,
        configurable: true,
      });
    }
    Object.defineProperty(e, TOKEN, { value: ref });
    return e;
  }
}

const REF_FIELD = "__wireRef";

/** Messages of a byte stream on a port. */
type ToReader =
  | { chunks: Uint8Array[] }
  | { end: true; trailer?: string }
  | { error: WireError };
type ToSender = { pull: number } | { cancel: true };

/** Chunks the reader asks for ahead of what it consumed. */
const AHEAD = 4;

/** A stream being sent: {@link stop} it when the other side is done. */
export interface Sending {
  /** Cancels the stream (releases its file or connection) unless it ended; closes the port. */
  stop(): Promise<void>;
  /** Fails the stream for the reader with `e` (after what it was sent already), then stops it. */
  fail(e: unknown): void;
}

/**
 * Sends `stream` over `port` as the reader on the other side pulls it, in
 * messages of at least `batch` bytes (chunks gathered, not joined: each
 * message costs both threads an event, and an HTTP body comes in chunks of
 * 16-64 KiB). The port is closed when the stream ended, failed or was
 * stopped. At the end, `trailer` (when given) is called and its string
 * goes with it; an error comes after the bytes read before it. A chunk
 * that owns its buffer is transferred, so the producer must not hand that
 * buffer out again in a later chunk (a detached view reads as empty and
 * would be skipped): wrap such producers in {@link owned}.
 */
export function sendStream(
  stream: ReadableStream<Uint8Array>,
  port: MessagePort,
  book: ErrorBook,
  trailer?: () => string,
  batch = 0,
): Sending {
  const reader = stream.getReader();
  let wanted = 0;
  let pumping = false;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    port.close();
  };
  let failed: { error: unknown } | undefined; // after the bytes before it
  const post = (chunks: Uint8Array[]) => {
    const transfer = chunks.map((c) => c.buffer as ArrayBuffer);
    port.postMessage({ chunks } satisfies ToReader, transfer);
  };
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (wanted > 0 && !finished) {
        const chunks: Uint8Array[] = [];
        const inBatch = new Set<ArrayBufferLike>();
        let n = 0;
        let end: ToReader | undefined;
        while (end === undefined && (n === 0 || n < batch)) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            if (failed) throw failed.error;
            r = await reader.read();
          } catch (e) {
            if (finished) return;
            if (n > 0) {
              failed = { error: e };
              break;
            }
            end = { error: book.encode(e) };
            break;
          }
          if (finished) return;
          if (r.done) {
            try {
              end = { end: true, trailer: trailer?.() };
            } catch (e) {
              end = { error: book.encode(e) };
            }
            break;
          }
          const c = r.value;
          // An empty chunk carries nothing, and its buffer may be a shared
          // empty one already transferred (node:zlib emits such chunks).
          if (c.byteLength === 0) continue;
          // Transferred when it owns its buffer (and that buffer is not
          // in this batch already), else copied.
          const owns = c.byteOffset === 0 &&
            c.byteLength === c.buffer.byteLength &&
            c.buffer instanceof ArrayBuffer && !inBatch.has(c.buffer);
          const sent = owns ? c : c.slice();
          inBatch.add(sent.buffer);
          chunks.push(sent);
          n += c.byteLength;
        }
        if (chunks.length > 0) {
          wanted--;
          post(chunks);
        }
        if (end !== undefined) {
          port.postMessage(end);
          finish();
          return;
        }
      }
    } finally {
      pumping = false;
    }
  };
  port.onmessage = (ev: MessageEvent<ToSender>) => {
    const m = ev.data;
    if ("cancel" in m) {
      reader.cancel().catch(() => {});
      finish();
      return;
    }
    wanted += m.pull;
    pump().catch((e) => {
      // postMessage itself failed (a buffer that cannot be transferred):
      // the reader gets the error, the source is released.
      if (finished) return;
      try {
        port.postMessage({ error: book.encode(e) } satisfies ToReader);
      } catch { /* the port is gone */ }
      void stop();
    });
  };
  const stop = async () => {
    if (finished) return;
    finish();
    await reader.cancel().catch(() => {});
  };
  return {
    stop,
    fail(e) {
      if (finished) return;
      port.postMessage({ error: book.encode(e) } satisfies ToReader);
      void stop();
    },
  };
}

/**
 * `input`'s bytes copied into fresh buffers of `size` bytes (the last one
 * shorter), each owning its buffer, so {@link sendStream} transfers them.
 * For producers that keep using the buffers of chunks they handed out:
 * node:zlib in Deno 2.9.6 slices its output buffer again after emitting it
 * whole, and fails once that buffer was transferred away. An error of
 * `input` comes after the bytes it sent before it.
 */
export function owned(
  input: ReadableStream<Uint8Array>,
  size: number,
): ReadableStream<Uint8Array> {
  const reader = input.getReader();
  let rest: Uint8Array | undefined; // what the last batch had no room for
  let failed: { error: unknown } | undefined; // after the bytes before it
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (failed) throw failed.error;
      const buf = new Uint8Array(size);
      let n = 0;
      let ended = false;
      while (n < size) {
        let chunk = rest;
        rest = undefined;
        if (chunk === undefined) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (error) {
            // The bytes before the error go first, as unbatched: a tar
            // parser sees what it would have seen on the calling thread.
            if (n === 0) throw error;
            failed = { error };
            break;
          }
          if (r.done) {
            ended = true;
            break;
          }
          chunk = r.value;
        }
        const take = Math.min(chunk.length, size - n);
        buf.set(chunk.subarray(0, take), n);
        n += take;
        if (take < chunk.length) rest = chunk.subarray(take);
      }
      if (n > 0) c.enqueue(n === size ? buf : buf.slice(0, n));
      if (ended) c.close();
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * The stream {@link sendStream} sends, read on the other side of `port`;
 * `onEnd` gets the sender's trailer before the stream closes.
 */
export function receiveStream(
  port: MessagePort,
  book: ErrorBook,
  onEnd?: (trailer: string | undefined) => void,
): ReadableStream<Uint8Array> {
  const queue: ToReader[] = [];
  let waiting: (() => void) | undefined;
  let asked = 0;
  let pending: Uint8Array[] = []; // the rest of the last batch
  port.onmessage = (ev: MessageEvent<ToReader>) => {
    queue.push(ev.data);
    waiting?.();
  };
  const ask = () => {
    if (asked < AHEAD) {
      port.postMessage({ pull: AHEAD - asked } satisfies ToSender);
      asked = AHEAD;
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (pending.length > 0) return c.enqueue(pending.shift()!);
      ask();
      while (queue.length === 0) {
        await new Promise<void>((r) => waiting = r);
        waiting = undefined;
      }
      const m = queue.shift()!;
      if ("chunks" in m) {
        asked--;
        ask();
        pending = m.chunks;
        c.enqueue(pending.shift()!);
      } else if ("end" in m) {
        port.close();
        onEnd?.(m.trailer);
        c.close();
      } else {
        port.close();
        throw book.decode(m.error);
      }
    },
    cancel() {
      port.postMessage({ cancel: true } satisfies ToSender);
      port.close();
    },
  }, { highWaterMark: 0 });
}
