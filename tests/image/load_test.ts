import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  findImage,
  ForeignLayer,
  ImageInUse,
  ImageNotFound,
  InvalidArchive,
  InvalidImage,
  listImages,
  loadImage,
  NoMatchingPlatform,
  openStore,
  removeImage,
  type Store,
  tarHeader,
  TarWriter,
} from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  EXPECTED_TOP,
  handChainIds,
  layerTar,
  sha,
  simpleTree,
  tarDir,
  topLayer,
  writeDocker25,
  writeDockerClassic,
  writeMultiPlatformLayout,
  writeOciLayout,
} from "./_images.ts";

const hostArch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
const otherArch = hostArch === "amd64" ? "arm64" : "amd64";

async function twoLayerImage(
  c1: "none" | "gzip" | "zstd" = "gzip",
  c2: "none" | "gzip" | "zstd" = "zstd",
  arch = hostArch,
) {
  return buildImage(
    [buildLayer(await baseLayer(), c1), buildLayer(await topLayer(), c2)],
    arch,
  );
}

async function topTree(store: Store, id: string) {
  const path = await store.get(id);
  try {
    return await simpleTree(path);
  } finally {
    await store.put(id);
  }
}

/** The store holds no layer and no image. */
async function assertEmpty(store: Store) {
  assert.deepEqual(await store.list(), []);
  assert.deepEqual(await listImages(store), []);
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .filter((l) => l.includes(store.root));
  assert.deepEqual(mounts, []);
}

privilegedTest(
  "image: OCI layout dir (gzip + zstd layers) loads under hand-computed chain ids",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("gzip", "zstd");
    await writeOciLayout(`${tmp.path}/oci`, [{
      image: img,
      ref: "example.com/app:1",
    }]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const [r] = await loadImage(store, `${tmp.path}/oci`);
      const chains = handChainIds([img.layers[0].diffId, img.layers[1].diffId]);
      assert.equal(chains[0], sha(img.layers[0].tar));
      assert.equal(
        chains[1],
        sha(`sha256:${chains[0]} sha256:${sha(img.layers[1].tar)}`),
      );
      assert.deepEqual(r, {
        ref: "example.com/app:1",
        refs: ["example.com/app:1"],
        id: `sha256:${img.configHex}`,
        topLayer: chains[1],
        layers: chains,
        extracted: chains,
      });
      assert.deepEqual(await store.parents(chains[1]), [chains[0]]);
      assert.deepEqual(await topTree(store, chains[1]), EXPECTED_TOP);
      const [row] = await listImages(store);
      assert.equal(row.ref, "example.com/app:1");
      // Found by id, id prefix, manifest digest and name@digest.
      for (
        const ref of [
          `sha256:${img.configHex}`,
          img.configHex.slice(0, 12),
          `sha256:${img.manifestHex}`,
          `example.com/app@sha256:${img.manifestHex}`,
        ]
      ) {
        assert.equal(
          (await findImage(store, ref)).id,
          `sha256:${img.configHex}`,
        );
      }
      await assert.rejects(
        findImage(store, img.configHex.slice(0, 11)),
        ImageNotFound,
      );
      await assert.rejects(
        findImage(store, `example.com/app@sha256:${"e".repeat(64)}`),
        ImageNotFound,
      );
      assert.equal(row.manifest, `sha256:${img.manifestHex}`);
      assert.equal(
        row.size,
        img.layers[0].tar.length + img.layers[1].tar.length,
      );
      assert.equal(row.created, "2026-12-01T00:00:00Z");
      // Manifest and config are kept, content-addressed, byte for byte.
      assert.deepEqual(
        await Deno.readFile(
          `${store.root}/images/blobs/sha256/${img.configHex}`,
        ),
        img.config,
      );
      assert.deepEqual(
        await Deno.readFile(
          `${store.root}/images/blobs/sha256/${img.manifestHex}`,
        ),
        img.manifest,
      );

      // A second load reuses both layers: nothing is extracted again.
      const ino = (await Deno.stat(`${store.root}/layers/${chains[0]}`)).ino;
      const [again] = await loadImage(store, `${tmp.path}/oci`, {
        tag: "app:again",
      });
      assert.deepEqual(again.extracted, []);
      assert.equal(again.ref, "app:again");
      assert.equal(
        (await Deno.stat(`${store.root}/layers/${chains[0]}`)).ino,
        ino,
      );
      assert.deepEqual(
        (await listImages(store)).map((i) => i.ref),
        ["app:again", "example.com/app:1"],
      );
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);

privilegedTest(
  "image: oci-archive (a tar of a layout), uncompressed layers",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("none", "none");
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "app:tar" }]);
    await tarDir(`${tmp.path}/oci`, `${tmp.path}/oci.tar`);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const [r] = await loadImage(store, `${tmp.path}/oci.tar`);
      assert.deepEqual(r.layers, img.chains);
      assert.deepEqual(await topTree(store, r.topLayer!), EXPECTED_TOP);
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "image: classic docker-archive with two images sharing a layer (symlinked layer.tar)",
  async () => {
    await using tmp = await tempDir();
    const base = buildLayer(await baseLayer());
    const a = buildImage([base, buildLayer(await topLayer())]);
    const b = buildImage([
      base,
      buildLayer(await layerTar([{ name: "b", content: "b" }])),
    ]);
    await writeDockerClassic(`${tmp.path}/d.tar`, [
      { image: a, tags: ["a:1", "a:latest"] },
      { image: b, tags: ["b:1"] },
    ]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const [ra, rb] = await loadImage(store, `${tmp.path}/d.tar`);
      assert.deepEqual(ra.refs, ["a:1", "a:latest"]);
      assert.equal(ra.id, `sha256:${a.configHex}`);
      assert.deepEqual(ra.layers, a.chains);
      assert.deepEqual(rb.layers, b.chains);
      assert.deepEqual(rb.extracted, [b.chains[1]]); // the base was there already
      assert.deepEqual(
        (await listImages(store)).map((i) => [i.ref, i.manifest]),
        [
          ["a:1", null],
          ["a:latest", null],
          ["b:1", null],
        ],
      );
      assert.equal((await store.list()).length, 3);
      assert.deepEqual(await topTree(store, ra.topLayer!), EXPECTED_TOP);
      const bTree = await topTree(store, rb.topLayer!);
      assert.equal(bTree["/b"], "file 644 b");
      assert.equal(bTree["/gone.txt"], "file 644 bye");
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);

privilegedTest(
  "image: Docker 25+ docker-archive (manifest.json naming blobs/sha256/...)",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("gzip", "none");
    await writeDocker25(`${tmp.path}/d25.tar`, [{
      image: img,
      tags: ["docker.io/library/app:25"],
    }]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const [r] = await loadImage(store, `${tmp.path}/d25.tar`);
      assert.equal(r.ref, "docker.io/library/app:25");
      assert.deepEqual(r.layers, img.chains);
      assert.deepEqual(await topTree(store, r.topLayer!), EXPECTED_TOP);
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);

privilegedTest(
  "image: a multi-platform nested index picks the host platform unless told",
  async () => {
    await using tmp = await tempDir();
    const host = await twoLayerImage("gzip", "gzip", hostArch);
    const other = buildImage(
      [buildLayer(
        await layerTar([{ name: "other", content: otherArch }]),
        "zstd",
      )],
      otherArch,
    );
    await writeMultiPlatformLayout(`${tmp.path}/mp`, [other, host], "multi:1");
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const [r] = await loadImage(store, `${tmp.path}/mp`);
      assert.equal(r.id, `sha256:${host.configHex}`);
      assert.equal(r.ref, "multi:1");
      const [o] = await loadImage(store, `${tmp.path}/mp`, {
        platform: `linux/${otherArch}`,
        tag: "multi:other",
      });
      assert.equal(o.id, `sha256:${other.configHex}`);
      assert.deepEqual(o.layers, other.chains);
      await assert.rejects(
        loadImage(store, `${tmp.path}/mp`, { platform: "linux/s390x" }),
        (e) =>
          e instanceof NoMatchingPlatform && /linux\/amd64/.test(e.message),
      );
    } finally {
      store.close();
    }
  },
);

// ---- refusals: nothing may be left behind ----

async function refused(
  tmp: string,
  path: string,
  pattern: RegExp,
  cls: typeof InvalidImage = InvalidImage,
) {
  const store = await openStore({ root: `${tmp}/s`, backend: "overlay" });
  try {
    await assert.rejects(loadImage(store, path), (e) => {
      assert.ok(
        e instanceof cls,
        `${(e as Error).name}: ${(e as Error).message}`,
      );
      assert.match((e as Error).message, pattern);
      return true;
    });
    await assertEmpty(store);
    const left = [];
    for await (const e of Deno.readDir(`${store.root}/staging`)) {
      left.push(e.name);
    }
    assert.deepEqual(left, []);
  } finally {
    store.close();
  }
}

privilegedTest(
  "image: a corrupted top blob is refused and the base layer made before it goes again",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("none", "none");
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "bad:1" }]);
    const blob = `${tmp.path}/oci/blobs/sha256/${sha(img.layers[1].blob)}`;
    const bytes = await Deno.readFile(blob);
    const at = new TextDecoder().decode(bytes).indexOf("hello again");
    assert.ok(at > 0);
    bytes[at] ^= 0x20; // inside a file's body: still a valid tar
    await Deno.writeFile(blob, bytes);
    await refused(
      tmp.path,
      `${tmp.path}/oci`,
      /layer 2: its blob has digest sha256:[0-9a-f]{64}, the manifest says/,
    );
  },
);

privilegedTest(
  "image: a blob corrupted where its tar cannot be read is refused for its digest, the tar's error as the cause",
  async () => {
    for (const c of ["none", "gzip"] as const) {
      await using tmp = await tempDir();
      const img = await twoLayerImage("none", c);
      await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "bad:1" }]);
      const blob = `${tmp.path}/oci/blobs/sha256/${sha(img.layers[1].blob)}`;
      const bytes = await Deno.readFile(blob);
      // The first header's checksum field (a plain tar), or the middle of
      // the deflate stream: either way the reader fails before the end.
      bytes[c === "none" ? 150 : bytes.length >> 1] ^= 0x5a;
      await Deno.writeFile(blob, bytes);
      const store = await openStore({ root: `${tmp.path}/s`, backend: "vfs" });
      try {
        await assert.rejects(loadImage(store, `${tmp.path}/oci`), (e) => {
          assert.ok(e instanceof InvalidImage, `${c}: ${e}`);
          assert.match(
            e.message,
            /layer 2: its blob has digest sha256:[0-9a-f]{64}, the manifest says/,
          );
          assert.ok(e.cause instanceof InvalidArchive, `${c}: ${e.cause}`);
          return true;
        });
        await assertEmpty(store);
      } finally {
        store.close();
      }
    }
  },
);

privilegedTest(
  "image: a layer tar bad as published (its blob is its digest's bytes) says so",
  async () => {
    await using tmp = await tempDir();
    const tar = await topLayer();
    tar[150] ^= 0x5a; // the first header's checksum field
    const img = buildImage([buildLayer(await baseLayer()), buildLayer(tar)]);
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "bad:1" }]);
    const store = await openStore({ root: `${tmp.path}/s`, backend: "vfs" });
    try {
      await assert.rejects(loadImage(store, `${tmp.path}/oci`), (e) => {
        assert.ok(e instanceof InvalidImage, String(e));
        assert.match(e.message, /layer 2: its layer tar cannot be applied/);
        assert.match(e.message, /is the bytes its digest names/);
        assert.ok(e.cause instanceof InvalidArchive);
        return true;
      });
      await assertEmpty(store);
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "image: a wrong diff_id is refused before the layer is published",
  async () => {
    await using tmp = await tempDir();
    const base = buildLayer(await baseLayer(), "gzip");
    const top = buildLayer(await topLayer(), "gzip");
    const img = buildImage([base, {
      ...top,
      diffId: `sha256:${"0".repeat(64)}`,
    }]);
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "bad:2" }]);
    await refused(
      tmp.path,
      `${tmp.path}/oci`,
      /layer 2: its uncompressed tar has DiffID sha256:[0-9a-f]{64}, the config's rootfs.diff_ids says sha256:0000/,
    );
  },
);

privilegedTest(
  "image: the DiffID covers the bytes after the end-of-archive blocks",
  async () => {
    await using tmp = await tempDir();
    // A tar whose end-of-archive blocks end exactly at 1 MiB (the loader's
    // read size), then 10 KiB of padding in a chunk the tar reader never
    // asks for: only the loader's drain brings it into the DiffID.
    const MiB = 1 << 20;
    const body = new Uint8Array(MiB - 1536).fill(0x61);
    const w = new TarWriter();
    const out = new Response(w.readable).bytes();
    await w.add(tarHeader({ name: "big", size: body.length }), body);
    await w.close();
    const tar = await out;
    assert.equal(tar.length, MiB);
    const padded = new Uint8Array(MiB + 10240);
    padded.set(tar);

    // DiffID over every byte: loads.
    const good = buildImage([buildLayer(padded)]);
    await writeOciLayout(`${tmp.path}/good`, [{
      image: good,
      ref: "pad:good",
    }]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      const [r] = await loadImage(store, `${tmp.path}/good`);
      assert.deepEqual(r.layers, [sha(padded)]);
    } finally {
      store.close();
    }
    await Deno.remove(`${tmp.path}/s`, { recursive: true });

    // DiffID over the tar up to its end blocks only: refused.
    const bad = buildImage([{
      ...buildLayer(padded),
      diffId: `sha256:${sha(tar)}`,
    }]);
    await writeOciLayout(`${tmp.path}/bad`, [{ image: bad, ref: "pad:bad" }]);
    await refused(
      tmp.path,
      `${tmp.path}/bad`,
      /layer 1: its uncompressed tar has DiffID/,
    );
  },
);

privilegedTest("image: a truncated docker-archive is refused", async () => {
  await using tmp = await tempDir();
  const img = await twoLayerImage("none", "none");
  await writeDockerClassic(`${tmp.path}/d.tar`, [{
    image: img,
    tags: ["t:1"],
  }]);
  const bytes = await Deno.readFile(`${tmp.path}/d.tar`);
  await Deno.writeFile(
    `${tmp.path}/d.tar`,
    bytes.subarray(0, Math.floor(bytes.length * 0.6)),
  );
  await refused(tmp.path, `${tmp.path}/d.tar`, /truncated|missing/);
});

privilegedTest("image: a missing layer blob is refused", async () => {
  await using tmp = await tempDir();
  const img = await twoLayerImage();
  await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "m:1" }]);
  await Deno.remove(`${tmp.path}/oci/blobs/sha256/${sha(img.layers[1].blob)}`);
  await refused(
    tmp.path,
    `${tmp.path}/oci`,
    /layer 2: its blob blobs\/sha256\/[0-9a-f]{64} is missing/,
  );
});

privilegedTest(
  "image: hostile names are refused, not reinterpreted",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("none", "none");
    // A docker-archive layer path out of the archive.
    const d = `${tmp.path}/d`;
    await Deno.mkdir(d);
    await Deno.writeFile(`${d}/${img.configHex}.json`, img.config);
    await Deno.writeTextFile(
      `${d}/manifest.json`,
      JSON.stringify([{
        Config: `${img.configHex}.json`,
        RepoTags: ["h:1"],
        Layers: ["../../etc/passwd", "x/layer.tar"],
      }]),
    );
    await tarDir(d, `${tmp.path}/h.tar`);
    await refused(
      tmp.path,
      `${tmp.path}/h.tar`,
      /"..\/..\/etc\/passwd" points outside the archive/,
    );

    // A digest that is not sha256:<64 hex>.
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "h:2" }]);
    const index = JSON.parse(
      await Deno.readTextFile(`${tmp.path}/oci/index.json`),
    );
    index.manifests[0].digest = "sha256:../../../etc/passwd";
    await Deno.writeTextFile(
      `${tmp.path}/oci/index.json`,
      JSON.stringify(index),
    );
    await refused(tmp.path, `${tmp.path}/oci`, /is not a sha256 digest/);

    // A blob that is a symlink out of the layout.
    await Deno.remove(`${tmp.path}/oci`, { recursive: true });
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "h:3" }]);
    const layerBlob = `${tmp.path}/oci/blobs/sha256/${sha(img.layers[0].blob)}`;
    await Deno.rename(layerBlob, `${tmp.path}/outside`);
    await Deno.symlink(`${tmp.path}/outside`, layerBlob);
    await refused(
      tmp.path,
      `${tmp.path}/oci`,
      /a symlink leads out of the layout directory/,
    );

    // An absurd size.
    await Deno.remove(`${tmp.path}/oci`, { recursive: true });
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "h:4" }]);
    const idx2 = JSON.parse(
      await Deno.readTextFile(`${tmp.path}/oci/index.json`),
    );
    idx2.manifests[0].size = 1e300;
    await Deno.writeTextFile(
      `${tmp.path}/oci/index.json`,
      JSON.stringify(idx2),
    );
    await refused(tmp.path, `${tmp.path}/oci`, /is not a byte count/);
  },
);

privilegedTest(
  "image: a foreign layer is refused with ForeignLayer",
  async () => {
    await using tmp = await tempDir();
    const l = buildLayer(await baseLayer(), "gzip");
    const img = buildImage([{
      ...l,
      mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }]);
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "win:1" }]);
    await refused(
      tmp.path,
      `${tmp.path}/oci`,
      /foreign \(non-distributable\) layer/,
      ForeignLayer,
    );
  },
);

privilegedTest(
  "image: removeImage removes the layers nothing else uses",
  async () => {
    await using tmp = await tempDir();
    const base = buildLayer(await baseLayer(), "gzip");
    const a = buildImage([base, buildLayer(await topLayer(), "gzip")]);
    const b = buildImage([
      base,
      buildLayer(await layerTar([{ name: "b", content: "b" }])),
    ]);
    await writeOciLayout(`${tmp.path}/oci`, [
      { image: a, ref: "a:1" },
      { image: b, ref: "b:1" },
    ]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      await loadImage(store, `${tmp.path}/oci`);
      assert.equal((await store.list()).length, 3);
      await assert.rejects(removeImage(store, "nope:1"), ImageNotFound);
      await assert.rejects(removeImage(store, "b"), ImageNotFound); // b means b:latest

      // A container layer on b's top keeps b's layers.
      await store.createReadWrite("ctr", b.chains[1]);
      let r = await removeImage(store, "a:1");
      assert.deepEqual(r, {
        untagged: ["a:1"],
        deleted: `sha256:${a.configHex}`,
        removedLayers: [a.chains[1]], // the shared base stays for b
      });
      // b has a container on it: refused as docker and podman refuse it,
      // unless forced (then its layers stay for the container).
      await assert.rejects(
        removeImage(store, `sha256:${b.configHex}`),
        (e) => e instanceof ImageInUse && e.layers.join() === "ctr",
      );
      assert.equal((await listImages(store)).length, 1);
      r = await removeImage(store, `sha256:${b.configHex}`, { force: true });
      assert.deepEqual(r, {
        untagged: ["b:1"],
        deleted: `sha256:${b.configHex}`,
        removedLayers: [],
      });
      assert.deepEqual(await listImages(store), []);
      assert.deepEqual(
        (await store.list()).map((l) => l.id).sort(),
        [b.chains[0], b.chains[1], "ctr"].sort(),
      );
      await store.remove("ctr");

      // Loaded again: b's layers are reused, a's top is made anew.
      const [ra, rb] = await loadImage(store, `${tmp.path}/oci`);
      assert.deepEqual(ra.extracted, [a.chains[1]]);
      assert.deepEqual(rb.extracted, []);
      r = await removeImage(store, "a:1");
      assert.deepEqual(r.removedLayers, [a.chains[1]]);
      r = await removeImage(store, "b:1");
      assert.deepEqual(r.removedLayers, [b.chains[1], b.chains[0]]);
      await assertEmpty(store);
      assert.deepEqual([
        ...Deno.readDirSync(`${store.root}/images/blobs/sha256`),
      ], []);
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);

privilegedTest(
  "image: a name on two loads untags first, removes last",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage();
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "x:1" }]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      await loadImage(store, `${tmp.path}/oci`);
      await loadImage(store, `${tmp.path}/oci`, { tag: "x:2" });
      let r = await removeImage(store, "x:1");
      assert.deepEqual(r, {
        untagged: ["x:1"],
        deleted: null,
        removedLayers: [],
      });
      assert.equal((await store.list()).length, 2);
      r = await removeImage(store, "x:2");
      assert.deepEqual(r.deleted, `sha256:${img.configHex}`);
      assert.deepEqual(r.removedLayers, [...img.chains].reverse());
      await assertEmpty(store);
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "image: two processes loading one image both succeed and extract each layer once",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("gzip", "zstd");
    await writeDockerClassic(`${tmp.path}/d.tar`, [{
      image: img,
      tags: ["c:1"],
    }]);
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    store.close();
    const child = () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./_load_child.ts", import.meta.url).pathname,
          `${tmp.path}/s`,
          `${tmp.path}/d.tar`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const outs = await Promise.all([child(), child()]);
    const extracted: string[] = [];
    for (const o of outs) {
      assert.ok(o.success, new TextDecoder().decode(o.stderr));
      const [r] = JSON.parse(new TextDecoder().decode(o.stdout));
      assert.deepEqual(r.layers, img.chains);
      extracted.push(...r.extracted);
    }
    assert.deepEqual(extracted.sort(), [...img.chains].sort());
    const s2 = await openStore({ root: `${tmp.path}/s`, backend: "overlay" });
    try {
      assert.equal((await s2.list()).length, 2);
      assert.equal((await listImages(s2)).length, 1);
    } finally {
      s2.close();
    }
  },
);

privilegedTest(
  "image: a config or manifest whose bytes are not their digest is refused",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage();
    for (
      const [what, hex] of [["config", img.configHex], [
        "manifest",
        img.manifestHex,
      ]]
    ) {
      await Deno.remove(`${tmp.path}/oci`, { recursive: true }).catch(() => {});
      await writeOciLayout(`${tmp.path}/oci`, [{
        image: img,
        ref: `d:${what}`,
      }]);
      const p = `${tmp.path}/oci/blobs/sha256/${hex}`;
      const text = await Deno.readTextFile(p);
      await Deno.writeTextFile(
        p,
        text.replace('"schemaVersion":2', '"schemaVersion":3').replace(
          '"os":"linux"',
          '"os":"linuX"',
        ),
      );
      await refused(
        tmp.path,
        `${tmp.path}/oci`,
        new RegExp(
          `blobs/sha256/${hex} has digest sha256:[0-9a-f]{64}, expected sha256:${hex}`,
        ),
      );
    }
    // A classic docker-archive's <hex>.json config is checked against its name.
    const d = `${tmp.path}/classic.tar`;
    await writeDockerClassic(d, [{
      image: {
        ...img,
        config: new TextEncoder().encode(
          new TextDecoder().decode(img.config).replace("amd64", "arm64"),
        ),
      },
      tags: ["d:classic"],
    }]);
    await refused(
      tmp.path,
      d,
      /\.json has digest sha256:[0-9a-f]{64}, expected/,
    );
  },
);

privilegedTest(
  "image: a gzip-compressed docker-archive (docker save | gzip) loads; dead processes' temp files are swept",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("none", "none");
    await writeDockerClassic(`${tmp.path}/d.tar`, [{
      image: img,
      tags: ["gz:1"],
    }]);
    await Deno.writeFile(
      `${tmp.path}/d.tar.gz`,
      gzipSync(await Deno.readFile(`${tmp.path}/d.tar`)),
    );
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      // pid_max is at most 2^22: no process has this pid.
      await Deno.mkdir(`${store.root}/images`, { recursive: true });
      await Deno.writeTextFile(
        `${store.root}/images/.spool-4194305-x`,
        "left by a crash",
      );
      const [r] = await loadImage(store, `${tmp.path}/d.tar.gz`);
      assert.equal(r.ref, "gz:1");
      assert.deepEqual(r.layers, img.chains);
      assert.deepEqual(await topTree(store, r.topLayer!), EXPECTED_TOP);
      const names = [...Deno.readDirSync(`${store.root}/images`)].map((e) =>
        e.name
      ).sort();
      assert.deepEqual(names, ["blobs", "index.json", "lock", "locks"]);
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "image: two processes loading two images on one base extract the base once",
  async () => {
    await using tmp = await tempDir();
    const base = buildLayer(await baseLayer(), "gzip");
    const a = buildImage([base, buildLayer(await topLayer(), "zstd")]);
    const b = buildImage([
      base,
      buildLayer(await layerTar([{ name: "b", content: "b" }])),
    ]);
    await writeDocker25(`${tmp.path}/a.tar`, [{ image: a, tags: ["a:1"] }]);
    await writeOciLayout(`${tmp.path}/b`, [{ image: b, ref: "b:1" }]);
    const child = (path: string) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./_load_child.ts", import.meta.url).pathname,
          `${tmp.path}/s`,
          path,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const outs = await Promise.all([
      child(`${tmp.path}/a.tar`),
      child(`${tmp.path}/b`),
    ]);
    const extracted: string[] = [];
    for (const o of outs) {
      assert.ok(o.success, new TextDecoder().decode(o.stderr));
      extracted.push(
        ...JSON.parse(new TextDecoder().decode(o.stdout))[0].extracted,
      );
    }
    assert.deepEqual(
      extracted.sort(),
      [a.chains[0], a.chains[1], b.chains[1]].sort(),
    );
    const s = await openStore({ root: `${tmp.path}/s`, backend: "overlay" });
    try {
      assert.deepEqual((await listImages(s)).map((i) => i.ref), ["a:1", "b:1"]);
      assert.equal((await s.list()).length, 3);
    } finally {
      s.close();
    }
  },
);

privilegedTest(
  "image: a truncated stream and an xz archive are refused by name",
  async () => {
    await using tmp = await tempDir();
    const img = await twoLayerImage("none", "none");
    await writeDockerClassic(`${tmp.path}/d.tar`, [{
      image: img,
      tags: ["s:1"],
    }]);
    const gz = gzipSync(await Deno.readFile(`${tmp.path}/d.tar`));
    const cut = new Uint8Array(gz.subarray(0, gz.length >> 1));
    const store = await openStore({
      root: `${tmp.path}/s`,
      backend: "overlay",
    });
    try {
      await assert.rejects(
        loadImage(store, new Blob([cut]).stream()),
        (e) =>
          e instanceof InvalidImage &&
          /^Cannot load image standard input: /.test(e.message),
      );
      await Deno.writeFile(
        `${tmp.path}/d.tar.xz`,
        new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]),
      );
      await assert.rejects(
        loadImage(store, `${tmp.path}/d.tar.xz`),
        (e) =>
          e instanceof InvalidImage && /xz/.test(e.message) &&
          /xz -dc/.test(e.message),
      );
      await assertEmpty(store);
      const names = [...Deno.readDirSync(`${store.root}/images`)].map((e) =>
        e.name
      );
      assert.ok(!names.some((n) => n.startsWith(".spool")), names.join(" "));
    } finally {
      store.close();
    }
  },
);

for (const backend of ["overlay", "vfs"] as const) {
  privilegedTest(
    `image (${backend}): a bad bottom layer fails the load and the layers above it; nothing is left (in workers: small_load_test.ts)`,
    async () => {
      await using tmp = await tempDir();
      const img = buildImage([
        {
          ...buildLayer(await baseLayer(), "gzip"),
          diffId: `sha256:${"1".repeat(64)}`,
        },
        buildLayer(await topLayer(), "zstd"),
        buildLayer(await layerTar([{ name: "third", content: "3" }]), "gzip"),
      ]);
      await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "par:1" }]);
      const store = await openStore({ root: `${tmp.path}/s`, backend });
      try {
        await assert.rejects(
          loadImage(store, `${tmp.path}/oci`, { parallel: 4 }),
          (e) =>
            e instanceof InvalidImage &&
            /par:1 layer 1: its uncompressed tar has DiffID/.test(e.message),
        );
        await assertEmpty(store);
        assert.deepEqual([...Deno.readDirSync(`${store.root}/staging`)], []);
        await assert.rejects(
          loadImage(store, `${tmp.path}/oci`, { parallel: 0 }),
          /parallel must be a whole number/,
        );
        // The same layers with the right DiffIDs load, all three extracted.
        const good = buildImage([
          buildLayer(img.layers[0].tar, "gzip"),
          img.layers[1],
          img.layers[2],
        ]);
        await Deno.remove(`${tmp.path}/oci`, { recursive: true });
        await writeOciLayout(`${tmp.path}/oci`, [{
          image: good,
          ref: "par:1",
        }]);
        const [r] = await loadImage(store, `${tmp.path}/oci`, { parallel: 4 });
        assert.deepEqual(r.extracted, good.chains);
        assert.deepEqual(await store.parents(good.chains[2]), [
          good.chains[1],
          good.chains[0],
        ]);
        const tree = await topTree(store, good.chains[2]);
        assert.deepEqual(tree, { ...EXPECTED_TOP, "/third": "file 644 3" });
      } finally {
        await store.cleanup();
        store.close();
      }
    },
  );
}
