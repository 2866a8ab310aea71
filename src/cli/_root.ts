/**
 * The default store root: `--root` wins, then `LAYERFS_ROOT`, then
 * `/var/lib/layerfs` for root, else `${XDG_DATA_HOME:-$HOME/.local/share}/layerfs`
 * (the XDG base directory spec's place for user data).
 *
 * @module
 */

import { UsageError } from "../errors.ts";

/** Inputs of {@link defaultRoot}; everything the choice depends on, passed in. */
export interface RootInputs {
  /** The `--root` value, if given. */
  flag?: string;
  /** Environment lookup, e.g. `(k) => Deno.env.get(k)`. */
  env: (key: string) => string | undefined;
  /** The effective user id. */
  uid: number;
  /** Directory relative roots are taken from. */
  cwd: string;
}

/**
 * Picks the store root from the flag, the environment and the user id.
 *
 * @returns An absolute store root path.
 * @throws {UsageError} when `flag` is empty, or no root can be derived (no
 *   HOME for a non-root user).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultRoot } from "./_root.ts";
 * const env = (k: string) => k === "HOME" ? "/home/a" : undefined;
 * assert.equal(defaultRoot({ env, uid: 1000, cwd: "/" }), "/home/a/.local/share/layerfs");
 * assert.equal(defaultRoot({ env: () => undefined, uid: 0, cwd: "/" }), "/var/lib/layerfs");
 * ```
 */
export function defaultRoot({ flag, env, uid, cwd }: RootInputs): string {
  // `--root=` or `--root "$UNSET"`: a script's mistake, not "the default".
  if (flag === "") {
    throw new UsageError(
      "--root is empty; pass the store's directory, e.g. --root /var/lib/layerfs",
    );
  }
  const chosen = nonEmpty(flag) ?? nonEmpty(env("LAYERFS_ROOT"));
  if (chosen !== undefined) return normalize(chosen, cwd);
  if (uid === 0) return "/var/lib/layerfs";
  const xdg = nonEmpty(env("XDG_DATA_HOME"));
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg !== undefined && xdg.startsWith("/")) {
    return normalize(`${xdg}/layerfs`, cwd);
  }
  const home = nonEmpty(env("HOME"));
  if (home === undefined || !home.startsWith("/")) {
    throw new UsageError(
      "Cannot choose a store root: HOME is not set to an absolute path; pass --root DIR or set LAYERFS_ROOT",
    );
  }
  return normalize(`${home}/.local/share/layerfs`, cwd);
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === "" ? undefined : s;
}

/** Makes `p` absolute against `cwd` and drops `.`, empty and trailing components (not `..`: it is kept literally). */
function normalize(p: string, cwd: string): string {
  const full = p.startsWith("/") ? p : `${cwd}/${p}`;
  const parts = full.split("/").filter((c) => c !== "" && c !== ".");
  return "/" + parts.join("/");
}
