/**
 * `layerfs check [--repair]`: verifies a store on disk against its layout
 * (src/store/layout.ts) and the kernel's mount table, and repairs what is
 * safe to repair.
 *
 * Finds:
 * - layers whose parent is missing (`missing-parent`), or whose `layers/<id>`
 *   file is unreadable (`bad-metadata`): reported; fix with `rm --force`;
 * - leftovers of interrupted work: entries of `staging/`, `*-removing` entries,
 *   temp files of atomic writes (`leftover`): repair deletes them;
 * - mount counts for layers whose view is not mounted, or that are gone
 *   (`stale-count`): repair drops the count;
 * - overlay mounts on `mnt/<id>` with no count (`orphan-mount`): repair unmounts;
 * - `diff/<id>` dirs with no `layers/<id>` (`orphan-diff`): a create or remove
 *   that died between its steps (`layers/<id>` is the commit point); repair
 *   deletes them, as the store's own sweep on open does.
 *
 * Repairs run under the store's lock (run/lock), so they never race a
 * layerfs process that is creating, removing or mounting.
 *
 * @module
 */

import { StoreLayout } from "../store/layout.ts";
import { validateLayerId } from "../store/id.ts";
import { readCounts, withStoreLock, writeCounts } from "../store/refcounts.ts";
import { type MountInfoEntry, readMountInfo } from "../mount/mountinfo.ts";
import { unmountTarget } from "../mount/perform.ts";

/** Kinds of problems `check` reports. */
export type ProblemKind =
  | "missing-parent"
  | "bad-metadata"
  | "leftover"
  | "stale-count"
  | "orphan-mount"
  | "orphan-diff";

/** One problem found. */
export interface Problem {
  /** What kind. */
  kind: ProblemKind;
  /** The layer or path concerned (relative to the root). */
  subject: string;
  /** Human description with the fix. */
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
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

function isValidId(id: string): boolean {
  try {
    validateLayerId(id);
    return true;
  } catch {
    return false;
  }
}

async function stagingBusy(path: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(`${path}/lock`, { read: true, write: true });
  } catch {
    return false;
  }
  try {
    return !(await f.tryLock(true));
  } finally {
    f.close();
  }
}

const TEMP_RE = /\.tmp-\d+-[0-9a-f]{8}$/;

/**
 * Checks the store at `root` and, with `repair`, fixes what is safe.
 *
 * @param root The store root.
 * @param options See {@link CheckOptions}.
 * @returns The problems found (and which were repaired).
 * @example
 * ```ts ignore
 * import { checkStore } from "./check.ts";
 * const report = await checkStore("/var/lib/layerfs", { repair: true });
 * for (const p of report.problems) console.log(p.kind, p.message);
 * ```
 */
export async function checkStore(
  root: string,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const layout = new StoreLayout(root);
  const run = () => scan(layout, options.repair === true);
  // Without --repair, read without the lock: check must work on a busy or
  // read-only store.
  return options.repair ? await withStoreLock(layout, run) : await run();
}

async function scan(
  layout: StoreLayout,
  repair: boolean,
): Promise<CheckReport> {
  const problems: Problem[] = [];
  const add = (kind: ProblemKind, subject: string, message: string) => {
    const p: Problem = { kind, subject, message, repaired: false };
    problems.push(p);
    return p;
  };
  const mounts = await readMountInfo();
  const mountedAt = new Map<string, MountInfoEntry>();
  for (const m of mounts) mountedAt.set(m.mountPoint, m);

  // Leftovers: staging entries, "-removing" entries, atomic-write temps.
  const leftovers: string[] = [];
  for (const n of await names(layout.staging())) {
    // A builder holds an flock on staging/<x>/lock while it works (see the
    // store's sweep); only entries whose lock is free are leftovers.
    if (!(await stagingBusy(layout.staging(n)))) leftovers.push(`staging/${n}`);
  }
  for (const d of ["layers", "diff", "mnt", "work", "meta", "run", "l"]) {
    for (const n of await names(`${layout.root}/${d}`)) {
      if (n.endsWith("-removing") || TEMP_RE.test(n)) {
        leftovers.push(`${d}/${n}`);
      }
    }
  }
  for (const n of await names(layout.root)) {
    if (TEMP_RE.test(n)) leftovers.push(n);
  }
  for (const rel of leftovers) {
    const p = add(
      "leftover",
      rel,
      `${rel} is left over from an interrupted create or remove; "layerfs check --repair" deletes it`,
    );
    if (repair) {
      const path = `${layout.root}/${rel}`;
      // Unmount anything a crashed process left mounted inside it first, so
      // the delete never descends into a mounted view.
      for (const m of mounts) {
        if (m.mountPoint === path || m.mountPoint.startsWith(path + "/")) {
          unmountTarget(m.mountPoint);
        }
      }
      await Deno.remove(path, { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
      p.repaired = true;
    }
  }

  // Layers and their parents.
  const layerIds = (await names(layout.layers())).filter((n) =>
    isValidId(n) && !TEMP_RE.test(n)
  );
  const layers = new Set(layerIds);
  const parentsOf = new Map<string, string[]>();
  for (const id of layerIds) {
    let parents: string[];
    try {
      parents = (await Deno.readTextFile(layout.layers(id))).split("\n")
        .filter((l) => l !== "");
    } catch (e) {
      add(
        "bad-metadata",
        `layers/${id}`,
        `layers/${id} cannot be read (${(e as Error).message})`,
      );
      continue;
    }
    if (!parents.every(isValidId)) {
      add(
        "bad-metadata",
        `layers/${id}`,
        `layers/${id} holds an invalid parent id; remove layer "${id}" with "layerfs rm --force ${id}"`,
      );
      continue;
    }
    parentsOf.set(id, parents);
    const missing = parents.filter((p) => !layers.has(p));
    if (missing.length) {
      add(
        "missing-parent",
        id,
        `layer "${id}" has missing parent(s) ${
          missing.map((m) => `"${m}"`).join(", ")
        }; ` +
          `its view cannot be mounted: remove it with "layerfs rm --force ${id}"`,
      );
    }
  }

  // diff dirs without metadata.
  for (const n of await names(`${layout.root}/diff`)) {
    if (n.endsWith("-removing") || TEMP_RE.test(n) || layers.has(n)) continue;
    const p = add(
      "orphan-diff",
      `diff/${n}`,
      `diff/${n} has no layers/${n}: it is not a layer (a create or remove died half way); ` +
        `--repair deletes it`,
    );
    if (repair) {
      const path = `${layout.root}/diff/${n}`;
      for (const m of mounts) {
        if (m.mountPoint === path || m.mountPoint.startsWith(path + "/")) {
          unmountTarget(m.mountPoint);
        }
      }
      await Deno.remove(path, { recursive: true });
      p.repaired = true;
    }
  }

  // Counts against mounts. A layer without parents is its own view (no mount).
  const counts = await readCounts(layout);
  const needsMount = (id: string) => (parentsOf.get(id)?.length ?? 0) > 0;
  const newCounts = { ...counts };
  let countsChanged = false;
  for (const [id, n] of Object.entries(counts)) {
    const gone = !layers.has(id);
    const unmounted = !gone && needsMount(id) && !mountedAt.has(layout.mnt(id));
    if (!gone && !unmounted) continue;
    const p = add(
      "stale-count",
      id,
      gone
        ? `mount count ${n} recorded for layer "${id}", which does not exist; --repair drops it`
        : `mount count ${n} recorded for layer "${id}" but ${
          layout.mnt(id)
        } is not mounted; --repair drops it`,
    );
    if (repair) {
      delete newCounts[id];
      countsChanged = true;
      p.repaired = true;
    }
  }
  if (countsChanged) await writeCounts(layout, newCounts);

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
      `${m.mountPoint} is mounted (${m.fstype}) but no mount count is recorded for it; ` +
        `--repair unmounts it`,
    );
    if (repair) {
      unmountTarget(m.mountPoint);
      p.repaired = true;
    }
  }

  return { root: layout.root, layers: layers.size, problems };
}
