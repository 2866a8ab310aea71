/**
 * Internal: turns a sync generator of tar entries into a pull-based byte
 * `ReadableStream`. File bodies are read with sync `read(2)` straight into
 * the output buffer (no intermediate copy); small entries share a buffer; a
 * buffer is filled only when the consumer pulls, so memory stays flat
 * whatever the layer's size.
 *
 * The stream is a byte stream (`type: "bytes"`): a consumer that reads with a
 * BYOB reader gets the tar written into its own buffer, so a few reused
 * buffers serve the whole export (see ../write_file.ts for why).
 * A default reader gets freshly allocated {@link OUTPUT_CHUNK_SIZE} chunks.
 *
 * @module
 */

import type { ArchiveProgress } from "../types.ts";
import type { TarHeader } from "../tar/header.ts";
import {
  encodeHeader,
  encodeHeaderInto,
  END_OF_ARCHIVE,
  OUTPUT_CHUNK_SIZE,
} from "../tar/writer.ts";
import { close, read } from "../../sys/fd_linux.ts";

/** One entry to write: its header and, for a file with a body, an open fd the pump reads and closes. */
export interface ExportItem {
  /** The entry's header; `size` bytes are read from `fd` for files. */
  header: TarHeader;
  /** Open fd of the body (files with size > 0), else -1. The pump closes it. */
  fd: number;
}

/**
 * The archive as a state machine that fills caller-given buffers:
 * a header that did not fit, zeros still owed (padding, end of archive), or
 * the rest of a body, then the next entry.
 */
class TarPump {
  readonly #makeItems: () => Generator<ExportItem, void, undefined>;
  readonly #onProgress?: (p: ArchiveProgress) => void;
  #items: Generator<ExportItem, void, undefined> | null = null;
  #pending: Uint8Array | null = null;
  #pendingAt = 0;
  #zeros = 0;
  #bodyFd = -1;
  #remaining = 0;
  #padding = 0;
  #exhausted = false;
  #bytes = 0;
  #entries = 0;

  constructor(
    makeItems: () => Generator<ExportItem, void, undefined>,
    onProgress?: (p: ArchiveProgress) => void,
  ) {
    this.#makeItems = makeItems;
    this.#onProgress = onProgress;
  }

  /** True once every byte, end-of-archive blocks included, was handed out. */
  get done(): boolean {
    return this.#exhausted && this.#zeros === 0 && this.#pending === null;
  }

  /**
   * Writes the next bytes of the archive into `buf` (any content: every byte
   * up to the returned count is written, zeros included). Returns how many
   * bytes were written: `buf.length` unless the archive ended.
   */
  fill(buf: Uint8Array<ArrayBuffer>): number {
    this.#items ??= this.#makeItems();
    const len = buf.length;
    let off = 0;
    while (off < len) {
      if (this.#pending) {
        const p = this.#pending;
        const n = Math.min(p.length - this.#pendingAt, len - off);
        buf.set(p.subarray(this.#pendingAt, this.#pendingAt + n), off);
        off += n;
        this.#pendingAt += n;
        if (this.#pendingAt === p.length) this.#pending = null;
        continue;
      }
      if (this.#zeros > 0) {
        const n = Math.min(this.#zeros, len - off);
        buf.fill(0, off, off + n);
        off += n;
        this.#zeros -= n;
        continue;
      }
      if (this.#bodyFd >= 0) {
        const want = Math.min(this.#remaining, len - off);
        const n = read(this.#bodyFd, buf.subarray(off, off + want), want);
        // A file that shrank while we read it keeps its header's size: the
        // rest is zeros, like GNU tar.
        if (n === 0) buf.fill(0, off, off + want);
        const got = n === 0 ? want : n;
        off += got;
        this.#remaining -= got;
        if (this.#remaining === 0) {
          close(this.#bodyFd);
          this.#bodyFd = -1;
          this.#zeros = this.#padding;
        }
        continue;
      }
      if (this.#exhausted) break;
      const r = this.#items.next();
      if (r.done) {
        this.#exhausted = true;
        this.#zeros = END_OF_ARCHIVE.length;
        continue;
      }
      this.#entries++;
      const h = r.value.header;
      // Straight into the buffer; a header that does not fit in what is
      // left of it (rare) is encoded on its own and carried over.
      const n = encodeHeaderInto(h, buf, off, true);
      if (n >= 0) off += n;
      else {
        this.#pending = encodeHeader(h);
        this.#pendingAt = 0;
      }
      const size = h.type === "file" ? h.size : 0;
      if (r.value.fd >= 0) {
        if (size > 0) {
          this.#bodyFd = r.value.fd;
          this.#remaining = size;
          this.#padding = (512 - (size % 512)) % 512;
        } else close(r.value.fd);
      } else if (size > 0) {
        throw new Error(`internal: file entry ${h.name} has no body fd`);
      }
    }
    this.#bytes += off;
    this.#onProgress?.({ bytes: this.#bytes, entries: this.#entries });
    return off;
  }

  /** Closes the open body fd and runs the generator's `finally` blocks (its directory fds). */
  cleanup(): void {
    if (this.#bodyFd >= 0) close(this.#bodyFd);
    this.#bodyFd = -1;
    try {
      this.#items?.return();
    } catch { /* the generator's own cleanup failed: nothing more to do */ }
  }
}

/**
 * Streams `items` as a tar archive. Errors thrown by the generator or by
 * `read` error the stream; cancelling it closes the open fd and runs the
 * generator's `finally` blocks (which close its directory fds).
 */
export function tarStream(
  makeItems: () => Generator<ExportItem, void, undefined>,
  onProgress?: (p: ArchiveProgress) => void,
): ReadableStream<Uint8Array> {
  const pump = new TarPump(makeItems, onProgress);
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      try {
        const req = c.byobRequest;
        if (req?.view) {
          const v = req.view;
          const n = pump.fill(
            new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
          );
          if (n > 0) req.respond(n);
          if (pump.done) c.close();
          if (n === 0) req.respond(0); // only allowed once closed
          return;
        }
        const buf = new Uint8Array(OUTPUT_CHUNK_SIZE);
        const n = pump.fill(buf);
        if (n > 0) c.enqueue(buf.subarray(0, n));
        if (pump.done) c.close();
      } catch (e) {
        pump.cleanup();
        throw e;
      }
    },
    cancel() {
      pump.cleanup();
    },
  });
}
