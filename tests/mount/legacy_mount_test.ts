/**
 * The mount(2) fallback with real mounts (forced, since this kernel has the
 * new mount API): absolute option strings, short links for long chains, a
 * clear error (and no mount) when even those do not fit, and re-planning from
 * the store's own metadata.
 */
import assert from "node:assert/strict";
import { MountError, openStore, planLayerMount } from "../../mod.ts";
import { performMountPlan, unmountTarget } from "../../src/mount/perform.ts";
import { readMountInfo } from "../../src/mount/mountinfo.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";

async function mountedAt(target: string): Promise<number> {
  return (await readMountInfo()).filter((m) => m.mountPoint === target).length;
}

privilegedTest(
  "mount(2) fallback: short chains, 128 layers via short links, 300 refused",
  async () => {
    await using tmp = await tempDir();
    const store = await openStore({
      root: `${tmp.path}/store`,
      backend: "overlay",
    });
    try {
      await store.create("l1");
      await Deno.writeTextFile(`${store.root}/diff/l1/hello`, "base\n");
      for (let i = 2; i <= 300; i++) await store.create(`l${i}`, `l${i - 1}`);
      for (const [top, short] of [[3, false], [128, true]] as const) {
        const id = `ctr${top}`;
        await store.createReadWrite(id, `l${top}`);
        const plan = await planLayerMount(store.root, id);
        assert.equal(plan.kind, "overlay");
        await performMountPlan(plan, { overlayApi: "mount2" });
        try {
          assert.equal(await mountedAt(plan.target), 1);
          const opts = (await readMountInfo()).find((m) =>
            m.mountPoint === plan.target
          )!
            .superOptions.join(",");
          assert.equal(opts.includes("lowerdir=l/"), short, opts.slice(0, 200));
          assert.equal(
            await Deno.readTextFile(`${plan.target}/hello`),
            "base\n",
          );
          await Deno.writeTextFile(`${plan.target}/w`, "w");
          assert.equal(
            await Deno.readTextFile(`${store.root}/diff/${id}/w`),
            "w",
          );
        } finally {
          unmountTarget(plan.target);
        }
      }
      await store.createReadWrite("ctr300", "l300");
      const plan = await planLayerMount(store.root, "ctr300");
      await assert.rejects(
        performMountPlan(plan, { overlayApi: "mount2" }),
        (e) => e instanceof MountError && e.code === "E2BIG",
      );
      assert.equal(await mountedAt(`${store.root}/mnt/ctr300`), 0);
      // The default path (fsconfig lowerdir+) mounts all 300.
      await performMountPlan(plan);
      assert.equal(await Deno.readTextFile(`${plan.target}/hello`), "base\n");
      unmountTarget(plan.target);
      assert.equal(await mountedAt(plan.target), 0);
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);
