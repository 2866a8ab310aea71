/**
 * `layerfs check [--repair]`: verifies a store on disk against its layout
 * (src/store/layout.ts) and the kernel's mount table, and repairs what is
 * safe to repair.
 *
 * Finds:
 * - damaged layers, by the rules of `src/store/damage.ts`: a parent that is
 *   not a layer (`missing-parent`), an unreadable or corrupt `layers/<id>`
 *   or `meta/<id>` (`bad-metadata`), a content dir `diff/<id>` deleted by
 *   hand (`missing-dir`): reported, never rebuilt by guessing (a corrupt
 *   meta's read-write flag and label cannot be known; a missing content dir
 *   is data gone); fix with `rm --force`. A missing dir the backend keeps
 *   for a layer that holds no data (overlay's `work/<id>`, `l/<short>`:
 *   `missing-dir`): repair remakes it;
 * - leftovers of interrupted work: entries of `staging/`, `*-removing` entries,
 *   temp files of atomic writes (`leftover`): repair deletes them;
 * - mount counts for layers whose view is not mounted, or that are gone
 *   (`stale-count`): repair drops the count;
 * - views held for one call (`run/holds/`, see src/store/holds.ts) by a
 *   process that has exited, say a `diff` killed with kill -9
 *   (`dead-holder`): repair releases them as the process would have (each
 *   count drops by one, the last unmounts), as store open does; holds of
 *   live processes are not problems;
 * - overlay mounts on `mnt/<id>` with no count (`orphan-mount`): repair unmounts;
 * - `diff/<id>` dirs with no `layers/<id>` (`orphan-diff`): a create or remove
 *   that died between its steps (`layers/<id>` is the commit point); repair
 *   deletes them, as the store's own sweep on open does;
 * - image store leftovers (temp files of dead loads and saves, lock files
 *   nobody holds: `leftover`), by the same rules;
 * - images whose layers are gone (`dangling-image`, after a `layerfs rm` of
 *   an image's layer): repair drops their references from the image index;
 * - image layers no image uses (`unused-layer`: what an interrupted load or
 *   pull completed, by the rule of `src/image/prune.ts`); layers a load or
 *   pull is working on right now are not reported, nor are layers a removed
 *   image released (the index's `released`: they stayed while a container
 *   used them, and `prune` removes them once nothing does; a store with
 *   them is healthy). Repair removes them as `layerfs prune` does (after
 *   the locked part, through the store's own remove).
 *
 * Repairs run under the store's lock (run/lock), so they never race a
 * layerfs process that is creating, removing or mounting.
 *
 * @module
 */

import { entryNames } from "../_fs.ts";
import { backendByName } from "../backends/registry.ts";
import { StoreError } from "../errors.ts";
import { StoreLayout } from "../layout.ts";
import { type MountInfoEntry, readMountInfo } from "../mount/mountinfo.ts";
import { directMounter, type Mounter } from "../mount/mounter.ts";
import { readConfig } from "../store/config.ts";
import { type Damage, findDamage, repairDamage } from "../store/damage.ts";
import { validateLayerId } from "../store/id.ts";
import { readMeta, readParents } from "../store/meta.ts";
import { planLayerMount } from "../store/plan_layer.ts";
import {
  findLeftovers,
  finishCommits,
  removeLockFile,
  TEMP_RE,
} from "../store/recovery.ts";
import {
  danglingImages,
  imagesDir,
  layerBusy,
  readIndex,
  withImagesLock,
  writeIndex,
} from "../image/image_store.ts";
import { pruneImages } from "../image/prune.ts";
import { unusedImageLayers } from "../image/unused_layers.ts";
import { openStore } from "../store/open.ts";
import { readCounts, withStoreLock, writeCounts } from "../store/refcounts.ts";
import { deadHolds, releaseDeadHolds } from "../store/dead_holds.ts";
import { dropHoldsOf } from "../store/holds.ts";

/** Kinds of problems `check` reports. */
export type ProblemKind =
  | "missing-parent"
  | "bad-metadata"
  | "missing-dir"
  | "leftover"
  | "stale-count"
  | "dead-holder"
  | "orphan-mount"
  | "orphan-diff"
  | "dangling-image"
  | "unused-layer";

/** One problem found. */
export interface Problem {
  /** What kind. */
  kind: ProblemKind;
  /** The layer or path concerned (relative to the root). */
  subject: string;
  /**
   * Human description with the fix; once repaired, with what was done
   * instead (the fix is no advice any more).
   */
  message: string;
  /** Whether `--repair` fixed it in this run. */
  repaired: boolean;
}

/** Result of {@link checkStore}. */
export interface CheckReport {
  /** Store root checked. */
  root: string;
  /** Layers found. */
  layers: number;
  /** Problems, in the order found. */
  problems: Problem[];
}

/** Options of {@link checkStore}. */
export interface CheckOptions {
  /** Fix what is safe to fix. @default false */
  repair?: boolean;
  /** Who unmounts when repairing (the helper's Mounter when not root). @default directMounter */
  mounter?: Mounter;
}

function isValidId(id: string): boolean {
  try {
    validateLayerId(id);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks the store at `root` and, with `repair`, fixes what is safe.
 *
 * @param root The store root.
 * @param options See {@link CheckOptions}.
 * @returns The problems found (and which were repaired).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkStore } from "./check.ts";
 * import { openStore } from "../store/open.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await store.create("base");
 * store.close();
 * await Deno.mkdir(`${root}/diff/gone`); // a crashed operation's leftover
 * const report = await checkStore(root, { repair: true });
 * assert.equal(report.layers, 1);
 * assert.deepEqual(report.problems.map((p) => p.kind), ["orphan-diff"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function checkStore(
  root: string,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const layout = new StoreLayout(root);
  const mounter = options.mounter ?? directMounter;
  const run = () => scan(layout, options.repair === true, mounter);
  // Without --repair, read without the lock: check must work on a busy or
  // read-only store.
  if (!options.repair) return await run();
  // The images lock before the store lock, as rmi, load and pull take them
  // (the other order could deadlock with them); a store that never held an
  // image has no index to repair and gets no images/ dir from check.
  const images = await Deno.lstat(`${imagesDir({ root })}/index.json`).then(
    () => true,
    () => false,
  );
  const report = images
    ? await withImagesLock({ root }, () => withStoreLock(layout, run))
    : await withStoreLock(layout, run);
  await pruneUnused(root, report, options.mounter);
  saidDone(report);
  return report;
}

/** What a problem's message becomes once repaired: the problem, then what was done. */
const REPAIRED_TEXT = new WeakMap<Problem, string>();

/** Repaired problems' messages say what was done, not what to run. */
function saidDone(report: CheckReport): void {
  for (const p of report.problems) {
    const done = REPAIRED_TEXT.get(p);
    if (p.repaired && done !== undefined) p.message = done;
  }
}

/** --repair's last step: the unused image layers, as prune removes them. */
async function pruneUnused(
  root: string,
  report: CheckReport,
  mounter: Mounter | undefined,
): Promise<void> {
  const unused = report.problems.filter((p) => p.kind === "unused-layer");
  if (unused.length) {
    // Removing layers takes the store lock itself: after the locked part.
    const store = await openStore({ root, backend: "auto", mounter });
    try {
      const { removedLayers } = await pruneImages(store);
      for (const p of unused) p.repaired = removedLayers.includes(p.subject);
    } finally {
      store.close();
    }
  }
}

async function scan(
  layout: StoreLayout,
  repair: boolean,
  mounter: Mounter,
): Promise<CheckReport> {
  const problems: Problem[] = [];
  // `problem; advice` is the message; `problem; done` once repaired.
  const add = (
    kind: ProblemKind,
    subject: string,
    problem: string,
    advice: string,
    done: string,
  ) => {
    const p: Problem = {
      kind,
      subject,
      message: `${problem}; ${advice}`,
      repaired: false,
    };
    REPAIRED_TEXT.set(p, `${problem}; ${done}`);
    problems.push(p);
    return p;
  };
  const config = await readConfig(layout);
  if (!config) throw new StoreError(`${layout.root} holds no layerfs.json`);
  const backend = backendByName(config.backend);
  // A commit that died after its commit point is finished, never swept.
  if (repair) await finishCommits(layout, backend);
  let mounts = await readMountInfo();
  const unmountInside = async (path: string) => {
    for (const m of mounts) {
      if (m.mountPoint === path || m.mountPoint.startsWith(path + "/")) {
        await mounter.unmount(
          layout.root,
          idOf(layout, m.mountPoint),
          m.mountPoint,
        );
      }
    }
  };

  // Leftovers and orphans: the store's own recovery rules (what open sweeps).
  for (const { kind, path } of await findLeftovers(layout, backend)) {
    const orphanDiff = kind === "orphan" && path.startsWith("diff/");
    const p = orphanDiff
      ? add(
        "orphan-diff",
        path,
        `${path} has no layers/${
          path.slice(5)
        }: it is not a layer (a create or remove died half way)`,
        "--repair deletes it",
        "deleted it",
      )
      : add(
        "leftover",
        path,
        `${path} is left over from an interrupted operation`,
        `"layerfs check --repair" deletes it`,
        "deleted it",
      );
    if (repair) {
      const abs = `${layout.root}/${path}`;
      // Unmount anything a crashed process left mounted inside it first, so
      // the delete never descends into a mounted view.
      await unmountInside(abs);
      if (kind === "lock") await removeLockFile(abs);
      else {
        await Deno.remove(abs, { recursive: true }).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
      }
      p.repaired = true;
    }
  }
  if (repair) mounts = await readMountInfo();
  const mountedAt = new Map<string, MountInfoEntry>();
  for (const m of mounts) mountedAt.set(m.mountPoint, m);

  // Layers and their parents.
  const layerIds = (await entryNames(layout.layers())).filter((n) =>
    isValidId(n) && !TEMP_RE.test(n)
  );
  const layers = new Set(layerIds);
  const parentsOf = new Map<string, string[]>();
  for (const id of layerIds) {
    for (const d of await findDamage(layout, backend, id, layers)) {
      const [problem, advice] = damageMessage(d);
      const p = add(
        d.kind,
        d.kind === "missing-parent" ? id : d.path,
        problem,
        advice,
        "remade it",
      );
      if (repair) p.repaired = await repairDamage(layout, backend, d);
    }
    const parents = await readParents(layout, id).catch(() => undefined);
    if (parents) parentsOf.set(id, parents);
  }

  // Counts against mounts. A layer without parents is its own view (no mount).
  let counts = await readCounts(layout);
  const needsMount = async (id: string) =>
    parentsOf.has(id) &&
    (await planLayerMount(layout.root, id).catch(() => undefined))?.kind !==
      "none";
  const newCounts = { ...counts };
  const staleIds: string[] = [];
  for (const [id, n] of Object.entries(counts)) {
    const gone = !layers.has(id);
    const unmounted = !gone && await needsMount(id) &&
      !mountedAt.has(layout.mnt(id));
    if (!gone && !unmounted) continue;
    const p = add(
      "stale-count",
      id,
      gone
        ? `mount count ${n} recorded for layer "${id}", which does not exist`
        : `mount count ${n} recorded for layer "${id}" but ${
          layout.mnt(id)
        } is not mounted`,
      "--repair drops it",
      "dropped it",
    );
    if (repair) {
      delete newCounts[id];
      staleIds.push(id);
      p.repaired = true;
    }
  }
  if (staleIds.length) {
    // A hold is a unit of its count: dropped with it, first (holds.ts).
    dropHoldsOf(layout, staleIds);
    await writeCounts(layout, newCounts);
  }

  // Views held for one call by processes that have exited.
  const dead = deadHolds(layout);
  const held = new Map<string, { pid: number; id: string; n: number }>();
  for (const h of dead) {
    const key = `${h.file}\0${h.id}`;
    const e = held.get(key) ?? { pid: h.pid, id: h.id, n: 0 };
    e.n++;
    held.set(key, e);
  }
  const deadProblems = [...held.values()].map(({ pid, id, n }) =>
    add(
      "dead-holder",
      id,
      `layer "${id}"'s view is held${
        n > 1 ? ` ${n} times` : ""
      } by process ${pid}, which has exited (a diff, changes or diffSize that never finished)`,
      "--repair releases it (so does opening the store)",
      "released it",
    )
  );
  if (repair && dead.length) {
    await releaseDeadHolds(layout, mounter);
    for (const p of deadProblems) p.repaired = true;
    counts = await readCounts(layout);
    mounts = await readMountInfo();
  }

  // Mounts on mnt/<x> with no count.
  const mntPrefix = `${layout.root}/mnt/`;
  for (const m of mounts) {
    if (!m.mountPoint.startsWith(mntPrefix)) continue;
    const id = m.mountPoint.slice(mntPrefix.length);
    if (id.includes("/")) continue;
    if ((counts[id] ?? 0) > 0 && layers.has(id)) continue;
    const p = add(
      "orphan-mount",
      `mnt/${id}`,
      `${m.mountPoint} is mounted (${m.fstype}) but no mount count is recorded for it`,
      "--repair unmounts it",
      "unmounted it",
    );
    if (repair) {
      await mounter.unmount(layout.root, id, m.mountPoint);
      p.repaired = true;
    }
  }

  // Images whose layers are gone.
  for (const d of await danglingImages({ root: layout.root }, layers, repair)) {
    const p = add(
      "dangling-image",
      d.id,
      `image ${d.id}${
        d.refs.length ? ` (${d.refs.join(", ")})` : ""
      } names layer(s) that are gone (${
        d.missing.map((m) => m.slice(0, 12)).join(", ")
      })`,
      "load it again, or --repair drops its references",
      "dropped its references",
    );
    p.repaired = repair;
  }

  // Image layers no image uses (an interrupted load or pull), top first.
  const idx = await readIndex({ root: layout.root });
  // Released layers that are gone since (removed with rm): their entries
  // would excuse a layer made again under the id. --repair, which holds
  // images/lock, drops them.
  const stale = Object.keys(idx.released ?? {}).filter((l) => !layers.has(l));
  if (repair && stale.length > 0) {
    for (const l of stale) delete idx.released![l];
    if (Object.keys(idx.released!).length === 0) delete idx.released;
    await writeIndex({ root: layout.root }, idx);
  }
  const infos = [];
  for (const [id, parents] of parentsOf) {
    infos.push({
      id,
      parent: parents[0],
      mounts: counts[id] ?? 0,
      imageLayer: await imageMade(layout, id),
    });
  }
  for (const id of unusedImageLayers(idx, infos)) {
    // Released by an image's removal (`rmi --force` while a container was
    // built on it): garbage for prune, as docker's dangling images, not a
    // problem; only what no removal explains is an interruption's.
    if (idx.released && Object.hasOwn(idx.released, id)) continue;
    if (await layerBusy({ root: layout.root }, id)) continue;
    add(
      "unused-layer",
      id,
      `image layer "${
        id.slice(0, 12)
      }" belongs to no image (left by an interrupted load or pull; ` +
        `pulling the image again reuses it)`,
      `"layerfs prune" or --repair removes it`,
      "removed it",
    );
  }

  return { root: layout.root, layers: layers.size, problems };
}

/** What `check` says of a damaged layer: the problem, and what to do. */
function damageMessage(d: Damage): [string, string] {
  const rm = `"layerfs rm --force ${d.id}"`;
  const what = `layer "${d.id}": ${d.problem}`;
  if (d.repairable) return [what, "--repair remakes it"];
  if (d.kind === "missing-parent") {
    return [
      `layer "${d.id}" has missing parent(s) ${
        d.missing!.map((m) => `"${m}"`).join(", ")
      } (${d.path})`,
      `its view cannot be mounted: remove it with ${rm}`,
    ];
  }
  if (d.path.startsWith("meta/")) {
    return [
      what,
      `whether it is read-write and its ` +
      `mount label cannot be known, so it is not rebuilt: remove it with ${rm} ` +
      `(if you know it is an image layer without a mount label, deleting ` +
      `${d.path} makes it one: a layer without meta reads as that)`,
    ];
  }
  if (d.kind === "missing-dir") {
    return [
      what,
      `it cannot be restored without its ` +
      `data: remove it with ${rm}, then apply or pull it again`,
    ];
  }
  return [what, `its parents cannot be known: remove it with ${rm}`];
}

/** The layer a mount point under `mnt/` belongs to (for the Mounter), else its path. */
function idOf(layout: StoreLayout, mountPoint: string): string {
  const prefix = `${layout.root}/mnt/`;
  return mountPoint.startsWith(prefix)
    ? mountPoint.slice(prefix.length).split("/")[0]
    : mountPoint;
}

/** Whether a load or pull made layer `id` (its meta says so); unreadable: no. */
async function imageMade(
  layout: StoreLayout,
  id: string,
): Promise<true | undefined> {
  try {
    return (await readMeta(layout, id)).imageLayer;
  } catch {
    return undefined; // damaged: reported as such, never pruned
  }
}
