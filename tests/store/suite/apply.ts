/**
 * applyDiff scenarios: a new layer is built in staging and published whole
 * (nothing visible on failure); it never applies into an existing layer, and
 * of concurrent applies of one id exactly one wins.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LayerExists, LayerfsError, ParentNotFound } from "../../../mod.ts";
import { describe, put } from "../_helpers.ts";
import { collect, gnuTar, gnuTarList } from "../../integration/_tree.ts";
import { withView } from "./_fixtures.ts";
import { assertOnly, entries, type Suite } from "./_harness.ts";

/** Member names of a diff stream, without "./" and trailing "/". */
export async function tarNames(
  stream: ReadableStream<Uint8Array>,
): Promise<string[]> {
  return (await gnuTarList(await collect(stream)))
    .map((n) => n.replace(/^\.\//, "").replace(/\/$/, ""))
    .filter((n) => n && n !== ".");
}

export function applyScenarios(s: Suite): void {
  s.store(
    "applyDiff publishes a new layer whole; its diff lists its files",
    async (c) => {
      const { store, src } = c;
      await put(`${src}/base/etc/hosts`, "h\n");
      await put(`${src}/base/bin/sh`, "#!\n", 0o755);
      const n = await store.applyDiff(
        "base",
        undefined,
        await gnuTar(`${src}/base`),
      );
      assert.equal(typeof n, "number");
      assert.equal(n, await store.diffSize("base"));
      assert.deepEqual(await store.parents("base"), []);
      assert.equal(
        (await store.list()).find((l) => l.id === "base")?.readWrite,
        false,
      );
      await put(`${src}/child/etc/new`, "n\n");
      await store.applyDiff("child", "base", await gnuTar(`${src}/child`));
      const tree = await withView(store, "child", describe);
      assert.equal(tree.get("/etc/hosts")?.content, "h\n");
      assert.equal(tree.get("/etc/new")?.content, "n\n");
      assert.equal(tree.get("/bin/sh")?.mode, 0o755);
      const names = await tarNames(store.diff("child"));
      assert.ok(names.includes("etc/new"), names.join(","));
      assert.ok(!names.includes("etc/hosts"), names.join(","));
      await assertOnly(c, ["base", "child"]);
    },
  );

  s.store(
    "a parent removed while its child is applied: ParentNotFound says so, nothing is published",
    async (c) => {
      const { store, src } = c;
      await put(`${src}/base/a`, "a\n");
      await store.applyDiff("base", undefined, await gnuTar(`${src}/base`));
      await put(`${src}/child/b`, "b\n");
      const tar = await gnuTar(`${src}/child`);
      // The tar's first read removes the parent (no child is published yet,
      // so nothing refuses it); the child's publish finds it gone.
      const input = new ReadableStream<Uint8Array>({
        async pull(ctl) {
          assert.deepEqual(await store.remove("base"), ["base"]);
          ctl.enqueue(tar);
          ctl.close();
        },
      }, { highWaterMark: 0 });
      await assert.rejects(store.applyDiff("child", "base", input), (e) => {
        assert.ok(e instanceof ParentNotFound, String(e));
        assert.equal(e.removed, true);
        assert.match(e.message, /"base" was removed while it was being built/);
        return true;
      });
      await assertOnly(c, []);
      // Never there: the plain message.
      await assert.rejects(store.applyDiff("x", "nope", tar), (e) => {
        assert.ok(e instanceof ParentNotFound && !e.removed, String(e));
        assert.match(e.message, /does not exist; create the parent first/);
        return true;
      });
    },
  );

  s.store("a failing tar leaves nothing visible", async (c) => {
    const { store, src } = c;
    await put(`${src}/base/a`, "x".repeat(5000));
    const good = await gnuTar(`${src}/base`);
    const truncated = good.slice(0, 1024 + 700); // header + part of the data
    await assert.rejects(
      store.applyDiff("bad", undefined, truncated),
      LayerfsError,
    );
    assert.equal(await store.exists("bad"), false);
    await assertOnly(c, []);
    for (const d of c.backend.ownDirs) {
      assert.deepEqual(await entries(`${c.root}/${d}`), [], d);
    }
    // The id is free again.
    await store.applyDiff("bad", undefined, good);
    assert.equal(await store.exists("bad"), true);
  });

  s.store(
    "applyDiff onto an existing layer is LayerExists; the layer and a child's view are unchanged",
    async (c) => {
      const { store, src } = c;
      await put(`${src}/v1/etc/f`, "v1\n");
      await put(`${src}/v2/etc/f`, "v2\n");
      await put(`${src}/v2/usr/x`, "x\n");
      const v2 = await gnuTar(`${src}/v2`);
      await store.applyDiff("base", undefined, await gnuTar(`${src}/v1`));
      await store.create("empty", "base"); // the old store re-applied into these
      await store.create("child", "empty");
      await store.createReadWrite("ctr", "child");
      const own = async () =>
        Object.fromEntries(
          await Promise.all(
            ["base", "empty", "child", "ctr"].map(async (id) =>
              [id, await describe((await store.metadata(id)).diff)] as const
            ),
          ),
        );
      const before = await own();
      const childView = await withView(store, "child", describe);
      const ctrView = await store.get("ctr"); // held while the applies fail
      const heldBefore = await describe(ctrView);
      for (
        const [id, parent] of [
          ["base", undefined],
          ["empty", "base"],
          ["empty", undefined],
          ["child", "empty"],
          ["ctr", "child"],
        ] as const
      ) {
        await assert.rejects(
          store.applyDiff(id, parent, v2),
          (e) => e instanceof LayerExists && e.id === id,
          `${id} on ${parent}`,
        );
      }
      assert.deepEqual(await own(), before);
      assert.deepEqual(await describe(ctrView), heldBefore);
      await store.put("ctr");
      assert.deepEqual(await withView(store, "child", describe), childView);
      assert.equal(childView.get("/etc/f")?.content, "v1\n");
      assert.deepEqual(await store.parents("child"), ["empty", "base"]);
      await assertOnly(c, ["base", "child", "ctr", "empty"]);
    },
  );

  s.store(
    "concurrent applyDiff of one new id: exactly one wins, the others are LayerExists, the layer holds the winner's tar entirely",
    async (c) => {
      const { store, src } = c;
      const N = 3;
      const tars: Uint8Array[] = [];
      for (let i = 0; i < N; i++) {
        await put(`${src}/t${i}/common`, `from tar ${i}\n`);
        for (let j = 0; j < 40; j++) {
          await put(`${src}/t${i}/only-${i}/f${j}`, `${i}.${j}\n`.repeat(j));
        }
        await put(`${src}/t${i}/big`, String(i).repeat(1 << 20));
        tars.push(await gnuTar(`${src}/t${i}`));
      }
      await store.create("base");
      for (const parent of [undefined, "base"]) {
        const id = parent ? "on-base" : "new";
        const results = await Promise.allSettled(
          tars.map((t) => store.applyDiff(id, parent, t)),
        );
        const won = results.flatMap((r, i) =>
          r.status === "fulfilled" ? [i] : []
        );
        assert.equal(won.length, 1, JSON.stringify(results));
        for (const r of results) {
          if (r.status === "rejected") {
            assert.ok(r.reason instanceof LayerExists, String(r.reason));
          }
        }
        const want = await describe(`${src}/t${won[0]}`);
        assert.deepEqual(
          await describe((await store.metadata(id)).diff),
          want,
        );
        assert.deepEqual(await withView(store, id, describe), want);
      }
      await assertOnly(c, ["base", "new", "on-base"]);
    },
  );

  s.store("diff/changes/diffSize take a grandparent too", async ({ store }) => {
    await store.create("a");
    await store.create("b", "a");
    await store.create("c", "b");
    assert.deepEqual(await store.changes("c", "a"), []);
    assert.equal(await store.diffSize("c", "a"), 0);
    assert.deepEqual(await tarNames(store.diff("c", "a")), []);
    assert.deepEqual(await store.changes("c", "b"), []);
  });
}
