/**
 * `applyLayerTarRecorded`: {@link applyLayerTar} that also keeps a tar-split
 * record of the tar, so the layer can later be exported as exactly the tar
 * it was applied from ({@link rebuildLayerTar}). One pass: the uncompressed
 * stream is teed chunk by chunk into the recorder (which parses only block
 * boundaries) on its way to the extractor; after the extractor stops at the
 * end-of-archive blocks the rest of the stream is read into the record too.
 * The record is written to a file as it goes (memory stays flat).
 *
 * @module
 */

import { close } from "../../sys/fd_linux.ts";
import { decompressTarSource } from "../compress/tar_source.ts";
import { applyCodecAt, openTarget } from "../extract/apply_tar.ts";
import { prefetchFile } from "../extract/_prefetch.ts";
import { chunkSource } from "../tar/_source.ts";
import type { ApplyLayerOptions, LayerDirs, TarSource } from "../types.ts";
import { layerCodec } from "../whiteout/mod.ts";
import { type RecordSummary, TarSplitRecorder } from "./_recorder.ts";

/** Options of {@link applyLayerTarRecorded}. */
export interface RecordedApplyOptions extends ApplyLayerOptions {
  /**
   * The sha256 (hex) of `tar` read to its end, from a hash the caller keeps
   * anyway (an image load hashes the uncompressed tar for its DiffID):
   * called once the input is drained, and the record ends with it instead
   * of a second sha256 of the same bytes (~0.4 s of CPU on a 200 MB layer
   * here). Ignored when `tar` turns out to be compressed: the caller's hash
   * is then of other bytes than the recorded ones.
   * @default {undefined (the recorder hashes the tar itself)}
   */
  tarSha256?: () => string;
}

/** What {@link applyLayerTarRecorded} returns. */
export interface RecordedApply {
  /** Bytes of regular files written (what `applyLayerTar` returns). */
  size: number;
  /** Length and sha256 of the uncompressed tar (its DiffID). */
  tar: RecordSummary;
}

/**
 * The input's bytes as chunks, each shown to `feed` before it is handed on:
 * a file read ahead on another thread ({@link prefetchFile}), anything else
 * through the tar reader's own sources (1 MiB chunks; a stream read ahead,
 * a byte stream into reused buffers). A chunk is valid until the next one
 * is asked for.
 */
function teed(
  input: TarSource,
  feed: (c: Uint8Array) => void,
): AsyncIterableIterator<Uint8Array> {
  let next: () => Promise<Uint8Array | null>;
  let release: () => void;
  if (input instanceof Deno.FsFile) {
    const inner = prefetchFile(input)[Symbol.asyncIterator]();
    next = async () => {
      const x = await inner.next();
      return x.done ? null : x.value;
    };
    release = () => void inner.return?.();
  } else {
    const src = chunkSource(input);
    next = () => src.read();
    release = () => src.close();
  }
  let done = false;
  const it: AsyncIterableIterator<Uint8Array> = {
    async next() {
      if (done) return { done: true, value: undefined };
      const c = await next();
      if (c === null) {
        done = true;
        release();
        return { done: true, value: undefined };
      }
      feed(c);
      return { done: false, value: c };
    },
    // The extractor failed: stop reading (the caller cancels the input).
    return() {
      if (!done) {
        done = true;
        release();
      }
      return Promise.resolve({ done: true, value: undefined });
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

/**
 * Bytes left to read of `input` when they are known (an array, a regular
 * file): only a hint for how to sum them, so a file that cannot say is
 * simply not known.
 */
function knownSize(input: TarSource): number | undefined {
  if (input instanceof Uint8Array) return input.length;
  if (!(input instanceof Deno.FsFile)) return undefined;
  try {
    const st = input.statSync();
    if (!st.isFile) return undefined;
    return st.size - input.seekSync(0, Deno.SeekMode.Current);
  } catch {
    return undefined;
  }
}

/**
 * Extracts an OCI layer tar into `layer.dir` like `applyLayerTar` (gzip and
 * zstd are detected and decompressed) and writes its tar-split record to
 * `recordPath` (created; the caller removes it on error). The whole input
 * is read, also what follows the end-of-archive blocks.
 *
 * @param layer The staging dir and whiteout codec.
 * @param tar The layer tar.
 * @param recordPath Where the record goes (a new file).
 * @param options Progress, and the caller's sha256 of the tar if it has one.
 * @returns The applied size and the uncompressed tar's length and sha256.
 * @throws {InvalidArchive} as `applyLayerTar`.
 *
 * @example
 * ```ts ignore
 * const { tar } = await applyLayerTarRecorded(
 *   { dir: "/s/staging/x/diff", format: "overlay", parentDirs: [] },
 *   (await Deno.open("layer.tar")).readable,
 *   "/s/staging/x/tarsplit",
 * );
 * console.log(tar.sha256);
 * ```
 */
export async function applyLayerTarRecorded(
  layer: LayerDirs,
  tar: TarSource,
  recordPath: string,
  options?: RecordedApplyOptions,
): Promise<RecordedApply> {
  const fd = openTarget(layer.dir);
  try {
    using file = await Deno.open(recordPath, { write: true, createNew: true });
    const source = await decompressTarSource(tar);
    const given = source.compression === null ? options?.tarSha256 : undefined;
    const rec = new TarSplitRecorder(file, {
      hash: given === undefined,
      expectedSize: source.compression === null
        ? knownSize(source.tar)
        : undefined,
    });
    const input = teed(source.tar, (c) => rec.feed(c));
    const size = await applyCodecAt(fd, input, layerCodec(layer), {
      onProgress: options?.onProgress,
    });
    // The extractor stops at the end-of-archive blocks: the rest (the
    // second block, padding, trailing data) belongs to the tar as well.
    while (!(await input.next()).done) { /* recorded */ }
    await source.finish();
    const summary = await rec.finish(given?.());
    await file.sync();
    return { size, tar: summary };
  } finally {
    close(fd);
  }
}
