/**
 * The overlay backend: kernel overlayfs, a read-write layer's diff dir as
 * upper dir (a read-only layer's as the top lower dir), its parents' diff
 * dirs as lower dirs (nearest first), `nosuid,nodev`. It
 * owns `work/<id>` (overlay's workdir) and `l/<short>` (short links for the
 * page-limited mount(2) fallback).
 *
 * @module
 */

import type { StoreLayout } from "../layout.ts";
import type {
  BindMountPlan,
  NoMountPlan,
  OverlayMountPlan,
} from "../mount/plan.ts";
import {
  overlayCodec,
  overlayUserXattrCodec,
} from "../archive/whiteout/overlay.ts";
import {
  baseView,
  entryNames,
  exists,
  removeDir,
  removeEntry,
} from "./_mounting.ts";
import type { Backend, LayerMountInput } from "./types.ts";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * The short link name of a layer (`l/<name>` points to `../diff/<id>`): 12
 * base32 characters of a 64-bit FNV-1a hash of the id. moby's overlay2 uses
 * random 26-character links, which caps it at 128 layers in a 4 KiB option
 * string; 15 bytes per layer ("l/" + 12 + ":") fit about 260. Deterministic,
 * so planning a mount reads no per-parent metadata.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shortLinkName } from "./overlay.ts";
 * assert.equal(shortLinkName("base").length, 12);
 * assert.equal(shortLinkName("base"), shortLinkName("base"));
 * ```
 */
export function shortLinkName(id: string): string {
  // 64-bit FNV-1a in two 32-bit halves: BigInt arithmetic made planning a
  // 500-layer view cost 1.4 ms, this costs ~0.03 ms (same names).
  let hi = 0xcbf29ce4, lo = 0x84222325;
  for (const b of ENCODER.encode(id)) {
    lo ^= b;
    // h * 0x100000001b3 mod 2^64 = h * 0x1b3 + (h << 40)
    const l16 = lo & 0xffff, l16h = lo >>> 16;
    const a = l16 * 0x1b3;
    const c = l16h * 0x1b3 + (a >>> 16);
    const newLo = ((c & 0xffff) << 16 | (a & 0xffff)) >>> 0;
    const newHi = (Math.imul(hi, 0x1b3) + (c >>> 16) + (lo << 8)) >>> 0;
    hi = newHi;
    lo = newLo;
  }
  let out = "";
  for (let i = 0; i < 12; i++) {
    out += BASE32[lo & 31];
    lo = (lo >>> 5 | hi << 27) >>> 0;
    hi >>>= 5;
  }
  return out;
}

const ENCODER = new TextEncoder();

/** The kernel's OVL_MAX_STACK: lower dirs one overlay mount may stack. */
const OVL_MAX_STACK = 500;

/**
 * Plans a layer's overlay view. A read-write layer without parents is its own
 * view (no mount); a read-only one gets a read-only bind mount. With parents,
 * a read-write layer is the upper dir over them; a read-only layer is the
 * top lower dir with no upper dir (overlayfs writes xattrs into an upper dir
 * even on a read-only mount), except in a chain the kernel cannot stack
 * without one: a layer with 500 parents (the limit before layerfs kept a
 * slot for this, `maxDepth` 499 now), viewed as before, read-only over an
 * upper dir.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planOverlayMount } from "./overlay.ts";
 * const plan = planOverlayMount({ root: "/s", id: "app", parents: ["base"], readWrite: true });
 * assert.equal(plan.kind, "overlay");
 * if (plan.kind === "overlay") {
 *   assert.deepEqual(plan.lowerdirs, ["/s/diff/base"]);
 *   assert.equal(plan.upperdir, "/s/diff/app");
 *   assert.equal(plan.target, "/s/mnt/app");
 * }
 * const view = planOverlayMount({ root: "/s", id: "app", parents: ["base"], readWrite: false });
 * if (view.kind === "overlay") {
 *   assert.deepEqual(view.lowerdirs, ["/s/diff/app", "/s/diff/base"]);
 *   assert.equal(view.upperdir, undefined);
 * }
 * ```
 */
export function planOverlayMount(
  input: LayerMountInput,
): OverlayMountPlan | BindMountPlan | NoMountPlan {
  const { root, id, parents } = input;
  if (parents.length === 0) return baseView(input);
  const upper = input.readWrite || parents.length + 1 > OVL_MAX_STACK;
  const lowers = upper ? parents : [id, ...parents];
  const plan: OverlayMountPlan = {
    kind: "overlay",
    target: `${root}/mnt/${id}`,
    lowerdirs: lowers.map((p) => `${root}/diff/${p}`),
    readOnly: !input.readWrite,
    nosuid: true,
    nodev: true,
  };
  if (upper) {
    plan.upperdir = `${root}/diff/${id}`;
    plan.workdir = `${root}/work/${id}`;
  }
  if (input.mountLabel) plan.mountLabel = input.mountLabel;
  if (input.userXattr) plan.userXattr = true;
  plan.short = {
    cwd: root,
    lowerdirs: lowers.map((p) => `l/${shortLinkName(p)}`),
  };
  if (upper) {
    plan.short.upperdir = `diff/${id}`;
    plan.short.workdir = `work/${id}`;
  }
  return plan;
}

const work = (l: StoreLayout, id: string) => `${l.root}/work/${id}`;
const link = (l: StoreLayout, id: string) => `${l.root}/l/${shortLinkName(id)}`;

/**
 * The overlay backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlayBackend } from "./overlay.ts";
 * assert.equal(overlayBackend.whiteoutFormat, "overlay");
 * assert.equal(overlayBackend.capabilities.maxDepth, 499);
 * ```
 */
export const overlayBackend: Backend<"overlay"> = {
  name: "overlay",
  summary:
    "kernel overlayfs: parents as lower dirs (fsconfig lowerdir+, 500 layers in all), the layer as upper dir (read-write) or top lower dir (read-only)",
  whiteoutFormat: "overlay",
  whiteoutCodec: (settings) =>
    settings.userXattr ? overlayUserXattrCodec : overlayCodec,
  capabilities: {
    mounts: true,
    copiesParent: false,
    readOnlyViews: true,
    // OVL_MAX_STACK lower dirs: a read-only view stacks the layer itself
    // and its parents.
    maxDepth: OVL_MAX_STACK - 1,
  },
  requirements: {
    kernelFs: "overlay",
    // moby's overlay2 refuses the same: overlay cannot use these as upper dirs.
    unsuitableBackingFs: ["overlayfs", "aufs", "ecryptfs"],
    needsDType: true,
  },
  ownDirs: ["work", "l"],
  // A user who is not root cannot write trusted.* xattrs when extracting, so
  // such a store keeps its whiteout state in user.overlay.* for good.
  settingsAtInit: (isRoot) => isRoot ? {} : { userXattr: true },
  statusRows: (settings) => [
    [
      "overlay xattrs",
      settings.userXattr ? "user.overlay.* (userxattr)" : "trusted.overlay.*",
    ],
    ["mount api", "fsopen/fsconfig lowerdir+ (mount(2) fallback)"],
  ],
  layerPaths: (layout, id) => ({ work: work(layout, id) }),
  async prepareLayer(layout, id) {
    await Deno.mkdir(work(layout, id), { mode: 0o700 });
    await Deno.symlink(`../diff/${id}`, link(layout, id));
  },
  async removeLayer(layout, id) {
    await removeEntry(link(layout, id));
    await removeDir(work(layout, id));
  },
  async leftovers(layout, live) {
    const out: string[] = [];
    for (const n of await entryNames(`${layout.root}/work`)) {
      if (!live.has(n)) out.push(`work/${n}`);
    }
    const links = new Set([...live].map(shortLinkName));
    for (const n of await entryNames(`${layout.root}/l`)) {
      if (!links.has(n)) out.push(`l/${n}`);
    }
    return out;
  },
  // The work dir is overlay's scratch space and the link names diff/<id>:
  // neither holds data of the layer, so both can be remade exactly.
  async missingEntries(layout, id) {
    const out: string[] = [];
    if (!(await exists(work(layout, id)))) out.push(`work/${id}`);
    if (!(await exists(link(layout, id)))) out.push(`l/${shortLinkName(id)}`);
    return out;
  },
  async restoreEntries(layout, id) {
    if (!(await exists(work(layout, id)))) {
      await Deno.mkdir(work(layout, id), { mode: 0o700 });
    }
    if (!(await exists(link(layout, id)))) {
      await Deno.symlink(`../diff/${id}`, link(layout, id));
    }
  },
  planMount: planOverlayMount,
};
