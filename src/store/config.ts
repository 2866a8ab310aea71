/**
 * `layerfs.json`: the store's format version and backend, fixed at init
 * (whiteout formats differ between backends, so a store never switches).
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import {
  type BackendName,
  backendNames,
  isBackendName,
} from "../backends/registry.ts";
import { writeFileAtomic } from "./_atomic.ts";
import type { StoreLayout } from "../layout.ts";

/** Current on-disk format version. */
export const FORMAT_VERSION = 1;

/** What `layerfs.json` holds. */
export interface StoreConfig {
  /** Format version of the layout. */
  version: number;
  /** The backend the store was initialised with. */
  backend: BackendName;
  /** Why the backend was chosen at init (for `status()`). */
  reason?: string;
  /**
   * Overlay keeps whiteout/opaque xattrs in `user.overlay.*` (mounted with
   * `userxattr`) instead of `trusted.overlay.*`: set at init for stores made
   * by a user who is not root, because such a user cannot write trusted.*
   * xattrs when extracting, and every later mount must read what was written.
   */
  userXattr?: boolean;
}

/**
 * Parses and validates the text of `layerfs.json`. Pure, shared by the store
 * and the privileged helper (which reads the bytes through its own checked
 * fds); messages never echo the content.
 *
 * @param text The file's content.
 * @returns The store's configuration.
 * @throws {StoreError} when it is not valid JSON, names an unknown backend or
 *   has another format version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { StoreError } from "../errors.ts";
 * assert.equal(parseConfig('{"version":1,"backend":"overlay"}').backend, "overlay");
 * assert.throws(() => parseConfig('{"version":1,"backend":"zfs"}'), StoreError);
 * ```
 */
export function parseConfig(text: string): StoreConfig {
  let c: StoreConfig;
  try {
    c = JSON.parse(text);
  } catch {
    throw new StoreError(
      "layerfs.json is not valid JSON; restore it or start a new store",
    );
  }
  if (typeof c !== "object" || c === null) {
    throw new StoreError("layerfs.json is not a JSON object");
  }
  if (!isBackendName(c.backend)) {
    throw new StoreError(
      `layerfs.json names an unknown backend (known: ${
        backendNames().join(", ")
      })`,
    );
  }
  if (c.version !== FORMAT_VERSION) {
    throw new StoreError(
      `layerfs.json has another format version; this layerfs reads version ${FORMAT_VERSION}`,
    );
  }
  return c;
}

/**
 * Reads `layerfs.json`; undefined for a store not initialised yet.
 *
 * @throws {StoreError} when the file is corrupt or from a newer layerfs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readConfig } from "./config.ts";
 * const root = await Deno.makeTempDir();
 * assert.equal(await readConfig(new StoreLayout(root)), undefined); // not initialised
 * await Deno.writeTextFile(`${root}/layerfs.json`, '{"version":1,"backend":"vfs"}');
 * assert.deepEqual(await readConfig(new StoreLayout(root)), { version: 1, backend: "vfs" });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function readConfig(
  layout: StoreLayout,
): Promise<StoreConfig | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(layout.config);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    return parseConfig(text);
  } catch (e) {
    // The same message, naming the file by its full path.
    throw new StoreError(
      (e as Error).message.replace("layerfs.json", layout.config),
      { cause: e },
    );
  }
}

/**
 * Writes `layerfs.json` crash-safely.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readConfig, writeConfig } from "./config.ts";
 * const root = await Deno.makeTempDir();
 * await writeConfig(new StoreLayout(root), { version: 1, backend: "vfs" });
 * assert.equal((await readConfig(new StoreLayout(root)))?.backend, "vfs");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeConfig(
  layout: StoreLayout,
  config: StoreConfig,
): Promise<void> {
  await writeFileAtomic(layout.config, JSON.stringify(config, null, 2) + "\n");
}
