/**
 * `layerfs helper install` and `layerfs helper doctor`: set up the helper
 * behind sudo (never setuid; see helper/main.ts for why) and check the setup.
 *
 * install writes two files, each to a temp name, fsynced and renamed:
 * - {@link CONFIG_PATH}: the allowed stores (merged with what is there);
 * - `/etc/sudoers.d/layerfs`: lets members of a group run exactly the helper
 *   binary as root without a password, with env_reset and no SETENV; the file
 *   is checked with `visudo -cf` before the rename, so a bad rule never goes
 *   live (a broken sudoers.d file would lock every sudo user out).
 *
 * @module
 */

import { HelperError } from "../src/errors.ts";
import {
  CONFIG_PATH,
  type HelperConfig,
  isCanonicalPath,
  loadConfig,
  parseConfig,
  rootOwnedPathProblem,
} from "./config.ts";
import { cstr, libc } from "../src/sys/libc_linux.ts";

/** Where install puts the sudoers rule. */
export const SUDOERS_PATH = "/etc/sudoers.d/layerfs";
/** Default helper binary (what `deno task compile` output is installed as). */
export const DEFAULT_HELPER_PATH = "/usr/local/bin/layerfs-helper";
/** Default group allowed to use the helper. */
export const DEFAULT_GROUP = "layerfs";

/** Options of {@link helperInstall}. */
export interface InstallOptions {
  /** Group allowed to run the helper. @default "layerfs" */
  group?: string;
  /** The helper command path. @default "/usr/local/bin/layerfs-helper" */
  path?: string;
  /** Store roots to allow for the group (added to the existing config). @default [] */
  stores?: string[];
  /** Where to look for visudo and groupadd (a PATH value). @default the PATH environment variable */
  searchPath?: string;
}

/** What install did. */
export interface InstallResult {
  /** The config written. */
  config: HelperConfig;
  /** The sudoers text written. */
  sudoers: string;
  /** Human lines describing each step. */
  messages: string[];
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    ok: out.success,
    text: (new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr)).trim(),
  };
}

/** Debian packages that provide the commands install runs. */
const PACKAGES: Record<string, string> = { visudo: "sudo", groupadd: "passwd" };

/** The absolute path of `cmd` in `searchPath`, or undefined. */
function findCommand(cmd: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(":")) {
    if (!dir.startsWith("/")) continue; // a relative PATH entry is never trusted as root
    try {
      const st = Deno.statSync(`${dir}/${cmd}`);
      if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return `${dir}/${cmd}`;
    } catch { /* not here */ }
  }
  return undefined;
}

async function writeAtomic(path: string, text: string, mode: number) {
  const dir = path.slice(0, path.lastIndexOf("/"));
  // A name with a "." is ignored by sudo's @includedir while it is a temp file.
  const tmp = `${dir}/.${path.slice(dir.length + 1)}.${
    crypto.randomUUID().slice(0, 8)
  }.tmp`;
  const f = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    await f.write(new TextEncoder().encode(text));
    await Deno.chmod(tmp, mode);
    await f.sync();
  } finally {
    f.close();
  }
  return tmp;
}

/**
 * The sudoers rule for `group` and the helper at `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sudoersRule } from "./install.ts";
 * const rule = sudoersRule("layerfs", "/usr/local/bin/layerfs-helper");
 * assert.match(rule, /^Defaults!\/usr\/local\/bin\/layerfs-helper env_reset, !setenv$/m);
 * assert.match(rule, /^%layerfs ALL=\(root\) NOPASSWD: \/usr\/local\/bin\/layerfs-helper$/m);
 * ```
 */
export function sudoersRule(group: string, path: string): string {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/i.test(group)) {
    throw new HelperError(`Invalid group name ${JSON.stringify(group)}`);
  }
  if (!isCanonicalPath(path) || /[\s,:=\\"'*?[\]!]/.test(path)) {
    throw new HelperError(
      `Helper path ${
        JSON.stringify(path)
      } must be absolute and plain (no spaces or sudoers metacharacters)`,
    );
  }
  return [
    '# Written by "layerfs helper install". The helper is run through sudo, never setuid:',
    "# env_reset drops DENO_INTERNAL_CHILD_ENTRYPOINT/NODE_CHANNEL_FD/LD_* before it starts.",
    `Defaults!${path} env_reset, !setenv`,
    `%${group} ALL=(root) NOPASSWD: ${path}`,
    "",
  ].join("\n");
}

/**
 * Installs the helper's config and sudoers rule. Needs root.
 *
 * Prerequisites (root, visudo, groupadd when the group is missing, a helper
 * path in root-owned directories) are checked before anything is written.
 *
 * @throws {HelperError} when not root, when a command is missing (naming the
 *   Debian package), when visudo rejects the rule, or on bad input.
 * @example
 * ```ts ignore
 * import { helperInstall } from "./install.ts";
 * await helperInstall({ group: "layerfs", stores: ["/srv/layerfs"] });
 * ```
 */
export async function helperInstall(
  opts: InstallOptions = {},
): Promise<InstallResult> {
  if (libc().geteuid() !== 0) {
    throw new HelperError(
      '"layerfs helper install" writes /etc/sudoers.d and /etc/layerfs: run it as root (sudo layerfs helper install ...)',
    );
  }
  // Everything is checked before anything is written.
  const group = opts.group ?? DEFAULT_GROUP;
  const path = opts.path ?? DEFAULT_HELPER_PATH;
  const sudoers = sudoersRule(group, path);
  const messages: string[] = [];
  for (const s of opts.stores ?? []) {
    if (!isCanonicalPath(s)) {
      throw new HelperError(
        `Store root ${
          JSON.stringify(s)
        } must be absolute, without ".", ".." or a trailing "/"`,
      );
    }
  }
  // sudo runs whatever is at `path` as root: a binary in (or below) a
  // directory a user can write is that user's root shell.
  const pathProblem = rootOwnedPathProblem(path, false);
  if (pathProblem) {
    throw new HelperError(
      `Refusing helper path ${path}: ${pathProblem}; install the helper in a root-owned directory such as /usr/local/bin`,
    );
  }
  const groups = await Deno.readTextFile("/etc/group");
  const needGroup = !groups.split("\n").some((l) => l.split(":")[0] === group);
  const searchPath = opts.searchPath ?? Deno.env.get("PATH") ?? "";
  const commands: Record<string, string> = {};
  for (const cmd of ["visudo", ...(needGroup ? ["groupadd"] : [])]) {
    const found = findCommand(cmd, searchPath);
    if (!found) {
      throw new HelperError(
        `"layerfs helper install" needs ${cmd}, which is not in PATH; install it (Debian: apt-get install ${
          PACKAGES[cmd]
        }) and rerun; nothing was written`,
      );
    }
    commands[cmd] = found;
  }

  // The sudoers rule is checked by visudo before anything else is written,
  // and its temp file never outlives this call.
  await Deno.mkdir("/etc/sudoers.d", { recursive: true, mode: 0o755 });
  const stmp = await writeAtomic(SUDOERS_PATH, sudoers, 0o440);
  try {
    const check = await run(commands.visudo, ["-cf", stmp]);
    if (!check.ok) {
      throw new HelperError(`visudo rejected the sudoers rule: ${check.text}`);
    }
    if (needGroup) {
      const r = await run(commands.groupadd, ["--system", group]);
      if (!r.ok) throw new HelperError(`groupadd ${group} failed: ${r.text}`);
      messages.push(
        `created group ${group}; add users with "usermod -aG ${group} USER"`,
      );
    }
    // Config: keep what is there (if it is valid), add the new stores.
    let config: HelperConfig = { stores: [] };
    try {
      config = parseConfig(await Deno.readTextFile(CONFIG_PATH));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        messages.push(
          `replacing unreadable ${CONFIG_PATH}: ${(e as Error).message}`,
        );
      }
    }
    for (const root of opts.stores ?? []) {
      const entry = config.stores.find((s) => s.root === root);
      if (entry) {
        if (!entry.groups.includes(group)) entry.groups.push(group);
      } else config.stores.push({ root, users: [], groups: [group] });
    }
    await Deno.mkdir("/etc/layerfs", { recursive: true, mode: 0o755 });
    await Deno.chmod("/etc/layerfs", 0o755);
    await Deno.chown("/etc/layerfs", 0, 0);
    const ctmp = await writeAtomic(
      CONFIG_PATH,
      JSON.stringify(config, null, 2) + "\n",
      0o644,
    );
    await Deno.rename(ctmp, CONFIG_PATH);
    messages.push(`wrote ${CONFIG_PATH} (${config.stores.length} store(s))`);
    await Deno.rename(stmp, SUDOERS_PATH);
    messages.push(
      `wrote ${SUDOERS_PATH}: members of ${group} may run ${path} as root`,
      `set LAYERFS_HELPER="sudo -n ${path}" for users of the layerfs module/CLI`,
    );
    return { config, sudoers, messages };
  } finally {
    await Deno.remove(stmp).catch(() => {}); // gone after the rename
  }
}

/** One doctor finding. */
export interface DoctorCheck {
  /** Passed. */
  ok: boolean;
  /** What was checked and, when failing, what to do. */
  message: string;
}

/** Options of {@link helperDoctor}. */
export interface DoctorOptions {
  /** The helper binary. @default "/usr/local/bin/layerfs-helper" */
  path?: string;
}

/** True when `path` carries file capabilities (security.capability xattr). */
function hasFileCaps(path: string): boolean {
  const n = libc().lgetxattr(
    cstr(path),
    cstr("security.capability"),
    null,
    0n,
  );
  return Number(n) >= 0;
}

/**
 * Checks the helper setup: binary (root-owned, not writable by others, not
 * setuid/setgid, no file capabilities, every directory above it root-owned
 * and not writable by others), config, sudoers rule.
 *
 * @example
 * ```ts ignore
 * import { helperDoctor } from "./install.ts";
 * const r = await helperDoctor();
 * for (const c of r.checks) console.log(c.ok, c.message);
 * ```
 */
export async function helperDoctor(
  opts: DoctorOptions = {},
): Promise<{ ok: boolean; checks: DoctorCheck[] }> {
  const path = opts.path ?? DEFAULT_HELPER_PATH;
  const checks: DoctorCheck[] = [];
  const add = (ok: boolean, message: string) => checks.push({ ok, message });

  // Every directory above the binary, as loadConfig checks the config's:
  // whoever can write one of them can replace what sudo runs as root.
  const pathProblem = rootOwnedPathProblem(path, true);
  add(
    pathProblem === undefined,
    pathProblem === undefined
      ? `${path} and every directory above it are root-owned and not writable by others`
      : `${pathProblem}: whoever can write there can replace the helper and get root through sudo; ` +
        `install it in a root-owned directory (e.g. /usr/local/bin)`,
  );

  try {
    const s = await Deno.lstat(path);
    const mode = s.mode ?? 0;
    add(
      s.isFile,
      `${path} is a regular file${
        s.isFile ? "" : " (it is not: install the compiled helper there)"
      }`,
    );
    add(
      (mode & 0o6000) === 0,
      (mode & 0o6000) === 0
        ? `${path} is not setuid/setgid`
        : `${path} is setuid/setgid: remove it now (chmod u-s,g-s ${path}); a setuid deno binary lets any user run any code as root`,
    );
    const caps = hasFileCaps(path);
    add(
      !caps,
      caps
        ? `${path} has file capabilities: remove them (setcap -r ${path}); same risk as setuid`
        : `${path} has no file capabilities`,
    );
    const owned = s.uid === 0 && (mode & 0o022) === 0;
    add(
      owned,
      owned
        ? `${path} is owned by root and not writable by others`
        : `${path} must be owned by root and not group/other-writable (chown root:root; chmod 755)`,
    );
  } catch (e) {
    add(
      false,
      `${path}: ${
        (e as Error).message
      }; install it with "deno task compile" and copy dist/layerfs-helper there`,
    );
  }

  try {
    const c = loadConfig(CONFIG_PATH);
    add(
      true,
      `${CONFIG_PATH} is root-owned and valid (${c.stores.length} store(s))`,
    );
  } catch (e) {
    add(false, (e as Error).message);
  }

  try {
    const s = await Deno.lstat(SUDOERS_PATH);
    const text = await Deno.readTextFile(SUDOERS_PATH);
    add(
      s.uid === 0 && ((s.mode ?? 0) & 0o777) === 0o440,
      `${SUDOERS_PATH} is root-owned with mode 0440`,
    );
    add(
      text.includes(` NOPASSWD: ${path}`),
      text.includes(` NOPASSWD: ${path}`)
        ? `${SUDOERS_PATH} allows ${path}`
        : `${SUDOERS_PATH} does not name ${path}; rerun "layerfs helper install --path ${path}"`,
    );
    const visudo = findCommand("visudo", Deno.env.get("PATH") ?? "");
    const v = visudo
      ? await run(visudo, ["-cf", SUDOERS_PATH])
      : { ok: false, text: "visudo not found (Debian: apt-get install sudo)" };
    add(v.ok, v.ok ? "visudo accepts the rule" : `visudo: ${v.text}`);
  } catch (e) {
    add(
      false,
      `${SUDOERS_PATH}: ${
        (e as Error).message
      }; run "layerfs helper install" as root`,
    );
  }
  return { ok: checks.every((c) => c.ok), checks };
}
