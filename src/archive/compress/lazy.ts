/**
 * The decompression entry points as `mod.ts` exports them, each loading its
 * implementation on first use.
 *
 * Why: `decompress.ts` and `tar_source.ts` bring the ISA-L gunzip binding
 * and the zstd frame scanner (~45 KB of source, ~1.8 ms of every process's
 * start on the 2-core VM, README "Start-up") that a tool importing `mod.ts`
 * to apply or pack a plain tar never runs. Three of them are async anyway;
 * `decompressStream` returns a stream at once and loads its decoder when the
 * stream is first read. `detectCompression`, `compressor` and
 * `writeCompressed` stay static (small, or sharing the modules `packDir`
 * loads). The full documentation stays with each implementation.
 *
 * @module
 */

import type { TarSource } from "../types.ts";
import type { Compression, DetectedCompression } from "./detect.ts";
import type { Decompressed, DecompressOptions } from "./decompress.ts";
import type { DecompressedSource } from "./tar_source.ts";
import { loadModule } from "../../_load_module.ts";

const decompressImpl = () =>
  loadModule<typeof import("./decompress.ts")>(
    new URL("./decompress.ts", import.meta.url),
  );
const tarSourceImpl = () =>
  loadModule<typeof import("./tar_source.ts")>(
    new URL("./tar_source.ts", import.meta.url),
  );

/**
 * Loads an implementation for work on `input`; when the load fails, cancels
 * a stream input first, as the implementation does on its own errors (an
 * HTTP body must not be left open).
 */
async function loadFor<T>(
  load: () => Promise<T>,
  input: TarSource,
): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (input instanceof ReadableStream) await input.cancel(e).catch(() => {});
    throw e;
  }
}

/**
 * Detects gzip or zstd by magic bytes and returns the uncompressed stream
 * (see `src/archive/compress/decompress.ts`).
 *
 * @param input A tar, possibly gzip- or zstd-compressed.
 * @param options The input's name, for error messages.
 * @returns The compression found and the uncompressed bytes.
 * @throws {InvalidArchive} for xz or bzip2 input; through the stream, for
 *   corrupt, truncated or trailing data.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decompress } from "./lazy.ts";
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
  return (await loadFor(decompressImpl, input)).decompress(input, options);
}

/**
 * Decompresses `input`, known to be in `format` (see
 * `src/archive/compress/decompress.ts`: checksums, truncation and trailing
 * data are errors). The decoder loads when the stream is first read, and
 * only then takes `input`'s reader and starts decoding (the eager one locks
 * `input` at the call and decodes ahead); cancelling the stream cancels
 * `input`, and so does a failure to load the decoder.
 *
 * @param input Compressed bytes.
 * @param format "gzip" or "zstd".
 * @param options The input's name, for error messages.
 * @returns The uncompressed bytes.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decompressStream } from "./lazy.ts";
 * const gz = new Blob(["hi"]).stream().pipeThrough(new CompressionStream("gzip"));
 * assert.equal(await new Response(decompressStream(gz, "gzip")).text(), "hi");
 * ```
 */
export function decompressStream(
  input: ReadableStream<Uint8Array>,
  format: Compression,
  options: DecompressOptions = {},
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (!reader) {
        const impl = await loadFor(decompressImpl, input);
        // A cancel while the module loaded already cancelled `input`.
        if (cancelled) return;
        reader = impl.decompressStream(input, format, options).getReader();
      }
      const r = await reader.read();
      if (cancelled) return;
      if (r.done) c.close();
      else c.enqueue(r.value);
    },
    async cancel(reason) {
      cancelled = true;
      await (reader ? reader.cancel(reason) : input.cancel(reason));
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads the first bytes of any {@link TarSource} and says whether it is
 * gzip or zstd (see `src/archive/compress/tar_source.ts`).
 *
 * @param input A tar, possibly compressed.
 * @param options The input's name, for error messages.
 * @returns The compression (`null` for none) and the input to read instead.
 * @throws {InvalidArchive} for xz or bzip2 input.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peekCompression } from "./lazy.ts";
 * const zst = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
 * assert.equal((await peekCompression(zst)).compression, "zstd");
 * ```
 */
export async function peekCompression(
  input: TarSource,
  options: DecompressOptions = {},
): Promise<{ compression: DetectedCompression; tar: TarSource }> {
  return (await loadFor(tarSourceImpl, input)).peekCompression(input, options);
}

/**
 * Detects gzip/zstd compression of any {@link TarSource} and returns the
 * uncompressed tar (see `src/archive/compress/tar_source.ts`).
 *
 * @param input A tar, possibly gzip- or zstd-compressed.
 * @param options The input's name, for error messages.
 * @returns The compression found, the tar, and `finish`, to call once the tar was read.
 * @throws {InvalidArchive} for xz or bzip2 input; through the tar, for corrupt
 *   or truncated data; from `finish`, for problems at the end of the input.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decompressTarSource } from "./lazy.ts";
 * const { compression, tar, finish } = await decompressTarSource(
 *   new TextEncoder().encode("plain"),
 * );
 * assert.equal(compression, null);
 * assert.deepEqual(tar, new TextEncoder().encode("plain"));
 * await finish();
 * ```
 */
export async function decompressTarSource(
  input: TarSource,
  options: DecompressOptions = {},
): Promise<DecompressedSource> {
  return (await loadFor(tarSourceImpl, input)).decompressTarSource(
    input,
    options,
  );
}
