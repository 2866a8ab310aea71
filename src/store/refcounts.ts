/**
 * Mount reference counts that survive the process: one small file per
 * layer that has been counted, `run/counts/<id>`, holding its number of
 * outstanding `get`s (a missing file, or one reading 0, counts nothing; a
 * count dropping to 0 is written, not unlinked, see {@link writeCount}; the
 * files are deleted by {@link writeCounts}: remove, cleanup, check
 * --repair), guarded by an flock
 * on `run/lock` and reconciled with the mount table, so that a count whose
 * mount is gone (a reboot, a manual umount) is dropped. containers/storage
 * keeps mount counts beside its layers the same way; one file per layer
 * makes a `get` or `put` touch only its own count. A count does not say
 * whose it is: views taken for one call are also recorded as holds of their
 * process (`holds.ts`), so that a dead process's can be given back.
 *
 * A count is updated in place with one write(2) and never fsynced: a killed
 * process leaves the old or the new number (a write within a page is not cut
 * by SIGKILL), and after a power loss nothing is mounted any more, so the
 * reconciliation drops those counts anyway. The whole-table file of earlier
 * versions, `run/mounts.json`, rewritten (temp, rename) on every get and put,
 * cost 0.4-0.5 ms a call on ext4 against ~0.03 ms for this; it is still read
 * and converted on open ({@link migrateLegacyCounts}).
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import type { StoreLayout } from "../layout.ts";
import { close } from "../sys/fd_linux.ts";
import { SysError } from "../sys/libc_linux.ts";
import {
  readSmallFile,
  removeSmallFile,
  tryLockFile,
  writeSmallFile,
} from "../sys/small_file_linux.ts";
import { validateLayerId } from "./id.ts";

/** Outstanding `get`s per layer id. */
export type MountCounts = Record<string, number>;

/**
 * Runs `fn` holding the store's exclusive lock (flock on `run/lock`). The
 * lock is per open file, so it serialises callers within one process as well
 * as across processes; the kernel drops it when a holder dies. An uncontended
 * lock is taken synchronously (open + flock LOCK_NB, ~0.02 ms); only when
 * someone holds it does the caller wait, asynchronously, so a holder in this
 * same process can finish.
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
  const path = `${layout.run}/lock`;
  const fd = tryLockFile(path);
  if (fd !== null) {
    try {
      return await fn();
    } finally {
      close(fd); // closing the file releases the flock
    }
  }
  const f = await Deno.open(path, { read: true, write: true, create: true });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close();
  }
}

const DECODER = new TextDecoder();
const ENCODER = new TextEncoder();
const buf = new Uint8Array(64);
const legacyPath = (layout: StoreLayout) => `${layout.run}/mounts.json`;

/** The count in a count file's bytes: its first line, a decimal number; anything else is 0. */
function parseCount(bytes: Uint8Array): number {
  const text = DECODER.decode(bytes);
  const nl = text.indexOf("\n");
  const line = nl < 0 ? text : text.slice(0, nl);
  return /^[0-9]{1,15}$/.test(line) ? Number(line) : 0;
}

/**
 * The count of layer `id` (0 when it has no count file, or an unreadable
 * one). Synchronous: it runs under the store lock on every get and put.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCount, writeCount } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * assert.equal(readCount(layout, "app"), 0);
 * writeCount(layout, "app", 2);
 * assert.equal(readCount(layout, "app"), 2);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function readCount(layout: StoreLayout, id: string): number {
  let n: number;
  try {
    n = readSmallFile(layout.counts(id), buf);
  } catch {
    return 0; // a directory or symlink planted there counts nothing
  }
  return n < 0 ? 0 : parseCount(buf.subarray(0, n));
}

/**
 * Sets the count of layer `id` (caller holds the store lock): `n > 0` writes
 * `run/counts/<id>` in place with one write(2) (a shorter number written over
 * a longer one leaves a blank line after it: the first line is the count).
 * 0 is written over an existing file too (and never creates one).
 *
 * @throws {StoreError} naming the file when it cannot be written (a full
 *   filesystem); a file this call created is not left behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCount, writeCount } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * writeCount(layout, "app", 1);
 * assert.equal(await Deno.readTextFile(`${root}/run/counts/app`), "1\n");
 * writeCount(layout, "app", 0);
 * assert.equal(readCount(layout, "app"), 0);
 * writeCount(layout, "base", 0); // creates nothing
 * await assert.rejects(Deno.stat(`${root}/run/counts/base`), Deno.errors.NotFound);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function writeCount(layout: StoreLayout, id: string, n: number): void {
  const path = layout.counts(id);
  try {
    const bytes = ENCODER.encode(`${Math.max(n, 0)}\n`);
    // 0 is written over an existing file, not unlinked: an unlink right
    // after an overlay umount (which syncs the filesystem) waited ~0.5 ms
    // for ext4's journal; an in-place write does not.
    if (n <= 0) {
      writeSmallFile(path, bytes, false);
      return;
    }
    try {
      writeSmallFile(path, bytes);
    } catch (e) {
      // Stores made before count files, and a tmpfs mounted on run/, have no run/counts.
      if (!(e instanceof SysError && e.code === "ENOENT")) throw e;
      Deno.mkdirSync(layout.counts(), { recursive: true, mode: 0o700 });
      writeSmallFile(path, bytes);
    }
  } catch (e) {
    throw new StoreError(
      `Cannot write ${path} (${(e as Error).message}); ` +
        "the filesystem may be full: free space and retry",
      { cause: e },
    );
  }
}

/**
 * Deletes the count file of layer `id` (caller holds the store lock): for a
 * layer that no longer exists.
 *
 * @throws {StoreError} naming the file when it cannot be deleted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { removeCount, writeCount } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * writeCount(layout, "gone", 1);
 * removeCount(layout, "gone");
 * await assert.rejects(Deno.stat(`${root}/run/counts/gone`), Deno.errors.NotFound);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function removeCount(layout: StoreLayout, id: string): void {
  removeRunFile(layout.counts(id));
}

/**
 * Deletes a small file under `run/` (a count, a hold record); absent is
 * fine. A failure is a StoreError naming the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeRunFile } from "./refcounts.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/x`, "1");
 * removeRunFile(`${dir}/x`);
 * removeRunFile(`${dir}/x`); // absent: nothing to do
 * assert.deepEqual([...Deno.readDirSync(dir)], []);
 * await Deno.remove(dir);
 * ```
 */
export function removeRunFile(path: string): void {
  try {
    removeSmallFile(path);
  } catch (e) {
    throw new StoreError(
      `Cannot delete ${path} (${(e as Error).message}); delete it by hand`,
      { cause: e },
    );
  }
}

/**
 * Every count: the files in `run/counts/` (names that are not layer ids,
 * and counts of 0, are skipped), plus the counts of a `run/mounts.json` left
 * by an earlier version for layers that have no file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCounts, writeCounts } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * const layout = new StoreLayout(root);
 * assert.deepEqual(await readCounts(layout), {}); // nothing counted yet
 * await writeCounts(layout, { app: 2, gone: 0 });
 * assert.deepEqual(await readCounts(layout), { app: 2 });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function readCounts(layout: StoreLayout): Promise<MountCounts> {
  const out = fileCounts(layout);
  for (const [id, n] of Object.entries(readLegacyCounts(layout) ?? {})) {
    if (!(id in out)) out[id] = n;
  }
  return Promise.resolve(out);
}

/** The counts in `run/counts/` alone. */
function fileCounts(layout: StoreLayout, zeros = false): MountCounts {
  const out: MountCounts = {};
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(layout.counts())].map((e) => e.name);
  } catch { /* no counts dir: nothing counted */ }
  for (const name of names.sort()) {
    if (!isLayerId(name)) continue;
    const n = readCount(layout, name);
    if (n > 0 || zeros) out[name] = n;
  }
  return out;
}

/**
 * Makes the counts on disk equal `counts` (caller holds the store lock):
 * writes the counts that differ, deletes the files of layers it does not
 * count (also those reading 0), and deletes a legacy `run/mounts.json`. Each layer's update is
 * atomic on its own.
 *
 * @throws {StoreError} naming the file that cannot be written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCounts, writeCounts } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * const layout = new StoreLayout(root);
 * await writeCounts(layout, { app: 2, base: 1 });
 * await writeCounts(layout, { app: 1 });
 * assert.deepEqual(await readCounts(layout), { app: 1 });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function writeCounts(
  layout: StoreLayout,
  counts: MountCounts,
): Promise<void> {
  try {
    const now = fileCounts(layout, true);
    for (const id of Object.keys(now)) {
      if (!((counts[id] ?? 0) > 0)) removeSmallFile(layout.counts(id));
    }
    for (const [id, n] of Object.entries(counts)) {
      if (n > 0 && now[id] !== n) writeCount(layout, validateLayerId(id), n);
    }
  } catch (e) {
    return Promise.reject(e);
  }
  try {
    removeSmallFile(legacyPath(layout));
  } catch (e) {
    return Promise.reject(
      new StoreError(
        `Cannot delete ${legacyPath(layout)} (${
          (e as Error).message
        }); delete it by hand`,
        { cause: e },
      ),
    );
  }
  return Promise.resolve();
}

/**
 * Converts a `run/mounts.json` of an earlier version into count files and
 * deletes it (caller holds the store lock); a layer that already has a count
 * file keeps it. Returns whether there was one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { migrateLegacyCounts, readCount } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * await Deno.writeTextFile(`${root}/run/mounts.json`, '{"app":2}');
 * const layout = new StoreLayout(root);
 * assert.equal(await migrateLegacyCounts(layout), true);
 * assert.equal(readCount(layout, "app"), 2);
 * await assert.rejects(Deno.stat(`${root}/run/mounts.json`), Deno.errors.NotFound);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function migrateLegacyCounts(
  layout: StoreLayout,
): Promise<boolean> {
  if (readLegacyCounts(layout) === undefined) return false;
  await writeCounts(layout, await readCounts(layout));
  return true;
}

/** `run/mounts.json`'s valid counts; undefined when there is no such file. */
function readLegacyCounts(layout: StoreLayout): MountCounts | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(legacyPath(layout));
  } catch {
    return undefined;
  }
  const out: MountCounts = {};
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch {
    return out; // torn or corrupt: it counts nothing, and is deleted all the same
  }
  if (typeof c === "object" && c !== null) {
    for (const [k, v] of Object.entries(c)) {
      if (
        isLayerId(k) && typeof v === "number" && v > 0 && Number.isInteger(v)
      ) {
        out[k] = v;
      }
    }
  }
  return out;
}

function isLayerId(name: string): boolean {
  try {
    validateLayerId(name);
    return true;
  } catch {
    return false;
  }
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
