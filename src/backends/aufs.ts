/**
 * The aufs backend: Docker's original driver and the seed's. Planned exactly
 * as Docker's aufs driver mounts (daemon/graphdriver/aufs aufsMount): one
 * mount with `br:<rw>=rw:<ro>=ro+wh:...` clipped so the options fit in a
 * page with room for the xino option and the label, then one MS_REMOUNT
 * `append:<dir>=ro+wh` call per branch that did not fit.
 *
 * @module
 */

import { MS } from "../sys/mount_linux.ts";
import type {
  AufsMountPlan,
  BindMountPlan,
  MountCall,
  NoMountPlan,
} from "../mount/plan.ts";
import { aufsCodec } from "../archive/whiteout/aufs.ts";
import { baseView } from "./_mounting.ts";
import type { Backend, LayerMountInput } from "./types.ts";

/** Options of {@link planAufsMount}. */
export interface AufsPlanOptions {
  /**
   * Page size: mount(2) copies one page of options.
   * @default {4096}
   */
  pageSize?: number;
  /**
   * Add `dirperm1` (aufs 3.18+; Docker probes for it).
   * @default {false}
   */
  dirperm1?: boolean;
}

/** Docker's `label.FormatMountLabel`: appends `context="<label>"`. */
function withLabel(data: string, label: string | undefined): string {
  if (!label) return data;
  return data === "" ? `context="${label}"` : `${data},context="${label}"`;
}

/**
 * Plans a layer's aufs view as the exact list of mount(2) calls. Flags add
 * `nosuid,nodev` (and `ro` for read-only layers) to Docker's; every remount
 * repeats them because MS_REMOUNT replaces per-mount flags. A layer without
 * parents is its own view (read-only ones through a read-only bind mount).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planAufsMount } from "./aufs.ts";
 * const plan = planAufsMount({ root: "/s", id: "app", parents: ["base"], readWrite: true });
 * assert.equal(plan.kind, "aufs");
 * if (plan.kind === "aufs") {
 *   assert.equal(
 *     plan.calls[0].data,
 *     "br:/s/diff/app=rw:/s/diff/base=ro+wh,dio,xino=/dev/shm/aufs.xino",
 *   );
 * }
 * ```
 */
export function planAufsMount(
  input: LayerMountInput,
  options: AufsPlanOptions = {},
): AufsMountPlan | BindMountPlan | NoMountPlan {
  const { root, id, parents, mountLabel } = input;
  if (parents.length === 0) return baseView(input);
  const pageSize = options.pageSize ?? 4096;
  const target = `${root}/mnt/${id}`;
  const rw = `${root}/diff/${id}`;
  const ro = parents.map((p) => `${root}/diff/${p}`);
  const flags = MS.NOSUID | MS.NODEV | (input.readWrite ? 0 : MS.RDONLY);
  const enc = new TextEncoder();
  // Room for ",dio,xino=/dev/shm/aufs.xino" and the label (Docker's offset 54).
  const room = pageSize - enc.encode(mountLabel ?? "").length - 54 -
    (options.dirperm1 ? ",dirperm1".length : 0);
  let data = `br:${rw}=rw`;
  let used = enc.encode(data).length;
  let i = 0;
  for (; i < ro.length; i++) {
    const branch = `:${ro[i]}=ro+wh`;
    const len = enc.encode(branch).length;
    if (used + len > room) break;
    data += branch;
    used += len;
  }
  const opts = "dio,xino=/dev/shm/aufs.xino" +
    (options.dirperm1 ? ",dirperm1" : "");
  const calls: MountCall[] = [
    {
      source: "none",
      target,
      fstype: "aufs",
      flags,
      data: withLabel(`${data},${opts}`, mountLabel),
    },
  ];
  for (; i < ro.length; i++) {
    calls.push({
      source: "none",
      target,
      fstype: "aufs",
      flags: flags | MS.REMOUNT,
      data: withLabel(`append:${ro[i]}=ro+wh`, mountLabel),
    });
  }
  return { kind: "aufs", target, branches: ro.length + 1, calls };
}

/**
 * The aufs backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aufsBackend } from "./aufs.ts";
 * assert.equal(aufsBackend.whiteoutFormat, "aufs");
 * assert.equal(aufsBackend.capabilities.mounts, true);
 * ```
 */
export const aufsBackend: Backend<"aufs"> = {
  name: "aufs",
  summary:
    "aufs (kernels that have it): Docker's br: mount, then append: remounts",
  whiteoutFormat: "aufs",
  whiteoutCodec: () => aufsCodec,
  capabilities: {
    mounts: true,
    copiesParent: false,
    readOnlyViews: true,
    // Docker's aufs driver stacks at most 127 branches (aufs' default
    // AUFS_BRANCH_MAX), plus the layer's own.
    maxDepth: 127,
  },
  requirements: {
    kernelFs: "aufs",
    // Docker's aufs driver refuses the same backing filesystems.
    unsuitableBackingFs: ["aufs", "ecryptfs", "btrfs"],
    needsDType: true,
  },
  ownDirs: [],
  settingsAtInit: () => ({}),
  statusRows: () => [["mount api", "mount(2) with MS_REMOUNT append"]],
  layerPaths: () => ({}),
  prepareLayer: () => Promise.resolve(),
  removeLayer: () => Promise.resolve(),
  leftovers: () => Promise.resolve([]),
  missingEntries: () => Promise.resolve([]),
  restoreEntries: () => Promise.resolve(),
  planMount: (input) => planAufsMount(input),
};
