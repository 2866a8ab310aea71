/**
 * The helper's configuration: which store roots it serves and for whom.
 *
 * ```json
 * { "stores": [ { "root": "/home/alice/.local/share/layerfs", "users": ["alice"], "groups": ["layerfs"] } ] }
 * ```
 *
 * The file lives at {@link CONFIG_PATH}, a constant: there is deliberately no
 * flag or environment variable to point the helper elsewhere, because under
 * sudo that would let the caller supply their own allow-list. The file and
 * every directory above it must be owned by root and not writable by group or
 * others, and no component may be a symlink; otherwise the helper refuses to
 * run.
 *
 * @module
 */

import { HelperError } from "../src/errors.ts";
import {
  close,
  DIR_PATH_FLAGS,
  fstat,
  isDir,
  isRegular,
  O,
  openNoSymlinks,
  readAllFd,
} from "./_fs.ts";

/** Where the helper reads its configuration. Not overridable, on purpose. */
export const CONFIG_PATH = "/etc/layerfs/helper.json";

/** One store the helper serves. */
export interface AllowedStore {
  /** Absolute, normalised store root (no symlinks, no `.`/`..`). */
  root: string;
  /** User names or numeric uids allowed to use it. @default [] */
  users: string[];
  /** Group names or numeric gids whose members may use it. @default [] */
  groups: string[];
}

/** The parsed configuration. */
export interface HelperConfig {
  /** Stores the helper serves. */
  stores: AllowedStore[];
}

const MAX_CONFIG = 1 << 20;

/**
 * True when `p` is absolute and normalised: no empty, `.` or `..` components,
 * no trailing slash. The helper compares roots as strings, so they must be
 * in one canonical form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isCanonicalPath } from "./config.ts";
 * assert.equal(isCanonicalPath("/srv/layerfs"), true);
 * assert.equal(isCanonicalPath("/srv/../etc"), false);
 * ```
 */
export function isCanonicalPath(p: string): boolean {
  if (!p.startsWith("/") || p === "/" || p.includes("\0")) return false;
  return p.slice(1).split("/").every((c) =>
    c !== "" && c !== "." && c !== ".."
  );
}

function stringList(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (
    !Array.isArray(v) ||
    !v.every((x) => typeof x === "string" || typeof x === "number")
  ) {
    throw new HelperError(
      `${CONFIG_PATH}: "${what}" must be a list of names or ids`,
    );
  }
  return v.map(String);
}

/**
 * Parses and validates the configuration text.
 *
 * @param text The file's content.
 * @returns The configuration.
 * @throws {HelperError} when it is not valid.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * const c = parseConfig('{"stores":[{"root":"/srv/layerfs","groups":["layerfs"]}]}');
 * assert.deepEqual(c.stores, [{ root: "/srv/layerfs", users: [], groups: ["layerfs"] }]);
 * ```
 */
export function parseConfig(text: string): HelperConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new HelperError(
      `${CONFIG_PATH} is not valid JSON (${
        (e as Error).message
      }); fix it or rerun "layerfs helper install"`,
    );
  }
  const stores = (raw as { stores?: unknown })?.stores;
  if (!Array.isArray(stores)) {
    throw new HelperError(
      `${CONFIG_PATH} must be {"stores": [{"root": ..., "users": [...], "groups": [...]}]}`,
    );
  }
  return {
    stores: stores.map((s, i) => {
      const root = (s as { root?: unknown })?.root;
      if (typeof root !== "string" || !isCanonicalPath(root)) {
        throw new HelperError(
          `${CONFIG_PATH}: stores[${i}].root must be an absolute path without ".", ".." or a trailing "/"`,
        );
      }
      return {
        root,
        users: stringList((s as { users?: unknown }).users, "users"),
        groups: stringList((s as { groups?: unknown }).groups, "groups"),
      };
    }),
  };
}

/**
 * Checks that a stat belongs to root and is not writable by group or others.
 *
 * @returns A problem description, or undefined when fine.
 */
export function rootOwnedProblem(
  path: string,
  s: { uid: number; mode: number },
): string | undefined {
  if (s.uid !== 0) return `${path} is owned by uid ${s.uid}, not root`;
  if (s.mode & 0o022) {
    return `${path} is writable by ${
      s.mode & 0o002 ? "others" : "its group"
    } (mode ${(s.mode & 0o7777).toString(8)})`;
  }
  return undefined;
}

/**
 * Why a file at `path` could be replaced or edited by someone other than
 * root, or undefined when it cannot: every directory from "/" down must be
 * a root-owned directory reached without a symlink and not writable by group
 * or others, except where the sticky bit is set (then only root may rename
 * or remove root's entries in it, as in /tmp), and the file itself, when it
 * exists, a root-owned regular file not writable by group or others. Used
 * for the helper's config and for the helper binary (doctor, install): a
 * binary in a user-writable directory hands that user root through sudo.
 *
 * @param path Absolute, canonical path.
 * @param mustExist Report a missing file as a problem.
 * @returns A problem description, or undefined.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rootOwnedPathProblem } from "./config.ts";
 * assert.equal(rootOwnedPathProblem("/etc/passwd", true), undefined);
 * assert.equal(rootOwnedPathProblem("/tmp", true), "/tmp is not a regular file");
 * ```
 */
export function rootOwnedPathProblem(
  path: string,
  mustExist: boolean,
): string | undefined {
  if (!isCanonicalPath(path)) {
    return `${path} is not an absolute, canonical path`;
  }
  const parts = path.split("/").slice(1);
  let openToOthers = false;
  for (let i = 0; i <= parts.length; i++) {
    const p = "/" + parts.slice(0, i).join("/");
    const last = i === parts.length;
    let fd: number;
    try {
      fd = openNoSymlinks(p, last ? O.PATH | O.NOFOLLOW : DIR_PATH_FLAGS);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (last && code === "ENOENT" && !mustExist) {
        return openToOthers
          ? `${p} does not exist and others may create it (its directory is writable by others)`
          : undefined;
      }
      return `cannot open ${p} without following symlinks (${
        code ?? (e as Error).message
      })`;
    }
    try {
      const st = fstat(fd);
      if (last) {
        return isRegular(st)
          ? rootOwnedProblem(p, st)
          : `${p} is not a regular file`;
      }
      if (!isDir(st)) return `${p} is not a directory`;
      // Sticky: others may add entries but not rename or replace root's.
      openToOthers = (st.mode & 0o022) !== 0 && st.uid === 0 &&
        (st.mode & 0o1000) !== 0;
      const problem = rootOwnedProblem(p, st);
      if (problem && !openToOthers) return problem;
    } finally {
      close(fd);
    }
  }
  return undefined;
}

/**
 * Reads the configuration at `path` after checking that the file and every
 * directory above it are root-owned, not group/other-writable and not
 * symlinks. The helper always passes {@link CONFIG_PATH}; the parameter
 * exists so tests can check the refusals on files they plant.
 *
 * @param path Absolute, canonical path of the file.
 * @returns The configuration.
 * @throws {HelperError} on any refusal, naming the path and the fix.
 * @example
 * ```ts ignore
 * import { CONFIG_PATH, loadConfig } from "./config.ts";
 * const config = loadConfig(CONFIG_PATH);
 * ```
 */
export function loadConfig(path: string = CONFIG_PATH): HelperConfig {
  if (!isCanonicalPath(path)) {
    throw new HelperError(`Config path ${path} is not canonical`);
  }
  const fix =
    `; make it root-owned and not writable by others (chown root:root, chmod go-w) or rerun "layerfs helper install"`;
  // Every ancestor, "/" included: a writable /etc/layerfs would let its
  // owner swap helper.json between our check and our read.
  const problem = rootOwnedPathProblem(path, false);
  if (problem) {
    throw new HelperError(`Refusing the helper config: ${problem}${fix}`);
  }
  let fd: number;
  try {
    fd = openNoSymlinks(path, O.RDONLY | O.NOFOLLOW | O.NONBLOCK);
  } catch (e) {
    throw new HelperError(
      `Cannot read the helper config ${path} (${
        (e as Error).message
      }); run "layerfs helper install" as root`,
    );
  }
  try {
    const s = fstat(fd);
    const p = isRegular(s)
      ? rootOwnedProblem(path, s)
      : `${path} is not a regular file`;
    if (p) throw new HelperError(`Refusing the helper config: ${p}${fix}`);
    return parseConfig(new TextDecoder().decode(readAllFd(fd, MAX_CONFIG)));
  } finally {
    close(fd);
  }
}
