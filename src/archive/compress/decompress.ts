/**
 * Decompression of gzip and zstd layer tars as streams, checked to the end.
 *
 * gzip is decoded by Intel ISA-L when `libisal.so.2` is installed (about
 * twice as fast; see `_gunzip_isal.ts`, `LAYERFS_GZIP=zlib` turns it off),
 * else by `node:zlib`'s `createGunzip`, which checks every member's CRC-32
 * and ISIZE and reads concatenated members; any byte after the last member
 * is refused (GNU gzip ignores zero padding there, Go's gzip reader, which
 * docker and containerd use, refuses it too). (The web
 * `DecompressionStream("gzip")` of Deno 2.9.6 fails on concatenated members
 * and reports every problem as the same "does not have a matching checksum"
 * TypeError, so it is not used.)
 *
 * zstd is `node:zlib`'s `createZstdDecompress`, which checks a frame's
 * content checksum, plus {@link ZstdFrameScanner}, which finds the frame
 * boundaries: in Deno 2.9.6 the decoder itself takes nothing after the first
 * frame and does not report a stream cut inside a frame. Each frame gets a
 * fresh decoder; skippable frames are dropped; anything that is not a frame
 * is refused, as the `zstd` tool does.
 *
 * Every problem is an {@link InvalidArchive} naming the input and what is
 * wrong. The checks that need the whole input (checksums, truncation,
 * trailing data) fail the stream at its end: read it to the end.
 *
 * @module
 */

import { nodeZlib } from "../../_node.ts";
import type { Transform } from "node:stream";
import { InvalidArchive, LayerfsError } from "../../errors.ts";
import {
  type Compression,
  detectCompression,
  type DetectedCompression,
  MAGIC_LENGTH,
} from "./detect.ts";
import { ZstdFrameError, ZstdFrameScanner } from "./_zstd_frames.ts";
import { peek } from "./_peek.ts";
import { GzipError, IsalGunzip, isalGunzipAvailable } from "./_gunzip_isal.ts";

/** Options of {@link decompress} and {@link decompressStream}. */
export interface DecompressOptions {
  /**
   * The input's name in error messages (a file path, "stdin", a blob digest).
   * @default {undefined (messages say "Invalid tar archive")}
   */
  name?: string;
}

/** What {@link decompress} found and the bytes it gives. */
export interface Decompressed {
  /** The compression found, or `null` when the input is not compressed. */
  compression: DetectedCompression;
  /** The uncompressed bytes (the input itself when it is not compressed). */
  stream: ReadableStream<Uint8Array>;
}

// Output chunk size: larger than zlib's 16 KiB default so the tar reader
// gets fewer, fuller chunks.
const CHUNK = 128 * 1024;

/**
 * Detects gzip or zstd by magic bytes and returns the uncompressed stream
 * (the input unchanged when it is not compressed).
 *
 * @param input A tar, possibly gzip- or zstd-compressed.
 * @param options See {@link DecompressOptions}.
 * @returns The compression found and the uncompressed bytes.
 * @throws {InvalidArchive} for xz or bzip2 input; through the stream, for
 *   corrupt, truncated or trailing data.
 * @example
 * ```ts
 * import { decompress } from "./decompress.ts";
 * import assert from "node:assert/strict";
 * const gz = new Blob(["hello"]).stream().pipeThrough(new CompressionStream("gzip"));
 * const { compression, stream } = await decompress(gz);
 * assert.equal(compression, "gzip");
 * assert.equal(await new Response(stream).text(), "hello");
 * ```
 */
export async function decompress(
  input: ReadableStream<Uint8Array>,
  options: DecompressOptions = {},
): Promise<Decompressed> {
  const { head, stream } = await peek(input, MAGIC_LENGTH);
  let compression: DetectedCompression;
  try {
    compression = detectCompression(head, options.name);
  } catch (e) {
    await stream.cancel(e).catch(() => {});
    throw e;
  }
  return {
    compression,
    stream: compression === null
      ? stream
      : decompressStream(stream, compression, options),
  };
}

/**
 * Decompresses `input`, known to be in `format` (say, from an OCI media
 * type). The stream errors with an {@link InvalidArchive} when the data is
 * corrupt, a checksum does not match, the input ends inside a member or
 * frame, or bytes that are not another member or frame follow the data.
 * Cancelling it cancels `input`.
 *
 * @param input Compressed bytes.
 * @param format "gzip" or "zstd".
 * @param options See {@link DecompressOptions}.
 * @returns The uncompressed bytes.
 * @example
 * ```ts
 * import { decompressStream } from "./decompress.ts";
 * import assert from "node:assert/strict";
 * const gz = new Uint8Array(
 *   await new Response(
 *     new Blob(["hi"]).stream().pipeThrough(new CompressionStream("gzip")),
 *   ).arrayBuffer(),
 * );
 * const cut = new Blob([gz.subarray(0, gz.length - 4)]).stream();
 * await assert.rejects(
 *   new Response(decompressStream(cut, "gzip", { name: "hi.gz" })).text(),
 *   /Invalid archive hi.gz: the gzip stream is truncated/,
 * );
 * ```
 */
export function decompressStream(
  input: ReadableStream<Uint8Array>,
  format: Compression,
  options: DecompressOptions = {},
): ReadableStream<Uint8Array> {
  const name = options.name;
  if (format === "gzip" && isalGunzipAvailable()) {
    return isalGunzipStream(input, name);
  }
  const reader = input.getReader();
  let decoder: Transform | undefined;
  let ended = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;

  const stop = (reason: unknown) => {
    if (ended) return;
    ended = true;
    decoder?.destroy();
    reader.cancel(reason).catch(() => {});
  };
  const fail = (e: unknown) => {
    if (ended) return;
    const err = decodeError(e, format, name);
    stop(err);
    controller.error(err);
  };

  const open = (): Transform => {
    const d = format === "gzip"
      ? nodeZlib().createGunzip({ chunkSize: CHUNK })
      : zstdDecoder();
    d.on("data", (chunk: Uint8Array) => {
      if (ended) return;
      controller.enqueue(chunk);
      if ((controller.desiredSize ?? 0) <= 0) d.pause();
    });
    d.on("error", fail);
    return d;
  };
  // Resolves when `d` drained (or ended); rejects on its error.
  const settle = (d: Transform, event: "drain" | "end") =>
    new Promise<void>((resolve, reject) => {
      const done = () => {
        d.off("error", onError);
        d.off(event, done);
        d.off("close", done);
        resolve();
      };
      const onError = (e: unknown) => {
        d.off(event, done);
        d.off("close", done);
        reject(e);
      };
      d.once(event, done);
      // A decoder destroyed by a cancel only closes.
      d.once("close", done);
      d.once("error", onError);
    });
  let fed = 0; // bytes given to the current decoder
  const write = async (d: Transform, bytes: Uint8Array) => {
    fed += bytes.length;
    // A copy: the decoder may hold on to it past this chunk.
    if (!d.write(bytes.slice())) await settle(d, "drain");
  };
  const finish = async (d: Transform) => {
    const end = settle(d, "end");
    d.end();
    await end;
    // zlib stops at the end of the last gzip member and ignores what follows
    // when it does not start with a zero byte (GNU gzip's tape padding).
    // Refused, as Go's gzip reader (docker, containerd) refuses it.
    const used = (d as unknown as { bytesWritten: number }).bytesWritten;
    if (format === "gzip" && used < fed) {
      throw new TrailingData(fed - used, used);
    }
    fed = 0;
  };

  const feed = async () => {
    const frames = format === "zstd" ? new ZstdFrameScanner() : undefined;
    if (!frames) decoder = open();
    for (;;) {
      const r = await read(reader);
      if (ended) return;
      if (r.done) break;
      if (!frames) {
        await write(decoder!, r.value);
        continue;
      }
      for (const piece of frames.push(r.value)) {
        if (piece.kind === "frame") {
          decoder ??= open();
          await write(decoder, piece.bytes);
        } else {
          await finish(decoder!);
          decoder = undefined;
        }
        if (ended) return;
      }
    }
    if (frames) frames.finish();
    else await finish(decoder!);
    if (ended) return;
    ended = true;
    controller.close();
  };

  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      feed().catch((e) => {
        if (!(e instanceof InputError)) return fail(e);
        // The input failed by itself (a read error): passed on as it is.
        if (ended) return;
        ended = true;
        decoder?.destroy();
        controller.error(e.cause);
      });
    },
    pull() {
      decoder?.resume();
    },
    cancel(reason) {
      stop(reason);
    },
  }, { highWaterMark: 4 });
}

/**
 * gzip through ISA-L ({@link IsalGunzip}): pulled, so the output's
 * backpressure reaches the input; the same checks and messages as the
 * `node:zlib` path.
 */
function isalGunzipStream(
  input: ReadableStream<Uint8Array>,
  name: string | undefined,
): ReadableStream<Uint8Array> {
  const reader = input.getReader();
  let ready: Uint8Array[] = [];
  const decoder = new IsalGunzip((c) => ready.push(c));
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        while (ready.length === 0 && !done) {
          const r = await read(reader);
          if (r.done) {
            done = true;
            decoder.end();
          } else decoder.push(r.value);
        }
      } catch (e) {
        if (e instanceof InputError) return c.error(e.cause);
        // Only what the decoder found in the data says the data is bad.
        const err = e instanceof GzipError ? decodeError(e, "gzip", name) : e;
        reader.cancel(err).catch(() => {});
        return c.error(err);
      }
      const out = ready;
      ready = [];
      for (const chunk of out) c.enqueue(chunk);
      if (done && ready.length === 0) c.close();
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 2 });
}

/** Bytes after the end of the gzip data. */
class TrailingData extends Error {
  constructor(readonly bytes: number, readonly offset: number) {
    super("trailing data");
  }
}

/** An error from reading the input (not the decoder's): passed on as it is. */
class InputError extends Error {}

async function read(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch (e) {
    throw new InputError("input", { cause: e });
  }
}

/**
 * A zstd decoder whose errors arrive as "error" events. Deno 2.9.6's zstd
 * handle throws a decode error (e.g. a checksum mismatch) out of its native
 * write, which node:zlib calls from a nextTick callback: the exception is
 * uncaught and kills the process ("error: Uncaught Error: Zstd decompress
 * error: Restored data doesn't match checksum"). Wrapped here, the error goes
 * to the handle's own `onerror`, the path every other zlib error takes.
 */
function zstdDecoder(): Transform {
  const d = nodeZlib().createZstdDecompress({ chunkSize: CHUNK });
  const handle = (d as unknown as { _handle?: Record<symbol, unknown> })
    ._handle;
  if (handle) {
    for (const sym of Object.getOwnPropertySymbols(handle)) {
      if (sym.description !== "kNativeWrite") continue;
      const native = handle[sym] as (...args: unknown[]) => unknown;
      if (typeof native !== "function") continue;
      handle[sym] = function (this: unknown, ...args: unknown[]) {
        try {
          return native.apply(this, args);
        } catch (e) {
          const h = this as {
            onerror?: (message: string, errno: number, code: string) => void;
          };
          if (typeof h.onerror !== "function") throw e;
          h.onerror(
            e instanceof Error ? e.message : String(e),
            -1,
            "ERR_ZSTD_DECOMPRESS",
          );
        }
      };
    }
  }
  return d;
}

const AGAIN = "the file is damaged — download or create it again";
const GZIP_TRUNCATED =
  "the gzip stream is truncated (ends inside a member); the file is incomplete — download it again";
const GZIP_CRC = `the gzip CRC-32 does not match the data; ${AGAIN}`;
const GZIP_ISIZE = `the gzip length (ISIZE) does not match the data; ${AGAIN}`;
const GZIP_NOT_A_MEMBER =
  "bytes after the end of the gzip data are not another gzip member (trailing garbage or a corrupt member header); " +
  AGAIN;

/** Turns a decoder or frame-scanner error into an {@link InvalidArchive}. */
function decodeError(
  e: unknown,
  format: Compression,
  name: string | undefined,
): unknown {
  if (e instanceof LayerfsError) return e;
  const input = name === undefined ? {} : { input: name };
  const opts = { ...input, cause: e };
  if (e instanceof ZstdFrameError) {
    const why = e.message.includes("truncated")
      ? `${e.message}; the file is incomplete — download it again`
      : e.message.includes("garbage")
      ? `${e.message} (at byte ${e.offset}); the file is damaged or has something appended — download it again`
      : `${e.message} (at byte ${e.offset}); ${AGAIN}`;
    return new InvalidArchive(why, undefined, opts);
  }
  if (e instanceof GzipError) {
    if (e.kind === "trailing") {
      return decodeError(new TrailingData(e.bytes, e.offset), format, name);
    }
    const why = {
      truncated: GZIP_TRUNCATED,
      crc: GZIP_CRC,
      isize: GZIP_ISIZE,
      "not-a-member": GZIP_NOT_A_MEMBER,
      corrupt: `the gzip stream is corrupt (${e.message}); ${AGAIN}`,
    }[e.kind];
    return new InvalidArchive(why, undefined, opts);
  }
  if (e instanceof TrailingData) {
    return new InvalidArchive(
      `${e.bytes} byte${
        e.bytes === 1 ? "" : "s"
      } after the end of the gzip data (at byte ${e.offset}) that are not another gzip member; ` +
        "the file is damaged or has something appended — download it again",
      undefined,
      opts,
    );
  }
  const err = e as { code?: string; message?: string };
  const msg = String(err?.message ?? e);
  let why: string;
  if (format === "gzip") {
    if (err.code === "Z_BUF_ERROR" || /unexpected end/i.test(msg)) {
      why = GZIP_TRUNCATED;
    } else if (/incorrect data check/.test(msg)) {
      why = GZIP_CRC;
    } else if (/incorrect length check/.test(msg)) {
      why = GZIP_ISIZE;
    } else if (/incorrect header check/.test(msg)) {
      why = GZIP_NOT_A_MEMBER;
    } else {
      why = `the gzip stream is corrupt (${msg}); ${AGAIN}`;
    }
  } else {
    const detail = msg.replace(/^Zstd decompress error:\s*/i, "");
    why = /checksum/i.test(detail)
      ? `the zstd content checksum does not match the data; ${AGAIN}`
      : `the zstd stream is corrupt (${detail}); ${AGAIN}`;
  }
  return new InvalidArchive(why, undefined, opts);
}
