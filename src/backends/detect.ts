/**
 * Choosing a backend: `auto` picks overlay when the kernel has it, the caller
 * may mount and the backing filesystem suits; else aufs; else vfs. The
 * choice is a pure function of a {@link HostProbe}, so it is testable
 * without root; {@link probeHost} gathers the facts.
 *
 * @module
 */

import { BackendNotSupported, IncompatibleBackingFs } from "../errors.ts";
import { statfs, supportsDType } from "../sys/statfs_linux.ts";
import type { BackendName } from "./types.ts";

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

/**
 * Backing filesystems each union backend cannot sit on: overlay and aufs
 * cannot use overlay, aufs or ecryptfs as upper/branch storage (moby's
 * overlay2 and aufs drivers refuse the same list).
 */
const UNSUITABLE: Record<"overlay" | "aufs", string[]> = {
  overlay: ["overlayfs", "aufs", "ecryptfs"],
  aufs: ["aufs", "ecryptfs", "btrfs"],
};

function unionProblem(
  backend: "overlay" | "aufs",
  p: HostProbe,
): { kind: "kernel" | "priv" | "fs"; why: string } | undefined {
  const fsName = backend === "overlay" ? "overlay" : "aufs";
  if (!p.filesystems.includes(fsName)) {
    return {
      kind: "kernel",
      why: `the kernel has no ${fsName} (not in /proc/filesystems)`,
    };
  }
  if (!p.canMount) {
    return { kind: "priv", why: "mounting needs root or the layerfs helper" };
  }
  if (UNSUITABLE[backend].includes(p.backingFs)) {
    return { kind: "fs", why: `the store is on ${p.backingFs}` };
  }
  if (!p.dType) {
    return {
      kind: "fs",
      why:
        `${p.backingFs} does not report d_type (xfs needs ftype=1), so whiteouts would be lost`,
    };
  }
  return undefined;
}

/**
 * Chooses the backend for `requested` given the probe.
 *
 * @throws {BackendNotSupported} when an explicit backend cannot run here.
 * @throws {IncompatibleBackingFs} when an explicit backend cannot sit on the backing fs.
 *
 * @example
 * ```ts
 * import { chooseBackend } from "./detect.ts";
 * const probe = { filesystems: ["ext4", "overlay"], canMount: false, backingFs: "ext4", dType: true };
 * console.log(chooseBackend("auto", probe, "/s"));
 * // { backend: "vfs", reason: "overlay: mounting needs root ...; aufs: ...; using vfs" }
 * ```
 */
export function chooseBackend(
  requested: BackendName | "auto",
  probe: HostProbe,
  root: string,
): BackendChoice {
  if (requested === "vfs") {
    return { backend: "vfs", reason: "vfs was requested" };
  }
  if (requested !== "auto") {
    const p = unionProblem(requested, probe);
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
  for (const b of ["overlay", "aufs"] as const) {
    const p = unionProblem(b, probe);
    if (!p) {
      return {
        backend: b,
        reason: `auto: ${
          [
            ...why,
            `${b}: kernel has it, may mount, ${probe.backingFs} with d_type suits`,
          ].join("; ")
        }`,
      };
    }
    why.push(`${b}: ${p.why}`);
  }
  return { backend: "vfs", reason: `auto: ${why.join("; ")}; using vfs` };
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
