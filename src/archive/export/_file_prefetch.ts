/**
 * Internal: a helper thread that does the per-file system calls of a pack
 * (open, statx, xattr probe, read of a small body, close) ahead of the
 * thread writing the tar. Those calls are most of a pack of small files
 * (5 per file, ~8 µs of kernel time each file); GNU tar makes them on one
 * thread, and so did we. Here the writing thread asks for the next files of
 * the directory it is in, and whichever thread gets to a file first does
 * it: the helper while it keeps up, the writer itself when the helper is
 * behind, busy, still starting (a Worker takes ~15 ms), or gone. Nothing
 * depends on the helper: every file it fails on, or would have to judge
 * (not a regular file any more, an error to report), is done again by the
 * writer the usual way, with the usual checks and errors.
 *
 * All state is in one `SharedArrayBuffer`: a ring of requested slots and,
 * per slot, its state word, the request (directory fd and name) and the
 * answer (raw statx, the fd or the body). File descriptors are the
 * process's, so the helper opens below the writer's directory fds, which
 * the writer keeps open until every request in them is answered (it asks
 * only within the run of files before a directory's next subdirectory) and,
 * on every way out, closes only after {@link FilePrefetch.close} has
 * stopped the helper.
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

/** Slots: files asked for and not yet consumed. */
export const SLOTS = 64;
/** Bodies up to this size come back in memory; bigger ones as an open fd (copy_file_range). */
export const SLOT_BODY = 60 * 1024;
/** A name (NAME_MAX is 255 bytes) and its NUL. */
const NAME_BYTES = 256;

/** Control words. */
export const CTRL = {
  /** {@link HELPER} state. */
  STATE: 0,
  /** Requests written so far (the ring's head). */
  HEAD: 1,
  /** Bumped with every batch of requests and on close: the helper waits on it. */
  WAKE: 2,
  /** Set to 1 by the helper as it leaves its loop. */
  EXITED: 3,
} as const;
const CTRL_WORDS = 16;

/** The helper's life. */
export const HELPER = { STARTING: 0, RUNNING: 1, CLOSED: 2 } as const;

/** A slot's state. */
export const SLOT = {
  FREE: 0,
  /** Asked for: the first thread to move it on does the file. */
  REQUESTED: 1,
  /** The helper is doing it. */
  CLAIMED: 2,
  /** The helper's answer is in the slot. */
  DONE: 3,
  /** The writer takes it over (the helper failed, or the writer got there first). */
  REDO: 4,
  /** The writer owns the answer (its fd, its body) until it frees the slot. */
  TAKEN: 5,
} as const;

/** Typed views of the shared buffer, the same on both threads. */
export interface Layout {
  ctrl: Int32Array<SharedArrayBuffer>;
  ring: Int32Array<SharedArrayBuffer>;
  state: Int32Array<SharedArrayBuffer>;
  dirFd: Int32Array<SharedArrayBuffer>;
  /** {@link PEEK} value or the fd left open. */
  result: Int32Array<SharedArrayBuffer>;
  /** 1 when the file has xattrs (to read from its open fd). */
  xattrs: Int32Array<SharedArrayBuffer>;
  names: Uint8Array<SharedArrayBuffer>;
  statx: Uint8Array<SharedArrayBuffer>;
  bodies: Uint8Array<SharedArrayBuffer>;
}

/** Views of `sab` (made by {@link newLayout}). */
export function layoutOf(sab: SharedArrayBuffer): Layout {
  let at = 0;
  const ints = (n: number) => {
    const v = new Int32Array(sab, at, n);
    at += n * 4;
    return v;
  };
  const bytes = (n: number) => {
    const v = new Uint8Array(sab, at, n);
    at += n;
    return v;
  };
  return {
    ctrl: ints(CTRL_WORDS),
    ring: ints(SLOTS),
    state: ints(SLOTS),
    dirFd: ints(SLOTS),
    result: ints(SLOTS),
    xattrs: ints(SLOTS),
    names: bytes(SLOTS * NAME_BYTES),
    statx: bytes(SLOTS * STATX_BYTES),
    bodies: bytes(SLOTS * SLOT_BODY),
  };
}

function newLayout(): Layout {
  const bytes = 4 * (CTRL_WORDS + 5 * SLOTS) +
    SLOTS * (NAME_BYTES + STATX_BYTES + SLOT_BODY);
  return layoutOf(new SharedArrayBuffer(bytes));
}

/** Per-slot views for `peekFileAt`, made once per thread. */
export interface SlotViews {
  names: Uint8Array<SharedArrayBuffer>[];
  stats: Uint8Array<SharedArrayBuffer>[];
  bodies: Uint8Array<SharedArrayBuffer>[];
  xattrs: Int32Array<SharedArrayBuffer>[];
}

/** The views of every slot of `l`. */
export function slotViews(l: Layout): SlotViews {
  const each = <T>(f: (i: number) => T) =>
    Array.from({ length: SLOTS }, (_, i) => f(i));
  return {
    names: each((i) => slotName(l, i)),
    stats: each((i) => slotStatx(l, i)),
    bodies: each((i) => slotBody(l, i)),
    xattrs: each((i) => l.xattrs.subarray(i, i + 1)),
  };
}

/**
 * Does the file of slot `i`, claimed by the calling thread, and publishes
 * the answer (either thread runs this).
 */
export function peekSlot(l: Layout, v: SlotViews, i: number): void {
  let r: number = PEEK.REDO;
  try {
    r = peekFileAt(
      l.dirFd[i],
      v.names[i],
      v.stats[i],
      v.bodies[i],
      v.xattrs[i],
    );
  } catch { /* the writer does it again and reports what fails */ }
  l.result[i] = r;
  Atomics.store(l.state, i, r === PEEK.REDO ? SLOT.REDO : SLOT.DONE);
  Atomics.notify(l.state, i);
}

/** The name of slot `i` in `l` (NUL-terminated). */
export function slotName(l: Layout, i: number): Uint8Array<SharedArrayBuffer> {
  return l.names.subarray(i * NAME_BYTES, (i + 1) * NAME_BYTES);
}

/** The statx buffer of slot `i`. */
export function slotStatx(l: Layout, i: number): Uint8Array<SharedArrayBuffer> {
  return l.statx.subarray(i * STATX_BYTES, (i + 1) * STATX_BYTES);
}

/** The body buffer of slot `i`. */
export function slotBody(l: Layout, i: number): Uint8Array<SharedArrayBuffer> {
  return l.bodies.subarray(i * SLOT_BODY, (i + 1) * SLOT_BODY);
}

/** A file the helper did: its stat and either an fd (the caller's to close) or its body. */
export interface Prefetched {
  /** statx of the opened file (a regular file). */
  stat: Stat;
  /** The open file (xattrs to read, or a body bigger than {@link SLOT_BODY}), else -1. */
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
  readonly #l: Layout;
  readonly #v: SlotViews;
  readonly #statxView: DataView;
  readonly #free: number[] = [];
  #head = 0;
  /** Slots this thread did itself ({@link #doNewest}). */
  readonly #mine = new Uint8Array(SLOTS);
  #helped = 0;
  #worker: Worker | null = null;
  #running = false;
  #closed = false;

  private constructor() {
    this.#l = newLayout();
    this.#v = slotViews(this.#l);
    this.#statxView = new DataView(
      this.#l.statx.buffer,
      this.#l.statx.byteOffset,
      this.#l.statx.byteLength,
    );
    for (let i = SLOTS - 1; i >= 0; i--) this.#free.push(i);
  }

  /**
   * Starts the helper (in the background: {@link ready} tells when it
   * runs). A helper that cannot start (no Worker, a module that fails to
   * load) leaves a prefetch that is never ready.
   */
  static start(): FilePrefetch {
    const p = new FilePrefetch();
    try {
      const w = new Worker(WORKER_URL, { type: "module" });
      // Handled, or an error in the helper would end the process; the
      // writer needs no word of it (it does every file the helper does not).
      w.onerror = (ev) => ev.preventDefault();
      w.postMessage(p.#l.ctrl.buffer);
      p.#worker = w;
    } catch {
      p.#closed = true;
    }
    return p;
  }

  /** The helper runs and takes requests. */
  get ready(): boolean {
    if (!this.#running && !this.#closed) {
      this.#running = Atomics.load(this.#l.ctrl, CTRL.STATE) === HELPER.RUNNING;
    }
    return this.#running && !this.#closed;
  }

  /** Answers taken that the helper thread made. */
  get helped(): number {
    return this.#helped;
  }

  /** Slots free for {@link request}. */
  get free(): number {
    return this.#free.length;
  }

  /**
   * Asks for the file `name` (NUL-terminated, from getdents) below `dirFd`;
   * returns its slot, or -1 when no slot is free or the name is too long.
   * Call {@link flush} after a batch.
   */
  request(dirFd: number, name: Uint8Array): number {
    if (name.length > NAME_BYTES || this.#free.length === 0) return -1;
    const l = this.#l;
    const i = this.#free.pop()!;
    l.dirFd[i] = dirFd;
    l.names.set(name, i * NAME_BYTES);
    Atomics.store(l.state, i, SLOT.REQUESTED);
    l.ring[this.#head % SLOTS] = i;
    this.#head++;
    return i;
  }

  /** Tells the helper about the requests made since the last flush. */
  flush(): void {
    const c = this.#l.ctrl;
    Atomics.store(c, CTRL.HEAD, this.#head);
    Atomics.add(c, CTRL.WAKE, 1);
    Atomics.notify(c, CTRL.WAKE);
  }

  /**
   * The helper's answer for slot `i`, waiting while it works on it; null
   * when the caller must do the file itself (the helper has not got to it,
   * or failed): then the slot is already free again.
   */
  take(i: number): Prefetched | null {
    const l = this.#l;
    const st = l.state;
    const prev = Atomics.compareExchange(st, i, SLOT.REQUESTED, SLOT.REDO);
    if (prev !== SLOT.REQUESTED) {
      // CLAIMED: the helper is on it. Rather than wait, do the newest
      // request still open (the helper works from the oldest), then look
      // again; wait only when none is left.
      while (Atomics.load(st, i) === SLOT.CLAIMED) {
        if (!this.#doNewest()) Atomics.wait(st, i, SLOT.CLAIMED);
      }
    }
    if (Atomics.load(st, i) !== SLOT.DONE) {
      this.release(i);
      return null;
    }
    Atomics.store(st, i, SLOT.TAKEN);
    if (this.#mine[i] === 0) this.#helped++;
    const r = l.result[i];
    const stat = parseStatxAt(this.#statxView, i * STATX_BYTES);
    return {
      stat,
      fd: r >= 0 ? r : -1,
      hasXattrs: l.xattrs[i] === 1,
      body: r === PEEK.READ
        ? l.bodies.subarray(i * SLOT_BODY, i * SLOT_BODY + stat.size)
        : null,
    };
  }

  /** Does the newest open request on this thread; false when there is none. */
  #doNewest(): boolean {
    const l = this.#l;
    for (let k = this.#head - 1; k >= 0 && k >= this.#head - SLOTS; k--) {
      const j = l.ring[k % SLOTS];
      if (
        Atomics.compareExchange(l.state, j, SLOT.REQUESTED, SLOT.CLAIMED) ===
          SLOT.REQUESTED
      ) {
        this.#mine[j] = 1;
        peekSlot(l, this.#v, j);
        return true;
      }
    }
    return false;
  }

  /** True once the helper has answered slot `i` (for tests: {@link take} would not wait). */
  answered(i: number): boolean {
    const s = Atomics.load(this.#l.state, i);
    return s === SLOT.DONE || s === SLOT.REDO;
  }

  /** Frees slot `i` (its answer's fd, if any, is the caller's). */
  release(i: number): void {
    this.#mine[i] = 0;
    Atomics.store(this.#l.state, i, SLOT.FREE);
    this.#free.push(i);
  }

  /**
   * Stops the helper and waits until it has left its loop, then closes the
   * fds of answers nobody took. Only then may the caller close the
   * directories it asked in. Idempotent.
   */
  close(): void {
    if (this.#worker === null) return;
    const c = this.#l.ctrl;
    const was = Atomics.compareExchange(
      c,
      CTRL.STATE,
      HELPER.STARTING,
      HELPER.CLOSED,
    );
    this.#closed = true;
    if (was === HELPER.RUNNING) {
      Atomics.store(c, CTRL.STATE, HELPER.CLOSED);
      Atomics.add(c, CTRL.WAKE, 1);
      Atomics.notify(c, CTRL.WAKE);
      while (Atomics.load(c, CTRL.EXITED) === 0) {
        Atomics.wait(c, CTRL.EXITED, 0);
      }
    }
    const l = this.#l;
    for (let i = 0; i < SLOTS; i++) {
      if (Atomics.load(l.state, i) === SLOT.DONE && l.result[i] >= 0) {
        close(l.result[i]);
      }
      Atomics.store(l.state, i, SLOT.FREE);
    }
    this.#worker.terminate();
    this.#worker = null;
  }
}
