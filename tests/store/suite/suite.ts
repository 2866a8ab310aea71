/**
 * The store's conformance suite, one call per backend (containerd's
 * `testsuite.SnapshotterSuite`): `backendSuite("overlay", open)` registers
 * every scenario of the store contract against stores that `open` makes. A
 * new backend is correct when its one call passes.
 *
 * Scenarios differ between backends only by what the backend declares in the
 * registry (capabilities, requirements, own dirs, whiteout format), never by
 * its name. The plan-level scenarios are pure and run for every backend; the
 * store scenarios run where the host has what the backend requires (a
 * backend whose views are mounts needs root; one the kernel lacks, such as
 * aufs here, runs its plan-level part only).
 *
 * | file          | scenarios                                                         |
 * | ------------- | ----------------------------------------------------------------- |
 * | plans.ts      | planMount per kind of layer, read-only plans, labels, purity, depth |
 * | lifecycle.ts  | create/list/ids/modes/owners, read-write parents, remove, backend fixed |
 * | views.ts      | own dirs, EROFS views, deep chains, maxDepth, whiteouts, get/put counts |
 * | apply.ts      | applyDiff whole or nothing, LayerExists, concurrent applies        |
 * | commit.ts     | commit, its refusals, crashes on either side of its commit point   |
 * | usage.ts      | usage of a layer and its chain                                    |
 * | compare.ts    | diff/changes/diffSize against any layer (naive diff)              |
 * | recovery.ts   | sweeps on open, counts, uncounted mounts, failed count writes, failed first open |
 * | damaged.ts    | a corrupt meta or layers record, a deleted diff or backend dir: only that layer is affected |
 * | processes.ts  | several processes on one store, kill -9 then reopen               |
 * | holds.ts      | views held for one call: a killed holder released, a live one kept |
 * | e2e.ts        | apply, change through a view, diff, re-apply; truncated tar; "" parent |
 * | whiteouts.ts  | a whiteout and entries of the same layer (OCI: it hides only the parents') |
 *
 * @module
 */

import type { BackendName } from "../../../src/backends/registry.ts";
import { type OpenFn, Suite } from "./_harness.ts";
import { applyScenarios } from "./apply.ts";
import { commitScenarios } from "./commit.ts";
import { damagedScenarios } from "./damaged.ts";
import { compareScenarios } from "./compare.ts";
import { endToEndScenarios } from "./e2e.ts";
import { holdScenarios } from "./holds.ts";
import { lifecycleScenarios } from "./lifecycle.ts";
import { planScenarios } from "./plans.ts";
import { processScenarios } from "./processes.ts";
import { recoveryScenarios } from "./recovery.ts";
import { usageScenarios } from "./usage.ts";
import { viewScenarios } from "./views.ts";
import { whiteoutScenarios } from "./whiteouts.ts";

export type { OpenFn } from "./_harness.ts";

/**
 * Registers the whole conformance suite for backend `name`, with `open`
 * making (or reopening) a store of it at a given root.
 */
export function backendSuite(name: BackendName, open: OpenFn): void {
  const s = new Suite(name, open);
  planScenarios(s);
  const why = s.runnable;
  if (why) {
    console.warn(
      `skipping the store scenarios of "${name}": ${why}; its plan-level scenarios run`,
    );
    Deno.test({
      name: `suite (${name}): store scenarios (${why})`,
      ignore: true,
      fn: () => {},
    });
    return;
  }
  lifecycleScenarios(s);
  viewScenarios(s);
  applyScenarios(s);
  commitScenarios(s);
  usageScenarios(s);
  compareScenarios(s);
  recoveryScenarios(s);
  damagedScenarios(s);
  processScenarios(s);
  holdScenarios(s);
  endToEndScenarios(s);
  whiteoutScenarios(s);
}
