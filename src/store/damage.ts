/**
 * Damaged layers: the one set of rules for what makes an existing layer
 * (one with a `layers/<id>` file) unusable, used by `layerfs check` (which
 * reports it, and with `--repair` remakes what holds no data) and by the
 * store when an operation on a layer fails (which then names the layer and
 * what is wrong instead of a bare syscall error).
 *
 * A layer is damaged when:
 * - `layers/<id>` or `meta/<id>` cannot be read or parsed (`bad-metadata`);
 *   a missing `meta/<id>` is not damage (it reads as an image layer without
 *   label, as in stores Docker's aufs driver made);
 * - `layers/<id>` names a parent that is not a layer (`missing-parent`);
 * - `diff/<id>`, its content, is gone or not a directory (`missing-dir`),
 *   except while a commit that died after its commit point still has the
 *   content in the old layer's dir (opening the store finishes it);
 * - an entry its backend keeps for it (overlay's `work/<id>`, `l/<short>`)
 *   is gone (`missing-dir`, repairable: such entries hold no data).
 *
 * Nothing here deletes or guesses data: a corrupt record is never rebuilt
 * (its read-write flag and mount label cannot be known), and a missing
 * content dir is never remade empty.
 *
 * @module
 */

import { exists, isDirectory } from "../_fs.ts";
import type { Backend } from "../backends/types.ts";
import { LayerDamaged } from "../errors.ts";
import type { StoreLayout } from "../layout.ts";
import { type LayerMeta, readMeta, readParents } from "./meta.ts";
import { liveIds } from "./recovery.ts";

/** Which rule found the damage (the `layerfs check` problem kinds). */
export type DamageKind = "bad-metadata" | "missing-parent" | "missing-dir";

/** One thing wrong with one layer. */
export interface Damage {
  /** Which rule found it. */
  kind: DamageKind;
  /** The damaged layer. */
  id: string;
  /** The file or dir concerned, relative to the store root. */
  path: string;
  /** What is wrong, naming `path` (never a file's content). */
  problem: string;
  /** Whether {@link repairDamage} remakes it exactly (it holds no data). */
  repairable: boolean;
  /** For `missing-parent`: the parents that are not layers. */
  missing?: string[];
}

/**
 * Everything wrong with layer `id` (read-only). `live` is the set of layer
 * ids (`liveIds`). A layer that does not exist has no damage.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { vfsBackend } from "../backends/vfs.ts";
 * import { findDamage } from "./damage.ts";
 * const root = await Deno.makeTempDir();
 * for (const d of ["layers", "diff", "meta"]) await Deno.mkdir(`${root}/${d}`);
 * await Deno.writeTextFile(`${root}/layers/app`, "base\n");
 * await Deno.writeTextFile(`${root}/meta/app`, "{trunc");
 * const found = await findDamage(new StoreLayout(root), vfsBackend, "app", new Set(["app"]));
 * assert.deepEqual(found.map((d) => [d.kind, d.path]), [
 *   ["missing-parent", "layers/app"],
 *   ["bad-metadata", "meta/app"],
 *   ["missing-dir", "diff/app"],
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function findDamage(
  layout: StoreLayout,
  backend: Backend,
  id: string,
  live: ReadonlySet<string>,
): Promise<Damage[]> {
  const out: Damage[] = [];
  const add = (
    kind: DamageKind,
    path: string,
    problem: string,
    repairable = false,
  ) => out.push({ kind, id, path, problem, repairable });
  let parents: string[] | undefined;
  try {
    parents = await readParents(layout, id);
  } catch (e) {
    if (!(e instanceof LayerDamaged)) throw e;
    add("bad-metadata", `layers/${id}`, e.problem);
  }
  if (parents === undefined && out.length === 0) return []; // not a layer
  const missing = (parents ?? []).filter((p) => !live.has(p));
  if (missing.length) {
    add("missing-parent", `layers/${id}`, missingParents(id, missing));
    out[out.length - 1].missing = missing;
  }
  let meta: LayerMeta | undefined;
  try {
    meta = await readMeta(layout, id);
  } catch (e) {
    if (!(e instanceof LayerDamaged)) throw e;
    add("bad-metadata", `meta/${id}`, e.problem);
  }
  if (!(await isDirectory(layout.diff(id)))) {
    const from = meta?.committedFrom;
    const finishing = from !== undefined && await exists(layout.diff(from));
    if (!finishing) {
      add(
        "missing-dir",
        `diff/${id}`,
        `diff/${id} is missing (the layer's content is gone)`,
      );
    }
  }
  for (const path of await backend.missingEntries(layout, id)) {
    add(
      "missing-dir",
      path,
      `${path} is missing (${backend.name} keeps it for the layer; it holds no data)`,
      true,
    );
  }
  return out;
}

function missingParents(id: string, missing: string[]): string {
  const names = missing.map((p) => `"${p}"`).join(", ");
  return missing.length === 1
    ? `layers/${id} names parent ${names}, which is not a layer`
    : `layers/${id} names parents ${names}, which are not layers`;
}

/**
 * The damage that keeps layer `id`'s view from being made: its own, else
 * the first of its parents' (read-only). For an operation that failed, to
 * turn a bare syscall error into {@link LayerDamaged}; undefined when the
 * layer and its chain look whole (the failure was something else).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { vfsBackend } from "../backends/vfs.ts";
 * import { chainDamage } from "./damage.ts";
 * const root = await Deno.makeTempDir();
 * for (const d of ["layers", "diff", "meta"]) await Deno.mkdir(`${root}/${d}`);
 * await Deno.writeTextFile(`${root}/layers/base`, "");
 * await Deno.writeTextFile(`${root}/layers/app`, "base\n");
 * await Deno.mkdir(`${root}/diff/app`);
 * const e = await chainDamage(new StoreLayout(root), vfsBackend, "app");
 * assert.equal(e?.id, "base");
 * assert.match(e!.message, /diff\/base is missing .*needed by layer "app"/);
 * await Deno.mkdir(`${root}/diff/base`);
 * assert.equal(await chainDamage(new StoreLayout(root), vfsBackend, "app"), undefined);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function chainDamage(
  layout: StoreLayout,
  backend: Backend,
  id: string,
  cause?: unknown,
): Promise<LayerDamaged | undefined> {
  const live = await liveIds(layout);
  const own = (await findDamage(layout, backend, id, live))[0];
  if (own) {
    return new LayerDamaged(id, own.problem, { cause, root: layout.root });
  }
  let parents: string[];
  try {
    parents = (await readParents(layout, id)) ?? [];
  } catch {
    return undefined;
  }
  for (const p of parents) {
    // A parent's backend dirs (overlay's work dir, `l/` link) take no part
    // in its child's view: such damage did not cause this failure.
    const d = (await findDamage(layout, backend, p, live)).find((x) =>
      !x.repairable
    );
    if (d) {
      return new LayerDamaged(p, `${d.problem}, needed by layer "${id}"`, {
        cause,
        root: layout.root,
      });
    }
  }
  return undefined;
}

/** What {@link listedLayer} returns: a row of `Store.list` without its count. */
export interface ListedLayer {
  /** The layer id. */
  id: string;
  /** Its direct parent (undefined for a base layer, or when unreadable). */
  parent: string | undefined;
  /** Its read-write flag (false when `meta/<id>` is unreadable). */
  readWrite: boolean;
  /** Made by an image load or pull. */
  imageLayer?: true;
  /** Why it is damaged, when it is. */
  damaged?: string;
}

/**
 * Layer `id` as a listing shows it, marked when damaged by what the listing
 * can see without a syscall of its own: its two records (read anyway), its
 * parent among `live` and its content dir among `contents` (the names in
 * `diff/`, read once for the whole list). Undefined when it does not exist.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { listedLayer } from "./damage.ts";
 * const root = await Deno.makeTempDir();
 * for (const d of ["layers", "meta"]) await Deno.mkdir(`${root}/${d}`);
 * await Deno.writeTextFile(`${root}/layers/app`, "");
 * await Deno.writeTextFile(`${root}/meta/app`, "{trunc");
 * const live = new Set(["app"]);
 * assert.deepEqual(await listedLayer(new StoreLayout(root), "app", live, new Set(["app"])), {
 *   id: "app",
 *   parent: undefined,
 *   readWrite: false,
 *   damaged: "meta/app is not a valid JSON object",
 * });
 * await Deno.writeTextFile(`${root}/meta/app`, '{"readWrite":true}');
 * assert.deepEqual(await listedLayer(new StoreLayout(root), "app", live, new Set(["app"])), {
 *   id: "app",
 *   parent: undefined,
 *   readWrite: true,
 * });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function listedLayer(
  layout: StoreLayout,
  id: string,
  live: ReadonlySet<string>,
  contents: ReadonlySet<string>,
): Promise<ListedLayer | undefined> {
  const why: string[] = [];
  let parents: string[] | undefined;
  try {
    parents = await readParents(layout, id);
    if (!parents) return undefined;
  } catch (e) {
    if (!(e instanceof LayerDamaged)) throw e;
    why.push(e.problem);
  }
  let meta: LayerMeta = { readWrite: false };
  try {
    meta = await readMeta(layout, id);
  } catch (e) {
    if (!(e instanceof LayerDamaged)) throw e;
    why.push(e.problem);
  }
  const missing = (parents ?? []).filter((p) => !live.has(p));
  if (missing.length) why.push(missingParents(id, missing));
  const from = meta.committedFrom;
  if (!contents.has(id) && !(from !== undefined && contents.has(from))) {
    why.push(`diff/${id} is missing (the layer's content is gone)`);
  }
  const row: ListedLayer = {
    id,
    parent: parents?.[0],
    readWrite: meta.readWrite,
  };
  if (meta.imageLayer) row.imageLayer = true;
  if (why.length) row.damaged = why.join("; ");
  return row;
}

/**
 * Remakes a repairable {@link Damage} (caller holds the store lock); returns
 * whether it did. Damage that would need the layer's data is left alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { vfsBackend } from "../backends/vfs.ts";
 * import { repairDamage } from "./damage.ts";
 * const root = await Deno.makeTempDir();
 * const gone = { kind: "missing-dir", id: "app", path: "diff/app", problem: "", repairable: false } as const;
 * assert.equal(await repairDamage(new StoreLayout(root), vfsBackend, gone), false);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function repairDamage(
  layout: StoreLayout,
  backend: Backend,
  damage: Damage,
): Promise<boolean> {
  if (!damage.repairable) return false;
  await backend.restoreEntries(layout, damage.id);
  return true;
}
