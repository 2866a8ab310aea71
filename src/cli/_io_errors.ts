/**
 * Internal: Deno's file errors name no path ("Is a directory (os error 21)",
 * "No space left on device (os error 28)"), so the CLI wraps them where it
 * opens, reads or writes a file, naming the path and what to do.
 *
 * @module
 */

import type { ByteWriter } from "../archive/write_file.ts";

/** Exit code of a process killed by SIGPIPE, as a shell reports it. */
export const EXIT_BROKEN_PIPE = 141;

/** True for the error a write to a closed pipe gives (SIGPIPE is ignored by Deno). */
export function isBrokenPipe(e: unknown): boolean {
  return e instanceof Deno.errors.BrokenPipe ||
    (e as { code?: string })?.code === "EPIPE";
}

export { namedFsError } from "../_fs_error.ts";
import { namedFsError } from "../_fs_error.ts";

/** `w` with its write errors named after `path`. */
export function namedWriter(w: ByteWriter, path: string): ByteWriter {
  return {
    async write(p) {
      try {
        return await w.write(p);
      } catch (e) {
        throw namedFsError(e, "write to", path);
      }
    },
  };
}

/**
 * A file opened for reading as a stream whose errors name `path`; the file
 * is closed at the end, on error and on cancel. It is a byte stream: the
 * tar reader has the file read straight into its own 1 MiB buffers (a fresh
 * 1 MiB chunk per read, as before, cost a `layerfs apply` of the 200 MB
 * bench layer ~0.1 s in page faults); `onBytes` sees every read.
 */
export async function readFileStream(
  path: string,
  onBytes?: (n: number) => void,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    throw namedFsError(e, "read", path);
  }
  let closed = false;
  const close = () => {
    if (!closed) file.close();
    closed = true;
  };
  return new ReadableStream({
    type: "bytes",
    // What a default reader gets per read; a BYOB reader brings its buffer.
    autoAllocateChunkSize: 1 << 20,
    async pull(c: ReadableByteStreamController) {
      const req = c.byobRequest!;
      const v = req.view as Uint8Array<ArrayBuffer>;
      try {
        signal?.throwIfAborted(); // Ctrl-C: the reader fails, and cleans up
        const n = await file.read(
          new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
        );
        if (n === null) {
          close();
          c.close();
          req.respond(0);
        } else {
          onBytes?.(n);
          req.respond(n);
        }
      } catch (e) {
        close();
        throw signal?.aborted ? e : namedFsError(e, "read", path);
      }
    },
    cancel() {
      close();
    },
  });
}

/**
 * A stream whose read errors name `name` (e.g. "stdin"); `onBytes` sees
 * every chunk. An abort of `signal` fails the next read, or the one waiting
 * (standard input may never send more).
 */
export function namedStream(
  s: ReadableStream<Uint8Array>,
  name: string,
  onBytes?: (n: number) => void,
  signal?: AbortSignal,
): ReadableStream<Uint8Array> {
  const reader = s.getReader();
  const aborted = new Promise<never>((_, reject) => {
    signal?.addEventListener("abort", () => {
      reject(signal.reason);
      reader.cancel(signal.reason).catch(() => {});
    }, { once: true });
  });
  aborted.catch(() => {});
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        signal?.throwIfAborted();
        const r = await (signal
          ? Promise.race([reader.read(), aborted])
          : reader.read());
        if (r.done) {
          c.close();
        } else {
          onBytes?.(r.value.length);
          c.enqueue(r.value);
        }
      } catch (e) {
        throw signal?.aborted ? e : namedFsError(e, "read", name);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
