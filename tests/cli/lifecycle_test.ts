/**
 * What the CLI promises about removal, names, outputs and interrupts, on vfs
 * (no privileges needed): `rm --force` says what it removed and never takes
 * a mounted descendant, `rm` refuses an image's layer, `rmi` tries every
 * name, `load --tag` checks the name, `diff -o`/`save -o` leave nothing when
 * they fail or are killed, Ctrl-C of `apply` removes its staging, and the
 * small edges (`--root=`, `exists bad/id`, `-o -`, a file too short to be a
 * tar, a typo'd root).
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "../_privileged.ts";
import {
  buildImage,
  buildLayer,
  layerTar,
  writeOciLayout,
} from "../image/_images.ts";
import { layerfs, MAIN, names, sh } from "./_layerfs.ts";

/** `layerfs` on the store `g` names, failing the test unless it exits 0. */
function expectOk(g: string[]) {
  return async (args: string[]) => {
    const r = await layerfs([...g, ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };
}

/** A store at `root` (default `d/store`), initialised. */
async function store(
  d: string,
  backend: "vfs" | "overlay" = "vfs",
  root = `${d}/store`,
) {
  const g = ["--root", root, "--backend", backend];
  const ok = expectOk(g);
  await ok(["init"]);
  return { g, ok };
}

/** An OCI layout of one image with one layer, named `ref`. */
async function imageDir(dir: string, ref: string, file: string) {
  const tar = await layerTar([{ name: file, content: `${ref}\n` }]);
  const image = buildImage([buildLayer(tar)]);
  await writeOciLayout(dir, [{ image, ref }]);
  return image;
}

Deno.test("cli rm: --force lists every layer it removed; a mounted descendant is refused and nothing goes", async () => {
  await using tmp = await tempDir();
  const { g, ok } = await store(tmp.path);
  await ok(["create", "base"]);
  await ok(["create", "mid", "--parent", "base"]);
  await ok(["create", "ctr", "--parent", "mid", "--rw"]);
  await ok(["mount", "ctr"]);
  const busy = await layerfs([...g, "rm", "--force", "base"]);
  assert.equal(busy.code, 1);
  assert.match(
    busy.stderr,
    /^layerfs: Cannot remove "base" and its descendant layer "ctr": it is mounted 1 time; run "layerfs umount ctr" first\n$/,
  );
  const left = JSON.parse((await ok(["--json", "ls"])).stdout).layers;
  assert.deepEqual(left.map((l: { id: string }) => l.id).sort(), [
    "base",
    "ctr",
    "mid",
  ]);
  // The layer named is taken even when mounted (that is what --force is for).
  await ok(["mount", "base"]);
  await ok(["umount", "ctr"]);
  const text = await ok(["rm", "--force", "base"]);
  assert.equal(text.stdout, "removed ctr\nremoved mid\nremoved base\n");
  await ok(["create", "a"]);
  await ok(["create", "b", "--parent", "a"]);
  const doc = JSON.parse((await ok(["--json", "rm", "-f", "a"])).stdout);
  assert.deepEqual(doc, {
    removed: [{ id: "a", layers: ["b", "a"] }],
    failed: [],
  });
  assert.deepEqual(JSON.parse((await ok(["--json", "ls"])).stdout).layers, []);
});

Deno.test("cli rm: several ids, each removed or refused on its own; the exit status and --json say which", async () => {
  await using tmp = await tempDir();
  const { g, ok } = await store(tmp.path);
  for (const id of ["cx", "cy", "cz"]) await ok(["create", id, "--rw"]);
  assert.equal(
    (await ok(["rm", "cx", "cy"])).stdout,
    "removed cx\nremoved cy\n",
  );
  await ok(["create", "base"]);
  await ok(["create", "mid", "--parent", "base"]);
  await ok(["create", "busy", "--parent", "mid", "--rw"]);
  await ok(["mount", "busy"]);
  // base is refused whole (its mounted descendant), nope does not exist;
  // cz still goes, and the run exits 1 naming both failures.
  const r = await layerfs([...g, "rm", "-f", "base", "nope", "cz"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "removed cz\n");
  const err = r.stderr.trim().split("\n");
  assert.equal(err.length, 2, r.stderr);
  assert.match(
    err[0],
    /^layerfs: Cannot remove "base" and its descendant layer "busy"/,
  );
  assert.match(err[1], /^layerfs: .*"nope"/);
  assert.deepEqual(
    JSON.parse((await ok(["--json", "ls"])).stdout).layers.map((
      l: { id: string },
    ) => l.id).sort(),
    ["base", "busy", "mid"],
  );
  await ok(["umount", "busy"]);
  // A descendant removed by an earlier id's --force, or an id named twice, is done.
  const j = await layerfs([
    ...g,
    "--json",
    "rm",
    "-f",
    "mid",
    "busy",
    "mid",
    "gone",
  ]);
  assert.equal(j.code, 1);
  const doc = JSON.parse(j.stdout);
  assert.deepEqual(doc.removed, [{ id: "mid", layers: ["busy", "mid"] }]);
  assert.equal(doc.failed.length, 1);
  assert.equal(doc.failed[0].id, "gone");
  assert.equal(doc.failed[0].error.name, "LayerNotFound");
  await ok(["rm", "base"]);
});

Deno.test("cli rm: a layer an image uses is refused (also with --force); rmi removes it", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  const image = await imageDir(`${d}/oci`, "app:1", "a");
  await ok(["load", `${d}/oci`]);
  const layer = image.chains[0];
  for (const args of [["rm", layer], ["rm", "--force", layer]]) {
    const r = await layerfs([...g, ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(
      r.stderr,
      `layerfs: Cannot remove layer "${layer}": image app:1 uses it; remove the image first with "layerfs rmi app:1"\n`,
    );
  }
  // A container on the image can go; the image's layer under it stays.
  await ok(["create", "ctr", "--rw", "--image", "app:1"]);
  await ok(["rm", "ctr"]);
  await ok(["create", "base"]);
  await ok(["create", "ctr2", "--parent", "base", "--rw"]);
  assert.equal((await layerfs([...g, "exists", layer])).code, 0);
  await ok(["rmi", "app:1"]);
  assert.equal((await layerfs([...g, "exists", layer])).code, 1);
  await ok(["rm", "--force", "base"]);
});

Deno.test("cli rmi --force: the layers a container kept are no interrupted pull's: check stays clean, prune removes them", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  const image = await imageDir(`${d}/oci`, "app:1", "a");
  await ok(["load", `${d}/oci`]);
  await ok(["create", "ctr", "--rw", "--image", "app:1"]);
  await ok(["commit", "ctr", "ctr-img"]);
  await ok(["rmi", "--force", "app:1"]);
  assert.equal((await ok(["check"])).code, 0);
  await ok(["rm", "ctr-img"]);
  const check = await layerfs([...g, "check"]);
  assert.equal(check.code, 0, check.stdout);
  assert.equal(check.stdout, `store ${d}/store is consistent\n`);
  const pruned = JSON.parse((await ok(["--json", "prune"])).stdout);
  assert.deepEqual(pruned.removedLayers, [image.chains[0]]);
  assert.deepEqual(JSON.parse((await ok(["--json", "ls"])).stdout).layers, []);
  assert.equal((await ok(["check"])).code, 0);
});

Deno.test("cli rmi: every name is tried; a missing one is reported and the run exits 1", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  await imageDir(`${d}/a`, "a:1", "a");
  await imageDir(`${d}/b`, "b:1", "b");
  await ok(["load", `${d}/a`]);
  await ok(["load", `${d}/b`]);
  const r = await layerfs([...g, "rmi", "a:1", "nope:1", "b:1"]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^Untagged: a:1\nDeleted: sha256:/);
  assert.match(r.stdout, /\nUntagged: b:1\nDeleted: sha256:/);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^layerfs: .*nope:1/);
  assert.equal((await ok(["images"])).stdout.trim().split("\n").length, 1);

  await ok(["load", `${d}/a`]);
  const j = await layerfs([...g, "--json", "rmi", "gone:2", "a:1"]);
  assert.equal(j.code, 1);
  const doc = JSON.parse(j.stdout);
  assert.deepEqual(doc.removed.map((x: { ref: string }) => x.ref), ["a:1"]);
  assert.equal(doc.failed.length, 1);
  assert.equal(doc.failed[0].ref, "gone:2");
  assert.equal(doc.failed[0].error.name, "ImageNotFound");
});

Deno.test("cli load --tag: a name pull, push and save could not take is refused before anything is stored", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  await imageDir(`${d}/oci`, "app:1", "a");
  for (
    const tag of ["BAD:tag", "", "x y", "a:b:c", `a@sha256:${"0".repeat(64)}`]
  ) {
    const r = await layerfs([...g, "load", "--tag", tag, `${d}/oci`]);
    assert.equal(r.code, 1, JSON.stringify(tag));
    assert.match(r.stderr, /^layerfs: Invalid image reference /, tag);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
  assert.deepEqual(JSON.parse((await ok(["--json", "ls"])).stdout).layers, []);
  assert.deepEqual(
    JSON.parse((await ok(["--json", "images"])).stdout).images,
    [],
  );
  await ok(["load", "--tag", "good/name:2", `${d}/oci`]);
  assert.match((await ok(["images"])).stdout, /\ngood\/name:2 /);
});

Deno.test("cli save -o / diff -o: a bad path fails first, naming it; nothing is left; a name given twice is saved once", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  await imageDir(`${d}/oci`, "app:1", "a");
  await ok(["load", `${d}/oci`]);
  await ok(["create", "base"]);
  const before = await names(d);
  for (const cmd of [["save", "app:1"], ["diff", "base"]]) {
    const missing = await layerfs([...g, ...cmd, "-o", `${d}/nodir/x.tar`]);
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      `layerfs: Cannot write to ${d}/nodir/x.tar: No such file or directory; check the path\n`,
    );
    const dir = await layerfs([...g, ...cmd, "-o", d]);
    assert.equal(dir.code, 2);
    assert.match(
      dir.stderr,
      /^layerfs: Cannot write to .*: it is a directory; /,
    );
    const full = await layerfs([...g, ...cmd, "-o", "/dev/full"]);
    assert.equal(full.code, 1);
    assert.match(
      full.stderr,
      /^layerfs: Cannot write to \/dev\/full: No space left on device; the file system is full; /,
    );
  }
  assert.deepEqual(await names(d), before);
  assert.deepEqual(
    (await names(`${d}/store/images`)).filter((n) => n.startsWith(".save-")),
    [],
  );
  const dash = await layerfs([...g, "save", "app:1", "-o", "-"]);
  assert.equal(dash.code, 2);
  assert.match(
    dash.stderr,
    /^layerfs: save writes a file, not standard output/,
  );

  await ok(["save", "app:1", "app:1", "-o", `${d}/twice.tar`]);
  await sh("mkdir x && tar -C x -xf twice.tar", d);
  const manifest = JSON.parse(await Deno.readTextFile(`${d}/x/manifest.json`));
  assert.equal(manifest.length, 1);
  assert.deepEqual(manifest[0].RepoTags, ["app:1"]);

  // diff -o - is standard output, as tar -f - is.
  const viaDash = await layerfs([...g, "diff", "base", "-o", "-"]);
  assert.equal(viaDash.code, 0, viaDash.stderr);
  assert.deepEqual(
    viaDash.bytes,
    (await layerfs([...g, "diff", "base"])).bytes,
  );
  assert.ok(!(await names(d)).includes("-"));
});

Deno.test("cli diff -o: killed (SIGKILL) in the middle, it leaves no file and no temp", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  // Random bytes gzip slowly: the export runs long enough to be caught.
  await sh(
    "mkdir -p big && head -c 48000000 /dev/urandom > big/blob && tar -C big -cf big.tar . && rm -r big",
    d,
  );
  await ok(["apply", "big", `${d}/big.tar`]);
  await Deno.remove(`${d}/big.tar`);
  const out = `${d}/out`;
  await Deno.mkdir(out);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...g, "diff", "big", "-o", `${out}/big.tar.gz`]
      .concat("--compress", "gzip"),
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Its output is open (an unnamed file in `out`) once /proc shows it.
  let open = false;
  while (!open) {
    const fds = await names(`/proc/${child.pid}/fd`);
    for (const fd of fds) {
      const link = await Deno.readLink(`/proc/${child.pid}/fd/${fd}`).catch(
        () => "",
      );
      if (link.startsWith(`${out}/`)) open = true;
    }
    if (!open) await new Promise((r) => setTimeout(r, 5));
  }
  child.kill("SIGKILL");
  assert.equal((await child.status).signal, "SIGKILL");
  assert.deepEqual(await names(out), []);
});

Deno.test("cli apply: SIGINT or SIGTERM while it reads stops it with one line; no staging or layer is left", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g } = await store(d);
  await sh(
    "mkdir -p src && head -c 4000000 /dev/urandom > src/blob && tar -C src -cf t.tar .",
    d,
  );
  const head = (await Deno.readFile(`${d}/t.tar`)).subarray(0, 1 << 20);
  for (
    const [signal, code, json] of [
      ["SIGINT", 130, false],
      ["SIGTERM", 143, true],
    ] as const
  ) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        ...g,
        ...(json ? ["--json"] : []),
        "apply",
        "x",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    // Part of the tar, then nothing: the apply waits on standard input.
    const w = child.stdin.getWriter();
    await w.write(head);
    while ((await names(`${d}/store/staging`)).length === 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill(signal);
    const r = await child.output();
    await w.close().catch(() => {});
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, code, err);
    assert.equal(err, "layerfs: apply of x interrupted\n");
    if (json) {
      assert.deepEqual(JSON.parse(new TextDecoder().decode(r.stdout)).error, {
        name: "Interrupted",
        message: "apply of x interrupted",
        exitCode: 143,
      });
    }
    assert.deepEqual(await names(`${d}/store/staging`), []);
    assert.equal((await layerfs([...g, "exists", "x"])).code, 1);
  }
});

Deno.test("cli: a root that is a file, or under one, says so and what to do (not ENOTDIR from lstat)", async () => {
  await using tmp = await tempDir();
  const file = `${tmp.path}/somefile`;
  await Deno.writeTextFile(file, "x\n");
  const cases: [string, string[], RegExp][] = [
    [
      file,
      ["ls"],
      /^layerfs: No layerfs store at \S+\/somefile: it is not a directory; pass a store's directory as --root, or a new path and run "layerfs --root DIR init" there\n$/,
    ],
    [
      file,
      ["check"],
      /^layerfs: No layerfs store at \S+\/somefile: it is not a directory; /,
    ],
    [
      `${file}/sub`,
      ["ls"],
      /^layerfs: No layerfs store at \S+\/somefile\/sub: \S+\/somefile is not a directory; pass /,
    ],
    [
      `${file}/sub`,
      ["init"],
      /^layerfs: Cannot open a store at \S+\/somefile\/sub: \S+\/somefile is not a directory; give a directory, or a path that does not exist yet, as the root\n$/,
    ],
  ];
  for (const [root, args, re] of cases) {
    const r = await layerfs(["--root", root, "--backend", "vfs", ...args]);
    assert.equal(r.code, 1, `${root} ${args.join(" ")}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /os error|lstat/);
    const j = await layerfs(["--root", root, "--json", ...args]);
    assert.equal(JSON.parse(j.stdout).error.name, "StoreError");
  }
  assert.equal(await Deno.readTextFile(file), "x\n");
});

Deno.test("cli edges: --root= is refused, exists of a bad id is a usage error, a short non-tar says so, a typo'd root is not left behind", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g } = await store(d);
  const empty = await layerfs(["--root=", "ls"]);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /^layerfs: --root is empty; /);
  const bad = await layerfs([...g, "exists", "bad/id"]);
  assert.equal(bad.code, 2); // 1 means "absent"
  assert.match(bad.stderr, /^layerfs: Invalid layer id "bad\/id"/);
  await Deno.writeTextFile(`${d}/hello.txt`, "hello\n");
  const short = await layerfs([...g, "apply", "x", `${d}/hello.txt`]);
  assert.equal(short.code, 1);
  assert.match(
    short.stderr,
    /truncated: the input ends inside the first header: it is 6 bytes, shorter than one 512-byte tar header \(cut short, or not a tar at all\)/,
  );
  const typo = await layerfs([
    "--root",
    `${d}/typo`,
    "apply",
    "x",
    `${d}/hello.txt`,
  ]);
  assert.equal(typo.code, 1);
  assert.ok(!(await names(d)).includes("typo"), "the store it made is gone");
});

privilegedTest(
  "cli diff -o over an existing file keeps its owner and mode (umask aside); hard links keep the old content",
  async () => {
    await using tmp = await tempDir();
    const d = tmp.path;
    const { ok } = await store(d);
    await ok(["create", "base"]);
    const out = `${d}/out.tar`;
    await Deno.writeTextFile(out, "old");
    await Deno.chown(out, 65534, 65534);
    await Deno.chmod(out, 0o664);
    await Deno.link(out, `${d}/hard.tar`);
    await ok(["diff", "base", "-o", out]);
    const st = await Deno.stat(out);
    assert.deepEqual([st.uid, st.gid, st.mode! & 0o777], [65534, 65534, 0o664]);
    assert.equal(st.size, 1024); // the tar: two end blocks
    assert.equal(await Deno.readTextFile(`${d}/hard.tar`), "old");
  },
);

Deno.test("cli changes: a path with a newline or a backslash cannot forge a line (escaped as GNU tar does); --json is raw", async () => {
  await using tmp = await tempDir();
  const { ok } = await store(tmp.path);
  await ok(["create", "ctr", "--rw"]);
  const view = (await ok(["mount", "ctr"])).stdout.trim();
  await Deno.writeTextFile(`${view}/a\nD x`, "");
  await Deno.writeTextFile(`${view}/b\\c`, "");
  await ok(["umount", "ctr"]);
  assert.equal(
    (await ok(["changes", "ctr"])).stdout,
    "A /a\\nD x\nA /b\\\\c\n",
  );
  const doc = JSON.parse((await ok(["--json", "changes", "ctr"])).stdout);
  assert.deepEqual(doc.changes.map((c: { path: string }) => c.path), [
    "/a\nD x",
    "/b\\c",
  ]);
});

Deno.test("cli images: a name without a tag lists every tag of that repository; a tag, digest or id selects one image", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  const a = await imageDir(`${d}/a`, "test/app:1", "a");
  await imageDir(`${d}/b`, "test/app:2", "b");
  await ok(["load", `${d}/a`]);
  await ok(["load", `${d}/b`]);
  await ok(["load", `${d}/a`, "--tag", "other:1"]);
  await ok(["load", `${d}/b`, "--tag", "localhost/test/app:3"]);
  const refs = async (...args: string[]) =>
    JSON.parse((await ok(["--json", "images", ...args])).stdout).images.map(
      (i: { ref: string }) => i.ref,
    );
  // docker's reading of test/app (docker.io/test/app) comes first, as for a name.
  assert.deepEqual(await refs("test/app"), ["test/app:1", "test/app:2"]);
  assert.match(
    (await ok(["images", "test/app"])).stdout,
    /^REF +ID.*\ntest\/app:1 .*\ntest\/app:2 .*\n$/,
  );
  // podman's local reading: a loaded test/app:1 is localhost/test/app:1 too.
  assert.deepEqual(await refs("localhost/test/app"), [
    "localhost/test/app:3",
    "test/app:1",
    "test/app:2",
  ]);
  assert.deepEqual(await refs("other"), ["other:1"]);
  // An explicit tag or an id: that image, under each of its names.
  assert.deepEqual(await refs("test/app:1"), ["other:1", "test/app:1"]);
  assert.deepEqual(await refs(a.configHex.slice(0, 12)), [
    "other:1",
    "test/app:1",
  ]);
  const none = await layerfs([...g, "images", "test/nope"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^layerfs: No image "test\/nope"/);
});

Deno.test("cli images: an image's size is its layer tars' bytes, also when its layers were reused from the store", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { ok } = await store(d);
  const image = await imageDir(`${d}/oci`, "app:1", "a");
  const size = async () =>
    JSON.parse((await ok(["--json", "images"])).stdout).images[0].size;
  await ok(["load", `${d}/oci`]);
  const first = await size();
  assert.equal(first, image.layers[0].tar.length);
  // The container keeps the layer when the image goes; loading it again reuses it.
  await ok(["create", "ctr", "--rw", "--image", "app:1"]);
  await ok(["rmi", "--force", "app:1"]);
  await ok(["load", `${d}/oci`]);
  assert.equal(await size(), first);
});

privilegedTest(
  "cli overlay: a store root with a backslash mounts (overlayfs unescapes upperdir and workdir)",
  async () => {
    await using tmp = await tempDir();
    const root = `${tmp.path}/back\\slash`;
    const { ok } = await store(tmp.path, "overlay", root);
    await ok(["create", "base"]);
    await ok(["create", "ctr", "--rw", "--parent", "base"]);
    const view = (await ok(["mount", "ctr"])).stdout.trim();
    assert.equal(view, `${root}/mnt/ctr`);
    await Deno.writeTextFile(`${view}/x`, "hi\n");
    await ok(["umount", "ctr"]);
    assert.equal(await Deno.readTextFile(`${root}/diff/ctr/x`), "hi\n");
    assert.equal((await ok(["check"])).code, 0);
  },
);

for (const backend of ["vfs", "overlay"] as const) {
  const t = backend === "vfs" ? Deno.test : privilegedTest;
  t(
    `cli diff (${backend}): a file named .wh.* in a layer is refused, not exported as a whiteout`,
    async () => {
      await using tmp = await tempDir();
      const { g, ok } = await store(tmp.path, backend);
      await ok(["create", "base"]);
      await ok(["create", "ctr", "--rw", "--parent", "base"]);
      const view = (await ok(["mount", "ctr"])).stdout.trim();
      await Deno.mkdir(`${view}/etc`);
      await Deno.writeTextFile(`${view}/etc/fifo`, "kept\n");
      await Deno.writeTextFile(`${view}/etc/.wh.fifo`, "x\n");
      await ok(["umount", "ctr"]);
      const r = await layerfs([
        ...g,
        "diff",
        "ctr",
        "-o",
        `${tmp.path}/out.tar`,
      ]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        'layerfs: Cannot export "/etc/.wh.fifo": a file named .wh.* is read as a whiteout by every OCI layer reader (it would delete "fifo" where the layer is applied); rename it, then export again\n',
      );
      assert.ok(!(await names(tmp.path)).includes("out.tar"));
    },
  );
}

Deno.test("cli rmi: a container on a layer another image also has does not block removing this one", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  const base = buildLayer(await layerTar([{ name: "a", content: "a\n" }]));
  const top = buildLayer(await layerTar([{ name: "b", content: "b\n" }]));
  const baseImage = buildImage([base]);
  const appImage = buildImage([base, top]);
  await writeOciLayout(`${d}/oci`, [
    { image: baseImage, ref: "r/base:1" },
    { image: appImage, ref: "r/app:1" },
  ]);
  await ok(["load", `${d}/oci`]);
  await ok(["create", "ctr", "--rw", "--parent", appImage.chains[0]]);
  // ctr sits on the shared layer: it depends on r/base, not on r/app.
  const r = await ok(["rmi", "r/app:1"]);
  assert.match(r.stdout, /^Untagged: r\/app:1\nDeleted: sha256:/);
  const refused = await layerfs([...g, "rmi", "r/base:1"]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /Cannot remove image r\/base:1: layer "ctr" is built on it/,
  );
});

Deno.test("cli commit: a container that was mounted and committed leaves nothing check calls a leftover", async () => {
  await using tmp = await tempDir();
  const { g, ok } = await store(tmp.path);
  await ok(["create", "base"]);
  await ok(["create", "ctr", "--rw", "--parent", "base"]);
  await ok(["mount", "ctr"]);
  await ok(["umount", "ctr"]);
  await ok(["commit", "ctr", "app"]);
  const r = await layerfs([...g, "check"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(!(await names(`${tmp.path}/store/run/counts`)).includes("ctr"));
});

privilegedTest(
  "cli diff -o onto a bind-mounted file writes it in place (a rename onto a mount point cannot be made)",
  async () => {
    await using tmp = await tempDir();
    const d = tmp.path;
    const { ok } = await store(d);
    await ok(["create", "base"]);
    await Deno.writeTextFile(`${d}/real.tar`, "old");
    await Deno.writeTextFile(`${d}/out.tar`, "");
    await sh(`mount --bind real.tar out.tar`, d);
    try {
      await ok(["diff", "base", "-o", `${d}/out.tar`]);
      assert.equal((await Deno.stat(`${d}/real.tar`)).size, 1024);
    } finally {
      await sh(`umount out.tar`, d);
    }
  },
);

Deno.test("cli diff -o: a read-only file, or a directory that takes no new file, is refused before the export, saying so", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  const { g, ok } = await store(d);
  await ok(["create", "base"]);
  await Deno.writeTextFile(`${d}/ro.tar`, "old");
  await Deno.chmod(`${d}/ro.tar`, 0o444);
  const ro = await layerfs([...g, "diff", "base", "-o", `${d}/ro.tar`]);
  if (Deno.uid() === 0) {
    assert.equal(ro.code, 0, ro.stderr); // root writes any file, as a shell would
  } else {
    assert.equal(ro.code, 1);
    assert.match(ro.stderr, /: it is read-only \(mode 444\); make it writable/);
    assert.equal(await Deno.readTextFile(`${d}/ro.tar`), "old");
  }
  await Deno.mkdir(`${d}/locked`);
  await Deno.writeTextFile(`${d}/locked/out.tar`, "old");
  await Deno.chmod(`${d}/locked`, 0o555);
  try {
    const r = await layerfs([
      ...g,
      "diff",
      "base",
      "-o",
      `${d}/locked/out.tar`,
    ]);
    if (Deno.uid() === 0) assert.equal(r.code, 0, r.stderr);
    else {
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /its directory .*locked is not writable, and the file is written beside its name/,
      );
      assert.equal(await Deno.readTextFile(`${d}/locked/out.tar`), "old");
    }
  } finally {
    await Deno.chmod(`${d}/locked`, 0o755);
  }
});
