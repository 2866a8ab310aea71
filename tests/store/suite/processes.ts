/**
 * Multi-process scenarios: several processes on one store share one view
 * with one count, and kill -9 in the middle of create/remove/get followed by
 * a reopen finds the store consistent.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Store } from "../../../mod.ts";
import { StoreLayout } from "../../../src/layout.ts";
import { mountsUnder } from "../_helpers.ts";
import { entries, type StoreCase, type Suite } from "./_harness.ts";

const CHILD = new URL("./_child.ts", import.meta.url).pathname;
function spawn(...args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-check", CHILD, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/** Reads stdout until the first line. */
async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  while (!buf.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error(`child exited before printing: ${buf}`);
    buf += dec.decode(r.value, { stream: true });
  }
  reader.releaseLock();
  return buf.slice(0, buf.indexOf("\n"));
}

/** Asserts the store on disk is consistent: nothing half-made, nothing half-removed. */
async function assertConsistent(c: StoreCase, store: Store): Promise<void> {
  const root = store.root;
  const layers = await store.list();
  const ids = new Set(layers.map((l) => l.id));
  for (const l of layers) {
    assert.ok(
      (await Deno.stat(`${root}/diff/${l.id}`)).isDirectory,
      `diff/${l.id}`,
    );
    assert.ok((await Deno.stat(`${root}/meta/${l.id}`)).isFile, `meta/${l.id}`);
    for (const p of await store.parents(l.id)) {
      assert.ok(ids.has(p), `parent ${p} of ${l.id}`);
    }
  }
  for (const d of ["diff", "meta", "mnt", "layers"]) {
    for (const name of await entries(`${root}/${d}`)) {
      assert.ok(ids.has(name), `${d}/${name} belongs to no layer`);
    }
  }
  // The backend's own entries (overlay: work/<id>, l/<link>) by its rule.
  assert.deepEqual(
    await c.backend.leftovers(new StoreLayout(root), ids),
    [],
    "backend entries of no layer",
  );
  assert.deepEqual(await entries(`${root}/staging`), []);
  for (const t of await mountsUnder(`${root}/mnt`)) {
    assert.ok(
      ids.has(t.slice(`${root}/mnt/`.length)),
      `mount ${t} of no layer`,
    );
  }
}

export function processScenarios(s: Suite): void {
  s.store(
    "processes: two processes share one view; the last put anywhere unmounts",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await Deno.writeTextFile(`${store.root}/diff/base/hello`, "hi");
      await store.createReadWrite("ctr", "base");
      const meta = await store.metadata("ctr");
      const viewPath = meta.mnt ?? meta.diff;
      const mounted = c.caps.mounts ? [viewPath] : [];

      const a = spawn("hold", store.root, "ctr");
      const b = spawn("hold", store.root, "ctr");
      const [pa, pb] = await Promise.all([firstLine(a), firstLine(b)]);
      assert.equal(pa, pb);
      assert.equal(pa, viewPath);
      assert.deepEqual(await mountsUnder(pa), mounted); // one mount, not two
      assert.equal(await Deno.readTextFile(`${pa}/hello`), "hi");
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 2);

      await a.stdin.close();
      await a.stdout.cancel();
      assert.equal((await a.status).code, 0);
      assert.deepEqual(await mountsUnder(pa), mounted); // b still holds it
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 1);

      await b.stdin.close();
      await b.stdout.cancel();
      assert.equal((await b.status).code, 0);
      assert.deepEqual(await mountsUnder(pa), []);
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 0);
    },
  );

  s.store(
    "processes: kill -9 during create/remove/get, then reopen finds a consistent store",
    async (c) => {
      const { store } = c;
      await store.create("base");
      await Deno.writeTextFile(`${store.root}/diff/base/hello`, "hi");
      for (const delay of [30, 90, 180, 300, 500, 800]) {
        const child = spawn("churn", store.root, "base");
        assert.equal(await firstLine(child), "ready");
        await new Promise((r) => setTimeout(r, delay));
        child.kill("SIGKILL");
        await child.status;
        await child.stdout.cancel().catch(() => {});
        await child.stdin.close().catch(() => {});

        const reopened = await c.reopen();
        await assertConsistent(c, reopened);
        // Mounts the dead process left are either counted (its gets) or adopted/cleaned.
        await reopened.cleanup();
        assert.deepEqual(await mountsUnder(`${store.root}/mnt`), []);
        // And the store still works.
        await reopened.createReadWrite(`probe-${delay}`, "base");
        const view = await reopened.get(`probe-${delay}`);
        assert.equal(await Deno.readTextFile(`${view}/hello`), "hi");
        await reopened.put(`probe-${delay}`);
        await reopened.remove(`probe-${delay}`);
      }
    },
  );
}
