/**
 * Compression for the CLI's `apply` and `diff`: detects gzip and zstd input by
 * magic bytes and decompresses it as a stream; compresses `diff` output.
 *
 * gzip uses the web `DecompressionStream`/`CompressionStream`; zstd uses
 * `node:zlib`'s `createZstdDecompress`/`createZstdCompress`, which Deno 2.9.6
 * ships (checked: round trips with Debian's `zstd` 1.5 both ways), so no npm
 * dependency is needed.
 *
 * @module
 */

import { type ByteWriter, writeToFile } from "../archive/write_file.ts";
import { createZstdCompress, createZstdDecompress } from "node:zlib";
import { Duplex } from "node:stream";
import { InvalidArchive } from "../errors.ts";

/** A compression format the CLI reads and writes. */
export type Compression = "gzip" | "zstd";

/** What {@link detectCompression} can report. */
export type DetectedFormat = Compression | "none";

const MAGIC: { format: string; bytes: number[] }[] = [
  { format: "gzip", bytes: [0x1f, 0x8b] },
  { format: "zstd", bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: "xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: "bzip2", bytes: [0x42, 0x5a, 0x68] },
];

/**
 * Names the compression of a stream from its first bytes.
 *
 * Returns "none" for anything that is not gzip or zstd magic (a tar starts
 * with a file name); xz and bzip2 are refused with a message saying how to
 * decompress them, because layer tars in the wild are gzip or zstd (OCI
 * media types `tar+gzip` and `tar+zstd`).
 *
 * @param head The first bytes of the input (at least 6 when the input is that long).
 * @returns "gzip", "zstd" or "none".
 * @throws {InvalidArchive} for xz or bzip2 input.
 * @example
 * ```ts
 * import { detectCompression } from "./compress.ts";
 * console.log(detectCompression(new Uint8Array([0x1f, 0x8b, 8, 0]))); // "gzip"
 * ```
 */
export function detectCompression(head: Uint8Array): DetectedFormat {
  for (const { format, bytes } of MAGIC) {
    if (head.length >= bytes.length && bytes.every((b, i) => head[i] === b)) {
      if (format === "gzip" || format === "zstd") return format;
      throw new InvalidArchive(
        `the input is ${format}-compressed; only gzip and zstd are supported, ` +
          `decompress it first (e.g. "${
            format === "xz" ? "xz" : "bzip2"
          } -dc FILE | layerfs apply ID -")`,
      );
    }
  }
  return "none";
}

/** Reads up to `n` bytes from the front of a stream and returns them with a stream of the rest. */
async function peek(
  stream: ReadableStream<Uint8Array>,
  n: number,
): Promise<{ head: Uint8Array; rest: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < n) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    chunks.push(r.value);
    have += r.value.length;
  }
  const head = new Uint8Array(have);
  let off = 0;
  for (const c of chunks) {
    head.set(c, off);
    off += c.length;
  }
  let first = true;
  const rest = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        if (head.length > 0) {
          controller.enqueue(head);
          return;
        }
      }
      if (done) {
        controller.close();
        return;
      }
      const r = await reader.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { head, rest };
}

/** A web TransformStream over a node:zlib transform. */
function nodeTransform(
  t: ReturnType<typeof createZstdDecompress>,
): TransformStream<Uint8Array, Uint8Array> {
  return Duplex.toWeb(t) as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * Detects gzip/zstd by magic bytes and returns the decompressed stream (or the
 * input unchanged when it is not compressed).
 *
 * @param input A tar, possibly gzip- or zstd-compressed.
 * @returns The format found and the uncompressed byte stream.
 * @throws {InvalidArchive} for xz or bzip2 input.
 * @example
 * ```ts
 * import { maybeDecompress } from "./compress.ts";
 * const gz = new Blob([new TextEncoder().encode("hello")]).stream()
 *   .pipeThrough(new CompressionStream("gzip"));
 * const { format, stream } = await maybeDecompress(gz);
 * console.log(format, await new Response(stream).text()); // gzip hello
 * ```
 */
export async function maybeDecompress(
  input: ReadableStream<Uint8Array>,
): Promise<{ format: DetectedFormat; stream: ReadableStream<Uint8Array> }> {
  const { head, rest } = await peek(input, 6);
  const format = detectCompression(head);
  if (format === "gzip") {
    return {
      format,
      stream: rest.pipeThrough(
        new DecompressionStream("gzip") as unknown as TransformStream<
          Uint8Array,
          Uint8Array
        >,
      ),
    };
  }
  if (format === "zstd") {
    return {
      format,
      stream: rest.pipeThrough(nodeTransform(createZstdDecompress())),
    };
  }
  return { format, stream: rest };
}

/**
 * A gzip or zstd compressor as a web `TransformStream`.
 *
 * @param format "gzip" or "zstd".
 * @returns Write uncompressed bytes to `writable`, read compressed ones from `readable`.
 * @example
 * ```ts
 * import { compressor, maybeDecompress } from "./compress.ts";
 * const z = new Blob(["hi"]).stream().pipeThrough(compressor("gzip"));
 * console.log(await new Response((await maybeDecompress(z)).stream).text()); // hi
 * ```
 */
export function compressor(
  format: Compression,
): TransformStream<Uint8Array, Uint8Array> {
  if (format === "gzip") {
    return new CompressionStream("gzip") as unknown as TransformStream<
      Uint8Array,
      Uint8Array
    >;
  }
  return nodeTransform(createZstdCompress());
}

/**
 * Compresses `tar` into `sink` and returns the compressed bytes written.
 *
 * It reads `tar` itself instead of `pipeThrough`, for one reason: on any
 * failure (a full disk, a closed pipe) `tar` is cancelled and that cancel
 * has finished before this rejects. A `Store.diff` stream gives back the
 * views it mounted in its cancel; with `pipeThrough` the cancel runs on its
 * own schedule, and a CLI that exits right after the error would leave them
 * mounted and counted.
 *
 * @param tar Uncompressed bytes.
 * @param format "gzip" or "zstd".
 * @param sink Where the compressed bytes go.
 * @param onTarBytes Called with each uncompressed chunk's length (progress).
 * @returns Compressed bytes written.
 * @example
 * ```ts ignore
 * import { writeCompressed } from "./compress.ts";
 * using f = await Deno.create("/tmp/app.tar.zst");
 * await writeCompressed(store.diff("app"), "zstd", f);
 * ```
 */
export async function writeCompressed(
  tar: ReadableStream<Uint8Array>,
  format: Compression,
  sink: ByteWriter,
  onTarBytes: (n: number) => void = () => {},
): Promise<number> {
  const z = compressor(format);
  const reader = tar.getReader();
  const feed = async () => {
    const w = z.writable.getWriter();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        onTarBytes(value.length);
        await w.write(value);
      }
      await w.close();
    } catch (e) {
      await reader.cancel(e).catch(() => {});
      await w.abort(e).catch(() => {});
      throw e;
    }
  };
  // Both sides settle before this returns: a failing write errors the
  // compressor, which fails the feed, which cancels `tar`.
  const [fed, wrote] = await Promise.allSettled([
    feed(),
    writeToFile(z.readable, sink),
  ]);
  if (wrote.status === "rejected") throw wrote.reason;
  if (fed.status === "rejected") throw fed.reason;
  return wrote.value;
}
