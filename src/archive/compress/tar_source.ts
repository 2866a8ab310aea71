/**
 * Transparent decompression for every input `applyDiff` accepts (a stream,
 * bytes, an open file): the compression is found by magic bytes and an
 * uncompressed input is handed on as it is, keeping the tar reader's fast
 * paths for bytes and regular files.
 *
 * @module
 */

import type { TarSource } from "../types.ts";
import {
  detectCompression,
  type DetectedCompression,
  MAGIC_LENGTH,
} from "./detect.ts";
import { type DecompressOptions, decompressStream } from "./decompress.ts";
import { peek } from "./_peek.ts";

/** What {@link decompressTarSource} gives. */
export interface DecompressedSource {
  /** The compression found, or `null`. */
  compression: DetectedCompression;
  /** The uncompressed tar (the input itself when it is not compressed). */
  tar: TarSource;
  /**
   * Reads what the tar reader left of a compressed input (after the tar's
   * end-of-archive blocks) to its end, so the checks at the end of the
   * compressed stream (checksums, truncation, trailing data) run. Call it
   * after the tar was read successfully; a no-op for uncompressed input.
   */
  finish(): Promise<void>;
}

const READ = 1 << 20;

/** `file` from its current position as a stream of fresh chunks; the file stays open. */
function fileStream(file: Deno.FsFile): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const buf = new Uint8Array(READ);
      const n = await file.read(buf);
      if (n === null) c.close();
      else c.enqueue(buf.subarray(0, n));
    },
  }, { highWaterMark: 0 });
}

/** The first bytes of a seekable file, leaving its position where it was; `null` when it cannot seek. */
async function fileHead(file: Deno.FsFile): Promise<Uint8Array | null> {
  let pos: number;
  try {
    if (!(await file.stat()).isFile) return null;
    pos = await file.seek(0, Deno.SeekMode.Current);
  } catch {
    return null;
  }
  const head = new Uint8Array(MAGIC_LENGTH);
  let have = 0;
  while (have < head.length) {
    const n = await file.read(head.subarray(have));
    if (n === null) break;
    have += n;
  }
  await file.seek(pos, Deno.SeekMode.Start);
  return head.subarray(0, have);
}

/**
 * Names the compression of any {@link TarSource} without consuming it:
 * returns the compression found and an input with the same bytes (the same
 * bytes or file, rewound; a stream that gives the peeked bytes again).
 *
 * @param input A tar, possibly gzip- or zstd-compressed.
 * @param options See {@link DecompressOptions} (`name` for the error message).
 * @returns The compression (`null` for none) and the input to read instead.
 * @throws {InvalidArchive} for xz or bzip2 input.
 * @example
 * ```ts
 * import { peekCompression } from "./tar_source.ts";
 * import assert from "node:assert/strict";
 * const zst = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
 * assert.equal((await peekCompression(zst)).compression, "zstd");
 * ```
 */
export async function peekCompression(
  input: TarSource,
  options: DecompressOptions = {},
): Promise<{ compression: DetectedCompression; tar: TarSource }> {
  checkTarSource(input);
  if (input instanceof Uint8Array) {
    const head = input.subarray(0, MAGIC_LENGTH);
    return { compression: detectCompression(head, options.name), tar: input };
  }
  if (input instanceof Deno.FsFile) {
    const head = await fileHead(input);
    if (head !== null) {
      return { compression: detectCompression(head, options.name), tar: input };
    }
    input = fileStream(input); // a pipe or device: no going back
  }
  const { head, stream } = await peek(input, MAGIC_LENGTH);
  try {
    return { compression: detectCompression(head, options.name), tar: stream };
  } catch (e) {
    await stream.cancel(e).catch(() => {});
    throw e;
  }
}

/**
 * Refuses what is not a {@link TarSource} (a JavaScript caller's path string,
 * a plain object) with a TypeError that says what is accepted, rather than
 * failing somewhere inside with "getReader is not a function".
 */
function checkTarSource(input: unknown): void {
  if (input instanceof Uint8Array || input instanceof Deno.FsFile) return;
  // Duck-typed: touching the ReadableStream global costs a cold process
  // ~3 ms (Deno sets up its web streams), which a file input never needs.
  const getReader = (input as { getReader?: unknown } | null)?.getReader;
  if (typeof getReader === "function") return;
  const what = typeof input === "string"
    ? `the string ${JSON.stringify(input)} (open a file with Deno.open)`
    : input === null
    ? "null"
    : input instanceof ArrayBuffer
    ? "an ArrayBuffer (wrap it: new Uint8Array(buffer))"
    : Array.isArray(input)
    ? "an array"
    : typeof input;
  throw new TypeError(
    `A layer tar must be a ReadableStream<Uint8Array>, a Uint8Array or a Deno.FsFile, not ${what}`,
  );
}

/**
 * Detects gzip/zstd compression of any {@link TarSource} and returns the
 * uncompressed tar. See {@link decompress} for what is checked.
 *
 * @param input A tar, possibly gzip- or zstd-compressed.
 * @param options See {@link DecompressOptions}.
 * @returns The compression found, the tar, and `finish`, to call once the tar was read.
 * @throws {InvalidArchive} for xz or bzip2 input; through the tar, for corrupt
 *   or truncated data; from `finish`, for problems at the end of the input.
 * @example
 * ```ts
 * import { decompressTarSource } from "./tar_source.ts";
 * import assert from "node:assert/strict";
 * const gz = new Uint8Array(
 *   await new Response(
 *     new Blob(["a tar"]).stream().pipeThrough(new CompressionStream("gzip")),
 *   ).arrayBuffer(),
 * );
 * const { compression, tar, finish } = await decompressTarSource(gz);
 * assert.equal(compression, "gzip");
 * // Read the tar without cancelling it (as the tar reader does), then finish.
 * const chunks = (tar as ReadableStream<Uint8Array>).values({ preventCancel: true });
 * assert.equal(await new Response(ReadableStream.from(chunks)).text(), "a tar");
 * await finish();
 * ```
 */
export async function decompressTarSource(
  input: TarSource,
  options: DecompressOptions = {},
): Promise<DecompressedSource> {
  const { compression, tar } = await peekCompression(input, options);
  if (compression === null) {
    return { compression, tar, finish: () => Promise.resolve() };
  }
  const bytes = tar instanceof Uint8Array
    ? ReadableStream.from([tar])
    : tar instanceof Deno.FsFile
    ? fileStream(tar)
    : tar;
  return compressed(
    compression,
    decompressStream(bytes, compression, options),
  );
}

function compressed(
  compression: DetectedCompression,
  tar: ReadableStream<Uint8Array>,
): DecompressedSource {
  return {
    compression,
    tar,
    async finish() {
      // The tar reader released the stream at the end of the archive.
      const reader = tar.getReader();
      try {
        while (!(await reader.read()).done) { /* padding after the tar */ }
      } finally {
        reader.releaseLock();
      }
    },
  };
}
