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
 * import { isCanonicalPath } from "./config.ts";
 * console.log(isCanonicalPath("/srv/layerfs"), isCanonicalPath("/srv/../etc")); // true false
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
 * import { parseConfig } from "./config.ts";
 * const c = parseConfig('{"stores":[{"root":"/srv/layerfs","groups":["layerfs"]}]}');
 * console.log(c.stores[0].groups); // ["layerfs"]
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
  const parts = path.split("/").slice(1, -1);
  for (let i = 0; i <= parts.length; i++) {
    const dir = "/" + parts.slice(0, i).join("/");
    let fd: number;
    try {
      fd = openNoSymlinks(dir, DIR_PATH_FLAGS);
    } catch (e) {
      throw new HelperError(
        `Cannot open ${dir} without following symlinks (${
          (e as Error).message
        }); the helper's config must be at ${path}`,
      );
    }
    try {
      const s = fstat(fd);
      const p = isDir(s)
        ? rootOwnedProblem(dir, s)
        : `${dir} is not a directory`;
      if (p) throw new HelperError(`Refusing the helper config: ${p}${fix}`);
    } finally {
      close(fd);
    }
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
