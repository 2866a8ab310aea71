/**
 * Layer id validation: the one gate every id passes before any path or mount
 * option is built from it.
 *
 * @module
 */

import { InvalidLayerId } from "../errors.ts";

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Returns `id` if it is a valid layer id, else throws {@link InvalidLayerId}.
 * Valid: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`, not ending in `-removing`
 * (that suffix marks layers being deleted). This refuses `..`, `/`, `,` and
 * `:` (which would break overlay option strings), newlines (which would break
 * `layers/<id>` files) and NUL.
 *
 * @throws {InvalidLayerId}
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidLayerId } from "../errors.ts";
 * import { validateLayerId } from "./id.ts";
 * assert.equal(validateLayerId("sha256-abc.1"), "sha256-abc.1");
 * assert.throws(() => validateLayerId("../etc"), InvalidLayerId);
 * assert.throws(() => validateLayerId("app-removing"), InvalidLayerId);
 * ```
 */
export function validateLayerId(id: unknown): string {
  if (typeof id !== "string") {
    throw new InvalidLayerId(String(id), "not a string");
  }
  if (!ID_RE.test(id)) throw new InvalidLayerId(id);
  if (id.endsWith("-removing")) {
    throw new InvalidLayerId(id, 'the "-removing" suffix is reserved');
  }
  return id;
}
