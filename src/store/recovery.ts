/**
 * Crash recovery: the one set of rules for what an interrupted operation
 * leaves behind, used by the open-time sweep (which deletes) and by
 * `layerfs check` (which reports, and with `--repair` deletes).
 *
 * A layer exists exactly when `layers/<id>` exists. So:
 * - `staging/<x>` whose builder is gone (its flock is free) is a leftover;
 * - `*-removing` entries (a remove that died) and temp files of atomic
 *   writes (`*.tmp-<pid>-<hex>`) are leftovers;
 * - `diff/`, `mnt/` and `meta/` entries of no layer are orphans, and so are
 *   the backend's own per-layer entries (overlay's `work/` and `l/`) and
 *   mount count files `run/counts/<id>` (a put leaves "0" in place);
 * - hold records `run/holds/<pid>-<starttime>` of processes that have exited
 *   are not deleted but released, view by view (`dead_holds.ts`, run by the
 *   count reconciliation of open, remove and commit);
 * - a commit that died after its commit point (`layers/<new>` written,
 *   `diff/<old>` not yet renamed) is finished first, never swept;
 * - in the image store (`images/`, see src/image/image_store.ts; named here
 *   by its layout so the store imports nothing of images): `.spool-<pid>-*`
 *   `.save-<pid>-*` and `.push-<pid>-*` temp entries and `*.tmp-<pid>-<hex>` writes of
 *   processes that are gone, and per-layer lock files `images/locks/<id>`
 *   nobody holds (deleted with {@link removeLockFile}'s protocol).
 *
 * @module
 */

import { entryNames, exists } from "../_fs.ts";
import type { Backend } from "../backends/types.ts";
import { PER_LAYER_DIRS, type StoreLayout } from "../layout.ts";
import { validateLayerId } from "./id.ts";
import { LayerDamaged } from "../errors.ts";
import { type LayerMeta, readMeta, writeMeta } from "./meta.ts";
import { removeCount } from "./refcounts.ts";

/** What kind of leftover. */
export type LeftoverKind = "staging" | "removing" | "temp" | "orphan" | "lock";

/** One leftover of an interrupted operation. */
export interface Leftover {
  /** Which rule found it. */
  kind: LeftoverKind;
  /** Its path relative to the store root, e.g. `diff/app-removing`. */
  path: string;
}

/** Temp names of atomic writes: `<name>.tmp-<pid>-<8 hex>`. */
export const TEMP_RE: RegExp = /\.tmp-\d+-[0-9a-f]{8}$/;

/**
 * Every leftover in the store at `layout` (read-only; take the store lock
 * for a result that cannot change under you).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { vfsBackend } from "../backends/vfs.ts";
 * import { findLeftovers } from "./recovery.ts";
 * const root = await Deno.makeTempDir();
 * for (const d of ["layers", "diff", "mnt", "meta", "run", "staging"]) await Deno.mkdir(`${root}/${d}`);
 * await Deno.mkdir(`${root}/diff/gone`);
 * await Deno.writeTextFile(`${root}/run/mounts.json.tmp-1-0123abcd`, "{");
 * const found = await findLeftovers(new StoreLayout(root), vfsBackend);
 * assert.deepEqual(found, [
 *   { kind: "temp", path: "run/mounts.json.tmp-1-0123abcd" },
 *   { kind: "orphan", path: "diff/gone" },
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function findLeftovers(
  layout: StoreLayout,
  backend: Backend,
): Promise<Leftover[]> {
  const out: Leftover[] = [];
  for (const n of await entryNames(layout.staging())) {
    if (!(await stagingBusy(layout.staging(n)))) {
      out.push({ kind: "staging", path: `staging/${n}` });
    }
  }
  const flagged = new Set<string>();
  const dirs = [
    "layers",
    ...PER_LAYER_DIRS,
    "run",
    "run/holds",
    ...backend.ownDirs,
  ];
  for (const d of ["", ...dirs]) {
    for (const n of await entryNames(d ? `${layout.root}/${d}` : layout.root)) {
      const path = d ? `${d}/${n}` : n;
      const kind = n.endsWith("-removing") && d !== ""
        ? "removing"
        : TEMP_RE.test(n)
        ? "temp"
        : undefined;
      if (!kind) continue;
      out.push({ kind, path });
      flagged.add(path);
    }
  }
  const live = await liveIds(layout);
  const committing = await commitSources(layout, live);
  for (const d of PER_LAYER_DIRS) {
    for (const n of await entryNames(`${layout.root}/${d}`)) {
      const path = `${d}/${n}`;
      if (live.has(n) || flagged.has(path)) continue;
      if (d === "diff" && committing.has(n)) continue;
      out.push({ kind: "orphan", path });
    }
  }
  for (const n of await entryNames(layout.counts())) {
    if (!live.has(n)) out.push({ kind: "orphan", path: `run/counts/${n}` });
  }
  for (const path of await backend.leftovers(layout, live)) {
    if (!flagged.has(path)) out.push({ kind: "orphan", path });
  }
  out.push(...await imageLeftovers(layout));
  return out;
}

/** Temp entries of image operations: `.spool-<pid>-*`, `.save-<pid>-*`, `.push-<pid>-*`, `*.tmp-<pid>-<hex>`. */
const IMAGE_TEMP = /^\.(?:spool|save|push)-(\d+)-|\.tmp-(\d+)-[0-9a-f]{8}$/;

/** Whether process `pid` is alive (ours counts as alive). */
function alive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Leftovers of the image store: temp entries of dead processes in
 * `images/` and `images/blobs/sha256/`, and lock files in `images/locks/`
 * that nobody holds. Also what `sweepImageTemps` deletes before a load or
 * save (one rule set).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { imageLeftovers } from "./recovery.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/images/locks`, { recursive: true });
 * await Deno.writeTextFile(`${root}/images/.spool-999999999-x`, "");
 * await Deno.writeTextFile(`${root}/images/locks/abc`, "");
 * assert.deepEqual(await imageLeftovers(new StoreLayout(root)), [
 *   { kind: "temp", path: "images/.spool-999999999-x" },
 *   { kind: "lock", path: "images/locks/abc" },
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function imageLeftovers(layout: StoreLayout): Promise<Leftover[]> {
  const out: Leftover[] = [];
  for (const d of ["images", "images/blobs/sha256"]) {
    for (const n of await entryNames(`${layout.root}/${d}`)) {
      const m = IMAGE_TEMP.exec(n);
      if (m && !alive(Number(m[1] ?? m[2]))) {
        out.push({ kind: "temp", path: `${d}/${n}` });
      }
    }
  }
  for (const n of await entryNames(`${layout.root}/images/locks`)) {
    const path = `images/locks/${n}`;
    if (IMAGE_TEMP.test(n)) continue;
    let f: Deno.FsFile;
    try {
      f = await Deno.open(`${layout.root}/${path}`, {
        read: true,
        write: true,
      });
    } catch {
      continue;
    }
    try {
      if (await f.tryLock(true)) out.push({ kind: "lock", path });
    } finally {
      f.close();
    }
  }
  return out;
}

/**
 * Deletes lock file `path` if nobody holds it: takes its flock without
 * waiting, and unlinks it while holding it. Safe together with a taker that,
 * after its flock, checks the path still names the file it locked (and
 * retries otherwise), as `image_store.ts`'s `flock` does. Returns whether it
 * was deleted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeLockFile } from "./recovery.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/l`, "");
 * assert.equal(await removeLockFile(`${dir}/l`), true);
 * await Deno.remove(dir);
 * ```
 */
export async function removeLockFile(path: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true, write: true });
  } catch {
    return false;
  }
  try {
    if (!(await f.tryLock(true))) return false;
    const [a, b] = [await f.stat(), await Deno.lstat(path).catch(() => null)];
    if (!b || a.ino !== b.ino || a.dev !== b.dev) return false; // replaced meanwhile
    await Deno.remove(path);
    return true;
  } finally {
    f.close();
  }
}

/**
 * Finishes commits that died after their commit point (caller holds the
 * store lock): `layers/<new>` exists, its meta says `committedFrom: <old>`,
 * and `diff/<old>` still holds the content. Returns the layers finished.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { vfsBackend } from "../backends/vfs.ts";
 * import { finishCommits } from "./recovery.ts";
 * const root = await Deno.makeTempDir();
 * for (const d of ["layers", "diff", "mnt", "meta"]) await Deno.mkdir(`${root}/${d}`);
 * await Deno.writeTextFile(`${root}/layers/img`, "");
 * await Deno.writeTextFile(`${root}/meta/img`, '{"readWrite":false,"committedFrom":"ctr"}');
 * await Deno.mkdir(`${root}/diff/ctr`);
 * assert.deepEqual(await finishCommits(new StoreLayout(root), vfsBackend), ["img"]);
 * assert.equal((await Deno.stat(`${root}/diff/img`)).isDirectory, true);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function finishCommits(
  layout: StoreLayout,
  backend: Backend,
): Promise<string[]> {
  const done: string[] = [];
  for (const id of await liveIds(layout)) {
    let meta: LayerMeta;
    try {
      meta = await readMeta(layout, id);
    } catch (e) {
      // One damaged layer must not make the store unopenable: check reports it.
      if (e instanceof LayerDamaged) continue;
      throw e;
    }
    const from = meta.committedFrom;
    if (from === undefined) continue;
    if (!(await exists(layout.diff(id)))) {
      if (!(await exists(layout.diff(from)))) continue; // nothing to finish with
      await Deno.rename(layout.diff(from), layout.diff(id));
    }
    // The old layer's entries go, the new one's are made afresh.
    await backend.removeLayer(layout, from);
    await backend.removeLayer(layout, id);
    await backend.prepareLayer(layout, id);
    await Deno.remove(layout.mnt(from)).catch(() => {});
    if (backend.capabilities.mounts) {
      await Deno.mkdir(layout.mnt(id), { mode: 0o700 }).catch(() => {});
    }
    await Deno.remove(layout.meta(from)).catch(() => {});
    removeCount(layout, from);
    const { committedFrom: _, ...rest } = meta;
    await writeMeta(layout, id, rest);
    done.push(id);
  }
  return done;
}

/** Ids with a `layers/<id>` file. */
export async function liveIds(layout: StoreLayout): Promise<Set<string>> {
  const live = new Set<string>();
  for (const n of await entryNames(layout.layers())) {
    if (TEMP_RE.test(n)) continue;
    try {
      live.add(validateLayerId(n));
    } catch { /* -removing leftovers */ }
  }
  return live;
}

/** `diff/<old>` dirs that an unfinished commit still needs. */
async function commitSources(
  layout: StoreLayout,
  live: Set<string>,
): Promise<Set<string>> {
  const out = new Set<string>();
  for (const id of live) {
    let from: string | undefined;
    try {
      from = (await readMeta(layout, id)).committedFrom;
    } catch { /* corrupt meta: check reports it elsewhere */ }
    if (from !== undefined && !live.has(from)) out.add(from);
  }
  return out;
}

/** Whether a builder holds the flock of `staging/<x>/lock`. */
async function stagingBusy(path: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(`${path}/lock`, { read: true, write: true });
  } catch {
    return false; // no lock file: a crash right after mkdir
  }
  try {
    return !(await f.tryLock(true));
  } finally {
    f.close();
  }
}
