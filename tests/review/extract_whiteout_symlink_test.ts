/**
 * Review: whiteouts, opaque markers, aufs `.wh..wh.plnk` entries, replaced
 * directories and nodes over symlinks must never delete, empty, chmod or
 * write anything outside the target directory (every format). A whiteout or
 * opaque marker whose directory resolves through a symlink is refused with
 * InvalidArchive naming it; the rest is contained.
 */
import assert from "node:assert/strict";
import { applyTar } from "../../src/archive/extract/apply_tar.ts";
import type { ExtractFormat } from "../../src/archive/types.ts";
import { InvalidArchive } from "../../src/errors.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { type E, tar } from "../archive/extract/_tar.ts";

function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = Deno.lstatSync(p);
    out.push(
      `${p} ${st.mode} ${st.uid} ${st.gid} ${st.mtime?.getTime()} ${st.ino}`,
    );
    if (st.isFile) out.push(Deno.readTextFileSync(p));
    if (st.isDirectory) {
      for (const e of [...Deno.readDirSync(p)].map((e) => e.name).sort()) {
        walk(`${p}/${e}`);
      }
    }
  };
  walk(dir);
  return out;
}

/** The entry that must be refused, or null: the archive applies, contained. */
type Refused = string | null;

const cases: [string, ExtractFormat, Refused, (o: string) => E[]][] = [
  [
    "vfs whiteout through an absolute symlink parent",
    "vfs",
    "esc/.wh.canary",
    (o) => [
      { name: "esc", type: "symlink", linkname: o },
      { name: "esc/.wh.canary" },
    ],
  ],
  [
    "vfs whiteout through a ../ symlink parent",
    "vfs",
    "esc/.wh.canary",
    () => [
      { name: "esc", type: "symlink", linkname: "../outside" },
      { name: "esc/.wh.canary" },
      { name: "esc/.wh.sub" },
    ],
  ],
  [
    "vfs opaque marker through a symlink parent",
    "vfs",
    "esc/.wh..wh..opq",
    (o) => [
      { name: "esc", type: "symlink", linkname: `../../../../../..${o}` },
      { name: "esc/.wh..wh..opq" },
    ],
  ],
  [
    "vfs whiteout below a symlink grandparent",
    "vfs",
    "esc/sub/.wh.c2",
    (o) => [
      { name: "esc", type: "symlink", linkname: o },
      { name: "esc/sub/.wh.c2" },
    ],
  ],
  ["vfs opaque dir holding a symlink to outside", "vfs", null, (o) => [
    { name: "d/keep", body: "k" },
    { name: "d/s", type: "symlink", linkname: o },
    { name: ".wh..wh..opq" },
    { name: "d/.wh..wh..opq" },
  ]],
  ["vfs whiteout of a symlink to an outside dir", "vfs", null, (o) => [
    { name: "s", type: "symlink", linkname: o },
    { name: ".wh.s" },
  ]],
  [
    "overlay opaque through a symlink parent",
    "overlay",
    "esc/.wh..wh..opq",
    (o) => [
      { name: "esc", type: "symlink", linkname: o },
      { name: "esc/.wh..wh..opq" },
    ],
  ],
  [
    "overlay whiteout through a symlink parent",
    "overlay",
    "esc/.wh.canary",
    (o) => [
      { name: "esc", type: "symlink", linkname: o },
      { name: "esc/.wh.canary" },
    ],
  ],
  [
    "aufs whiteout file through a symlink parent",
    "aufs",
    "esc/.wh.canary",
    (o) => [
      { name: "esc", type: "symlink", linkname: o },
      { name: "esc/.wh.canary" },
    ],
  ],
  [
    "aufs opaque marker through a symlink parent",
    "aufs",
    "esc/.wh..wh..opq",
    (o) => [
      { name: "esc", type: "symlink", linkname: o },
      { name: "esc/.wh..wh..opq" },
    ],
  ],
  [
    "overlay whiteout replacing a symlink to outside",
    "overlay",
    null,
    (o) => [
      { name: "s", type: "symlink", linkname: `${o}/canary` },
      { name: ".wh.s" },
    ],
  ],
  ["aufs plnk dir that is a symlink to outside", "aufs", null, (o) => [
    { name: ".wh..wh.plnk", type: "symlink", linkname: o },
    { name: ".wh..wh.plnk/canary", body: "x", mode: 0o777 },
  ]],
  ["vfs plnk dir that is a symlink to outside", "vfs", null, (o) => [
    { name: ".wh..wh.plnk", type: "symlink", linkname: o },
    { name: ".wh..wh.plnk/canary", body: "x", mode: 0o777 },
  ]],
  [
    "dir header, then the dir replaced by a symlink to outside",
    "vfs",
    null,
    (o) => [
      { name: "d", type: "dir", mode: 0o777, mtime: 5 },
      { name: "d", type: "symlink", linkname: o },
    ],
  ],
  ["fifo and device over symlinks to outside", "vfs", null, (o) => [
    { name: "f", type: "symlink", linkname: `${o}/canary` },
    { name: "f", type: "fifo", mode: 0o777, mtime: 5 },
    { name: "c", type: "symlink", linkname: `${o}/canary` },
    { name: "c", type: "char", mode: 0o777, devmajor: 1, devminor: 3, uid: 7 },
  ]],
];

for (const [name, format, refused, entries] of cases) {
  privilegedTest(
    `review: ${name} ${refused === null ? "stays inside" : "is refused"}`,
    async () => {
      await using d = await tempDir();
      const layer = `${d.path}/layer`;
      const outside = `${d.path}/outside`;
      Deno.mkdirSync(layer);
      Deno.mkdirSync(`${outside}/sub`, { recursive: true });
      Deno.writeTextFileSync(`${outside}/canary`, "precious");
      Deno.writeTextFileSync(`${outside}/sub/c2`, "precious too");
      Deno.chmodSync(`${outside}/canary`, 0o640);
      Deno.utimeSync(outside, 1_000_000_000, 1_000_000_000);
      const before = snapshot(outside);
      const result = applyTar(layer, tar(entries(outside)), { format });
      if (refused === null) {
        await result.catch(() => {
          // Refusing the archive is fine; touching the outside is not.
        });
      } else {
        await assert.rejects(
          result,
          (e: unknown) => e instanceof InvalidArchive && e.entry === refused,
        );
      }
      assert.deepEqual(snapshot(outside), before);
    },
  );
}
