/**
 * Internal: pack's helper thread (see `../_slot_helper.ts`): it does the
 * per-file system calls of a pack (open, statx, xattr probe, read of a
 * small body, close) ahead of the thread writing the tar. Those calls are
 * most of a pack of small files (5 per file, ~8 µs of kernel time each);
 * GNU tar makes them on one thread, and so did we. The writing thread asks
 * for the next regular files of the directory it is in. Whatever the job
 * fails on, or would have to judge (not a regular file any more, an error
 * to report), the writer does again the usual way, with the usual checks
 * and errors.
 *
 * A slot holds the request (directory fd and name) and the answer (raw
 * statx, the fd or the body). The helper opens below the writer's
 * directory fds: the writer takes every request in a directory before it
 * closes that directory's fd, and on a walk cut short (an error, a cancel)
 * closes its fds only after {@link FilePrefetch.close} has stopped the
 * helper. The helper may open a file some entries before the writer would
 * have (a file swapped for a symlink after that is packed as it was), and
 * reads the bodies of later names of a hardlinked file too (not used).
 *
 * @module
 */

import { close } from "../../sys/fd_linux.ts";
import {
  parseStatxAt,
  PEEK,
  peekFileAt,
  type Stat,
  STATX_BYTES,
} from "../../sys/fs_walk_linux.ts";
import { SlotHelper, SLOTS, type Slots } from "../_slot_helper.ts";

/** Bodies up to this size come back in memory; bigger ones as an open fd (copy_file_range). */
export const SLOT_BODY = 60 * 1024;
/** A name (NAME_MAX is 255 bytes) and its NUL. */
const NAME_BYTES = 256;
/** Bytes of a slot: name, statx, body. */
const BYTES = NAME_BYTES + STATX_BYTES + SLOT_BODY;

/** Words of a slot. */
const W = {
  /** The directory fd the name is below. */
  DIR_FD: 0,
  /** {@link PEEK} value or the fd left open. */
  RESULT: 1,
  /** 1 when the file has xattrs (to read from its open fd). */
  XATTRS: 2,
  COUNT: 3,
} as const;

/** The slot shape both threads lay the buffer out with. */
export const PREFETCH_SHAPE = { words: W.COUNT, bytes: BYTES };

/** Slot `i`'s request bytes (the name), answer (statx) and body. */
function views(s: Slots, i: number) {
  const o = i * BYTES;
  return {
    name: s.bytes.subarray(o, o + NAME_BYTES),
    statx: s.bytes.subarray(o + NAME_BYTES, o + NAME_BYTES + STATX_BYTES),
    body: s.bytes.subarray(o + NAME_BYTES + STATX_BYTES, o + BYTES),
  };
}

/** The job of a slot, on either thread: `peekFileAt` of its request. */
export function peekSlot(s: Slots, i: number): void {
  const w = i * W.COUNT;
  const v = views(s, i);
  let r: number = PEEK.REDO;
  try {
    r = peekFileAt(
      s.words[w + W.DIR_FD],
      v.name,
      v.statx,
      v.body,
      s.words.subarray(w + W.XATTRS, w + W.XATTRS + 1),
    );
  } catch { /* the writer does it again and reports what fails */ }
  s.words[w + W.RESULT] = r;
}

/** A file the helper did: its stat and either an fd (the caller's to close) or its body. */
export interface Prefetched {
  /** statx of the opened file (a regular file). */
  stat: Stat;
  /** The open file (xattrs to read, or a body of {@link SLOT_BODY} bytes or more), else -1. */
  fd: number;
  /** True when the file has xattrs (read them from `fd`). */
  hasXattrs: boolean;
  /** The body, when `fd` is -1: valid until the slot is freed. */
  body: Uint8Array<SharedArrayBuffer> | null;
}

const WORKER_URL = new URL("./_file_prefetch_worker.ts", import.meta.url)
  .href;

/** The writer's side: see the module doc. */
export class FilePrefetch {
  readonly #h: SlotHelper;
  readonly #statxView: DataView;

  private constructor() {
    this.#h = new SlotHelper(WORKER_URL, PREFETCH_SHAPE, peekSlot);
    const b = this.#h.slots.bytes;
    this.#statxView = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Starts the helper (in the background: {@link ready} tells when it runs). */
  static start(): FilePrefetch {
    return new FilePrefetch();
  }

  /** The helper runs and takes requests. */
  get ready(): boolean {
    return this.#h.ready;
  }

  /** Answers taken that the helper thread made. */
  get helped(): number {
    return this.#h.helped;
  }

  /** Slots free for {@link request}. */
  get free(): number {
    return this.#h.free;
  }

  /**
   * Asks for the file `name` (NUL-terminated, from getdents) below `dirFd`;
   * returns its slot, or -1 when no slot is free or the name is too long.
   * Call {@link flush} after a batch.
   */
  request(dirFd: number, name: Uint8Array): number {
    if (name.length > NAME_BYTES) return -1;
    const h = this.#h;
    const i = h.claimSlot();
    if (i < 0) return -1;
    h.slots.words[i * W.COUNT + W.DIR_FD] = dirFd;
    h.slots.bytes.set(name, i * BYTES);
    h.request(i);
    return i;
  }

  /** Tells the helper about the requests made since the last flush. */
  flush(): void {
    this.#h.flush();
  }

  /**
   * The answer for slot `i` (the helper's, or done here now); null when
   * the caller must do the file itself the usual way: then the slot is
   * already free again.
   */
  take(i: number): Prefetched | null {
    const h = this.#h;
    h.take(i);
    const r = h.slots.words[i * W.COUNT + W.RESULT];
    if (r === PEEK.REDO) {
      h.release(i);
      return null;
    }
    const stat = parseStatxAt(this.#statxView, i * BYTES + NAME_BYTES);
    const bodyAt = i * BYTES + NAME_BYTES + STATX_BYTES;
    return {
      stat,
      fd: r >= 0 ? r : -1,
      hasXattrs: h.slots.words[i * W.COUNT + W.XATTRS] === 1,
      body: r === PEEK.READ
        ? h.slots.bytes.subarray(bodyAt, bodyAt + stat.size)
        : null,
    };
  }

  /** True once the helper has answered slot `i` (for tests: {@link take} would not work or wait). */
  answered(i: number): boolean {
    return this.#h.answered(i);
  }

  /** Frees slot `i` (its answer's fd, if any, is the caller's). */
  release(i: number): void {
    this.#h.release(i);
  }

  /**
   * Stops the helper and waits until it has left its loop, then closes the
   * fds of answers nobody took. Only then may the caller close the
   * directories it asked in. Idempotent.
   */
  close(): void {
    const words = this.#h.slots.words;
    this.#h.close((i, answered) => {
      const r = words[i * W.COUNT + W.RESULT];
      if (answered && r >= 0) close(r);
    });
  }
}

/** Slots of a prefetch (for its tests). */
export { SLOTS };
