/**
 * The {@link Mounter} that asks the privileged helper to mount, for stores
 * opened by a user who is not root. It sends only the operation, the store
 * root and the layer id; the helper re-plans the mount from the store's own
 * metadata, so the plan the store computed here is deliberately not sent.
 *
 * @module
 */

import { HelperError, MountError } from "../errors.ts";
import type { Mounter } from "./mounter.ts";
import type { MountPlan } from "./plan.ts";

/**
 * Splits a helper command line such as `sudo -n /usr/local/bin/layerfs-helper`
 * on whitespace (no shell quoting: paths with spaces are not supported).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitCommand } from "./helper_mounter.ts";
 * assert.deepEqual(
 *   splitCommand("sudo -n /usr/local/bin/layerfs-helper"),
 *   ["sudo", "-n", "/usr/local/bin/layerfs-helper"],
 * );
 * ```
 */
export function splitCommand(command: string): string[] {
  const argv = command.trim().split(/\s+/).filter(Boolean);
  if (argv.length === 0) {
    throw new HelperError(
      'The helper command is empty; set LAYERFS_HELPER, e.g. "sudo -n /usr/local/bin/layerfs-helper"',
    );
  }
  return argv;
}

async function call(
  argv: string[],
  op: string,
  root: string,
  id: string,
): Promise<Record<string, unknown>> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(argv[0], {
      args: [...argv.slice(1), op, root, id],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new HelperError(
      `Cannot run the mount helper ${JSON.stringify(argv.join(" "))}: ${
        (e as Error).message
      }; ` +
        `check LAYERFS_HELPER and run "layerfs helper doctor"`,
    );
  }
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  let reply: {
    ok?: boolean;
    error?: { name?: string; message?: string; code?: string };
  } | undefined;
  try {
    reply = JSON.parse(stdout.split("\n").at(-1) ?? "");
  } catch { /* not the helper talking: sudo refused, or a wrong command */ }
  if (reply?.ok === true) return reply as Record<string, unknown>;
  const msg = reply?.error?.message ??
    (stderr.split("\n")[0] || `exit code ${out.code}`);
  if (reply?.error?.name === "MountError") {
    throw new MountError(
      `helper ${op}`,
      reply.error.code ?? "EIO",
      `${root}/mnt/${id}`,
      msg,
    );
  }
  throw new HelperError(`The mount helper refused ${op} of "${id}": ${msg}`);
}

/**
 * A Mounter that runs `<command> mount|umount ROOT ID`.
 *
 * @param command The helper command line, e.g. `sudo -n /usr/local/bin/layerfs-helper`
 *   (what `LAYERFS_HELPER` holds).
 * @example
 * ```ts ignore
 * import { helperMounter } from "./helper_mounter.ts";
 * import { openStore } from "../../mod.ts";
 * const store = await openStore({ root: "/home/me/.local/share/layerfs", mounter: helperMounter("sudo -n /usr/local/bin/layerfs-helper") });
 * ```
 */
export function helperMounter(command: string): Mounter {
  const argv = splitCommand(command);
  return {
    async mount(root: string, id: string, _plan: MountPlan): Promise<void> {
      await call(argv, "mount", root, id);
    },
    async unmount(root: string, id: string, _target: string): Promise<void> {
      await call(argv, "umount", root, id);
    },
  };
}
