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
  run,
  simpleTree,
  topLayer,
  writeDockerClassic,
  writeOciLayout,
} from "./_images.ts";

for (const format of ["docker", "oci"] as const) {
  privilegedTest(
    `image: saveImage (${format}) round-trips and loads back into another store`,
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

/** A layer tar GNU tar writes with odd but valid features (PAX long names and xattrs, 10 KiB records, trailing zeros). */
async function gnuLayer(t: string): Promise<Uint8Array> {
  const src = `${t}/gnu-src`;
  const deep = `${src}/${"n".repeat(110)}/${"m".repeat(110)}`;
  await Deno.mkdir(deep, { recursive: true });
  await Deno.writeTextFile(`${deep}/${"f".repeat(120)}`, "deep\n");
  await Deno.writeTextFile(`${src}/x`, "xattr\n");
  await run("setfattr", ["-n", "user.k", "-v", "v", `${src}/x`]);
  await run("tar", [
    "--format=pax",
    "--xattrs",
    "-b",
    "20",
    "-cf",
    `${t}/gnu.tar`,
    "-C",
    src,
    ".",
  ]);
  const tar = await Deno.readFile(`${t}/gnu.tar`);
  const out = new Uint8Array(tar.length + 3000); // zeros past the end blocks
  out.set(tar);
  return out;
}

/** Looks up every entry below `dir` (what `ls -lR` makes overlayfs do); returns how many. */
async function walkTree(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    await Deno.lstat(`${dir}/${e.name}`);
    n++;
    if (e.isDirectory) n += await walkTree(`${dir}/${e.name}`);
  }
  return n;
}

for (const input of ["oci", "docker"] as const) {
  privilegedTest(
    `image: a ${input} image saved again keeps its DiffIDs and id; a changed layer is exported afresh`,
    async () => {
      await using tmp = await tempDir();
      const t = tmp.path;
      const img = buildImage([
        buildLayer(await baseLayer(), "gzip"),
        buildLayer(await gnuLayer(t), "none"),
        buildLayer(await topLayer(), "zstd"),
      ]);
      const diffIds = img.layers.map((l) => l.diffId);
      if (input === "oci") {
        await writeOciLayout(`${t}/in`, [{ image: img, ref: "rt/app:1" }]);
      } else {
        await writeDockerClassic(`${t}/in`, [{
          image: img,
          tags: ["rt/app:1"],
        }]);
      }
      const a = await openStore({ root: `${t}/a`, backend: "overlay" });
      const b = await openStore({ root: `${t}/b`, backend: "vfs" });
      try {
        const [loaded] = await loadImage(a, `${t}/in`);
        assert.equal(loaded.id, `sha256:${img.configHex}`);
        // Reading each layer's read-only view (a merged overlay for the
        // upper two) changes none of them: the saves below stay exact.
        for (const id of loaded.layers) {
          const view = await a.get(id);
          assert.ok((await walkTree(view)) > 0);
          await a.put(id);
        }
        for (const format of ["docker", "oci"] as const) {
          for (const compress of ["none", "gzip", "zstd"] as const) {
            const out = `${t}/out-${format}-${compress}.tar`;
            const [saved] = await saveImage(a, ["rt/app:1"], out, {
              format,
              compress,
            });
            assert.equal(saved.id, loaded.id, `${format}/${compress}: same id`);
            assert.deepEqual(saved.diffIds, diffIds);
            assert.deepEqual(saved.fresh, []);
            // The original layer tars, byte for byte, inside the archive.
            const [back] = await loadImage(b, out, {
              tag: `rt/${format}-${compress}:1`,
            });
            assert.equal(back.id, loaded.id);
            assert.deepEqual(back.layers, loaded.layers);
          }
        }
        // The original config bytes, unchanged.
        const [again] = await saveImage(a, ["rt/app:1"], `${t}/x.tar`, {
          format: "oci",
        });
        await run("tar", [
          "-xf",
          `${t}/x.tar`,
          "-C",
          t,
          `blobs/sha256/${img.configHex}`,
        ]);
        assert.ok(sameBytes(
          await Deno.readFile(`${t}/blobs/sha256/${img.configHex}`),
          img.config,
        ));
        assert.equal(again.id, loaded.id);

        // Edit a file of the middle layer by hand: that layer goes afresh.
        const mid = loaded.layers[1];
        await Deno.writeTextFile(`${t}/a/diff/${mid}/x`, "changed\n");
        const [changed] = await saveImage(a, ["rt/app:1"], `${t}/c.tar`, {
          format: "oci",
        });
        assert.notEqual(changed.id, loaded.id);
        assert.equal(changed.diffIds[0], diffIds[0]);
        assert.notEqual(changed.diffIds[1], diffIds[1]);
        assert.equal(changed.diffIds[2], diffIds[2]); // still exact
        assert.deepEqual(changed.fresh.map((x) => x.layer), [mid]);
        assert.match(changed.fresh[0].reason, /\bx has 8 bytes/);
        const [reloaded] = await loadImage(b, `${t}/c.tar`, { tag: "rt/c:1" });
        assert.equal(reloaded.id, changed.id);
      } finally {
        await a.cleanup();
        a.close();
        b.close();
      }
    },
  );
}

privilegedTest(
  "image: podman save (both formats) -> load -> save keeps podman's image id, and podman loads our save",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const podman = (n: string, ...args: string[]) =>
      run("podman", [
        "--root",
        `${t}/p${n}/root`,
        "--runroot",
        `${t}/p${n}/run`,
        "--storage-driver",
        "vfs",
        ...args,
      ]);
    await Deno.mkdir(`${t}/rootfs/etc`, { recursive: true });
    await Deno.writeTextFile(`${t}/rootfs/etc/motd`, "hello\n");
    await Deno.writeFile(
      `${t}/rootfs/big`,
      new Uint8Array(1 << 20).map((_, i) => i % 249),
    );
    await Deno.symlink("etc/motd", `${t}/rootfs/link`);
    await run("tar", ["-C", `${t}/rootfs`, "-cf", `${t}/rootfs.tar`, "."]);
    const store = await openStore({ root: `${t}/s`, backend: "overlay" });
    try {
      await podman("a", "import", `${t}/rootfs.tar`, "localhost/rt:1");
      const podmanId = (await podman(
        "a",
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/rt:1",
      )).trim();
      for (const fmt of ["docker-archive", "oci-archive"]) {
        await podman(
          "a",
          "save",
          "--format",
          fmt,
          "-o",
          `${t}/${fmt}.tar`,
          "localhost/rt:1",
        );
        const [img] = await loadImage(store, `${t}/${fmt}.tar`, {
          tag: "localhost/rt:1",
        });
        assert.equal(
          img.id,
          `sha256:${podmanId}`,
          `${fmt} loads under podman's id`,
        );
      }
      for (const format of ["docker", "oci"] as const) {
        const out = `${t}/ours-${format}.tar`;
        const [saved] = await saveImage(store, ["localhost/rt:1"], out, {
          format,
        });
        assert.equal(saved.id, `sha256:${podmanId}`);
        assert.deepEqual(saved.fresh, []);
        const n = format[0];
        await podman(
          n,
          "load",
          "-i",
          out, // podman detects docker-archive and oci-archive
        );
        const ids = (await podman(n, "images", "-q", "--no-trunc")).trim();
        assert.equal(
          ids.replace(/^sha256:/, ""),
          podmanId,
          `podman load of our ${format} save`,
        );
        await podman(n, "rmi", "-a", "-f").catch(() => {});
      }
    } finally {
      await podman("a", "rmi", "-a", "-f").catch(() => {});
      store.close();
    }
  },
);
