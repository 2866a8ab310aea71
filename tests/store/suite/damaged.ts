/**
 * Damaged-layer scenarios: one layer's records corrupted or its dirs deleted
 * by hand must not break the rest of the store. The damaged layer is listed
 * and marked, `check` names it and the file, operations on it throw
 * LayerDamaged naming it (never a bare syscall error), `remove` with force
 * removes what is left, and every other layer keeps working.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LayerDamaged, LayerInUse, StoreError } from "../../../mod.ts";
import { checkStore } from "../../../src/cli/check.ts";
import { StoreLayout } from "../../../src/layout.ts";
import { assertOnly, type StoreCase, type Suite } from "./_harness.ts";

/** A base, an image layer on it, a container on that, and an unrelated layer. */
async function fixture(c: StoreCase): Promise<void> {
  await c.store.create("base");
  await c.store.create("app", "base");
  await c.store.createReadWrite("ctr", "app");
  await c.store.createReadWrite("other");
  await Deno.writeTextFile(`${await c.store.get("other")}/kept`, "kept\n");
  await c.store.put("other");
}

/** The healthy layers still work: listed unmarked, mountable, their files there. */
async function othersWork(c: StoreCase, ids: string[]): Promise<void> {
  const rows = await c.store.list();
  for (const id of ids) {
    const row = rows.find((r) => r.id === id);
    assert.ok(row, `${id} listed`);
    assert.equal(row.damaged, undefined, `${id} not marked`);
    const view = await c.store.get(id);
    try {
      if (id === "other") {
        assert.equal(await Deno.readTextFile(`${view}/kept`), "kept\n");
      }
    } finally {
      await c.store.put(id);
    }
  }
}

/** Asserts `p` rejects with LayerDamaged about `id`, its message naming `what` and the fix. */
async function rejectsDamaged(
  p: Promise<unknown>,
  id: string,
  what: RegExp,
): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof LayerDamaged, `${e.name}: ${e.message}`);
    assert.equal(e.id, id);
    assert.match(e.message, new RegExp(`^Layer "${id}" is damaged: `));
    assert.match(e.message, what);
    assert.match(e.message, /run "layerfs check"/);
    assert.match(e.message, new RegExp(`layerfs rm --force ${id}"`));
    assert.doesNotMatch(e.message, /ENOENT|fsconfig|openat|os error/);
    return true;
  });
}

export function damagedScenarios(s: Suite): void {
  s.store(
    "damaged: a corrupt meta/<id> is listed and marked, named by check and get, and removed with force",
    async (c) => {
      const { store, root } = c;
      await fixture(c);
      await Deno.writeTextFile(`${root}/meta/app`, '{"readWrite":fal'); // truncated
      const reopened = await c.reopen(); // open (recovery) must not fail on it
      const rows = await reopened.list();
      assert.deepEqual(rows.map((r) => r.id), ["app", "base", "ctr", "other"]);
      assert.match(
        rows.find((r) => r.id === "app")!.damaged!,
        /^meta\/app is not a valid JSON object/,
      );
      await rejectsDamaged(store.get("app"), "app", /meta\/app/);
      await rejectsDamaged(store.metadata("app"), "app", /meta\/app/);
      await rejectsDamaged(store.create("x", "app"), "app", /meta\/app/);
      assert.equal(await store.exists("app"), true);

      const report = await checkStore(root);
      assert.deepEqual(
        report.problems.map((p) => [p.kind, p.subject, p.repaired]),
        [["bad-metadata", "meta/app", false]],
      );
      assert.match(report.problems[0].message, /layer "app"/);
      assert.match(report.problems[0].message, /layerfs rm --force app/);
      // Repair does not guess what the meta said: the file stays as it was.
      const repaired = await checkStore(root, { repair: true });
      assert.equal(repaired.problems[0].repaired, false);
      assert.equal(
        await Deno.readTextFile(`${root}/meta/app`),
        '{"readWrite":fal',
      );

      await othersWork(c, ["base", "other"]);
      await store.remove("app", { force: true }); // ctr on it goes too
      assert.deepEqual((await store.list()).map((r) => r.id), [
        "base",
        "other",
      ]);
      await assertOnly(c, ["base", "other"]);
      assert.deepEqual((await checkStore(root)).problems, []);
      await othersWork(c, ["base", "other"]);
    },
  );

  s.store(
    "damaged: a corrupt meta of a mounted layer does not stop open, put or a forced remove",
    async (c) => {
      const { store, root } = c;
      await fixture(c);
      await store.get("ctr");
      await store.get("ctr");
      await Deno.writeTextFile(`${root}/meta/ctr`, "garbage");
      const again = await c.reopen(); // reconciles the count of a damaged layer
      const row = (await again.list()).find((r) => r.id === "ctr")!;
      assert.ok(row.damaged);
      assert.equal(row.mounts, 2);
      await again.put("ctr");
      assert.equal((await again.list()).find((r) => r.id === "ctr")!.mounts, 1);
      // Without force, a layer in use is refused as ever.
      await assert.rejects(again.remove("ctr"), LayerInUse);
      await again.remove("ctr", { force: true });
      assert.equal(await again.exists("ctr"), false);
      await othersWork(c, ["app", "base", "other"]);
    },
  );

  s.store(
    "damaged: layers/<id> with an invalid or a missing parent id is listed and marked; check names it; remove with force works",
    async (c) => {
      const { store, root } = c;
      await fixture(c);
      await Deno.writeTextFile(`${root}/layers/ctr`, "app\n../../etc\n");
      await Deno.writeTextFile(`${root}/layers/other`, "ghost\n");
      const again = await c.reopen();
      const rows = await again.list();
      assert.deepEqual(rows.map((r) => r.id), ["app", "base", "ctr", "other"]);
      const ctr = rows.find((r) => r.id === "ctr")!;
      assert.equal(ctr.parent, undefined);
      assert.match(ctr.damaged!, /layers\/ctr names an invalid parent id/);
      const other = rows.find((r) => r.id === "other")!;
      assert.equal(other.parent, "ghost");
      assert.match(other.damaged!, /layers\/other names parent "ghost"/);
      await rejectsDamaged(store.get("ctr"), "ctr", /layers\/ctr/);
      await rejectsDamaged(store.parents("ctr"), "ctr", /layers\/ctr/);
      await assert.rejects(store.parents("ctr"), StoreError); // as before
      if (c.caps.mounts) {
        // The view of a layer on a missing parent cannot be stacked.
        await rejectsDamaged(store.get("other"), "other", /"ghost"/);
      }

      const kinds = (await checkStore(root)).problems.map((p) =>
        `${p.kind} ${p.subject}`
      );
      assert.ok(kinds.includes("bad-metadata layers/ctr"), kinds.join());
      assert.ok(kinds.includes("missing-parent other"), kinds.join());

      await store.remove("ctr", { force: true });
      await store.remove("other", { force: true });
      await assertOnly(c, ["app", "base"]);
      assert.deepEqual((await checkStore(root)).problems, []);
      await othersWork(c, ["app", "base"]);
    },
  );

  s.store(
    "damaged: a diff dir deleted by hand: get throws LayerDamaged naming the layer (or the parent), check reports it, remove with force works",
    async (c) => {
      const { store, root } = c;
      await fixture(c);
      await store.createReadWrite("lone"); // a view that is its own dir
      for (const id of ["app", "lone"]) {
        await Deno.remove(`${root}/diff/${id}`, { recursive: true });
      }
      const rows = await store.list();
      for (const id of ["app", "lone"]) {
        assert.match(
          rows.find((r) => r.id === id)!.damaged!,
          new RegExp(`^diff/${id} is missing`),
        );
      }
      await rejectsDamaged(store.get("app"), "app", /diff\/app is missing/);
      await rejectsDamaged(store.get("lone"), "lone", /diff\/lone is missing/);
      if (c.caps.mounts) {
        // ctr stacks on app: the error names the parent that is damaged.
        await rejectsDamaged(store.get("ctr"), "app", /needed by layer "ctr"/);
      }
      await rejectsDamaged(store.usage("app"), "app", /diff\/app/);
      await rejectsDamaged(store.changes("app"), "app", /diff\/app/);
      await rejectsDamaged(
        new Response(store.diff("lone")).bytes(),
        "lone",
        /diff\/lone/,
      );
      await rejectsDamaged(store.create("x", "app"), "app", /diff\/app/);
      await rejectsDamaged(store.commit("lone", "img"), "lone", /diff\/lone/);
      assert.equal(await store.exists("img"), false);
      // No get was left counted by the failed ones.
      assert.ok((await store.list()).every((r) => r.mounts === 0));

      const report = await checkStore(root, { repair: true });
      const missing = report.problems.filter((p) => p.kind === "missing-dir");
      assert.deepEqual(
        missing.map((p) => [p.subject, p.repaired]),
        [["diff/app", false], ["diff/lone", false]],
      );
      assert.match(missing[0].message, /layer "app".*layerfs rm --force app/);
      // Repair never makes an empty content dir in place of the lost one.
      await assert.rejects(
        Deno.lstat(`${root}/diff/app`),
        Deno.errors.NotFound,
      );

      await othersWork(c, ["base", "other"]);
      await store.remove("app", { force: true });
      await store.remove("lone", { force: true });
      await assertOnly(c, ["base", "other"]);
      assert.deepEqual((await checkStore(root)).problems, []);
    },
  );

  s.store(
    "damaged: a backend's own per-layer dir deleted by hand is reported and remade by check --repair",
    { unless: (b) => b.ownDirs.length ? undefined : "keeps no per-layer dirs" },
    async (c) => {
      const { store, root } = c;
      await fixture(c);
      const layout = new StoreLayout(root);
      const own = Object.values(c.backend.layerPaths(layout, "ctr"));
      assert.ok(own.length > 0);
      for (const p of own) await Deno.remove(p, { recursive: true });
      await rejectsDamaged(store.get("ctr"), "ctr", /is missing/);
      const report = await checkStore(root, { repair: true });
      assert.ok(report.problems.length > 0);
      assert.ok(
        report.problems.every((p) => p.kind === "missing-dir" && p.repaired),
        JSON.stringify(report.problems),
      );
      assert.deepEqual((await checkStore(root)).problems, []);
      await Deno.writeTextFile(`${await store.get("ctr")}/new`, "x\n");
      await store.put("ctr");
    },
  );
}
