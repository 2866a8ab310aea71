/**
 * Plan-level scenarios: what a backend's pure `planMount` promises for each
 * kind of layer, checked against its declared capabilities. They need no
 * root and no kernel support, so they run for every backend, including ones
 * this kernel cannot mount (aufs).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { MountPlan } from "../../../mod.ts";
import type { LayerMountInput } from "../../../src/backends/types.ts";
import { MS } from "../../../src/sys/mount_linux.ts";
import type { Suite } from "./_harness.ts";

const ROOT = "/nonexistent/store"; // planning never touches the disk

function input(
  id: string,
  parents: string[],
  readWrite: boolean,
  extra: Partial<LayerMountInput> = {},
): LayerMountInput {
  return { root: ROOT, id, parents, readWrite, ...extra };
}

/** Whether the kernel would keep the view read-only, from the plan's data. */
function readOnly(plan: MountPlan): boolean {
  switch (plan.kind) {
    case "none":
      return false;
    case "bind":
    case "overlay":
      return plan.readOnly;
    case "aufs":
      return plan.calls.every((c) => (c.flags & MS.RDONLY) !== 0);
  }
}

/** Whether every mount of the plan is nosuid and nodev. */
function noSuidNoDev(plan: MountPlan): boolean {
  switch (plan.kind) {
    case "none":
      return true;
    case "bind":
    case "overlay":
      return plan.nosuid && plan.nodev;
    case "aufs":
      return plan.calls.every((c) =>
        (c.flags & MS.NOSUID) !== 0 && (c.flags & MS.NODEV) !== 0
      );
  }
}

/** Asserts each of `dirs` occurs in the plan's data, each after the one before. */
function assertInOrder(plan: MountPlan, dirs: string[]): void {
  const text = JSON.stringify(plan);
  let at = -1;
  for (const d of dirs) {
    const re = new RegExp(
      d.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "(?![A-Za-z0-9_.-])",
      "g",
    );
    re.lastIndex = at + 1;
    const m = re.exec(text);
    assert.ok(m, `${d} (after the previous dir) in ${text.slice(0, 300)}`);
    at = m.index;
  }
}

export function planScenarios(s: Suite): void {
  s.plan("a read-write layer without parents is its own dir", (b) => {
    assert.deepEqual(b.planMount(input("a", [], true)), {
      kind: "none",
      target: `${ROOT}/diff/a`,
    });
  });

  s.plan("a read-only layer without parents", (b) => {
    const plan = b.planMount(input("a", [], false));
    if (!b.capabilities.mounts) {
      assert.deepEqual(plan, { kind: "none", target: `${ROOT}/diff/a` });
      return;
    }
    assert.equal(plan.target, `${ROOT}/mnt/a`);
    assert.equal(readOnly(plan), b.capabilities.readOnlyViews);
    assert.ok(noSuidNoDev(plan));
    assertInOrder(plan, [`${ROOT}/diff/a`]);
  });

  s.plan(
    "a layer with parents: every parent, nearest first; read-only unless read-write",
    (b) => {
      const parents = ["p3", "p2", "p1"];
      for (const readWrite of [true, false]) {
        const plan = b.planMount(input("top", parents, readWrite));
        if (!b.capabilities.mounts) {
          assert.deepEqual(plan, { kind: "none", target: `${ROOT}/diff/top` });
          continue;
        }
        assert.notEqual(plan.kind, "none");
        assert.equal(plan.target, `${ROOT}/mnt/top`);
        assert.equal(
          readOnly(plan),
          !readWrite && b.capabilities.readOnlyViews,
          `readWrite ${readWrite}`,
        );
        assert.ok(noSuidNoDev(plan));
        assertInOrder(plan, parents.map((p) => `${ROOT}/diff/${p}`));
        assert.ok(JSON.stringify(plan).includes(`${ROOT}/diff/top`));
      }
    },
  );

  s.plan("a mount label reaches the view's mount", (b) => {
    const label = "system_u:object_r:container_file_t:s0:c1,c2";
    const plan = b.planMount(
      input("top", ["base"], true, { mountLabel: label }),
    );
    if (!b.capabilities.mounts) return assert.equal(plan.kind, "none");
    assert.ok(JSON.stringify(plan).includes(label), JSON.stringify(plan));
  });

  s.plan("planning is pure: the same input gives the same plan", (b) => {
    for (
      const i of [
        input("a", [], false),
        input("top", ["mid", "base"], true),
        input("top", ["mid", "base"], false, { userXattr: true }),
      ]
    ) {
      const copy = structuredClone(i);
      assert.deepEqual(b.planMount(i), b.planMount(copy));
      assert.deepEqual(i, copy, "the input is not changed");
    }
  });

  s.plan(
    "a chain of maxDepth parents plans; every mount(2) call fits a page",
    (b) => {
      const max = b.capabilities.maxDepth;
      const depth = Number.isFinite(max) ? max : 1000;
      const parents = Array.from(
        { length: depth },
        (_, i) => `layer-${String(depth - i).padStart(4, "0")}`,
      );
      const plan = b.planMount(input("top", parents, true));
      if (!b.capabilities.mounts) return assert.equal(plan.kind, "none");
      assertInOrder(plan, parents.map((p) => `${ROOT}/diff/${p}`));
      if (plan.kind === "aufs") {
        assert.equal(plan.branches, depth + 1);
        for (const c of plan.calls) {
          assert.ok(new TextEncoder().encode(c.data).length < 4096, c.data);
        }
      }
    },
  );
}
