/**
 * Internal: turns a sync generator of tar entries into a pull-based
 * `ReadableStream` of ~1 MiB chunks. File bodies are read with sync `read(2)`
 * straight into the output chunk (no intermediate copy); small entries share
 * a chunk; a chunk is produced only when the consumer pulls, so memory stays
 * flat whatever the layer's size. Fresh chunks are zero-filled, so padding and
 * the end-of-archive blocks cost nothing but an offset bump.
 *
 * @module
 */

import type { ArchiveProgress } from "../layer.ts";
import type { TarHeader } from "../tar/header.ts";
import {
  encodeHeader,
  encodeHeaderInto,
  END_OF_ARCHIVE,
} from "../tar/writer.ts";
import { close, read } from "../../sys/fd_linux.ts";

/** One entry to write: its header and, for a file with a body, an open fd the pump reads and closes. */
export interface ExportItem {
  /** The entry's header; `size` bytes are read from `fd` for files. */
  header: TarHeader;
  /** Open fd of the body (files with size > 0), else -1. The pump closes it. */
  fd: number;
}

const CHUNK = 1 << 20;

/**
 * Streams `items` as a tar archive. Errors thrown by the generator or by
 * `read` error the stream; cancelling it closes the open fd and runs the
 * generator's `finally` blocks (which close its directory fds).
 */
export function tarStream(
  makeItems: () => Generator<ExportItem, void, undefined>,
  onProgress?: (p: ArchiveProgress) => void,
): ReadableStream<Uint8Array> {
  let items: Generator<ExportItem, void, undefined> | null = null;
  let chunk = new Uint8Array(CHUNK);
  let off = 0;
  let bodyFd = -1;
  let remaining = 0;
  let padding = 0;
  let bytes = 0;
  let entries = 0;
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  let emitted = false;

  const emit = () => {
    ctl.enqueue(off === CHUNK ? chunk : chunk.subarray(0, off));
    bytes += off;
    onProgress?.({ bytes, entries });
    chunk = new Uint8Array(CHUNK);
    off = 0;
    emitted = true;
  };
  const put = (b: Uint8Array) => {
    let at = 0;
    while (at < b.length) {
      if (off === CHUNK) emit();
      const n = Math.min(b.length - at, CHUNK - off);
      chunk.set(n === b.length ? b : b.subarray(at, at + n), off);
      off += n;
      at += n;
    }
  };
  const skip = (n: number) => {
    while (n > 0) {
      if (off === CHUNK) emit();
      const k = Math.min(n, CHUNK - off);
      off += k;
      n -= k;
    }
  };
  const cleanup = () => {
    if (bodyFd >= 0) close(bodyFd);
    bodyFd = -1;
    try {
      items?.return();
    } catch { /* the generator's own cleanup failed: nothing more to do */ }
  };

  return new ReadableStream<Uint8Array>({
    start(c) {
      ctl = c;
    },
    pull() {
      emitted = false;
      try {
        items ??= makeItems();
        for (;;) {
          if (bodyFd >= 0) {
            while (remaining > 0) {
              if (off === CHUNK) {
                emit();
                return;
              }
              const want = Math.min(remaining, CHUNK - off);
              const n = read(bodyFd, chunk.subarray(off, off + want), want);
              // A file that shrank while we read it keeps its header's size:
              // the rest stays zero (the chunk is zero-filled), like GNU tar.
              const got = n === 0 ? want : n;
              off += got;
              remaining -= got;
            }
            close(bodyFd);
            bodyFd = -1;
            skip(padding);
          }
          if (emitted) return;
          const r = items.next();
          if (r.done) {
            skip(END_OF_ARCHIVE.length);
            emit();
            ctl.close();
            return;
          }
          entries++;
          const h = r.value.header;
          // Straight into the chunk; a header that straddles the chunk's end
          // (rare) is encoded on its own and split by put().
          const n = encodeHeaderInto(h, chunk, off);
          if (n >= 0) off += n;
          else put(encodeHeader(h));
          const size = h.type === "file" ? h.size : 0;
          if (r.value.fd >= 0) {
            if (size > 0) {
              bodyFd = r.value.fd;
              remaining = size;
              padding = (512 - (size % 512)) % 512;
            } else close(r.value.fd);
          } else if (size > 0) {
            throw new Error(`internal: file entry ${h.name} has no body fd`);
          }
        }
      } catch (e) {
        cleanup();
        throw e;
      }
    },
    cancel() {
      cleanup();
    },
  }, { highWaterMark: 1 });
}
