/**
 * Short names: an image stored as `docker.io/library/alpine:latest` (what a
 * pull of `alpine` records) is found as `alpine`, `alpine:latest`,
 * `library/alpine` and `docker.io/alpine` by findImage, `images REF`,
 * `save`, `create --image` and `rmi`; a loaded `myimg:1` also as
 * `localhost/myimg:1`; an exact name wins over names that stand for it; a
 * short name standing for names of two images is refused.
 */
import assert from "node:assert/strict";
import {
  InvalidImage,
  InvalidReference,
  UsageError,
} from "../../src/errors.ts";
import { processIo, runCli } from "../../src/cli/main.ts";
import {
  findImage,
  listImages,
  loadImage,
  openStore,
  type Store,
} from "../../mod.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  type BuiltImage,
  writeDocker25,
  writeDockerClassic,
  writeOciLayout,
} from "./_images.ts";

async function withLoaded(
  images: { image: BuiltImage; tags: string[] }[],
  fn: (store: Store, root: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-names-" });
  const root = `${dir}/store`;
  const store = await openStore({ root, backend: "vfs" });
  try {
    for (const [i, im] of images.entries()) {
      await writeDocker25(`${dir}/${i}.tar`, [im]);
      await loadImage(store, `${dir}/${i}.tar`);
    }
    await fn(store, root, dir);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function cli(root: string, args: string[]) {
  let out = "";
  const code = await runCli(
    ["--root", root, ...args],
    { ...processIo(), stderr: (t) => void (out += t) },
    (t) => void (out += t),
  );
  return { code, out };
}

Deno.test("names: a pulled docker.io name is found by the short forms users type", async () => {
  const base = buildLayer(await baseLayer(), "gzip");
  const alpine = buildImage([base]);
  const mine = buildImage([base], "arm64");
  await withLoaded([
    { image: alpine, tags: ["docker.io/library/alpine:latest"] },
    { image: mine, tags: ["myimg:1"] },
  ], async (store, root, dir) => {
    const id = `sha256:${alpine.configHex}`;
    for (
      const s of [
        "alpine",
        "alpine:latest",
        "library/alpine",
        "docker.io/alpine",
        "docker.io/library/alpine:latest",
        "index.docker.io/library/alpine",
      ]
    ) {
      const img = await findImage(store, s);
      assert.equal(img.id, id, s);
      assert.equal(img.ref, "docker.io/library/alpine:latest", s);
    }
    // A local name: as stored, and as podman names it.
    for (const s of ["myimg:1", "localhost/myimg:1", "docker.io/myimg:1"]) {
      assert.equal((await findImage(store, s)).id, `sha256:${mine.configHex}`);
    }
    await assert.rejects(findImage(store, "alpine:3"), /No image "alpine:3"/);
    await assert.rejects(findImage(store, "localhost/alpine"), /No image/);

    let r = await cli(root, ["--json", "images", "alpine"]);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(
      JSON.parse(r.out).images.map((i: { ref: string }) => i.ref),
      ["docker.io/library/alpine:latest"],
    );
    r = await cli(root, ["create", "ctr", "--rw", "--image", "alpine"]);
    assert.equal(r.code, 0, r.out);
    assert.equal(
      (await store.list()).find((l) => l.id === "ctr")?.parent,
      alpine.chains[0],
    );
    r = await cli(root, ["rm", "ctr"]);
    assert.equal(r.code, 0, r.out);
    r = await cli(root, ["save", "library/alpine", "-o", `${dir}/out.tar`]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Saved docker\.io\/library\/alpine:latest sha256:/);
    r = await cli(root, ["rmi", "docker.io/alpine"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^Untagged: docker\.io\/library\/alpine:latest$/m);
    assert.match(r.out, new RegExp(`^Deleted: ${id}$`, "m"));
    await assert.rejects(findImage(store, "alpine"), /No image "alpine"/);
  });
});

Deno.test("names: an exact name wins; a short name standing for two images is refused", async () => {
  const base = buildLayer(await baseLayer(), "gzip");
  const a = buildImage([base]);
  const b = buildImage([base], "arm64");
  const c = buildImage([base], "riscv64");
  await withLoaded([
    { image: a, tags: ["alpine:latest"] },
    { image: b, tags: ["docker.io/library/alpine:latest"] },
  ], async (store) => {
    assert.equal(
      (await findImage(store, "alpine")).id,
      `sha256:${a.configHex}`,
    );
    assert.equal(
      (await findImage(store, "docker.io/alpine")).id,
      `sha256:${b.configHex}`,
    );
  });
  await withLoaded([
    { image: a, tags: ["alpine:latest"] },
    { image: c, tags: ["docker.io/alpine:latest"] },
  ], async (store) => {
    // Neither is spelled docker.io/library/alpine:latest; both stand for it.
    await assert.rejects(
      findImage(store, "library/alpine"),
      (e) =>
        e instanceof InvalidReference &&
        /alpine:latest, docker\.io\/alpine:latest/.test(e.message),
    );
    assert.equal(
      (await findImage(store, "alpine")).id,
      `sha256:${a.configHex}`,
    );
  });
});

Deno.test("names: a load whose archive names an image with a name pull could not take (uppercase, two tags) is refused, and nothing is stored", async () => {
  const image = buildImage([await buildLayer(await baseLayer())]);
  for (
    const [tag, why] of [
      ["UPPER/Case:tag", "(the repository must be lowercase)"],
      [
        "a:b:c:d",
        '(the path component "a:b:c" is not valid (a-z 0-9 separated by . _ __ or -))',
      ],
    ] as const
  ) {
    await withLoaded([], async (store, _root, dir) => {
      await writeDocker25(`${dir}/bad.tar`, [{ image, tags: [tag] }]);
      await assert.rejects(
        loadImage(store, `${dir}/bad.tar`),
        (e: unknown) =>
          e instanceof InvalidImage &&
          e.message.endsWith(
            `the reference ${
              JSON.stringify(tag)
            } is not an image name ${why}; save or export the image again under a valid name`,
          ),
      );
      assert.deepEqual(await listImages(store), []);
      assert.deepEqual((await store.list()).map((l) => l.id), []);
    });
  }
});

Deno.test("load --ref: a layout's bare tags pick one image (tag names it); an unknown ref lists the names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-ref-" });
  const store = await openStore({ root: `${dir}/store`, backend: "vfs" });
  try {
    const v1 = buildImage([buildLayer(await baseLayer())]);
    const v2 = buildImage([buildLayer(await baseLayer())], "arm64");
    await writeOciLayout(`${dir}/oci`, [
      { image: v1, ref: "v1" },
      { image: v2, ref: "v2" },
    ]);
    await writeDockerClassic(`${dir}/d.tar`, [
      { image: v1, tags: ["app:1"] },
      { image: v2, tags: ["app:2", "app:two"] },
    ]);
    const [two] = await loadImage(store, `${dir}/oci`, { ref: "v2" });
    assert.equal(two.id, `sha256:${v2.configHex}`);
    assert.equal(two.ref, null); // a bare tag names no image
    const [named] = await loadImage(store, `${dir}/oci`, {
      ref: "v1",
      tag: "my/app:1",
    });
    assert.equal(named.id, `sha256:${v1.configHex}`);
    assert.deepEqual(named.refs, ["my/app:1"]);
    const [fromDocker] = await loadImage(store, `${dir}/d.tar`, {
      ref: "app:two",
    });
    assert.equal(fromDocker.id, `sha256:${v2.configHex}`);
    await assert.rejects(
      loadImage(store, `${dir}/oci`, { ref: "v9" }),
      (e) =>
        e instanceof UsageError &&
        e.message.includes('names no image "v9"; its images: "v1", "v2"'),
    );
    await assert.rejects(
      loadImage(store, `${dir}/oci`, { tag: "x:1" }),
      (e) =>
        e instanceof UsageError &&
        /pick one with --ref \(its names: "v1", "v2"\)/.test(e.message),
    );
    // The CLI: --ref and --tag together.
    store.close();
    const r = await cli(`${dir}/store`, [
      "load",
      `${dir}/oci`,
      "--ref",
      "v2",
      "--tag",
      "my/app:2",
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Loaded my\/app:2 sha256:/);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tag: an image gets another name (NAME alone is NAME:latest); a name another image had moves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-tag-" });
  try {
    const a = buildImage([buildLayer(await baseLayer())]);
    const b = buildImage([buildLayer(await baseLayer())], "arm64");
    await writeDockerClassic(`${dir}/d.tar`, [
      { image: a, tags: ["app:1"] },
      { image: b, tags: ["app:2"] },
    ]);
    let r = await cli(`${dir}/store`, ["load", `${dir}/d.tar`]);
    assert.equal(r.code, 0, r.out);
    r = await cli(`${dir}/store`, ["tag", "app:1", "reg.test/app"]);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out, `Tagged reg.test/app:latest sha256:${a.configHex}\n`);
    r = await cli(`${dir}/store`, ["tag", a.configHex.slice(0, 12), "app:2"]);
    assert.equal(
      r.out,
      `Tagged app:2 sha256:${a.configHex} (the name was sha256:${b.configHex}'s)\n`,
    );
    const store = await openStore({ root: `${dir}/store`, backend: "auto" });
    try {
      const rows = (await listImages(store)).map((i) => [i.ref, i.id]);
      assert.deepEqual(
        rows.sort(),
        [
          ["app:1", `sha256:${a.configHex}`],
          ["app:2", `sha256:${a.configHex}`],
          ["reg.test/app:latest", `sha256:${a.configHex}`],
          [null, `sha256:${b.configHex}`],
        ].sort(),
      );
    } finally {
      store.close();
    }
    r = await cli(`${dir}/store`, [
      "tag",
      "app:1",
      "app@sha256:" + "0".repeat(64),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.out, /a tag cannot carry a digest/);
    r = await cli(`${dir}/store`, ["tag", "nope:1", "x:1"]);
    assert.equal(r.code, 1);
    assert.match(r.out, /No image "nope:1"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load: one manifest listed under two names is one image, loaded and reported once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-twice-" });
  const store = await openStore({ root: `${dir}/store`, backend: "vfs" });
  try {
    const img = buildImage([buildLayer(await baseLayer())]);
    await writeOciLayout(`${dir}/oci`, [
      { image: img, ref: "v2" },
      { image: img, ref: "reg.test/app:3" },
    ]);
    const loaded = await loadImage(store, `${dir}/oci`);
    assert.equal(loaded.length, 1);
    assert.deepEqual(loaded[0].refs, ["reg.test/app:3"]);
    const [picked] = await loadImage(store, `${dir}/oci`, {
      ref: "v2",
      tag: "mine:2",
    });
    assert.equal(picked.id, loaded[0].id);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
