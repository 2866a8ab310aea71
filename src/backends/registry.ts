/**
 * The backends, in `auto`'s order of preference. Everything that lists or
 * names backends (the `BackendName` type, `layerfs.json` validation, `auto`,
 * the CLI's `--backend` choices) is derived from this one array: adding a
 * backend is one file plus one entry here.
 *
 * @module
 */

import { aufsBackend } from "./aufs.ts";
import { overlayBackend } from "./overlay.ts";
import type { Backend } from "./types.ts";
import { vfsBackend } from "./vfs.ts";

/** Backends layerfs knows (kept in step with {@link BACKENDS} by the check below). */
export type BackendName = "overlay" | "aufs" | "vfs";

/** Every backend, most preferred first (`auto` takes the first that can run). */
export const BACKENDS = [overlayBackend, aufsBackend, vfsBackend] as const;

// BackendName is spelled out because it is public (mod.ts) and `deno doc
// --lint` refuses a public type defined through the internal BACKENDS; this
// fails to type-check when the two disagree, so the array stays the source.
type Same<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false;
const _inStep: Same<BackendName, (typeof BACKENDS)[number]["name"]> = true;

/**
 * The names of all backends, in preference order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendNames } from "./registry.ts";
 * assert.deepEqual(backendNames(), ["overlay", "aufs", "vfs"]);
 * ```
 */
export function backendNames(): BackendName[] {
  return BACKENDS.map((b) => b.name);
}

/**
 * Whether `name` names a backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isBackendName } from "./registry.ts";
 * assert.equal(isBackendName("vfs"), true);
 * assert.equal(isBackendName("zfs"), false);
 * ```
 */
export function isBackendName(name: unknown): name is BackendName {
  return BACKENDS.some((b) => b.name === name);
}

/**
 * The backend called `name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendByName } from "./registry.ts";
 * assert.equal(backendByName("vfs").whiteoutFormat, "vfs");
 * ```
 */
export function backendByName(name: BackendName): Backend<BackendName> {
  return BACKENDS.find((b) => b.name === name)!;
}
