/**
 * Per-layer records on disk: `layers/<id>` (parent chain, nearest first, one
 * id a line: Docker's aufs format) and `meta/<id>` (JSON: read-write flag,
 * mount label).
 *
 * @module
 */

import { LayerDamaged } from "../errors.ts";
import type { StoreLayout } from "../layout.ts";
import { writeFileAtomic } from "./_atomic.ts";
import { validateLayerId } from "./id.ts";

function isLayerId(id: string): boolean {
  try {
    validateLayerId(id);
    return true;
  } catch {
    return false;
  }
}

/** What `meta/<id>` holds. */
export interface LayerMeta {
  /** A container's writable layer (createReadWrite) rather than an image layer. */
  readWrite: boolean;
  /** SELinux mount label recorded for the layer's view. */
  mountLabel?: string;
  /**
   * Set while `commit` turns read-write layer `committedFrom` into this one:
   * if it dies after its commit point, recovery finishes moving the content.
   */
  committedFrom?: string;
  /**
   * Made by an image load or pull (`applyDiffStaged` with `imageLayer`):
   * only such layers can be unused image layers, which `pruneImages` and
   * `layerfs check --repair` remove once no image names them. Layers made
   * by `create`, `apply` or `commit` never are, whatever their id.
   */
  imageLayer?: true;
}

/**
 * Parses the text of `layers/<id>`: the parent chain, nearest first. Every
 * id is validated, so a tampered file cannot smuggle a path into a mount
 * option. Pure (no I/O), so the privileged helper parses the bytes it read
 * through its own checked fds with exactly the store's rule. The error names
 * the line, never its content (the helper runs as root on a user's file).
 *
 * @param text The file's content.
 * @param id The layer whose file it is (for the message).
 * @returns The parent ids, nearest first.
 * @throws {LayerDamaged} (a StoreError) when a line is not a valid layer id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseParents } from "./meta.ts";
 * import { LayerDamaged } from "../errors.ts";
 * assert.deepEqual(parseParents("child\nbase\n", "app"), ["child", "base"]);
 * assert.throws(() => parseParents("../etc\n", "app"), LayerDamaged);
 * ```
 */
export function parseParents(text: string, id: string): string[] {
  const ids = text.split("\n").filter((l) => l !== "");
  ids.forEach((p, i) => {
    try {
      validateLayerId(p);
    } catch {
      throw new LayerDamaged(
        id,
        `layers/${id} names an invalid parent id on line ${i + 1}`,
      );
    }
  });
  return ids;
}

/**
 * Reads `layers/<id>` (see {@link parseParents}); undefined when the layer
 * does not exist.
 *
 * @throws {LayerDamaged} when the file holds an invalid id or cannot be read
 *   (a directory in its place, an I/O error); not for permission errors,
 *   which say nothing about the layer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readParents } from "./meta.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/layers`);
 * await Deno.writeTextFile(`${root}/layers/app`, "base\n");
 * assert.deepEqual(await readParents(new StoreLayout(root), "app"), ["base"]);
 * assert.equal(await readParents(new StoreLayout(root), "gone"), undefined);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function readParents(
  layout: StoreLayout,
  id: string,
): Promise<string[] | undefined> {
  try {
    return Promise.resolve(readParentsSync(layout, id));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Whether layer `id` exists: `layers/<id>` is there, readable or damaged
 * (a damaged layer still exists until it is removed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { isLayer } from "./meta.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/layers`);
 * await Deno.writeTextFile(`${root}/layers/app`, "../etc\n"); // damaged, but there
 * assert.equal(await isLayer(new StoreLayout(root), "app"), true);
 * assert.equal(await isLayer(new StoreLayout(root), "gone"), false);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function isLayer(
  layout: StoreLayout,
  id: string,
): Promise<boolean> {
  try {
    return (await readParents(layout, id)) !== undefined;
  } catch (e) {
    if (e instanceof LayerDamaged) return true;
    throw e;
  }
}

function readParentsSync(
  layout: StoreLayout,
  id: string,
): string[] | undefined {
  let text: string;
  try {
    // Sync: a small file, read on every get and put, where the thread hop
    // of an async read costs more than the read.
    text = Deno.readTextFileSync(layout.layers(id));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw unreadable(layout, id, "layers", e);
  }
  try {
    return parseParents(text, id);
  } catch (e) {
    throw inStore(layout, e);
  }
}

/** A read error of a layer's record as LayerDamaged (permission errors stay as they are). */
function unreadable(
  layout: StoreLayout,
  id: string,
  dir: "layers" | "meta",
  e: unknown,
): unknown {
  if (e instanceof Deno.errors.PermissionDenied || !(e instanceof Error)) {
    return e;
  }
  return new LayerDamaged(id, `${dir}/${id} cannot be read (${e.message})`, {
    cause: e,
    root: layout.root,
  });
}

/** A parser's LayerDamaged with the store named (the pure parsers do not know it). */
function inStore(layout: StoreLayout, e: unknown): unknown {
  if (!(e instanceof LayerDamaged)) return e;
  return new LayerDamaged(e.id, e.problem, { cause: e, root: layout.root });
}

/**
 * Writes `layers/<id>` crash-safely (temp, fsync, rename). This is the commit
 * point of a new layer: the layer exists once this file does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { writeParents } from "./meta.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/layers`);
 * await writeParents(new StoreLayout(root), "app", ["child", "base"]);
 * assert.equal(await Deno.readTextFile(`${root}/layers/app`), "child\nbase\n");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeParents(
  layout: StoreLayout,
  id: string,
  parents: string[],
): Promise<void> {
  await writeFileAtomic(
    layout.layers(id),
    parents.map((p) => p + "\n").join(""),
  );
}

/**
 * Parses the text of `meta/<id>` (JSON). Pure, shared by the store and the
 * privileged helper; unknown fields are ignored and a non-string label is
 * dropped. The error never echoes the content.
 *
 * @param text The file's content.
 * @param id The layer whose file it is (for the message).
 * @throws {LayerDamaged} (a StoreError) when it is not a JSON object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMeta } from "./meta.ts";
 * assert.deepEqual(parseMeta('{"readWrite":true}', "ctr"), { readWrite: true });
 * assert.deepEqual(parseMeta('{"mountLabel":7,"x":1}', "img"), { readWrite: false });
 * ```
 */
export function parseMeta(text: string, id: string): LayerMeta {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    m = undefined;
  }
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    throw new LayerDamaged(id, `meta/${id} is not a valid JSON object`);
  }
  const o = m as {
    readWrite?: unknown;
    mountLabel?: unknown;
    committedFrom?: unknown;
    imageLayer?: unknown;
  };
  const meta: LayerMeta = { readWrite: o.readWrite === true };
  if (o.imageLayer === true) meta.imageLayer = true;
  if (typeof o.mountLabel === "string" && o.mountLabel !== "") {
    meta.mountLabel = o.mountLabel;
  }
  if (o.committedFrom !== undefined) {
    if (typeof o.committedFrom !== "string" || !isLayerId(o.committedFrom)) {
      throw new LayerDamaged(
        id,
        `meta/${id} names an invalid committedFrom layer`,
      );
    }
    meta.committedFrom = o.committedFrom;
  }
  return meta;
}

/**
 * Reads `meta/<id>`; a missing file (a store made by Docker's aufs driver)
 * reads as an image layer without label.
 *
 * @throws {LayerDamaged} when the file is not a JSON object or cannot be
 *   read (not for permission errors).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readMeta } from "./meta.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/meta`);
 * await Deno.writeTextFile(`${root}/meta/ctr`, '{"readWrite":true}');
 * assert.deepEqual(await readMeta(new StoreLayout(root), "ctr"), { readWrite: true });
 * assert.deepEqual(await readMeta(new StoreLayout(root), "img"), { readWrite: false }); // no file
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function readMeta(
  layout: StoreLayout,
  id: string,
): Promise<LayerMeta> {
  try {
    return Promise.resolve(readMetaSync(layout, id));
  } catch (e) {
    return Promise.reject(e);
  }
}

function readMetaSync(layout: StoreLayout, id: string): LayerMeta {
  let text: string;
  try {
    text = Deno.readTextFileSync(layout.meta(id)); // sync: see readParents
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { readWrite: false };
    throw unreadable(layout, id, "meta", e);
  }
  try {
    return parseMeta(text, id);
  } catch (e) {
    throw inStore(layout, e);
  }
}

/**
 * Writes `meta/<id>` crash-safely.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readMeta, writeMeta } from "./meta.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/meta`);
 * await writeMeta(new StoreLayout(root), "ctr", { readWrite: true });
 * assert.deepEqual(await readMeta(new StoreLayout(root), "ctr"), { readWrite: true });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeMeta(
  layout: StoreLayout,
  id: string,
  meta: LayerMeta,
): Promise<void> {
  await writeFileAtomic(layout.meta(id), JSON.stringify(meta) + "\n");
}
