/**
 * Internal: a helper thread that takes per-file system calls off a thread
 * that blocks on them anyway (pack's `export/_file_prefetch.ts`). Jobs
 * live in slots of one
 * `SharedArrayBuffer`: the calling thread fills a slot, marks it requested
 * and puts it on a ring; the helper takes requested slots oldest first.
 * Whichever thread moves a slot on first does its job: the helper while it
 * keeps up, the caller when it would otherwise wait (it does the newest
 * open job instead) or when it needs a job the helper has not reached.
 * Nothing depends on the helper: it may be slow, busy, still starting (a
 * Worker takes ~15 ms) or unable to start, and the caller does the rest.
 *
 * A job is a function of its slot, the same on both threads: `work(i)`
 * reads the request from slot `i`'s words and bytes and writes the answer
 * there. File descriptors are the process's, so a job may use fds the
 * caller opened, as long as the caller keeps them open until the job is
 * answered or {@link SlotHelper.close} has stopped the helper.
 *
 * @module
 */

/** Slots: jobs asked for and not yet taken (a power of two: ring indexes are masked). */
export const SLOTS = 64;
const MASK = SLOTS - 1;

/** Control words. */
const CTRL = {
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
const HELPER = { STARTING: 0, RUNNING: 1, CLOSED: 2 } as const;

/** A slot's state. */
const SLOT = {
  FREE: 0,
  /** Asked for: the first thread to move it on does the job. */
  REQUESTED: 1,
  /** A thread is doing it. */
  CLAIMED: 2,
  /** Its answer is in the slot. */
  DONE: 3,
  /** Taken by the caller: its answer (an fd, bytes) is the caller's until it frees the slot. */
  TAKEN: 4,
} as const;

/** How big each slot is. */
export interface SlotShape {
  /** Int32 words per slot. */
  words: number;
  /** Bytes per slot. */
  bytes: number;
}

/** The shared buffer's views, the same on both threads. */
export interface Slots {
  /** `SLOTS * shape.words` words: slot `i`'s are at `i * shape.words`. */
  words: Int32Array<SharedArrayBuffer>;
  /** `SLOTS * shape.bytes` bytes. */
  bytes: Uint8Array<SharedArrayBuffer>;
  /** Each slot's state ({@link SLOT}). */
  state: Int32Array<SharedArrayBuffer>;
  ctrl: Int32Array<SharedArrayBuffer>;
  ring: Int32Array<SharedArrayBuffer>;
  shape: SlotShape;
}

function byteLength(s: SlotShape): number {
  return 4 * (CTRL_WORDS + 2 * SLOTS + SLOTS * s.words) + SLOTS * s.bytes;
}

/** Views of `sab`, laid out for `shape` (both threads call this). */
export function slotsOf(sab: SharedArrayBuffer, shape: SlotShape): Slots {
  let at = 0;
  const ints = (n: number) => {
    const v = new Int32Array(sab, at, n);
    at += n * 4;
    return v;
  };
  const ctrl = ints(CTRL_WORDS);
  const ring = ints(SLOTS);
  const state = ints(SLOTS);
  const words = ints(SLOTS * shape.words);
  const bytes = new Uint8Array(sab, at, SLOTS * shape.bytes);
  return { words, bytes, state, ctrl, ring, shape };
}

/** What a helper's worker module posts nothing back for: it gets `{ sab, shape }` once. */
export interface HelperStart {
  sab: SharedArrayBuffer;
  shape: SlotShape;
}

/**
 * The helper's loop, for a worker module: takes requested slots oldest
 * first and runs `work` on each, until the caller closes it. `work` must
 * not throw (a job that fails writes its failure into the slot).
 */
export function serveSlots(
  start: HelperStart,
  work: (s: Slots, i: number) => void,
): void {
  const s = slotsOf(start.sab, start.shape);
  const { ctrl, ring, state } = s;
  try {
    if (
      Atomics.compareExchange(
        ctrl,
        CTRL.STATE,
        HELPER.STARTING,
        HELPER.RUNNING,
      ) !== HELPER.STARTING
    ) return; // closed before it started
    // Int32 arithmetic, as HEAD is an Int32 word: both wrap alike.
    let tail = 0;
    for (;;) {
      // Read before the checks: a wake after them makes the wait return.
      const wake = Atomics.load(ctrl, CTRL.WAKE);
      if (Atomics.load(ctrl, CTRL.STATE) !== HELPER.RUNNING) break;
      const head = Atomics.load(ctrl, CTRL.HEAD);
      if (tail === head) {
        Atomics.wait(ctrl, CTRL.WAKE, wake);
        continue;
      }
      // More requests than slots were made since (slots the caller did
      // itself, reused): the oldest are overwritten; the caller does those.
      if (((head - tail) | 0) > SLOTS) tail = (head - SLOTS) | 0;
      const i = Atomics.load(ring, tail & MASK);
      tail = (tail + 1) | 0;
      if (
        Atomics.compareExchange(state, i, SLOT.REQUESTED, SLOT.CLAIMED) !==
          SLOT.REQUESTED
      ) continue; // the caller got there first
      work(s, i);
      Atomics.store(state, i, SLOT.DONE);
      Atomics.notify(state, i);
    }
  } finally {
    Atomics.store(ctrl, CTRL.EXITED, 1);
    Atomics.notify(ctrl, CTRL.EXITED);
  }
}

/** The library's source directory (`src/`), where every module a helper loads is. */
const SOURCES = new URL("../", import.meta.url);

/**
 * Whether a Worker may load the module at `url` and what it imports: local
 * ones need read access to their files (a process given only --allow-ffi
 * has none), and a Worker refused it prints an uncaught error whatever
 * `onerror` does. Remote ones are left to Deno's import rules (and
 * `onerror`).
 */
function mayLoad(url: string): boolean {
  if (!url.startsWith("file:")) return true;
  try {
    return [new URL(url), SOURCES].every((path) =>
      Deno.permissions.querySync({ name: "read", path }).state === "granted"
    );
  } catch {
    return false;
  }
}

/** The calling thread's side: see the module doc. */
export class SlotHelper {
  /** The slots (fill a free one's request before {@link request}). */
  readonly slots: Slots;
  readonly #work: (s: Slots, i: number) => void;
  readonly #free: number[] = [];
  /** Requests made so far (HEAD is this, wrapped to Int32). */
  #made = 0;
  /** Slots this thread did itself (not counted in {@link helped}). */
  readonly #mine = new Uint8Array(SLOTS);
  #helped = 0;
  #worker: Worker | null = null;
  #running = false;
  #closed = false;
  #shut = false;

  /**
   * Starts the helper (in the background: {@link ready} tells when it
   * runs) from the worker module at `workerUrl`, which calls
   * {@link serveSlots} with the same `work`. A helper that cannot start (no
   * Worker, a module that fails to load) leaves one that is never ready.
   */
  constructor(
    workerUrl: string,
    shape: SlotShape,
    work: (s: Slots, i: number) => void,
  ) {
    this.slots = slotsOf(new SharedArrayBuffer(byteLength(shape)), shape);
    this.#work = work;
    for (let i = SLOTS - 1; i >= 0; i--) this.#free.push(i);
    if (!mayLoad(workerUrl)) {
      this.#closed = true;
      return;
    }
    try {
      const w = new Worker(workerUrl, { type: "module" });
      // Handled, or an error in the helper would end the process; the
      // caller needs no word of it (it does every job the helper does not).
      w.onerror = (ev) => ev.preventDefault();
      w.postMessage(
        { sab: this.slots.ctrl.buffer, shape } satisfies HelperStart,
      );
      this.#worker = w;
    } catch {
      this.#closed = true;
    }
  }

  /** The helper runs and takes requests. */
  get ready(): boolean {
    if (!this.#running && !this.#closed) {
      this.#running =
        Atomics.load(this.slots.ctrl, CTRL.STATE) === HELPER.RUNNING;
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
   * A free slot for the caller to fill before {@link request}, or -1 when
   * none is free.
   */
  claimSlot(): number {
    return this.#free.pop() ?? -1;
  }

  /** Puts filled slot `i` up for the helper; call {@link flush} after a batch. */
  request(i: number): void {
    Atomics.store(this.slots.state, i, SLOT.REQUESTED);
    this.slots.ring[this.#made & MASK] = i;
    this.#made++;
  }

  /** Tells the helper about the requests made since the last flush. */
  flush(): void {
    const c = this.slots.ctrl;
    Atomics.store(c, CTRL.HEAD, this.#made | 0);
    Atomics.add(c, CTRL.WAKE, 1);
    Atomics.notify(c, CTRL.WAKE);
  }

  /**
   * Slot `i` done: by the helper, or here now when the helper has not
   * reached it (or here while waiting for it, other open jobs first). Its
   * answer is the caller's until {@link release}.
   */
  take(i: number): void {
    const st = this.slots.state;
    if (
      Atomics.compareExchange(st, i, SLOT.REQUESTED, SLOT.CLAIMED) ===
        SLOT.REQUESTED
    ) {
      this.#mine[i] = 1;
      this.#work(this.slots, i);
    } else {
      // CLAIMED: the helper is on it. Rather than wait, do the newest
      // request still open (the helper works from the oldest), then look
      // again; wait only when none is left.
      while (Atomics.load(st, i) === SLOT.CLAIMED) {
        if (!this.#doNewest()) Atomics.wait(st, i, SLOT.CLAIMED);
      }
    }
    Atomics.store(st, i, SLOT.TAKEN);
    if (this.#mine[i] === 0) this.#helped++;
  }

  /** True once slot `i` is answered ({@link take} would not work or wait). */
  answered(i: number): boolean {
    return Atomics.load(this.slots.state, i) === SLOT.DONE;
  }

  /** Does the newest open request on this thread; false when there is none. */
  #doNewest(): boolean {
    const s = this.slots;
    for (let k = this.#made - 1; k >= 0 && k >= this.#made - SLOTS; k--) {
      const j = s.ring[k & MASK];
      if (
        Atomics.compareExchange(s.state, j, SLOT.REQUESTED, SLOT.CLAIMED) ===
          SLOT.REQUESTED
      ) {
        this.#mine[j] = 1;
        this.#work(s, j);
        Atomics.store(s.state, j, SLOT.DONE);
        return true;
      }
    }
    return false;
  }

  /** Frees slot `i`. */
  release(i: number): void {
    this.#mine[i] = 0;
    Atomics.store(this.slots.state, i, SLOT.FREE);
    this.#free.push(i);
  }

  /**
   * Stops the helper and waits until it has left its loop; then calls
   * `leftover(i)` for each slot answered or requested but never taken (to
   * close what its job holds) and frees every slot. Idempotent.
   */
  close(leftover: (i: number, answered: boolean) => void): void {
    if (this.#shut) return;
    this.#shut = true;
    const c = this.slots.ctrl;
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
    const st = this.slots.state;
    for (let i = 0; i < SLOTS; i++) {
      const s = Atomics.load(st, i);
      if (s === SLOT.DONE || s === SLOT.REQUESTED) leftover(i, s === SLOT.DONE);
      Atomics.store(st, i, SLOT.FREE);
    }
    this.#worker?.terminate();
    this.#worker = null;
  }
}
