/**
 * Internal: the byte stream an exporter returns (`packDir`, `layerTar`,
 * which `Store.diff` wraps), over a pump that fills caller-given buffers, and the
 * way `writeToFile` takes such a stream's pump to write a file without
 * reading the stream.
 *
 * Apart from `_tar_pump.ts` (the pump) so that a process that imports
 * mod.ts loads only this at start-up: `packDir` makes its pump, and loads
 * the walk and the pump's module, on the first read.
 *
 * @module
 */

import { OUTPUT_CHUNK_SIZE } from "../tar/writer.ts";

/** What fills a tar stream: `TarPump` (./_tar_pump.ts). */
export interface Pump {
  /**
   * Writes the next bytes of the archive into `buf`; returns how many
   * (`buf.length` unless the archive ended).
   */
  fill(buf: Uint8Array<ArrayBuffer>): number;
  /** True once every byte was handed out. */
  readonly done: boolean;
  /** Writes the whole archive to the file `fd`; returns the bytes written. */
  pumpTo(fd: number): number;
  /** Closes what the pump holds open (the stream was cancelled or failed). */
  cleanup(): void;
}

/** The pump of each stream no one has read yet, as its maker (see {@link pumpToFd}). */
const unread = new WeakMap<ReadableStream<Uint8Array>, () => Promise<Pump>>();

/**
 * A byte stream (`type: "bytes"`) of the archive `makePump()` gives, which
 * is called on the first read (or by {@link pumpToFd}), once. An error it
 * or the pump throws errors the stream; cancelling cleans the pump up.
 */
export function pumpStream(
  makePump: () => Pump | Promise<Pump>,
): ReadableStream<Uint8Array> {
  let pump: Pump | undefined;
  let making: Promise<Pump> | undefined;
  let cancelled = false;
  const made = (): Promise<Pump> =>
    making ??= (async () => {
      const p = await makePump();
      if (cancelled) p.cleanup();
      return pump = p;
    })();
  const fill = (c: ReadableByteStreamController, p: Pump): void => {
    try {
      const req = c.byobRequest;
      if (req?.view) {
        const v = req.view;
        const n = p.fill(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        if (n > 0) req.respond(n);
        if (p.done) c.close();
        if (n === 0) req.respond(0); // only allowed once closed
        return;
      }
      const buf = new Uint8Array(OUTPUT_CHUNK_SIZE);
      const n = p.fill(buf);
      if (n > 0) c.enqueue(buf.subarray(0, n));
      if (p.done) c.close();
    } catch (e) {
      p.cleanup();
      throw e;
    }
  };
  const stream = new ReadableStream({
    type: "bytes",
    // Synchronous once the pump exists: one promise for the first read only.
    pull(c) {
      unread.delete(stream); // read now: pumpToFd may no longer take it
      if (pump !== undefined) return fill(c, pump);
      return made().then((p) => {
        if (!cancelled) fill(c, p); // cancelled while loading: nothing to walk
      });
    },
    cancel() {
      cancelled = true;
      unread.delete(stream); // nor write a cancelled one (writeToFile)
      pump?.cleanup();
    },
  });
  unread.set(stream, made);
  return stream;
}

/** True when `stream` was made by {@link pumpStream} and nothing read it yet. */
export function isFreshTarStream(stream: ReadableStream<Uint8Array>): boolean {
  return unread.has(stream) && !stream.locked;
}

/**
 * Writes `stream`, made by {@link pumpStream} and not read yet, to the file
 * `outFd` with its pump's `pumpTo`; null for any other stream. The stream is
 * cancelled after (nothing is left to read from it).
 */
export async function pumpToFd(
  stream: ReadableStream<Uint8Array>,
  outFd: number,
): Promise<number | null> {
  const made = unread.get(stream);
  if (made === undefined || stream.locked) return null;
  unread.delete(stream);
  // Locked meanwhile: no one reads or cancels it while its pump writes.
  const reader = stream.getReader();
  try {
    return (await made()).pumpTo(outFd);
  } finally {
    reader.cancel().catch(() => {});
  }
}
