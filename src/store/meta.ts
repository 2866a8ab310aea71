/**
 * Per-layer records on disk: `layers/<id>` (parent chain, nearest first, one
 * id a line: Docker's aufs format) and `meta/<id>` (JSON: read-write flag,
 * mount label).
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import { writeFileAtomic } from "./_atomic.ts";
import { validateLayerId } from "./id.ts";
import type { StoreLayout } from "../layout.ts";

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
}

/**
 * Reads `layers/<id>`: the parent chain, nearest first; undefined when the
 * layer does not exist. Every id read back is validated again, so a tampered
 * file cannot smuggle a path into a mount option.
 *
 * @throws {StoreError} when the file holds an invalid id.
 *
 * @example
 * ```ts ignore
 * import { StoreLayout } from "../layout.ts";
 * import { readParents } from "./meta.ts";
 * console.log(await readParents(new StoreLayout("/var/lib/layerfs"), "app"));
 * ```
 */
export async function readParents(
  layout: StoreLayout,
  id: string,
): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(layout.layers(id));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const ids = text.split("\n").filter((l) => l !== "");
  for (const p of ids) {
    try {
      validateLayerId(p);
    } catch {
      throw new StoreError(
        `layers/${id} in ${layout.root} names an invalid parent ${
          JSON.stringify(p)
        }; ` +
          `the store is corrupt: remove layer "${id}" with --force`,
      );
    }
  }
  return ids;
}

/**
 * Writes `layers/<id>` crash-safely (temp, fsync, rename). This is the commit
 * point of a new layer: the layer exists once this file does.
 *
 * @example
 * ```ts ignore
 * import { StoreLayout } from "../layout.ts";
 * import { writeParents } from "./meta.ts";
 * await writeParents(new StoreLayout("/var/lib/layerfs"), "app", ["base"]);
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
 * Reads `meta/<id>`; a missing file (a store made by Docker's aufs driver)
 * reads as an image layer without label.
 *
 * @example
 * ```ts ignore
 * import { StoreLayout } from "../layout.ts";
 * import { readMeta } from "./meta.ts";
 * console.log((await readMeta(new StoreLayout("/var/lib/layerfs"), "app")).readWrite);
 * ```
 */
export async function readMeta(
  layout: StoreLayout,
  id: string,
): Promise<LayerMeta> {
  let text: string;
  try {
    text = await Deno.readTextFile(layout.meta(id));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { readWrite: false };
    throw e;
  }
  try {
    const m = JSON.parse(text);
    const meta: LayerMeta = { readWrite: m.readWrite === true };
    if (typeof m.mountLabel === "string" && m.mountLabel !== "") {
      meta.mountLabel = m.mountLabel;
    }
    if (typeof m.committedFrom === "string") {
      meta.committedFrom = validateLayerId(m.committedFrom);
    }
    return meta;
  } catch {
    throw new StoreError(
      `meta/${id} in ${layout.root} is not valid JSON; the store is corrupt`,
    );
  }
}

/**
 * Writes `meta/<id>` crash-safely.
 *
 * @example
 * ```ts ignore
 * import { StoreLayout } from "../layout.ts";
 * import { writeMeta } from "./meta.ts";
 * await writeMeta(new StoreLayout("/var/lib/layerfs"), "app", { readWrite: true });
 * ```
 */
export async function writeMeta(
  layout: StoreLayout,
  id: string,
  meta: LayerMeta,
): Promise<void> {
  await writeFileAtomic(layout.meta(id), JSON.stringify(meta) + "\n");
}
