/**
 * Giving back the holds (`holds.ts`) of processes that died holding them:
 * what store open does under the lock, and `layerfs check --repair`. Each
 * hold is released as a put would: the count drops by one and the last one
 * unmounts `mnt/<id>` (through the Mounter). The record line goes before
 * the count; a last one's unmount goes before both (as in `putView`), so a
 * failing unmount leaves the hold recorded for the next try. A hold of a
 * layer that no longer exists is just dropped.
 *
 * @module
 */

import { exists } from "../_fs.ts";
import type { StoreLayout } from "../layout.ts";
import {
  mountAt,
  type MountInfoEntry,
  readMountInfo,
} from "../mount/mountinfo.ts";
import type { Mounter } from "../mount/mounter.ts";
import { dropHold, readHolds, sweepEmptyHolds } from "./holds.ts";
import { readCount, writeCount } from "./refcounts.ts";

/** One hold of a process that has exited. */
export interface DeadHold {
  /** Its record in `run/holds/`. */
  file: string;
  /** The process that took it. */
  pid: number;
  /** The layer whose view it holds. */
  id: string;
}

/**
 * Every hold whose owner has exited, one entry per hold (read-only; take
 * the store lock for a result that cannot change under you).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { deadHolds } from "./dead_holds.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run/holds`, { recursive: true });
 * await Deno.writeTextFile(`${root}/run/holds/999999999-7`, "# boot - pidns -\napp\n");
 * assert.deepEqual(deadHolds(new StoreLayout(root)), [
 *   { file: "999999999-7", pid: 999999999, id: "app" },
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function deadHolds(layout: StoreLayout): DeadHold[] {
  const out: DeadHold[] = [];
  for (const h of readHolds(layout)) {
    if (!h.exited) continue;
    for (const id of h.ids) out.push({ file: h.file, pid: h.pid, id });
  }
  return out;
}

/**
 * Releases every hold of exited processes (caller holds the store lock) and
 * deletes their records (and the empty ones exited processes left).
 * Returns what was released. One that cannot be
 * released (its unmount fails) stays recorded; the others are released,
 * then the first failure is thrown.
 *
 * @throws {StoreError} when a record or count cannot be written;
 *   {MountError} from the Mounter's unmount.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { directMounter } from "../mount/mounter.ts";
 * import { releaseDeadHolds } from "./dead_holds.ts";
 * import { readCount, writeCount } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * await Deno.mkdir(`${root}/layers`);
 * await Deno.writeTextFile(`${root}/layers/app`, "");
 * writeCount(layout, "app", 2); // one get of someone else's, one dead hold
 * await Deno.mkdir(`${root}/run/holds`, { recursive: true });
 * await Deno.writeTextFile(`${root}/run/holds/999999999-7`, "# boot - pidns -\napp\ngone\n");
 * const released = await releaseDeadHolds(layout, directMounter);
 * assert.deepEqual(released.map((h) => h.id), ["app", "gone"]);
 * assert.equal(readCount(layout, "app"), 1);
 * assert.deepEqual([...Deno.readDirSync(`${root}/run/holds`)], []);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function releaseDeadHolds(
  layout: StoreLayout,
  mounter: Mounter,
): Promise<DeadHold[]> {
  sweepEmptyHolds(layout);
  const dead = deadHolds(layout);
  if (dead.length === 0) return [];
  let info = await readMountInfo();
  const released: DeadHold[] = [];
  let failure: unknown;
  for (const h of dead) {
    try {
      info = await releaseOne(layout, mounter, h, info);
      released.push(h);
    } catch (e) {
      failure ??= e; // the others are still released; this one stays recorded
    }
  }
  if (failure !== undefined) throw failure;
  return released;
}

/** Releases one dead hold; returns the mount table as it is afterwards. */
async function releaseOne(
  layout: StoreLayout,
  mounter: Mounter,
  h: DeadHold,
  info: MountInfoEntry[],
): Promise<MountInfoEntry[]> {
  if (!(await exists(layout.layers(h.id)))) {
    dropHold(layout, h.file, h.id); // a gone layer's count went with it
    return info;
  }
  const n = readCount(layout, h.id);
  const mnt = layout.mnt(h.id);
  if (n <= 1 && mountAt(info, mnt)) {
    // The last one: unmounted first, so a failing unmount changes nothing,
    // and dying right after leaves a count without its mount, which is
    // dropped with its holds as stale.
    await mounter.unmount(layout.root, h.id, mnt);
    info = await readMountInfo();
  }
  dropHold(layout, h.file, h.id); // the record, then the count
  if (n > 0) writeCount(layout, h.id, n - 1);
  return info;
}
