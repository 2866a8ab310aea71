/**
 * The image store's housekeeping: per-layer lock files do not accumulate,
 * temp entries of dead loads and saves are swept by the store's open-time
 * recovery and reported by `layerfs check` (one rule set, recovery.ts), and
 * `check` reports images whose layers are gone (`--repair` drops them).
 */

import assert from "node:assert/strict";
import { listImages, loadImage, openStore, pruneImages } from "../../mod.ts";
import { checkStore } from "../../src/cli/check.ts";
import { flock } from "../../src/image/image_store.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { tryLockFile } from "../../src/sys/small_file_linux.ts";
import { close } from "../../src/sys/fd_linux.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  topLayer,
  writeOciLayout,
} from "./_images.ts";

const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

privilegedTest(
  "image housekeeping: locks, temps of dead processes, dangling images",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const img = buildImage([
      buildLayer(await baseLayer()),
      buildLayer(await topLayer(), "gzip"),
    ]);
    await writeOciLayout(`${t}/oci`, [{ image: img, ref: "hk/app:1" }]);
    let store = await openStore({ root: `${t}/s`, backend: "vfs" });
    const [loaded] = await loadImage(store, `${t}/oci`);
    // The load's lock files went with it.
    assert.deepEqual(await names(`${t}/s/images/locks`), []);

    // A held lock is kept; a free one, and temps of a dead pid, are leftovers.
    const held = await flock(`${t}/s/images/locks/held`);
    await Deno.writeTextFile(`${t}/s/images/locks/free`, "");
    await Deno.writeTextFile(`${t}/s/images/.spool-999999999-abc`, "x");
    await Deno.mkdir(`${t}/s/images/.save-999999999-def`);
    await Deno.writeTextFile(`${t}/s/images/.spool-${Deno.pid}-live`, "x");
    store.close();
    const report = await checkStore(`${t}/s`);
    assert.deepEqual(
      report.problems.map((p) => `${p.kind} ${p.subject}`).sort(),
      [
        "leftover images/.save-999999999-def",
        "leftover images/.spool-999999999-abc",
        "leftover images/locks/free",
      ],
    );
    store = await openStore({ root: `${t}/s`, backend: "vfs" }); // sweeps
    assert.deepEqual(await names(`${t}/s/images/locks`), ["held"]);
    assert.deepEqual(
      (await names(`${t}/s/images`)).filter((n) => n.startsWith(".")),
      [`.spool-${Deno.pid}-live`],
    );
    held.close();
    assert.deepEqual(await names(`${t}/s/images/locks`), []);

    // A layer of the image deleted by hand (the store refuses to remove
    // it): check reports the image.
    store.close();
    const top = loaded.layers[1];
    for (const d of ["layers", "diff", "meta", "tarsplit"]) {
      await Deno.remove(`${t}/s/${d}/${top}`, { recursive: true })
        .catch(() => {});
    }
    const dangling = await checkStore(`${t}/s`);
    assert.deepEqual(dangling.problems.map((p) => p.kind), ["dangling-image"]);
    assert.match(dangling.problems[0].message, /hk\/app:1/);
    const repaired = await checkStore(`${t}/s`, { repair: true });
    assert.equal(repaired.problems[0].repaired, true);
    // Its base layer stays, released: no interrupted load left it.
    assert.deepEqual((await checkStore(`${t}/s`)).problems, []);
    store = await openStore({ root: `${t}/s`, backend: "vfs" });
    assert.deepEqual(await listImages(store), []);
    assert.deepEqual((await pruneImages(store)).removedLayers, [
      loaded.layers[0],
    ]);
    store.close();
  },
);

privilegedTest(
  "check --repair takes the images lock before the store lock, as rmi and load do (the other order could deadlock with them)",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const img = buildImage([buildLayer(await baseLayer())]);
    await writeOciLayout(`${t}/oci`, [{ image: img, ref: "lk/app:1" }]);
    const store = await openStore({ root: `${t}/s`, backend: "vfs" });
    await loadImage(store, `${t}/oci`);
    store.close();
    // This process plays an rmi: it holds the images lock and will want
    // the store lock. A check --repair started meanwhile must wait for the
    // images lock without holding the store lock.
    const images = await flock(`${t}/s/images/lock`);
    const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "--root", `${t}/s`, "check", "--repair"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      // Long enough for the child to reach its locks (more only makes the
      // old order's failure surer; the new order passes at any wait).
      await new Promise((r) => setTimeout(r, 1500));
      const fd = tryLockFile(`${t}/s/run/lock`);
      assert.notEqual(fd, null, "check holds the store lock while it waits");
      close(fd!);
    } finally {
      images.close();
    }
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  },
);
