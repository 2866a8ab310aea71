/**
 * Recovery scenarios: what opening a store sweeps or repairs (leftovers,
 * temp files, counts whose mounts vanished, mounts nobody counted), a count
 * write that fails after its mount, and a first open that fails.
 *
 * @module
 */

import assert from "node:assert/strict";
import { performMountPlan, planLayerMount, StoreError } from "../../../mod.ts";
import { mountsUnder } from "../_helpers.ts";
import { assertOnly, entries, type Suite } from "./_harness.ts";

const OPEN_CHILD = new URL("./_open_child.ts", import.meta.url).pathname;
const NOBODY = 65534;

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

export function recoveryScenarios(s: Suite): void {
  s.store("stale leftovers are swept on open", async (c) => {
    const { store, root } = c;
    await store.create("keep");
    await Deno.mkdir(`${root}/staging/dead.1234/diff`, { recursive: true });
    await Deno.writeTextFile(`${root}/staging/dead.1234/lock`, "");
    await Deno.mkdir(`${root}/staging/nolock.5678`);
    await Deno.mkdir(`${root}/diff/ghost/sub`, { recursive: true });
    await Deno.mkdir(`${root}/diff/keep-removing/x`, { recursive: true });
    await Deno.writeTextFile(`${root}/layers/gone-removing`, "");
    await Deno.mkdir(`${root}/mnt/ghost`);
    await Deno.writeTextFile(`${root}/meta/ghost`, "{}");
    // A count left at 0 (put writes 0 over the file rather than unlinking it).
    await Deno.mkdir(`${root}/run/counts`, { recursive: true });
    await Deno.writeTextFile(`${root}/run/counts/ghost`, "0");
    for (const d of c.backend.ownDirs) {
      await Deno.mkdir(`${root}/${d}/ghost`);
    }
    const reopened = await c.reopen();
    assert.ok(!(await entries(`${root}/run/counts`)).includes("ghost"));
    await assertOnly(c, ["keep"]);
    for (const d of c.backend.ownDirs) {
      assert.ok(!(await entries(`${root}/${d}`)).includes("ghost"), d);
    }
    assert.deepEqual((await reopened.list()).map((l) => l.id), ["keep"]);
  });

  s.store(
    "temp files of interrupted atomic writes are swept on open",
    async (c) => {
      const { store, root } = c;
      await store.create("keep");
      await store.createReadWrite("ctr", "keep");
      await store.get("ctr"); // a real count beside the temp files
      const temps = [
        "run/mounts.json.tmp-1-0123abcd",
        "layers/keep.tmp-77-89abcdef",
        "meta/ctr.tmp-123-00ff00ff",
        "layerfs.json.tmp-9-deadbeef",
      ];
      for (const t of temps) await Deno.writeTextFile(`${root}/${t}`, "{");
      const again = await c.reopen();
      for (const t of temps) {
        const [dir, name] = t.includes("/") ? t.split("/") : ["", t];
        assert.ok(
          !(await entries(dir ? `${root}/${dir}` : root)).includes(name),
          t,
        );
      }
      assert.deepEqual(
        (await again.list()).map((l) => [l.id, l.mounts]),
        [["ctr", 1], ["keep", 0]],
      );
      await again.put("ctr");
      await assertOnly(c, ["ctr", "keep"]);
    },
  );

  s.store(
    "counts in run/mounts.json (the format before count files) are converted on open",
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      const view = await store.get("ctr");
      await store.get("ctr");
      // What an earlier version left: one JSON table, no count files.
      await Deno.remove(`${root}/run/counts`, { recursive: true });
      await Deno.writeTextFile(
        `${root}/run/mounts.json`,
        JSON.stringify({ ctr: 2, gone: 1 }),
      );
      const again = await c.reopen();
      assert.ok(!(await entries(`${root}/run`)).includes("mounts.json"));
      assert.deepEqual(await entries(`${root}/run/counts`), ["ctr"]);
      assert.equal((await again.list()).find((l) => l.id === "ctr")?.mounts, 2);
      await again.put("ctr");
      assert.deepEqual(
        await mountsUnder(view),
        c.caps.mounts ? [view] : [],
      );
      await again.put("ctr");
      assert.deepEqual(await mountsUnder(view), []);
      assert.equal((await again.list()).find((l) => l.id === "ctr")?.mounts, 0);
    },
  );

  s.store(
    "counts survive reopening; a count whose mount vanished is dropped; an uncounted mount is adopted by get or removed by cleanup",
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.createReadWrite("ctr", "base");
      const view = await store.get("ctr");
      await store.get("ctr");
      const again = await c.reopen();
      assert.equal((await again.list()).find((l) => l.id === "ctr")?.mounts, 2);
      if (!c.caps.mounts) return; // the rest is about mounts
      // Someone unmounts behind our back: the next open drops the stale count.
      await sh("umount", "-l", view);
      const third = await c.reopen();
      assert.equal(
        (await third.list()).find((l) => l.id === "ctr")?.mounts,
        0,
      );
      // A get mounts again.
      assert.equal(await third.get("ctr"), view);
      assert.equal((await mountsUnder(view)).length, 1);
      await third.put("ctr");
      assert.deepEqual(await mountsUnder(view), []);

      // A mount nobody counted (a process died between mount and count) is
      // adopted by get, not mounted twice...
      await performMountPlan(await planLayerMount(root, "ctr"));
      assert.equal(await third.get("ctr"), view);
      assert.equal((await mountsUnder(view)).length, 1);
      assert.equal(
        (await third.list()).find((l) => l.id === "ctr")?.mounts,
        1,
      );
      await third.put("ctr");
      assert.deepEqual(await mountsUnder(view), []);
      // ...or removed by cleanup.
      await performMountPlan(await planLayerMount(root, "ctr"));
      assert.equal((await mountsUnder(view)).length, 1);
      await third.cleanup();
      assert.deepEqual(await mountsUnder(view), []);
    },
  );

  s.store(
    "mounts nobody counted are unmounted when the store is opened",
    {
      unless: (b) =>
        b.capabilities.mounts
          ? undefined
          : "the backend mounts nothing (capabilities.mounts: false)",
    },
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.create("img", "base");
      await store.createReadWrite("ctr", "img");
      await store.get("img"); // counted: stays
      for (const id of ["base", "ctr"]) {
        await performMountPlan(await planLayerMount(root, id));
      }
      assert.deepEqual((await mountsUnder(`${root}/mnt`)).sort(), [
        `${root}/mnt/base`,
        `${root}/mnt/ctr`,
        `${root}/mnt/img`,
      ]);
      const again = await c.reopen();
      assert.deepEqual(await mountsUnder(`${root}/mnt`), [`${root}/mnt/img`]);
      assert.deepEqual(
        (await again.list()).map((l) => [l.id, l.mounts]),
        [["base", 0], ["ctr", 0], ["img", 1]],
      );
      await again.put("img");
      assert.deepEqual(await mountsUnder(`${root}/mnt`), []);
      // The layers still work.
      await again.get("ctr");
      assert.deepEqual(await mountsUnder(`${root}/mnt`), [`${root}/mnt/ctr`]);
      await again.put("ctr");
    },
  );

  s.store(
    "a get whose count write fails undoes its mount",
    { root: "a full tmpfs mounted on run/ makes the count write fail" },
    async (c) => {
      const { store, root } = c;
      await store.create("base");
      await store.create("img", "base");
      await store.createReadWrite("ctr", "img");
      const run = `${root}/run`;
      await sh("mount", "-t", "tmpfs", "-o", "size=4k,mode=0700", "full", run);
      try {
        // Fill it: the lock file and run/counts (no data) can still be
        // made, a count (one byte of data) not.
        await Deno.writeFile(`${run}/fill`, new Uint8Array(1 << 16)).catch(
          () => {},
        );
        for (const id of ["base", "img", "ctr"]) {
          await assert.rejects(
            store.get(id),
            (e) =>
              e instanceof StoreError &&
              e.message.includes(`run/counts/${id}`) &&
              /full/.test(e.message),
            id,
          );
          assert.deepEqual(await mountsUnder(`${root}/mnt`), [], id);
        }
        // No empty count file left by the failed writes.
        assert.deepEqual(await entries(`${run}/counts`), []);
      } finally {
        await sh("umount", run);
      }
      assert.deepEqual(
        (await store.list()).map((l) => l.mounts),
        [0, 0, 0],
      );
      // Nothing stuck: a get now mounts and counts.
      const view = await store.get("ctr");
      assert.equal((await store.list()).find((l) => l.id === "ctr")?.mounts, 1);
      assert.deepEqual(await mountsUnder(view), c.caps.mounts ? [view] : []);
      await store.put("ctr");
    },
  );

  s.store(
    "a first open that fails (no right to mount) leaves nothing behind",
    {
      unless: (b) =>
        b.capabilities.mounts
          ? undefined
          : "the backend mounts nothing: any user can open it, so no first open fails for lack of the right to mount",
      root: "runs the open as another user (setpriv)",
    },
    async (c) => {
      // The deno binary where that user can run it.
      const deno = `${c.tmp}/deno`;
      await Deno.link(Deno.execPath(), deno).catch(() =>
        Deno.copyFile(Deno.execPath(), deno)
      );
      await Deno.chmod(c.tmp, 0o755);
      const home = `${c.tmp}/home`;
      const missingParent = `${c.tmp}/a`; // root a/b/store: all made by the open
      const empty = `${c.tmp}/empty`; // an existing empty root
      const used = `${c.tmp}/used`; // an existing root holding something else
      for (const d of [home, missingParent, empty, used]) {
        await Deno.mkdir(d);
        await Deno.chown(d, NOBODY, NOBODY);
      }
      await Deno.writeTextFile(`${used}/notes.txt`, "mine\n");
      try {
        for (
          const [root, left, want] of [
            [`${missingParent}/b/store`, missingParent, []],
            [empty, empty, []],
            [used, used, ["notes.txt"]],
          ] as const
        ) {
          const out = await new Deno.Command("setpriv", {
            args: [
              `--reuid=${NOBODY}`,
              `--regid=${NOBODY}`,
              "--clear-groups",
              deno,
              "run",
              "--allow-all",
              "--no-check",
              "--no-lock",
              OPEN_CHILD,
              root,
              s.name,
            ],
            env: { HOME: home, DENO_DIR: `${home}/deno` },
            stdout: "piped",
            stderr: "piped",
          }).output();
          const text = new TextDecoder().decode(out.stdout).trim();
          assert.equal(
            text,
            "BackendNotSupported",
            new TextDecoder().decode(out.stderr),
          );
          assert.deepEqual(await entries(left), want, root);
        }
      } finally {
        await Deno.remove(deno);
      }
    },
  );
}
