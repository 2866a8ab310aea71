/**
 * Internal: what happens to one layer blob between its bytes and its
 * staging dir, the same on the main thread and in a worker
 * (`_unpack_worker.ts`): decompress, check the blob's digest and size,
 * hash the uncompressed tar for its DiffID, and extract it from directory
 * fds with its tar-split record (`applyLayerTarRecorded`). Everything it
 * needs is plain data, so it can be posted to a worker; the store's locks
 * and state stay with the caller.
 *
 * The extraction is a parameter of {@link unpackChecked}: it runs on the
 * same thread ({@link unpackLayer}) or in a worker that receives the plain
 * tar (`_unpack_pool.ts`), so decoding and hashing on one thread overlap
 * with extraction on another, under the same checks and errors.
 *
 * @module
 */

import { DigestMismatch, InvalidArchive, InvalidImage } from "../errors.ts";
import { decompress, decompressStream } from "../archive/compress/mod.ts";
import { applyLayerTarRecorded } from "../archive/tarsplit/mod.ts";
import type { StagedLayer } from "../store/_chain.ts";
import { HashedStream } from "./_verify.ts";

/** One layer to unpack, as plain data. */
export interface UnpackJob {
  /** Names the layer in errors (`app:1 layer 2`). */
  subject: string;
  /** Names its blob in errors (a path in an archive, a blob of a repository). */
  label: string;
  /** Expected sha256 hex of the blob, when known. */
  digest?: string;
  /** The input checks its own digest at its end (a registry client's stream; `digest` is then left out). */
  selfVerifying?: boolean;
  /** Expected size of the blob, when known. */
  size?: number;
  /** Its compression when its media type names it; detected from the bytes otherwise. */
  compression?: "none" | "gzip" | "zstd";
  /** The config's DiffID for it (`sha256:<hex>`). */
  diffId: string;
  /**
   * A new file to copy the blob into (keepBlobs): fsynced and closed when
   * every check passed (the caller renames it), removed otherwise.
   */
  keepTmp?: string;
}

/**
 * Extracts a plain layer tar into its staging dir: `tarSha256` gives the
 * caller's sha256 of the tar once it was read to its end (for the
 * tar-split record, so the tar is hashed once).
 */
export type ExtractTar = (
  tar: ReadableStream<Uint8Array>,
  tarSha256: () => string,
) => Promise<void>;

/** Extraction on this thread. */
export function extractHere(staged: StagedLayer): ExtractTar {
  return async (tar, tarSha256) => {
    await applyLayerTarRecorded(staged.dirs, tar, staged.record, {
      tarSha256,
    });
  };
}

/**
 * Unpacks `input` (the blob's bytes) into `staged`, checked: returns the
 * uncompressed tar's length once its blob digest and size and its DiffID
 * match. `check` runs at every chunk in and out of the decompressor and
 * stops the unpack with what it throws (an abort: a few compressed bytes
 * can hold megabytes of tar, so the input alone is not enough).
 *
 * @throws {InvalidImage} a mismatch, or a tar that cannot be applied (its
 *   `InvalidArchive` as the cause); what the input or `check` throws.
 */
export function unpackLayer(
  job: UnpackJob,
  input: ReadableStream<Uint8Array>,
  staged: StagedLayer,
  onBytes: (total: number) => void,
  check: () => void = () => {},
): Promise<number> {
  return unpackChecked(job, input, extractHere(staged), onBytes, check);
}

/**
 * {@link unpackLayer} with the extraction given: `input` is decoded and
 * hashed on this thread, `extract` reads the plain tar (to its end, past
 * the end-of-archive blocks) wherever it runs; the checks and the typed
 * errors are this function's, whichever thread extracted. `check` as in
 * {@link unpackLayer}.
 */
export async function unpackChecked(
  job: UnpackJob,
  input: ReadableStream<Uint8Array>,
  extract: ExtractTar,
  onBytes: (total: number) => void,
  check: () => void = () => {},
): Promise<number> {
  const { subject, diffId } = job;
  let total = 0;
  let packed: HashedStream | undefined;
  let tar: HashedStream | undefined;
  let kept: Deno.FsFile | undefined;
  let keptOk = false;
  try {
    if (job.keepTmp !== undefined) {
      const k = await Deno.open(job.keepTmp, { write: true, createNew: true });
      kept = k;
      input = input.pipeThrough(
        new TransformStream({
          async transform(chunk, c) {
            for (let off = 0; off < chunk.length;) {
              off += await k.write(chunk.subarray(off));
            }
            c.enqueue(chunk);
          },
        }),
      );
    }
    // Hashed only to compare: without a digest (the source checks its
    // own bytes) the blob is counted, not hashed.
    const p = new HashedStream(input, subject, job.size, (n) => {
      total += n;
      onBytes(total);
      check();
    }, job.digest !== undefined);
    packed = p;
    const c = job.compression;
    const stream = c === undefined
      ? (await decompress(p.stream, { name: subject })).stream
      : c === "none"
      ? p.stream
      : decompressStream(p.stream, c, { name: subject });
    // A blob past 4 MiB makes a tar past it too: hashed by Node from its
    // start, nothing kept (src/_sha256.ts).
    const t = new HashedStream(
      stream,
      subject,
      Infinity,
      check,
      true,
      job.size,
    );
    tar = t;
    await extract(t.stream, () => t.digest()); // hashed once
    await t.drain(); // the extractor stops at the end-of-archive blocks
    await p.drain();
    checkBlob(job, p);
    if (`sha256:${t.digest()}` !== diffId) {
      throw new InvalidImage(
        subject,
        `its uncompressed tar has DiffID sha256:${t.digest()}, the config's rootfs.diff_ids says ${diffId}`,
      );
    }
    if (kept) await kept.sync();
    keptOk = true;
    return t.bytes;
  } catch (e) {
    if (!(e instanceof InvalidArchive)) throw e;
    // The tar (or its compression) failed before the blob's end, where its
    // digest is checked: the rest is read (no more than its descriptor's
    // size, which every caller gives) to tell a blob that is not its
    // digest's bytes (a registry or a disk that corrupted it) from a layer
    // tar that is bad as published.
    const checked = packed !== undefined && await checkRest(job, packed, e);
    throw new InvalidImage(
      subject,
      `its layer tar cannot be applied (${(e as Error).message})`,
      checked
        ? "its blob is the bytes its digest names, so the image is bad as published: rebuild it, or ask its publisher"
        : "make or fetch the image again",
      { cause: e },
    );
  } finally {
    await tar?.cancel();
    await packed?.cancel();
    if (kept) {
      kept.close();
      if (!keptOk) await Deno.remove(job.keepTmp!).catch(() => {});
    }
  }
}

/**
 * Throws when the blob read to its end is not its descriptor's size or
 * digest (`cause`: what failed first, when something did).
 */
function checkBlob(job: UnpackJob, p: HashedStream, cause?: unknown): void {
  const options = cause === undefined ? undefined : { cause };
  if (job.size !== undefined && p.bytes !== job.size) {
    throw new InvalidImage(
      job.subject,
      `its blob ${job.label} ended after ${p.bytes} of ${job.size} bytes`,
      undefined,
      options,
    );
  }
  if (job.digest !== undefined && p.digest() !== job.digest) {
    throw new InvalidImage(
      job.subject,
      `its blob has digest sha256:${p.digest()}, the manifest says sha256:${job.digest}`,
      undefined,
      options,
    );
  }
}

/**
 * After the tar failed: reads the rest of the blob and throws what its end
 * shows, with the tar's error as the cause: a digest or size that is not
 * its descriptor's ({@link checkBlob}), a blob longer than its size, or a
 * self-checking source's `DigestMismatch` (a registry client's stream).
 * Returns whether the blob was checked against its digest and found right;
 * false when there was none to check, or when the rest could not be read
 * (a failed download, an abort): the tar's error then stands.
 */
async function checkRest(
  job: UnpackJob,
  p: HashedStream,
  tarError: InvalidArchive,
): Promise<boolean> {
  try {
    await p.drain();
  } catch (e) {
    // A fresh error, not the source's with a cause added: the source's may
    // be another thread's (given back by reference) or the caller's.
    if (e instanceof DigestMismatch) {
      throw new DigestMismatch(e.subject, e.expected, e.actual, {
        cause: tarError,
      });
    }
    // HashedStream's own, made on this thread (a blob longer than its
    // descriptor says): the tar's error is added as its cause.
    if (e instanceof InvalidImage) {
      if (e.cause === undefined) {
        Object.defineProperty(e, "cause", {
          value: tarError,
          writable: true,
          configurable: true,
        });
      }
      throw e;
    }
    return false;
  }
  checkBlob(job, p, tarError);
  return job.digest !== undefined || job.selfVerifying === true;
}
