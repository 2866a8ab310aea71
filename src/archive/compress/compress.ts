/**
 * Compression of layer tars: gzip through ISA-L where it is installed
 * (`_gzip_isal.ts`), else the web `CompressionStream`, zstd
 * through `node:zlib`'s `createZstdCompress` (Deno 2.9.6 ships it; output
 * checked against Debian's `zstd` 1.5 both ways), so no dependency is needed.
 *
 * @module
 */

import { nodeZlib } from "../../_node.ts";
import type { Transform } from "node:stream";
import { type ByteWriter, writeToFile } from "../write_file.ts";
import type { Compression } from "./detect.ts";
import { isalGzipAvailable, isalGzipStream } from "./_gzip_isal.ts";

/**
 * A gzip or zstd compressor as a web `TransformStream`.
 *
 * @param format "gzip" or "zstd".
 * @returns Write uncompressed bytes to `writable`, read compressed ones from `readable`.
 * @example
 * ```ts
 * import { compressor } from "./compress.ts";
 * import { decompress } from "./decompress.ts";
 * import assert from "node:assert/strict";
 * const z = new Blob(["hi"]).stream().pipeThrough(compressor("zstd"));
 * const { compression, stream } = await decompress(z);
 * assert.equal(compression, "zstd");
 * assert.equal(await new Response(stream).text(), "hi");
 * ```
 */
export function compressor(
  format: Compression,
): TransformStream<Uint8Array, Uint8Array> {
  if (format === "gzip") {
    // ISA-L where it is installed (6-20x faster, see _gzip_isal.ts).
    if (isalGzipAvailable()) return isalGzipStream();
    return new CompressionStream("gzip") as unknown as TransformStream<
      Uint8Array,
      Uint8Array
    >;
  }
  return webTransform(nodeZlib().createZstdCompress());
}

/**
 * A node Transform as a web TransformStream. Not `Duplex.toWeb`: in Deno
 * 2.9.6 its readable side keeps enqueueing after a cancel and throws an
 * uncaught "The stream controller cannot close or enqueue" (a compressed
 * `layerfs diff | head` died of it).
 */
function webTransform(t: Transform): TransformStream<Uint8Array, Uint8Array> {
  let done = false;
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      t.on("data", (chunk: Uint8Array) => {
        if (done) return;
        c.enqueue(chunk);
        if ((c.desiredSize ?? 0) <= 0) t.pause();
      });
      t.on("end", () => {
        if (!done) c.close();
        done = true;
      });
      t.on("error", (e) => {
        if (!done) c.error(e);
        done = true;
      });
    },
    pull() {
      t.resume();
    },
    cancel() {
      done = true;
      t.destroy();
    },
  }, { highWaterMark: 4 });
  const wait = (event: "drain" | "finish") =>
    new Promise<void>((resolve, reject) => {
      const ok = () => {
        t.off("error", fail);
        t.off("close", ok);
        resolve();
      };
      const fail = (e: unknown) => {
        t.off(event, ok);
        t.off("close", ok);
        reject(e);
      };
      t.once(event, ok);
      t.once("close", ok);
      t.once("error", fail);
    });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (t.destroyed) throw new Error("the compressor was closed");
      if (!t.write(chunk)) await wait("drain");
    },
    async close() {
      const finished = wait("finish");
      t.end();
      await finished;
    },
    abort(reason) {
      done = true;
      t.destroy(reason instanceof Error ? reason : undefined);
    },
  });
  return { readable, writable } as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * Compresses `tar` into `sink` and returns the compressed bytes written.
 *
 * It reads `tar` itself instead of `pipeThrough`, for one reason: on any
 * failure (a full disk, a closed pipe) `tar` is cancelled and that cancel
 * has finished before this rejects. A `Store.diff` stream gives back the
 * views it mounted in its cancel; with `pipeThrough` the cancel runs on its
 * own schedule, and a program that exits right after the error would leave
 * them mounted and counted.
 *
 * @param tar Uncompressed bytes.
 * @param format "gzip" or "zstd".
 * @param sink Where the compressed bytes go (a `Deno.FsFile`, `Deno.stdout`).
 * @param onTarBytes Called with each uncompressed chunk's length (progress).
 * @returns Compressed bytes written.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore, writeCompressed } from "../../../mod.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await store.create("app");
 * using f = await Deno.create(`${root}/app.tar.zst`);
 * await writeCompressed(store.diff("app"), "zstd", f);
 * const head = (await Deno.readFile(`${root}/app.tar.zst`)).subarray(0, 4);
 * assert.deepEqual([...head], [0x28, 0xb5, 0x2f, 0xfd]); // the zstd magic
 * store.close();
 * await Deno.remove(root, { recursive: true });
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
