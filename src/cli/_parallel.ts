/**
 * The `--parallel N` option of `pull` and `load`: its table entry and its
 * parse (no image code is loaded for it: the CLI's help stays light).
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { OptionSpec } from "./_types.ts";

/** The option's table entry. */
export const PARALLEL_OPTION: OptionSpec = {
  type: "string",
  help:
    "--parallel N      layers fetched and unpacked at once, bottom first (default: the CPUs; an image of under 16 MiB unpacks them one at a time, a pull still fetching N at once)",
};

/**
 * `--parallel`'s value as a number, or undefined when it was not given.
 *
 * @throws {UsageError} not a whole number of at least 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "../errors.ts";
 * import { parallelOf } from "./_parallel.ts";
 * assert.equal(parallelOf("2"), 2);
 * assert.equal(parallelOf(undefined), undefined);
 * assert.throws(() => parallelOf("0"), UsageError);
 * ```
 */
export function parallelOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === "string" && /^\d+$/.test(value)
    ? Number(value)
    : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(
      `--parallel takes a whole number of at least 1, not ${
        JSON.stringify(value)
      }`,
    );
  }
  return n;
}
