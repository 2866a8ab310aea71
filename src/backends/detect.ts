/**
 * Choosing a backend: `auto` takes the first backend of the registry
 * (overlay, aufs, vfs) whose declared requirements the host meets. The
 * choice is a pure function of a {@link HostProbe}, so it is testable
 * without root; {@link probeHost} gathers the facts.
 *
 * @module
 */

import { BackendNotSupported, IncompatibleBackingFs } from "../errors.ts";
import { statfs, supportsDType } from "../sys/statfs_linux.ts";
import { backendByName, type BackendName, BACKENDS } from "./registry.ts";
import type { Backend } from "./types.ts";

/** Facts about the host and the store's backing filesystem. */
export interface HostProbe {
  /** Filesystem types the kernel offers (/proc/filesystems). */
  filesystems: string[];
  /** Whether the caller may mount (root, or a privileged mounter was given). */
  canMount: boolean;
  /** Name of the filesystem under the store root (statfs magic). */
  backingFs: string;
  /** Whether readdir reports d_type there. */
  dType: boolean;
}

/** The chosen backend and why. */
export interface BackendChoice {
  /** The backend. */
  backend: BackendName;
  /** A sentence for `status()`. */
  reason: string;
}

type Problem = { kind: "kernel" | "priv" | "fs"; why: string };

/** Why `backend` cannot run on the probed host, or undefined when it can. */
function problem(backend: Backend, p: HostProbe): Problem | undefined {
  const req = backend.requirements;
  if (req.kernelFs !== undefined && !p.filesystems.includes(req.kernelFs)) {
    return {
      kind: "kernel",
      why: `the kernel has no ${req.kernelFs} (not in /proc/filesystems)`,
    };
  }
  if (backend.capabilities.mounts && !p.canMount) {
    return { kind: "priv", why: "mounting needs root or the layerfs helper" };
  }
  if (req.unsuitableBackingFs.includes(p.backingFs)) {
    return { kind: "fs", why: `the store is on ${p.backingFs}` };
  }
  if (req.needsDType && !p.dType) {
    return {
      kind: "fs",
      why:
        `${p.backingFs} does not report d_type (xfs needs ftype=1), so whiteouts would be lost`,
    };
  }
  return undefined;
}

/**
 * Chooses the backend for `requested` given the probe: an explicit backend
 * if it can run, else for `auto` the first backend of the registry that can.
 *
 * @throws {BackendNotSupported} when an explicit backend cannot run here.
 * @throws {IncompatibleBackingFs} when an explicit backend cannot sit on the backing fs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseBackend } from "./detect.ts";
 * const probe = { filesystems: ["ext4", "overlay"], canMount: false, backingFs: "ext4", dType: true };
 * const choice = chooseBackend("auto", probe, "/s");
 * assert.equal(choice.backend, "vfs");
 * assert.match(choice.reason, /overlay: mounting needs root/);
 * ```
 */
export function chooseBackend(
  requested: BackendName | "auto",
  probe: HostProbe,
  root: string,
): BackendChoice {
  if (requested !== "auto") {
    const p = problem(backendByName(requested), probe);
    if (!p) return { backend: requested, reason: `${requested} was requested` };
    if (p.kind === "fs") {
      throw new IncompatibleBackingFs(requested, probe.backingFs, root);
    }
    throw new BackendNotSupported(
      requested,
      `${p.why}; use backend "vfs" or "auto"`,
    );
  }
  const why: string[] = [];
  for (const b of BACKENDS) {
    const p = problem(b, probe);
    if (p) {
      why.push(`${b.name}: ${p.why}`);
      continue;
    }
    const fits = b.capabilities.mounts
      ? `kernel has it, may mount, ${probe.backingFs} with d_type suits`
      : "needs nothing";
    return {
      backend: b.name,
      reason: why.length && !b.capabilities.mounts
        ? `auto: ${why.join("; ")}; using ${b.name}`
        : `auto: ${[...why, `${b.name}: ${fits}`].join("; ")}`,
    };
  }
  // vfs needs nothing, so the loop always returns; this names the bug if not.
  throw new BackendNotSupported("auto", why.join("; "));
}

/**
 * Probes the host for {@link chooseBackend}. `root` must exist; a probe file
 * is created and removed in it to test d_type.
 *
 * @example
 * ```ts ignore
 * import { probeHost } from "./detect.ts";
 * console.log(await probeHost("/var/lib/layerfs", Deno.uid() === 0));
 * ```
 */
export async function probeHost(
  root: string,
  canMount: boolean,
): Promise<HostProbe> {
  const filesystems = (await Deno.readTextFile("/proc/filesystems")).split("\n")
    .map((l) => l.split("\t").pop()!.trim()).filter(Boolean);
  const backingFs = statfs(root).name;
  const dir = await Deno.makeTempDir({ dir: root, prefix: ".probe-" });
  let dType: boolean;
  try {
    await Deno.writeTextFile(`${dir}/f`, "");
    dType = supportsDType(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return { filesystems, canMount, backingFs, dType };
}
