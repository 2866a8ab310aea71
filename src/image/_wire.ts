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
    if (w.name === "AbortError" || w.name === "TimeoutError") {
      e = new DOMException(w.message, w.name) as unknown as Error;
    } else {
      const C = Object.hasOwn(CLASSES, w.name)
        ? CLASSES[w.name]
        : Object.hasOwn(DENO_ERRORS, w.name)
        ? DENO_ERRORS[w.name]
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
  | { chunk: Uint8Array }
  | { end: true }
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
 * Sends `stream` over `port` as the reader on the other side pulls it.
 * The port is closed when the stream ended, failed or was stopped.
 */
export function sendStream(
  stream: ReadableStream<Uint8Array>,
  port: MessagePort,
  book: ErrorBook,
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
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (wanted > 0 && !finished) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          if (finished) return;
          port.postMessage({ error: book.encode(e) } satisfies ToReader);
          finish();
          return;
        }
        if (finished) return;
        if (r.done) {
          port.postMessage({ end: true } satisfies ToReader);
          finish();
          return;
        }
        wanted--;
        const c = r.value;
        const owns = c.byteOffset === 0 &&
          c.byteLength === c.buffer.byteLength &&
          c.buffer instanceof ArrayBuffer;
        const chunk = owns ? c : c.slice();
        port.postMessage(
          { chunk } satisfies ToReader,
          [chunk.buffer as ArrayBuffer],
        );
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
    pump();
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
      stop();
    },
  };
}

/** The stream {@link sendStream} sends, read on the other side of `port`. */
export function receiveStream(
  port: MessagePort,
  book: ErrorBook,
): ReadableStream<Uint8Array> {
  const queue: ToReader[] = [];
  let waiting: (() => void) | undefined;
  let asked = 0;
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
      ask();
      while (queue.length === 0) {
        await new Promise<void>((r) => waiting = r);
        waiting = undefined;
      }
      const m = queue.shift()!;
      if ("chunk" in m) {
        asked--;
        ask();
        c.enqueue(m.chunk);
      } else if ("end" in m) {
        port.close();
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
