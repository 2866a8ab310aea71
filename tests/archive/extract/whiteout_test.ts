import assert from "node:assert/strict";
import { applyTar } from "../../../src/archive/extract/apply_tar.ts";
import { applyLayerTar } from "../../../src/archive/layer.ts";
import { InvalidArchive } from "../../../src/errors.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { type E, statAt, tar, xattrs } from "./_tar.ts";

const exists = (p: string) => {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

const layer = tar([
  { name: "etc/", type: "dir" },
  { name: "etc/.wh.passwd", body: "" },
  { name: "etc/keep", body: "k" },
  { name: "opq/", type: "dir", mode: 0o750 },
  { name: "opq/.wh..wh..opq", body: "" },
  { name: "opq/new", body: "new" },
  { name: "late/", type: "dir" },
  { name: "late/mine", body: "m" },
  { name: "late/.wh..wh..opq", body: "" }, // marker after this tar's own entries
  { name: ".wh.gone", body: "" },
  { name: ".wh..wh.plnk", type: "dir" }, // aufs internals
  { name: ".wh..wh.plnk/123.456", body: "aufs" },
  { name: ".wh..wh.aufs", body: "" },
]);

privilegedTest(
  "whiteouts, overlay: 0/0 char devices and trusted.overlay.opaque",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    const size = await applyLayerTar({
      dir: d.path,
      format: "overlay",
      parentDirs: [],
    }, layer);
    assert.equal(size, 1 + 3 + 1);
    for (const w of ["etc/passwd", "gone"]) {
      const st = statAt(p(w));
      assert.deepEqual([st.mode & 0o170000, st.rdevMajor, st.rdevMinor], [
        0o020000,
        0,
        0,
      ], w);
    }
    assert.equal((await xattrs(p("opq")))["trusted.overlay.opaque"], "79");
    assert.equal((await xattrs(p("late")))["trusted.overlay.opaque"], "79");
    assert.equal(statAt(p("opq")).mode, 0o040750);
    assert.equal(Deno.readTextFileSync(p("opq/new")), "new");
    assert.equal(Deno.readTextFileSync(p("late/mine")), "m");
    assert.equal((await xattrs(p("etc")))["trusted.overlay.opaque"], undefined);
    for (
      const n of [
        ".wh.gone",
        "etc/.wh.passwd",
        "opq/.wh..wh..opq",
        ".wh..wh.plnk",
        ".wh..wh.aufs",
      ]
    ) {
      assert.ok(!exists(p(n)), n);
    }
  },
);

privilegedTest(
  "whiteouts, overlay: a tar's own 0:0 character device is refused (it would be a whiteout); vfs, aufs and none keep it",
  async () => {
    const withZeroDevice = tar([
      { name: "dev/", type: "dir" },
      { name: "dev/null0", type: "char", devmajor: 0, devminor: 0 },
      { name: "dev/tty0", type: "char", devmajor: 4, devminor: 0 },
    ]);
    {
      await using d = await tempDir();
      await assert.rejects(
        applyTar(d.path, withZeroDevice, { format: "overlay" }),
        (e: unknown) =>
          e instanceof InvalidArchive && e.entry === "dev/null0" &&
          e.reason.startsWith(
            "a character device 0:0 is how overlay marks a deletion",
          ),
      );
      assert.ok(!exists(`${d.path}/dev/null0`));
    }
    for (const format of ["vfs", "aufs", "none"] as const) {
      await using d = await tempDir();
      await applyTar(d.path, withZeroDevice, { format });
      const st = statAt(`${d.path}/dev/null0`);
      assert.deepEqual(
        [st.mode & 0o170000, st.rdevMajor, st.rdevMinor],
        [0o020000, 0, 0],
        format,
      );
    }
  },
);

privilegedTest(
  "whiteouts, overlay: a whiteout keeps an earlier dir of the same tar (opaque); opaque without a dir entry",
  async () => {
    await using d = await tempDir();
    await applyTar(
      d.path,
      tar([
        { name: "x/y/f", body: "1" },
        { name: "x/.wh.y", body: "" },
        { name: "z/.wh..wh..opq", body: "" },
      ]),
      { format: "overlay" },
    );
    assert.equal(Deno.readTextFileSync(`${d.path}/x/y/f`), "1");
    assert.equal(
      (await xattrs(`${d.path}/x/y`))["trusted.overlay.opaque"],
      "79",
    );
    assert.equal((await xattrs(`${d.path}/z`))["trusted.overlay.opaque"], "79");
    await applyTar(d.path, tar([{ name: "u/.wh..wh..opq", body: "" }]), {
      format: "overlay",
      userXattr: true,
    });
    assert.equal((await xattrs(`${d.path}/u`))["user.overlay.opaque"], "79");
  },
);

privilegedTest(
  "whiteouts, aufs: .wh. files kept as they are, aufs internals skipped",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    await applyLayerTar({ dir: d.path, format: "aufs", parentDirs: [] }, layer);
    for (
      const n of [
        "etc/.wh.passwd",
        ".wh.gone",
        "opq/.wh..wh..opq",
        "late/.wh..wh..opq",
      ]
    ) {
      assert.equal(statAt(p(n)).mode & 0o170000, 0o100000, n);
    }
    assert.ok(!exists(p(".wh..wh.plnk")));
    assert.ok(!exists(p(".wh..wh.aufs")));
    assert.ok(!exists(p("etc/passwd")));
    assert.deepEqual(await xattrs(p("opq")), {});
  },
);

privilegedTest(
  "whiteouts, vfs: deletions from the parent's copy, opaque keeps only this tar's entries",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    // The parent's full copy.
    for (const dir of ["etc", "opq/sub/deeper", "late", "gone/x"]) {
      Deno.mkdirSync(p(dir), { recursive: true });
    }
    for (
      const f of [
        "etc/passwd",
        "etc/group",
        "opq/old",
        "opq/sub/deeper/f",
        "late/old",
        "gone/x/y",
      ]
    ) {
      Deno.writeTextFileSync(p(f), "old");
    }
    Deno.symlinkSync("/etc", p("opq/link"));
    await applyLayerTar({ dir: d.path, format: "vfs", parentDirs: [] }, layer);
    assert.ok(!exists(p("etc/passwd")));
    assert.ok(exists(p("etc/group")));
    assert.ok(!exists(p("gone")));
    assert.deepEqual([...Deno.readDirSync(p("opq"))].map((e) => e.name), [
      "new",
    ]);
    assert.deepEqual([...Deno.readDirSync(p("late"))].map((e) => e.name), [
      "mine",
    ]);
    for (
      const n of [
        ".wh.gone",
        "etc/.wh.passwd",
        "opq/.wh..wh..opq",
        ".wh..wh.plnk",
      ]
    ) assert.ok(!exists(p(n)), n);
    // A whiteout of something absent, or under a missing dir, is a no-op.
    await applyTar(
      d.path,
      tar([{ name: "nothere/.wh.x", body: "" }, {
        name: ".wh.nope",
        body: "",
      }]),
    );
    assert.ok(!exists(p("nothere")));
  },
);

privilegedTest(
  "whiteouts, vfs: opaque keeps a merged dir of this tar but empties its old content",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    Deno.mkdirSync(p("o/kept"), { recursive: true });
    Deno.writeTextFileSync(p("o/kept/old"), "old");
    Deno.writeTextFileSync(p("o/other"), "old");
    await applyTar(
      d.path,
      tar([
        { name: "o/kept/", type: "dir" },
        { name: "o/kept/new", body: "n" },
        { name: "o/.wh..wh..opq", body: "" },
      ]),
    );
    assert.deepEqual([...Deno.readDirSync(p("o"))].map((e) => e.name), [
      "kept",
    ]);
    assert.deepEqual([...Deno.readDirSync(p("o/kept"))].map((e) => e.name), [
      "new",
    ]);
  },
);

privilegedTest(
  "whiteouts: .wh. with an empty, '.' or '..' name is refused in every format",
  async () => {
    for (const format of ["overlay", "aufs", "vfs"] as const) {
      for (const name of ["a/.wh.", "a/.wh..", "a/.wh...", ".wh..", ".wh..."]) {
        await using d = await tempDir();
        Deno.mkdirSync(`${d.path}/a`);
        Deno.writeTextFileSync(`${d.path}/a/f`, "f");
        await assert.rejects(
          applyTar(d.path, tar([{ name, body: "" }]), { format }),
          (e: unknown) => e instanceof InvalidArchive && e.entry === name,
          `${format} ${name}`,
        );
        assert.equal(Deno.readTextFileSync(`${d.path}/a/f`), "f");
      }
    }
  },
);

privilegedTest("whiteouts, none: .wh. entries are plain files", async () => {
  await using d = await tempDir();
  await applyTar(
    d.path,
    tar([{ name: ".wh..wh.plnk", body: "p" }, { name: "a/.wh.b", body: "" }]),
    { format: "none" },
  );
  assert.equal(Deno.readTextFileSync(`${d.path}/.wh..wh.plnk`), "p");
  assert.ok(exists(`${d.path}/a/.wh.b`));
});

privilegedTest(
  "whiteouts: hardlinks into aufs's .wh..wh.plnk resolve, the pool itself is removed",
  async () => {
    await using d = await tempDir();
    const size = await applyTar(
      d.path,
      tar([
        { name: ".wh..wh.plnk/", type: "dir" },
        { name: ".wh..wh.plnk/262.1234", body: "pooled" },
        { name: "bin/x", type: "hardlink", linkname: ".wh..wh.plnk/262.1234" },
      ]),
      { format: "overlay" },
    );
    assert.equal(Deno.readTextFileSync(`${d.path}/bin/x`), "pooled");
    assert.ok(!exists(`${d.path}/.wh..wh.plnk`));
    assert.equal(size, 6);
  },
);

privilegedTest(
  "whiteouts: a whiteout or opaque marker whose directory resolves through a symlink is refused, in the tar or in the layer dir",
  async () => {
    // `real/` is what the symlinks point to, inside the layer: the marker
    // must not delete, empty or mark it either.
    const markers = [
      "link/.wh.f",
      "link/.wh..wh..opq",
      "link/sub/.wh.g",
      "link/sub/.wh..wh..opq",
    ];
    for (const format of ["overlay", "aufs", "vfs"] as const) {
      for (const where of ["tar", "layer dir"] as const) {
        for (const name of markers) {
          await using d = await tempDir();
          const p = (s: string) => `${d.path}/${s}`;
          Deno.mkdirSync(p("real/sub"), { recursive: true });
          Deno.writeTextFileSync(p("real/f"), "f");
          Deno.writeTextFileSync(p("real/sub/g"), "g");
          const link: E = { name: "link", type: "symlink", linkname: "real" };
          const entries: E[] = where === "tar"
            ? [link, { name, body: "" }]
            : [{ name, body: "" }];
          if (where === "layer dir") Deno.symlinkSync("real", p("link"));
          await assert.rejects(
            applyLayerTar(
              { dir: d.path, format, parentDirs: [] },
              tar(entries),
            ),
            (e: unknown) =>
              e instanceof InvalidArchive && e.entry === name &&
              e.message.includes("symlink"),
            `${format}, ${where}: ${name}`,
          );
          const what = `${format}, ${where}: ${name}`;
          assert.deepEqual(
            [...Deno.readDirSync(p("real"))].map((e) => e.name).sort(),
            ["f", "sub"],
            what,
          );
          assert.deepEqual(
            [...Deno.readDirSync(p("real/sub"))].map((e) => e.name),
            ["g"],
            what,
          );
          assert.deepEqual(await xattrs(p("real")), {}, what);
          assert.deepEqual(await xattrs(p("real/sub")), {}, what);
        }
      }
    }
  },
);

privilegedTest(
  "whiteouts: a symlink elsewhere in the layer does not stop a whiteout in a real directory",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    Deno.mkdirSync(p("real"));
    Deno.writeTextFileSync(p("real/f"), "f");
    Deno.symlinkSync("real", p("link"));
    await applyLayerTar(
      { dir: d.path, format: "vfs", parentDirs: [] },
      tar([{ name: "real/.wh.f", body: "" }, { name: ".wh.link", body: "" }]),
    );
    assert.ok(!exists(p("real/f")));
    assert.ok(!exists(p("link")));
  },
);

/**
 * A whiteout and entries of the same tar, in both orders (OCI image-spec,
 * layer.md: a whiteout applies only to the parent layers' resources).
 */
const sameLayer = tar([
  { name: "y", body: "mine" },
  { name: ".wh.y", body: "" }, // a file of this tar: stays
  { name: "hl", type: "hardlink", linkname: "y" },
  { name: ".wh.hl", body: "" },
  { name: "s", type: "symlink", linkname: "y" },
  { name: ".wh.s", body: "" },
  { name: "d/", type: "dir", mode: 0o755 },
  { name: "d/x", body: "x" },
  { name: ".wh.d", body: "" }, // a dir of this tar: stays, opaque
  { name: "i/x", body: "x" },
  { name: ".wh.i", body: "" }, // a dir the tar only implies: the same
  { name: ".wh.z", body: "" },
  { name: "z", body: "new" }, // replaces the whiteout
  { name: ".wh.e", body: "" },
  { name: "e/", type: "dir", mode: 0o755 },
  { name: "e/n", body: "n" }, // a dir over the whiteout: opaque
  { name: ".wh.f", body: "" },
  { name: "f/m", body: "m" }, // an implied dir over the whiteout: opaque
  { name: ".wh.gone", body: "" }, // the parents' only
]);

/** `dir`'s tree below it as "path kind", sorted. */
function tree(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (
    const e of [...Deno.readDirSync(dir + rel)].sort((a, b) =>
      a.name < b.name ? -1 : 1
    )
  ) {
    const p = `${rel}/${e.name}`;
    const st = statAt(dir + p);
    const kind = e.isDirectory
      ? "dir"
      : e.isSymlink
      ? "symlink"
      : e.isFile
      ? "file"
      : `dev ${st.rdevMajor}:${st.rdevMinor}`;
    out.push(`${p} ${kind}`);
    if (e.isDirectory) out.push(...tree(dir, p));
  }
  return out;
}

const OWN_VIEW = [
  "/d dir",
  "/d/x file",
  "/e dir",
  "/e/n file",
  "/f dir",
  "/f/m file",
  "/hl file",
  "/i dir",
  "/i/x file",
  "/s symlink",
  "/y file",
  "/z file",
];

for (const userXattr of [false, true]) {
  const opaque = userXattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
  privilegedTest(
    `whiteouts, overlay${
      userXattr ? " (userxattr)" : ""
    }: a whiteout keeps this tar's own entries in either order; its dirs are opaque (${opaque})`,
    async () => {
      await using d = await tempDir();
      const size = await applyLayerTar(
        { dir: d.path, format: "overlay", userXattr, parentDirs: [] },
        sameLayer,
      );
      assert.equal(size, "mine".length + 1 + 1 + "new".length + 1 + 1);
      assert.deepEqual(
        tree(d.path),
        [...OWN_VIEW, "/gone dev 0:0"].sort(),
      );
      assert.equal(Deno.readTextFileSync(`${d.path}/hl`), "mine");
      assert.equal(statAt(`${d.path}/hl`).nlink, 2);
      assert.equal(Deno.readTextFileSync(`${d.path}/z`), "new");
      for (const dir of ["d", "e", "f", "i"]) {
        assert.equal((await xattrs(`${d.path}/${dir}`))[opaque], "79", dir);
      }
      assert.equal(statAt(`${d.path}/d`).mode & 0o7777, 0o755);
    },
  );
}

privilegedTest(
  "whiteouts, vfs: a whiteout deletes only the parent's copy, in either order; this tar's dirs keep only its entries",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    // The parent's full copy, with something at every name.
    for (const n of ["d", "e", "f", "i"]) {
      Deno.mkdirSync(p(n));
      Deno.writeTextFileSync(p(`${n}/old`), "old");
    }
    for (const n of ["y", "hl", "s", "z", "gone", "keep"]) {
      Deno.writeTextFileSync(p(n), "parent");
    }
    const size = await applyLayerTar(
      { dir: d.path, format: "vfs", parentDirs: [] },
      sameLayer,
    );
    assert.equal(size, "mine".length + 1 + 1 + "new".length + 1 + 1);
    assert.deepEqual(tree(d.path), [...OWN_VIEW, "/keep file"].sort());
    assert.equal(Deno.readTextFileSync(p("y")), "mine");
    assert.equal(statAt(p("hl")).nlink, 2);
    assert.equal(Deno.readTextFileSync(p("z")), "new");
  },
);

privilegedTest(
  "whiteouts, vfs: a whiteout of the parent's symlink that this tar wrote through deletes the link, not the dir",
  async () => {
    await using d = await tempDir();
    const p = (s: string) => `${d.path}/${s}`;
    Deno.mkdirSync(p("real"));
    Deno.symlinkSync("real", p("link"));
    await applyLayerTar(
      { dir: d.path, format: "vfs", parentDirs: [] },
      tar([{ name: "link/k", body: "k" }, { name: ".wh.link", body: "" }]),
    );
    assert.ok(!exists(p("link")));
    assert.equal(Deno.readTextFileSync(p("real/k")), "k");
  },
);

privilegedTest(
  "whiteouts, overlay: a directory made through a symlink of the layer over its own whiteout is refused, saying why (vfs takes it)",
  async () => {
    const t = tar([
      { name: "e/", type: "dir" },
      { name: "s", type: "symlink", linkname: "e" },
      { name: "e/.wh.q", body: "" },
      { name: "s/q/", type: "dir" },
    ]);
    await using o = await tempDir();
    await assert.rejects(
      applyLayerTar({ dir: o.path, format: "overlay", parentDirs: [] }, t),
      (e) =>
        e instanceof InvalidArchive &&
        /the directory "s\/q" replaces a whiteout of this layer through a symlink/
          .test(e.message),
    );
    await using v = await tempDir();
    await applyLayerTar({ dir: v.path, format: "vfs", parentDirs: [] }, t);
    assert.equal(Deno.statSync(`${v.path}/e/q`).isDirectory, true);
  },
);
