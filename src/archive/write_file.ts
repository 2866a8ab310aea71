/**
 * `writeToFile`: the fast way to put a tar stream (a layer diff, a packed
 * directory) into a file or onto standard output.
 *
 * @module
 */

/**
 * Where {@link writeToFile} writes: anything with Deno's async `write`
 * (`Deno.FsFile`, `Deno.stdout`, a `Deno.Conn`).
 */
export interface ByteWriter {
  /** Writes some of `p` and resolves to how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Size of each of {@link writeToFile}'s buffers (1 MiB). Packing the bench
 * corpus (800 MB, 48k files) onto a fresh ext4 took, as medians of 5 runs on
 * 2026-12-01 with GNU tar at 1.23 s in the same runs: 1.25 s with 1 MiB
 * buffers, 1.34 s with 256 KiB, 1.61 s with 64 KiB; and 1.75 s with one
 * buffer and sync writes (no overlap).
 */
export const WRITE_BUFFER_SIZE = 1 << 20;

/**
 * How many buffers {@link writeToFile} rotates through: one being filled
 * while the others' bytes are written, so a buffer is never refilled before
 * its write finished.
 */
export const WRITE_BUFFERS = 4;

import { isFreshTarStream, pumpToFd } from "./export/_tar_stream.ts";
import { writableFdOf } from "../sys/fd_linux.ts";

const ignore = () => {};

/**
 * Writes all of `stream` to `file` and returns the bytes written.
 *
 * Why not `stream.pipeTo(file.writable)`: the exporters (`Store.diff`,
 * `layerTar`, `packDir`) do their reads and tar encoding synchronously on
 * the calling thread, so the time goes to that thread's syscalls and to the
 * copy into the output file. `writeToFile` reads a byte stream with a BYOB
 * reader into a few reused {@link WRITE_BUFFER_SIZE} buffers and hands each
 * full one to an async `write`, which Deno runs on another thread: the
 * output copy overlaps with the export of the next buffer, and no fresh
 * memory is touched per chunk. On the bench corpus that is GNU tar's speed
 * (1.25 s against 1.23 s) where `pipeTo` took 2.1-2.9 s. Writes are issued
 * one after another, in order. Other (non-byte) streams are read with a
 * default reader and written the same way, one write ahead.
 *
 * A tar from `packDir` or `layerTar` going to a file (not `Store.diff`'s,
 * which comes through a stream that mounts on its first read) is written on
 * the calling
 * thread without an await; past its first 8192 entries a Web Worker opens,
 * stats and reads files ahead of it (when the process may read this
 * module's source files; else the calling thread does them all) and ends
 * with the call.
 *
 * The file is not closed. On an error (reading or writing) the stream is
 * cancelled, so a diff releases what it mounted, and the error is rethrown.
 *
 * @param stream The bytes to write.
 * @param file Where to write (from its current offset): a `Deno.FsFile`,
 *   `Deno.stdout`, or any {@link ByteWriter}.
 * @param onBytes Called after each completed write with its length (progress).
 * @returns Bytes written.
 *
 * @example Save a layer diff
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore, writeToFile } from "../../mod.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await store.create("app");
 * using f = await Deno.create(`${root}/app.tar`);
 * const written = await writeToFile(store.diff("app"), f);
 * assert.equal(written, (await Deno.stat(`${root}/app.tar`)).size);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @example Pack a directory to standard output (not run: it prints a tar)
 * ```ts ignore
 * import { packDir, writeToFile } from "@layerfs/layerfs";
 * await writeToFile(packDir("./rootfs"), Deno.stdout);
 * ```
 */
export async function writeToFile(
  stream: ReadableStream<Uint8Array>,
  file: ByteWriter,
  onBytes: (n: number) => void = ignore,
): Promise<number> {
  // A tar made by packDir/layerTar going to a file: written straight
  // from the walk on this thread (a helper thread opening and reading files
  // ahead once the walk has a few hundred entries behind it), file bodies
  // by copy_file_range (see TarPump.pumpTo in export/_tar_pump.ts).
  if (file instanceof Deno.FsFile && isFreshTarStream(stream)) {
    const fd = writableFdOf(file);
    const n = fd === null ? null : await pumpToFd(stream, fd);
    if (n !== null) {
      onBytes(n);
      return n;
    }
  }
  let total = 0;
  // Every write chains onto the one before it, so they reach the file in
  // order whatever the writer's own queueing; a failure rejects the rest.
  let tail: Promise<void> = Promise.resolve();
  const queueWrite = (b: Uint8Array): Promise<void> => {
    tail = tail.then(async () => {
      let at = 0;
      while (at < b.length) at += await file.write(b.subarray(at));
      total += b.length;
      onBytes(b.length);
    });
    // Handled here; awaited (and so rethrown) where the buffer is reused.
    tail.catch(ignore);
    return tail;
  };

  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch { /* not a byte stream */ }
  if (!byob) {
    const reader = stream.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        await tail; // one write ahead at most: memory stays bounded
        queueWrite(value);
      }
      await tail;
      return total;
    } catch (e) {
      await reader.cancel(e).catch(ignore);
      await tail.catch(ignore); // no write still running when we return
      throw e;
    }
  }

  const buffers = Array.from(
    { length: WRITE_BUFFERS },
    () => new Uint8Array(WRITE_BUFFER_SIZE),
  );
  const written: (Promise<void> | undefined)[] = [];
  try {
    for (let k = 0;; k = (k + 1) % WRITE_BUFFERS) {
      await written[k]; // buffer k's last bytes are in the file: refill it
      const { value, done } = await byob.read(buffers[k]);
      if (done) break;
      // read() transferred the buffer; it comes back, whole, under value.
      buffers[k] = new Uint8Array(value.buffer);
      written[k] = queueWrite(value);
    }
    await tail;
    return total;
  } catch (e) {
    await byob.cancel(e).catch(ignore);
    await tail.catch(ignore); // no write still running on a buffer we drop
    throw e;
  }
}
