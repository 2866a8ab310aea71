/**
 * Mount reference counts that survive the process: `run/mounts.json`,
 * guarded by an flock on `run/lock` and written crash-safely, then
 * reconciled with /proc/self/mountinfo so that a count whose mount is gone
 * (a reboot, a manual umount) is dropped (containers/storage keeps mount
 * counts in its layers.json the same way).
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import type { StoreLayout } from "../layout.ts";

/** Outstanding `get`s per layer id. */
export type MountCounts = Record<string, number>;

/**
 * Runs `fn` holding the store's exclusive lock (flock on `run/lock`). The
 * lock is per open file, so it serialises callers within one process as well
 * as across processes; the kernel drops it when a holder dies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { withStoreLock } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * assert.equal(await withStoreLock(new StoreLayout(root), () => Promise.resolve(42)), 42);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function withStoreLock<T>(
  layout: StoreLayout,
  fn: () => Promise<T>,
): Promise<T> {
  const f = await Deno.open(`${layout.run}/lock`, {
    read: true,
    write: true,
    create: true,
  });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close(); // closing the file releases the flock
  }
}

/**
 * Reads `run/mounts.json` (missing or corrupt reads as no counts: the
 * reconciliation with mountinfo then adopts live mounts again).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCounts, writeCounts } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * const layout = new StoreLayout(root);
 * assert.deepEqual(await readCounts(layout), {}); // no file yet
 * await writeCounts(layout, { app: 2, gone: 0 });
 * assert.deepEqual(await readCounts(layout), { app: 2 });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function readCounts(layout: StoreLayout): Promise<MountCounts> {
  let c: unknown;
  try {
    // Sync: a few hundred bytes, read on every get and put.
    c = JSON.parse(DECODER.decode(Deno.readFileSync(countsPath(layout))));
  } catch {
    return Promise.resolve({});
  }
  const out: MountCounts = {};
  if (typeof c === "object" && c !== null) {
    for (const [k, v] of Object.entries(c)) {
      if (typeof v === "number" && v > 0 && Number.isInteger(v)) out[k] = v;
    }
  }
  return Promise.resolve(out);
}

const DECODER = new TextDecoder();
const ENCODER = new TextEncoder();
const countsPath = (layout: StoreLayout) => `${layout.run}/mounts.json`;

/**
 * Writes `run/mounts.json` so that a killed process leaves the old or the new
 * counts, never a torn file: a temp name, then a rename over the old file.
 * Neither is fsynced: after a power loss nothing is mounted, and
 * reconciliation drops the counts anyway. The calls are synchronous (this
 * runs under the store lock on every get and put, and the async ones cost
 * twice as much here). Rewriting the file in place was tried: it is slower
 * on ext4, where a write to a page still under writeback waits for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCounts, writeCounts } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * const layout = new StoreLayout(root);
 * await writeCounts(layout, { app: 2, base: 0 });
 * assert.deepEqual(await readCounts(layout), { app: 2 });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function writeCounts(
  layout: StoreLayout,
  counts: MountCounts,
): Promise<void> {
  const clean: MountCounts = {};
  for (const k of Object.keys(counts).sort()) {
    if (counts[k] > 0) clean[k] = counts[k];
  }
  const path = countsPath(layout);
  const tmp = `${path}.tmp-${Deno.pid}-${randomHex()}`;
  try {
    const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o644 });
    try {
      const bytes = ENCODER.encode(JSON.stringify(clean) + "\n");
      for (let off = 0; off < bytes.length;) {
        off += f.writeSync(bytes.subarray(off));
      }
    } finally {
      f.close();
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    return Promise.reject(
      new StoreError(
        `Cannot write ${path} (${(e as Error).message}); ` +
          "the filesystem may be full: free space and retry",
        { cause: e },
      ),
    );
  }
  return Promise.resolve();
}

/** 8 hex digits: the temp-name suffix recovery.ts recognises. */
function randomHex(): string {
  return (Math.random() * 0x100000000 >>> 0).toString(16).padStart(8, "0");
}
/** How a counted layer's view looks now, for {@link reconcileCounts}. */
export type ViewState = "gone" | "unmounted" | "mounted" | "no-mount";

/**
 * Drops counts that reality contradicts: layers that no longer exist, and
 * layers whose view needs a mount that is not there. Pure.
 *
 * @example
 * ```ts
 * import { reconcileCounts } from "./refcounts.ts";
 * import assert from "node:assert/strict";
 * const state = (id: string) => id === "a" ? "unmounted" as const : "mounted" as const;
 * assert.deepEqual(reconcileCounts({ a: 2, b: 1 }, state), { counts: { b: 1 }, dropped: ["a"] });
 * ```
 */
export function reconcileCounts(
  counts: MountCounts,
  state: (id: string) => ViewState,
): { counts: MountCounts; dropped: string[] } {
  const out: MountCounts = {};
  const dropped: string[] = [];
  for (const [id, n] of Object.entries(counts)) {
    const s = state(id);
    if (s === "gone" || s === "unmounted") dropped.push(id);
    else out[id] = n;
  }
  return { counts: out, dropped };
}
