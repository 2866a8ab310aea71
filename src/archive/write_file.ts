/**
 * `writeToFile`: the fast way to put a tar stream (a layer diff, a packed
 * directory) into a file.
 *
 * @module
 */

import { COPY_BUFFER_SIZE } from "./tar/writer.ts";

/**
 * Writes all of `stream` to `file` and returns the bytes written. A byte
 * stream (what `Store.diff`, `layerTar` and `packDir` return) is read with a
 * BYOB reader into one reused {@link COPY_BUFFER_SIZE} buffer and written
 * with sync writes: measured on an 800 MB layer, that runs at GNU tar's
 * speed, where `pipeTo(file.writable)` (a fresh chunk and an async write op
 * per chunk) took about twice as long. Other streams are read with a default
 * reader. The file is not closed; on an error the stream is cancelled (so a
 * diff releases its mounts) and the error is rethrown.
 *
 * @param stream The bytes to write.
 * @param file An open, writable file (written from its current offset).
 * @param onBytes Called after each write with its length (progress).
 * @returns Bytes written.
 *
 * @example Save a layer diff
 * ```ts ignore
 * import { openStore, writeToFile } from "@layerfs/layerfs";
 * const store = await openStore({ root: "/var/lib/layerfs" });
 * using f = await Deno.create("/tmp/app.tar");
 * console.log(await writeToFile(store.diff("app"), f));
 * ```
 */
export async function writeToFile(
  stream: ReadableStream<Uint8Array>,
  file: Deno.FsFile,
  onBytes: (n: number) => void = () => {},
): Promise<number> {
  let total = 0;
  const write = (b: Uint8Array) => {
    let at = 0;
    while (at < b.length) at += file.writeSync(b.subarray(at));
    total += b.length;
    onBytes(b.length);
  };
  let byob: ReadableStreamBYOBReader;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch {
    for await (const chunk of stream) write(chunk);
    return total;
  }
  let buf = new Uint8Array(COPY_BUFFER_SIZE);
  try {
    for (;;) {
      const { value, done } = await byob.read(buf);
      if (done) return total;
      write(value);
      buf = new Uint8Array(value.buffer); // transferred by read(); ours again
    }
  } catch (e) {
    await byob.cancel(e).catch(() => {});
    throw e;
  }
}
