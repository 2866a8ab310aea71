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

function isLayerId(id: string): boolean {
  try {
    validateLayerId(id);
    return true;
  } catch {
    return false;
  }
}
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
 * Parses the text of `layers/<id>`: the parent chain, nearest first. Every
 * id is validated, so a tampered file cannot smuggle a path into a mount
 * option. Pure (no I/O), so the privileged helper parses the bytes it read
 * through its own checked fds with exactly the store's rule. The error names
 * the line, never its content (the helper runs as root on a user's file).
 *
 * @param text The file's content.
 * @param id The layer whose file it is (for the message).
 * @returns The parent ids, nearest first.
 * @throws {StoreError} when a line is not a valid layer id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseParents } from "./meta.ts";
 * import { StoreError } from "../errors.ts";
 * assert.deepEqual(parseParents("child\nbase\n", "app"), ["child", "base"]);
 * assert.throws(() => parseParents("../etc\n", "app"), StoreError);
 * ```
 */
export function parseParents(text: string, id: string): string[] {
  const ids = text.split("\n").filter((l) => l !== "");
  ids.forEach((p, i) => {
    try {
      validateLayerId(p);
    } catch {
      throw new StoreError(
        `layers/${id} names an invalid parent id on line ${i + 1}; ` +
          `the store is corrupt: remove layer "${id}" with --force`,
      );
    }
  });
  return ids;
}

/**
 * Reads `layers/<id>` (see {@link parseParents}); undefined when the layer
 * does not exist.
 *
 * @throws {StoreError} when the file holds an invalid id.
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
    throw e;
  }
  try {
    return parseParents(text, id);
  } catch (e) {
    throw new StoreError(`${(e as Error).message} (store ${layout.root})`, {
      cause: e,
    });
  }
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
 * @throws {StoreError} when it is not a JSON object.
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
    throw new StoreError(
      `meta/${id} is not a valid JSON object; the store is corrupt`,
    );
  }
  const o = m as {
    readWrite?: unknown;
    mountLabel?: unknown;
    committedFrom?: unknown;
  };
  const meta: LayerMeta = { readWrite: o.readWrite === true };
  if (typeof o.mountLabel === "string" && o.mountLabel !== "") {
    meta.mountLabel = o.mountLabel;
  }
  if (o.committedFrom !== undefined) {
    if (typeof o.committedFrom !== "string" || !isLayerId(o.committedFrom)) {
      throw new StoreError(
        `meta/${id} names an invalid committedFrom layer; the store is corrupt`,
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
    throw e;
  }
  try {
    return parseMeta(text, id);
  } catch (e) {
    throw new StoreError(`${(e as Error).message} (store ${layout.root})`, {
      cause: e,
    });
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
