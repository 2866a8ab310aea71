/**
 * Interop with real tools: an image podman builds from a local tar
 * (`podman import`, then `podman build --isolation chroot` adding a layer
 * with a COPY and a layer with a deletion, so whiteouts), saved by podman as
 * docker-archive and oci-archive and turned by skopeo into a zstd OCI layout
 * and a skopeo-written docker-archive. Every variant loads into layerfs
 * under the same chain ids, and the mounted rootfs equals podman's view of
 * the image (types, modes, sizes, content hashes). podman runs on a private
 * --root/--runroot in the test's temp dir; nothing of it is left.
 */
import assert from "node:assert/strict";
import { listImages, loadImage, openStore, saveImage } from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  hashedTree,
  run,
  topLayer,
  writeOciLayout,
} from "./_images.ts";

async function ldd(bin: string): Promise<string[]> {
  const out = await run("ldd", [bin]);
  return [...out.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
}

/** A tiny rootfs that can run `sh -c "rm ..."`: dash, rm, mkdir and their libs. */
async function makeRootfs(dir: string): Promise<void> {
  const bins = ["/bin/dash", "/bin/rm", "/bin/mkdir"].map((b) =>
    Deno.realPathSync(b)
  );
  const files = new Set<string>();
  for (const b of bins) for (const l of await ldd(b)) files.add(l);
  for (const f of files) {
    const dst = `${dir}${f}`;
    await Deno.mkdir(dst.slice(0, dst.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(f, dst);
  }
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  await Deno.copyFile(bins[0], `${dir}/bin/sh`);
  await Deno.copyFile(bins[1], `${dir}/bin/rm`);
  await Deno.copyFile(bins[2], `${dir}/bin/mkdir`);
  await Deno.mkdir(`${dir}/etc`);
  await Deno.writeTextFile(`${dir}/etc/motd`, "hello from podman\n");
  await Deno.chmod(`${dir}/etc/motd`, 0o640);
  await Deno.mkdir(`${dir}/gone/deep`, { recursive: true });
  await Deno.writeTextFile(`${dir}/gone/deep/f`, "x");
  await Deno.writeTextFile(`${dir}/doomed`, "bye");
  await Deno.symlink("etc/motd", `${dir}/motd-link`);
  await Deno.writeFile(
    `${dir}/big`,
    new Uint8Array(3 << 20).map((_, i) => i % 251),
  );
}

privilegedTest(
  "interop: podman save (docker-archive, oci-archive) and skopeo copies load and match podman's view",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const podman = (...args: string[]) =>
      run("podman", [
        "--root",
        `${t}/podman/root`,
        "--runroot",
        `${t}/podman/run`,
        "--storage-driver",
        "vfs",
        ...args,
      ]);
    await Deno.mkdir(`${t}/rootfs`);
    await makeRootfs(`${t}/rootfs`);
    await run("tar", ["-C", `${t}/rootfs`, "-cf", `${t}/rootfs.tar`, "."]);
    const store = await openStore({ root: `${t}/s`, backend: "overlay" });
    let mounted = false;
    try {
      await podman("import", `${t}/rootfs.tar`, "localhost/interop:base");
      await Deno.mkdir(`${t}/ctx`);
      await Deno.writeTextFile(`${t}/ctx/added`, "added by COPY\n");
      await Deno.writeTextFile(
        `${t}/ctx/Containerfile`,
        "FROM localhost/interop:base\nCOPY added /etc/added\n" +
          "RUN rm -r /doomed /gone && mkdir -p /made/here\n",
      );
      await podman(
        "build",
        "--isolation",
        "chroot",
        "--pull=never",
        "-t",
        "localhost/interop:1",
        `${t}/ctx`,
      );
      await podman(
        "save",
        "--format",
        "docker-archive",
        "-o",
        `${t}/docker.tar`,
        "localhost/interop:1",
      );
      await podman(
        "save",
        "--format",
        "oci-archive",
        "-o",
        `${t}/oci.tar`,
        "localhost/interop:1",
      );
      await run("skopeo", [
        "copy",
        "--dest-compress",
        "--dest-compress-format",
        "zstd",
        `oci-archive:${t}/oci.tar`,
        `oci:${t}/oci-zstd:v1`,
      ]);
      await run("skopeo", [
        "copy",
        `oci-archive:${t}/oci.tar`,
        `docker-archive:${t}/skopeo-docker.tar:localhost/interop:skopeo`,
      ]);

      const fromDocker = await loadImage(store, `${t}/docker.tar`);
      const fromOci = await loadImage(store, `${t}/oci.tar`, {
        tag: "localhost/interop:oci",
      });
      const fromZstd = await loadImage(store, `${t}/oci-zstd`, {
        tag: "localhost/interop:zstd",
      });
      const fromSkopeo = await loadImage(store, `${t}/skopeo-docker.tar`);
      assert.equal(fromDocker[0].ref, "localhost/interop:1");
      assert.equal(fromSkopeo[0].ref, "localhost/interop:skopeo");
      const layers = fromDocker[0].layers;
      assert.equal(layers.length, 3);
      for (const r of [fromOci, fromZstd, fromSkopeo]) {
        assert.deepEqual(r[0].layers, layers); // same DiffIDs, however packed
        assert.deepEqual(r[0].extracted, []); // so nothing extracted twice
      }
      assert.equal((await store.list()).length, 3);
      assert.equal((await listImages(store)).length, 4);
      // podman's image id is the config digest of its oci-archive.
      const podmanId = (await podman(
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/interop:1",
      )).trim();
      assert.equal(fromOci[0].id, `sha256:${podmanId}`);

      const podmanView = (await podman("image", "mount", "localhost/interop:1"))
        .trim();
      mounted = true;
      const expected = await hashedTree(podmanView);
      const view = await store.get(layers[2]);
      try {
        const got = await hashedTree(view);
        assert.deepEqual([...got.keys()], [...expected.keys()]);
        assert.deepEqual(got, expected);
        assert.ok(!got.has("/doomed") && !got.has("/gone"));
        assert.equal(got.get("/made/here"), "dir 755");
        assert.equal(got.get("/etc/motd"), expected.get("/etc/motd"));
        assert.match(got.get("/big")!, /^file 644 3145728 /);
      } finally {
        await store.put(layers[2]);
      }
    } finally {
      if (mounted) {
        await podman("image", "unmount", "localhost/interop:1").catch(() => {});
      }
      await podman("rmi", "-a", "-f").catch(() => {});
      store.close();
    }
    await Deno.remove(`${t}/podman`, { recursive: true });
  },
);

privilegedTest(
  "interop: podman load reads what saveImage writes (docker and oci) and sees the same rootfs",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const podman = (...args: string[]) =>
      run("podman", [
        "--root",
        `${t}/podman/root`,
        "--runroot",
        `${t}/podman/run`,
        "--storage-driver",
        "vfs",
        ...args,
      ]);
    const img = buildImage([
      buildLayer(await baseLayer(), "gzip"),
      buildLayer(await topLayer(), "zstd"),
    ]);
    await writeOciLayout(`${t}/oci`, [{
      image: img,
      ref: "localhost/saved:1",
    }]);
    const store = await openStore({ root: `${t}/s`, backend: "overlay" });
    const mounted: string[] = [];
    try {
      const [loaded] = await loadImage(store, `${t}/oci`);
      const view = await store.get(loaded.topLayer!);
      let ours: Map<string, string>;
      try {
        ours = await hashedTree(view);
      } finally {
        await store.put(loaded.topLayer!);
      }
      for (const format of ["docker", "oci"] as const) {
        const [saved] = await saveImage(
          store,
          ["localhost/saved:1"],
          `${t}/${format}.tar`,
          { format },
        );
        const ref = `localhost/saved:${format}`;
        const out = await podman("load", "-i", `${t}/${format}.tar`);
        assert.match(out, /Loaded image/);
        if (format === "oci") {
          await podman("tag", "localhost/saved:1", ref);
        } else await podman("tag", saved.id.slice(7), ref);
        const id =
          (await podman("image", "inspect", "--format", "{{.Id}}", ref)).trim();
        assert.equal(`sha256:${id}`, saved.id);
        const path = (await podman("image", "mount", ref)).trim();
        mounted.push(ref);
        assert.deepEqual(await hashedTree(path), ours);
      }
    } finally {
      for (const ref of mounted) {
        await podman("image", "unmount", ref).catch(() => {});
      }
      await podman("rmi", "-a", "-f").catch(() => {});
      await store.cleanup();
      store.close();
    }
    await Deno.remove(`${t}/podman`, { recursive: true });
  },
);
