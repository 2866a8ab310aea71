import assert from "node:assert/strict";
import {
  ImageNotFound,
  listImages,
  loadImage,
  openStore,
  saveImage,
} from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { sameBytes } from "../_bytes.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  EXPECTED_TOP,
  handChainIds,
  simpleTree,
  topLayer,
  writeOciLayout,
} from "./_images.ts";

for (const format of ["docker", "oci"] as const) {
  privilegedTest(
    `image: saveImage (${format}) exports afresh and loads back into another store`,
    async () => {
      await using tmp = await tempDir();
      const img = buildImage([
        buildLayer(await baseLayer(), "gzip"),
        buildLayer(await topLayer(), "zstd"),
      ]);
      await writeOciLayout(`${tmp.path}/oci`, [{
        image: img,
        ref: "save/app:1",
      }]);
      const a = await openStore({ root: `${tmp.path}/a`, backend: "overlay" });
      const b = await openStore({ root: `${tmp.path}/b`, backend: "vfs" });
      try {
        await loadImage(a, `${tmp.path}/oci`);
        const [saved] = await saveImage(
          a,
          ["save/app:1"],
          `${tmp.path}/out.tar`,
          { format },
        );
        assert.equal(saved.ref, "save/app:1");
        assert.equal(saved.storeId, `sha256:${img.configHex}`);
        assert.equal(saved.diffIds.length, 2);
        // Exports are deterministic: the same layers give the same bytes.
        await saveImage(a, ["save/app:1"], `${tmp.path}/again.tar`, {
          format,
        });
        const [x, y] = await Promise.all(
          ["again", "out"].map((n) => Deno.readFile(`${tmp.path}/${n}.tar`)),
        );
        assert.ok(x.length === y.length && sameBytes(x, y));
        // By id: the same image, without a name.
        const [byId] = await saveImage(
          a,
          [saved.storeId],
          `${tmp.path}/id.tar`,
          {
            format,
          },
        );
        assert.deepEqual({ ...byId, ref: "save/app:1" }, saved);
        assert.equal(byId.ref, null);
        await assert.rejects(
          saveImage(a, ["save/app"], `${tmp.path}/never.tar`, { format }),
          ImageNotFound, // save/app means save/app:latest
        );
        await assert.rejects(
          Deno.lstat(`${tmp.path}/never.tar`),
          Deno.errors.NotFound,
        );

        const [back] = await loadImage(b, `${tmp.path}/out.tar`);
        assert.equal(back.ref, "save/app:1");
        assert.equal(back.id, saved.id);
        assert.deepEqual(back.layers, handChainIds(saved.diffIds));
        const view = await b.get(back.topLayer!);
        try {
          assert.deepEqual(await simpleTree(view), EXPECTED_TOP);
        } finally {
          await b.put(back.topLayer!);
        }
        assert.equal((await listImages(b)).length, 1);
        const left = [...Deno.readDirSync(`${a.root}/images`)].filter((e) =>
          e.name.startsWith(".save-")
        );
        assert.deepEqual(left, []);
      } finally {
        await a.cleanup();
        a.close();
        b.close();
      }
    },
  );
}
