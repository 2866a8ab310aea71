/**
 * `layerfs-helper`: performs exactly one validated overlay mount or unmount of
 * a layer of an allowed store, for a caller who is not root.
 *
 * ```
 * sudo -n layerfs-helper mount|umount STORE_ROOT LAYER_ID
 * ```
 *
 * The caller passes only the store root, the layer id and the operation. The
 * helper reads its allow-list from `/etc/layerfs/helper.json` (root-owned,
 * not writable by group or others), checks the caller (SUDO_UID/SUDO_GID),
 * validates the id before building any path, reads the layer's parent chain
 * from the store itself, opens every directory with openat2
 * RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH|RESOLVE_NO_XDEV and checks that the
 * store's owner owns it, and, under its lock, refuses upper or work dirs a
 * live overlay uses; then mounts with nosuid,nodev forced, on
 * `<root>/mnt/<id>` only, verified from mountinfo. It prints one JSON line
 * (`{"ok":true,...}` or `{"ok":false,"error":...}`) and exits 0 or 1; a mount
 * whose reply cannot be written is undone.
 *
 * ## Why never setuid (or setcap)
 * A `deno compile` binary reads `DENO_INTERNAL_CHILD_ENTRYPOINT` and
 * `NODE_CHANNEL_FD` from its environment before any of our code runs
 * (Deno >= 2.8.3: they make it run another module / talk IPC on an inherited
 * fd). In a setuid copy the caller controls that environment, so any user
 * could run any code as root, and nothing written here could stop it. sudo's
 * env_reset drops those variables before the helper starts, so sudo (or
 * running as root) is the only supported way; `layerfs helper doctor` checks
 * that the binary is neither setuid nor given file capabilities. The helper
 * also refuses to work when it sees such variables (defence in depth: it means
 * it was started some other way).
 *
 * @example
 * ```sh
 * sudo -n /usr/local/bin/layerfs-helper mount /home/alice/.local/share/layerfs app
 * ```
 *
 * @module
 */

import { HelperError, LayerfsError } from "../src/errors.ts";
import { CONFIG_PATH, loadConfig } from "./config.ts";
import { callerFrom, readAccounts } from "./identity.ts";
import { authorize, hostileEnvPresent, parseRequest } from "./request.ts";
import { helperMount, type HelperResult, helperUmount } from "./execute.ts";

export type { HelperResult } from "./execute.ts";
import { libc } from "../src/sys/libc_linux.ts";

/**
 * Runs one helper request and returns its result. Throws typed errors on refusal.
 *
 * @param argv `["mount"|"umount", root, id]`.
 * @param env Environment lookup (SUDO_UID, SUDO_GID, and the hostile names).
 * @param euid The process's effective uid.
 * @example
 * ```ts ignore
 * import { runHelper } from "./main.ts";
 * runHelper(["mount", "/srv/layerfs", "app"], (k) => Deno.env.get(k), 0);
 * ```
 */
export function runHelper(
  argv: string[],
  env: (key: string) => string | undefined,
  euid: number,
): HelperResult {
  const hostile = hostileEnvPresent(env);
  if (hostile.length) {
    throw new HelperError(
      `Refusing to run with ${
        hostile.join(", ")
      } set: start the helper through sudo (env_reset), ` +
        `never setuid, setcap or "sudo -E"; run "layerfs helper doctor"`,
    );
  }
  const caller = callerFrom(euid, env);
  // The id is validated here, before any path is built from it.
  const req = parseRequest(argv);
  const config = loadConfig(CONFIG_PATH);
  const accounts = readAccounts();
  const store = authorize(req, caller, config, accounts);
  const owners = new Set<number>();
  for (const u of store.users) {
    const uid = /^[0-9]+$/.test(u) ? Number(u) : accounts.users.get(u);
    if (uid !== undefined) owners.add(uid);
  }
  return req.op === "mount"
    ? helperMount(req, caller, owners)
    : helperUmount(req, caller, owners);
}

/** Writes all of `text` to fd 1; false when it cannot (EPIPE, ENOSPC, closed). */
function writeStdout(text: string): boolean {
  const buf = new TextEncoder().encode(text);
  try {
    for (let off = 0; off < buf.length;) {
      off += Deno.stdout.writeSync(buf.subarray(off));
    }
    return true;
  } catch {
    return false;
  }
}

function writeStderr(text: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  } catch { /* nowhere left to report */ }
}

/** The JSON reply for a refusal: name, first message line, errno code; never a trace. */
function errorReply(e: unknown): unknown {
  const name = e instanceof Error ? e.name : "Error";
  const message = (e instanceof Error ? e.message : String(e)).split("\n")[0];
  return {
    ok: false,
    error: {
      name: e instanceof LayerfsError ? name : "HelperError",
      message,
      code: (e as { code?: string }).code,
    },
  };
}

/**
 * The whole process: one request, one JSON line on stdout, exit 0 or 1.
 * A mount whose success cannot be reported (stdout closed or full) is
 * undone: the caller would never count it, so nothing would ever unmount it.
 */
function main(): number {
  const env = (k: string) => {
    try {
      return Deno.env.get(k);
    } catch {
      return undefined; // not in --allow-env: not ours to read
    }
  };
  let result: HelperResult;
  try {
    result = runHelper(Deno.args, env, libc().geteuid());
  } catch (e) {
    writeStdout(JSON.stringify(errorReply(e)) + "\n");
    return 1;
  }
  if (writeStdout(JSON.stringify({ ok: true, ...result }) + "\n")) return 0;
  if (result.op === "mount") {
    try {
      runHelper(["umount", Deno.args[1], Deno.args[2]], env, libc().geteuid());
      writeStderr(
        `layerfs-helper: cannot write the reply to stdout; the mount at ${result.target} was undone\n`,
      );
    } catch (e) {
      writeStderr(
        `layerfs-helper: cannot write the reply to stdout, and undoing the mount at ${result.target} failed: ${
          (e as Error).message.split("\n")[0]
        }\n`,
      );
    }
  } else {
    writeStderr("layerfs-helper: cannot write the reply to stdout\n");
  }
  return 1;
}

if (import.meta.main) {
  let code = 1;
  try {
    code = main();
  } catch {
    // Nothing above throws; this only keeps a trace from ever reaching the caller.
    writeStderr("layerfs-helper: internal error\n");
  }
  Deno.exit(code);
}
