/**
 * The helper's request: operation, store root, layer id; and the checks
 * that run before any path is built from them.
 *
 * @module
 */

import { HelperError } from "../src/errors.ts";
import { validateLayerId } from "../src/store/id.ts";
import {
  type AllowedStore,
  type HelperConfig,
  isCanonicalPath,
} from "./config.ts";
import { type Accounts, type Caller, callerAllowed } from "./identity.ts";

/** What the caller asks for: the only three inputs the helper takes. */
export interface HelperRequest {
  /** "mount" or "umount". */
  op: "mount" | "umount";
  /** Store root, absolute and canonical. */
  root: string;
  /** Layer id. */
  id: string;
}

/**
 * Validates a layer id with the store's own rule (src/store/id.ts), the one
 * gate every id passes before a path is built from it.
 *
 * @throws {InvalidLayerId}
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateId } from "./request.ts";
 * import { InvalidLayerId } from "../src/errors.ts";
 * validateId("base"); // ok
 * assert.throws(() => validateId("../etc"), InvalidLayerId);
 * ```
 */
export function validateId(id: string): void {
  validateLayerId(id);
}

/**
 * Parses the helper's arguments: `mount|umount ROOT ID`, nothing else.
 *
 * @throws {HelperError} on anything else.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequest } from "./request.ts";
 * assert.deepEqual(
 *   parseRequest(["mount", "/srv/layerfs", "app"]),
 *   { op: "mount", root: "/srv/layerfs", id: "app" },
 * );
 * ```
 */
export function parseRequest(argv: string[]): HelperRequest {
  if (argv.length !== 3 || (argv[0] !== "mount" && argv[0] !== "umount")) {
    throw new HelperError(
      "Usage: layerfs-helper mount|umount STORE_ROOT LAYER_ID (it takes nothing else: options come from the store)",
    );
  }
  const [op, root, id] = argv as ["mount" | "umount", string, string];
  validateId(id);
  if (!isCanonicalPath(root)) {
    throw new HelperError(
      `Store root ${
        JSON.stringify(root)
      } must be absolute, without ".", ".." or a trailing "/"`,
    );
  }
  return { op, root, id };
}

/** Variables that must never reach a root process from a caller. */
export const HOSTILE_ENV: readonly string[] = [
  // Read by deno compile binaries before any of our code runs (Deno >= 2.8.3):
  // either makes the binary run a module the caller chose.
  "DENO_INTERNAL_CHILD_ENTRYPOINT",
  "NODE_CHANNEL_FD",
  // Read by the dynamic loader.
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_AUDIT",
];

/**
 * Names of hostile variables present in the environment. sudo's env_reset
 * removes them; seeing one means the helper was started some other way
 * (setuid copy, `sudo -E`, a sudoers SETENV rule), and it refuses to work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostileEnvPresent } from "./request.ts";
 * assert.deepEqual(
 *   hostileEnvPresent((k) => k === "LD_PRELOAD" ? "/tmp/x.so" : undefined),
 *   ["LD_PRELOAD"],
 * );
 * ```
 */
export function hostileEnvPresent(
  env: (key: string) => string | undefined,
): string[] {
  return HOSTILE_ENV.filter((k) => env(k) !== undefined);
}

/**
 * Finds the store in the config and checks the caller may use it.
 *
 * @returns The matching config entry.
 * @throws {HelperError} when the store is not configured or the caller is not allowed.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { authorize } from "./request.ts";
 * import { parseAccounts } from "./identity.ts";
 * import { HelperError } from "../src/errors.ts";
 * const config = { stores: [{ root: "/srv/s", users: ["alice"], groups: [] }] };
 * const accounts = parseAccounts("alice:x:1000:1000::/:/bin/sh\n", "");
 * const req = { op: "mount", root: "/srv/s", id: "a" } as const;
 * assert.equal(authorize(req, { uid: 1000, gid: 1000 }, config, accounts), config.stores[0]);
 * assert.throws(
 *   () => authorize(req, { uid: 1001, gid: 1001 }, config, accounts),
 *   HelperError,
 * );
 * ```
 */
export function authorize(
  req: HelperRequest,
  caller: Caller,
  config: HelperConfig,
  accounts: Accounts,
): AllowedStore {
  const store = config.stores.find((s) => s.root === req.root);
  if (!store) {
    throw new HelperError(
      `Store ${req.root} is not in the helper's config; an administrator can add it with ` +
        `"layerfs helper install --store ${req.root}"`,
    );
  }
  if (!callerAllowed(caller, store, accounts)) {
    throw new HelperError(
      `uid ${caller.uid} may not use store ${req.root}; an administrator can add the user or ` +
        `one of its groups to it in the helper's config`,
    );
  }
  return store;
}
