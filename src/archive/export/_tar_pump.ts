/**
 * Internal: turns a sync generator of tar entries into a pull-based byte
 * `ReadableStream`. File bodies are read with sync `read(2)` straight into
 * the output buffer (no intermediate copy); small entries share a buffer; a
 * buffer is filled only when the consumer pulls, so memory stays flat
 * whatever the layer's size.
 *
 * The stream (./_tar_stream.ts) is a byte stream (`type: "bytes"`): a
 * consumer that reads with a BYOB reader gets the tar written into its own
 * buffer, so a few reused buffers serve the whole export (see
 * ../write_file.ts for why). A default reader gets freshly allocated 1 MiB
 * chunks.
 *
 * @module
 */

import type { ArchiveProgress } from "../types.ts";
import type { TarHeader } from "../tar/header.ts";
import {
  encodeHeader,
  encodeHeaderInto,
  END_OF_ARCHIVE,
} from "../tar/encode.ts";
import { type Pump, pumpStream } from "./_tar_stream.ts";
import { close, copyFileRange, read, writeAll } from "../../sys/fd_linux.ts";
import { StoreError } from "../../errors.ts";

/**
 * Bodies at least this long go from the file to a file output with
 * copy_file_range(2) (see {@link TarPump.pumpTo}); smaller ones are read
 * into the output buffer, where one write(2) carries many of them.
 */
const DIRECT_MIN = 64 * 1024;
/** Buffer of {@link TarPump.pumpTo}: headers and small bodies between two writes. */
const DIRECT_BUFFER = 1 << 20;
/** Where a body's end is probed for bytes past its header's size. */
const PROBE = new Uint8Array(1);

/**
 * Where the pump takes its entries from, one at a time (the export walk): a
 * method call per entry, not a generator resumed per entry.
 */
export interface ItemSource {
  /** The next entry, or null after the last (the source has then closed what it opened). */
  next(): ExportItem | null;
  /** Closes what the source holds open (a walk cut short or failed). */
  close(): void;
  /**
   * Invites the source to read entries ahead on a helper thread: the
   * consumer runs on a thread that blocks anyway ({@link TarPump.pumpTo}).
   */
  readAhead?(): void;
}

/**
 * One entry to write: its header and, for a file with a body, an open fd
 * the pump reads and closes, or the body itself.
 */
export interface ExportItem {
  /** The entry's header; `size` bytes are read from `fd` (or `body`) for files. */
  header: TarHeader;
  /** Open fd of the body (files with size > 0), else -1. The pump closes it. */
  fd: number;
  /**
   * The body, already read (`header.size` bytes), when `fd` is -1: valid
   * until the source's next `next()` call, by which time the pump has
   * copied it.
   */
  body?: Uint8Array;
}

/**
 * The archive as a state machine that fills caller-given buffers:
 * a header that did not fit, zeros still owed (padding, end of archive), or
 * the rest of a body, then the next entry.
 */
export class TarPump implements Pump {
  readonly #makeItems: () => ItemSource;
  readonly #onProgress?: (p: ArchiveProgress) => void;
  #items: ItemSource | null = null;
  #pending: Uint8Array | null = null;
  #pendingAt = 0;
  #zeros = 0;
  #bodyFd = -1;
  /** The current body when it came in memory (ExportItem.body). */
  #bodyMem: Uint8Array | null = null;
  #bodyMemAt = 0;
  #remaining = 0;
  #padding = 0;
  #exhausted = false;
  #bytes = 0;
  #entries = 0;
  /** The current body is read into buffers even in {@link pumpTo} (copy_file_range refused it). */
  #noDirect = false;
  /** copy_file_range works for this output (false after it refused once). */
  #direct = true;
  /** Tar name and header size of the current body (for a file that changed size). */
  #bodyName = "";
  #bodySize = 0;
  /** The last read of the current body asked for a byte past its end and got none. */
  #probed = false;

  constructor(
    makeItems: () => ItemSource,
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
  fill(buf: Uint8Array<ArrayBuffer>, stopAtBigBody = false): number {
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
        // pumpTo copies big bodies itself: hand back what is buffered first.
        if (
          stopAtBigBody && this.#direct && !this.#noDirect &&
          this.#remaining >= DIRECT_MIN
        ) {
          break;
        }
        const want = Math.min(this.#remaining, len - off);
        // The last read asks for one byte more where the buffer has room
        // (padding or the next header overwrites it): a file that grew since
        // its header was made shows there, without a system call more.
        const ask = want === this.#remaining && off + want < len
          ? want + 1
          : want;
        const n = read(this.#bodyFd, buf.subarray(off, off + ask), ask);
        // GNU tar pads a file that shrank with zeros (and exits 1); a layer
        // must not carry bytes its file never had, nor a file cut short.
        if (n === 0) throw this.#changedSize("shrank");
        if (n > want) throw this.#changedSize("grew");
        off += n;
        this.#remaining -= n;
        if (this.#remaining === 0) {
          this.#probed = ask > want;
          this.#endBody();
        }
        continue;
      }
      if (this.#bodyMem !== null) {
        const n = Math.min(this.#remaining, len - off);
        const at = this.#bodyMemAt;
        buf.set(this.#bodyMem.subarray(at, at + n), off);
        off += n;
        this.#bodyMemAt += n;
        this.#remaining -= n;
        if (this.#remaining === 0) {
          this.#bodyMem = null;
          this.#zeros = this.#padding;
        }
        continue;
      }
      if (this.#exhausted) break;
      const item = this.#items.next();
      if (item === null) {
        this.#exhausted = true;
        this.#zeros = END_OF_ARCHIVE.length;
        continue;
      }
      this.#entries++;
      const h = item.header;
      // Straight into the buffer; a header that does not fit in what is
      // left of it (rare) is encoded on its own and carried over.
      const n = encodeHeaderInto(h, buf, off, true);
      if (n >= 0) off += n;
      else {
        this.#pending = encodeHeader(h);
        this.#pendingAt = 0;
      }
      const size = h.type === "file" ? h.size : 0;
      if (item.fd >= 0) {
        if (size > 0) {
          this.#bodyFd = item.fd;
          this.#remaining = size;
          this.#padding = (512 - (size % 512)) % 512;
          this.#bodyName = h.name;
          this.#bodySize = size;
          this.#probed = false;
        } else close(item.fd);
      } else if (size > 0 && item.body !== undefined) {
        this.#bodyMem = item.body;
        this.#bodyMemAt = 0;
        this.#remaining = size;
        this.#padding = (512 - (size % 512)) % 512;
      } else if (size > 0) {
        throw new Error(`internal: file entry ${h.name} has no body fd`);
      }
    }
    this.#bytes += off;
    this.#onProgress?.({ bytes: this.#bytes, entries: this.#entries });
    return off;
  }

  #endBody(): void {
    // Bodies whose last read could not ask past their end (copied by
    // copy_file_range, or ending at the buffer's end) are probed here.
    if (!this.#probed && read(this.#bodyFd, PROBE, 1) > 0) {
      throw this.#changedSize("grew");
    }
    close(this.#bodyFd);
    this.#bodyFd = -1;
    this.#noDirect = false;
    this.#zeros = this.#padding;
  }

  /** The error for a body whose file changed size since its header was made. */
  #changedSize(how: "grew" | "shrank"): StoreError {
    return new StoreError(
      `"${this.#bodyName}" ${how} while it was being exported (its header says ${this.#bodySize} bytes): the tar would not hold the file as it is; stop writers to the tree and retry`,
    );
  }

  /**
   * Writes the whole archive to the file `outFd` (at its offset), on this
   * thread: headers and small bodies gathered in one buffer per write(2), and
   * bodies of {@link DIRECT_MIN} bytes and more copied from their file by
   * copy_file_range(2), in the kernel: no copy through user memory and no
   * handoff to a writer thread per MiB (GNU tar -c: one thread, one copy
   * in and one out; the async path made ~500 context switches on a 200 MB
   * layer). Since this thread blocks anyway, the source may read files
   * ahead on a helper thread ({@link ItemSource.readAhead}: the walk's
   * `_file_prefetch.ts`). Returns the bytes written.
   */
  pumpTo(outFd: number): number {
    this.#items ??= this.#makeItems();
    this.#items.readAhead?.();
    const buf = new Uint8Array(DIRECT_BUFFER);
    let total = 0;
    while (!this.done) {
      const n = this.fill(buf, true);
      if (n > 0) writeAll(outFd, buf.subarray(0, n));
      total += n;
      if (
        this.#bodyFd >= 0 && !this.#noDirect && this.#remaining >= DIRECT_MIN
      ) {
        total += this.#copyBody(outFd);
      }
    }
    return total;
  }

  /** copy_file_range of the current body; what it cannot copy is left to fill(). */
  #copyBody(outFd: number): number {
    const want = this.#remaining;
    const copied = copyFileRange(this.#bodyFd, outFd, want);
    this.#remaining -= copied;
    if (copied < want) {
      // Refused (the same for every later body of this archive: stop
      // asking), or the file shrank (fill() reads the rest and says so).
      this.#noDirect = true;
      this.#direct = false;
    }
    if (this.#remaining === 0) this.#endBody();
    this.#bytes += copied;
    this.#onProgress?.({ bytes: this.#bytes, entries: this.#entries });
    return copied;
  }

  /** Closes the open body fd and runs the generator's `finally` blocks (its directory fds). */
  cleanup(): void {
    if (this.#bodyFd >= 0) close(this.#bodyFd);
    this.#bodyFd = -1;
    this.#bodyMem = null;
    try {
      this.#items?.close();
    } catch { /* the source's own cleanup failed: nothing more to do */ }
  }
}

/**
 * Streams the entries of `makeItems()` as a tar archive (see
 * ./_tar_stream.ts). Errors thrown by the source or by `read` error the
 * stream; failing or cancelling closes the open body fd and the source (its
 * directory fds).
 */
export function tarStream(
  makeItems: () => ItemSource,
  onProgress?: (p: ArchiveProgress) => void,
): ReadableStream<Uint8Array> {
  return pumpStream(() => new TarPump(makeItems, onProgress));
}
