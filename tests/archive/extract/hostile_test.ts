/**
 * Hostile archives: each technique tries to write, chmod, chown or time a
 * canary outside the layer directory. The canary must come out byte-, mode-,
 * owner- and mtime-identical, and the result must be the documented one (an
 * InvalidArchive, or the entry contained inside the layer).
 */
import assert from "node:assert/strict";
import { applyTar } from "../../../src/archive/extract/apply_tar.ts";
import type { ExtractFormat } from "../../../src/archive/types.ts";
import { InvalidArchive } from "../../../src/errors.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { type E, statAt, tar } from "./_tar.ts";

interface World {
  /** The layer directory being extracted into. */
  layer: string;
  /** A directory outside the layer. */
  outside: string;
  /** A file in it. */
  canary: string;
}

function snapshot(w: World) {
  const st = statAt(w.canary);
  const dst = statAt(w.outside);
  return {
    bytes: [...Deno.readFileSync(w.canary)],
    canary: [
      st.mode,
      st.uid,
      st.gid,
      st.mtimeSec,
      st.mtimeNsec,
      st.nlink,
      st.ino,
    ],
    dir: [dst.mode, dst.uid, dst.gid, dst.mtimeSec, dst.mtimeNsec],
    list: [...Deno.readDirSync(w.outside)].map((e) => e.name).sort(),
  };
}

/** Runs `entries` against a fresh world; `prepare` may plant things in the layer first. */
async function hostile(
  entries: (w: World) => E[],
  expect: "InvalidArchive" | "ok",
  check?: (w: World) => void,
  opts: { format?: ExtractFormat; prepare?: (w: World) => void } = {},
): Promise<void> {
  await using d = await tempDir();
  const w: World = {
    layer: `${d.path}/layer`,
    outside: `${d.path}/outside`,
    canary: `${d.path}/outside/canary`,
  };
  Deno.mkdirSync(w.layer);
  Deno.mkdirSync(w.outside, { mode: 0o755 });
  Deno.writeTextFileSync(w.canary, "precious");
  Deno.chmodSync(w.canary, 0o640);
  Deno.chownSync(w.canary, 4321, 4322);
  Deno.utimeSync(w.canary, 1_000_000_000, 1_000_000_000);
  Deno.utimeSync(w.outside, 1_000_000_000, 1_000_000_000);
  opts.prepare?.(w);
  const before = snapshot(w);
  let err: unknown;
  try {
    await applyTar(w.layer, tar(entries(w)), { format: opts.format ?? "vfs" });
  } catch (e) {
    err = e;
  }
  assert.deepEqual(snapshot(w), before, "the canary outside the layer changed");
  if (expect === "InvalidArchive") {
    assert.ok(
      err instanceof InvalidArchive,
      `expected InvalidArchive, got ${err}`,
    );
  } else {
    assert.equal(err, undefined, `unexpected error: ${err}`);
  }
  check?.(w);
}

const evil = { body: "pwned", mode: 0o4777, uid: 0, gid: 0, mtime: 42 };
const read = (p: string) => Deno.readTextFileSync(p);
const isLink = (p: string) => (statAt(p).mode & 0o170000) === 0o120000;

privilegedTest(
  "hostile: ../ traversal is contained under the layer",
  async () => {
    await hostile(
      () => [{ name: "../outside/canary", ...evil }, {
        name: "a/../../../outside/canary2",
        ...evil,
      }],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}/outside/canary`), "pwned");
        assert.equal(read(`${w.layer}/outside/canary2`), "pwned");
      },
    );
  },
);

privilegedTest(
  "hostile: absolute names are taken relative to the layer",
  async () => {
    await hostile(
      (
        w,
      ) => [{ name: w.canary, ...evil }, {
        name: `${w.outside}/`,
        type: "dir",
        mode: 0o777,
        mtime: 5,
      }],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}${w.canary}`), "pwned");
        assert.equal(statAt(`${w.layer}${w.outside}`).mode, 0o040777);
      },
    );
  },
);

privilegedTest(
  "hostile: symlink to outside, then a file through it",
  async () => {
    await hostile((w) => [
      { name: "esc", type: "symlink", linkname: w.outside },
      { name: "esc/canary", ...evil },
    ], "InvalidArchive");
    await hostile(() => [
      { name: "esc", type: "symlink", linkname: "../outside" },
      { name: "esc/canary", ...evil },
    ], "InvalidArchive");
  },
);

privilegedTest(
  "hostile: symlink to an outside file, then write and chmod the same name",
  async () => {
    await hostile(
      (w) => [
        { name: "lnk", type: "symlink", linkname: w.canary },
        { name: "lnk", ...evil },
        { name: "lnk2", type: "symlink", linkname: "../outside/canary" },
        { name: "lnk2", type: "dir", mode: 0o777 },
      ],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}/lnk`), "pwned");
        assert.equal(statAt(`${w.layer}/lnk2`).mode, 0o040777);
      },
    );
  },
);

privilegedTest(
  "hostile: symlink parent directory resolves inside the layer",
  async () => {
    await hostile(
      (w) => [
        { name: `${w.outside.slice(1)}/`, type: "dir" }, // layer/<outside path> exists inside
        { name: "p", type: "symlink", linkname: w.outside },
        { name: "p/canary", ...evil },
        { name: "q", type: "symlink", linkname: "../../../../.." },
        { name: `q/${w.outside.slice(1)}/canary`, ...evil, body: "q" },
      ],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}${w.outside}/canary`), "q");
      },
    );
  },
);

privilegedTest(
  "hostile: symlink planted by a previous layer, then entries through it",
  async () => {
    const prepare = (w: World) => {
      Deno.symlinkSync(w.outside, `${w.layer}/prev`);
      Deno.symlinkSync("../outside/canary", `${w.layer}/prevfile`);
    };
    // Parent through the planted link: resolves to layer/<outside>, which does not exist.
    await hostile(
      () => [{ name: "prev/canary", ...evil }],
      "InvalidArchive",
      undefined,
      { prepare },
    );
    await hostile(
      () => [{ name: "prev/new/", type: "dir", mode: 0o777 }],
      "InvalidArchive",
      undefined,
      { prepare },
    );
    // Whiteouts and opaque markers through it are refused (and delete nothing
    // outside); the planted link stays as it was.
    for (const format of ["vfs", "overlay"] as const) {
      for (const name of ["prev/.wh.canary", "prev/.wh..wh..opq"]) {
        await hostile(
          () => [{ name, body: "" }],
          "InvalidArchive",
          (w) => assert.ok(isLink(`${w.layer}/prev`)),
          { prepare, format },
        );
      }
    }
    // Writing, linking or timing the planted file link replaces the link.
    await hostile(
      () => [
        { name: "prevfile", ...evil },
        { name: "h", type: "hardlink", linkname: "prevfile" },
      ],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}/h`), "pwned");
        assert.equal(statAt(`${w.layer}/h`).nlink, 2);
      },
      { prepare },
    );
    // A hardlink to the planted (not this tar's) link is refused.
    await hostile(
      () => [{ name: "h", type: "hardlink", linkname: "prevfile" }],
      "InvalidArchive",
      undefined,
      { prepare },
    );
  },
);

privilegedTest("hostile: hardlink to an outside file is refused", async () => {
  await hostile(
    (w) => [{ name: "h", type: "hardlink", linkname: w.canary }],
    "InvalidArchive",
  );
  await hostile(
    () => [{ name: "h", type: "hardlink", linkname: "../outside/canary" }],
    "InvalidArchive",
  );
  await hostile(
    () => [{
      name: "h",
      type: "hardlink",
      linkname: "../../../../../../etc/passwd",
    }],
    "InvalidArchive",
  );
});

privilegedTest(
  "hostile: hardlink to a symlink pointing outside, then chmod/chown/write",
  async () => {
    await hostile(
      (w) => [
        { name: "s", type: "symlink", linkname: w.canary },
        {
          name: "h",
          type: "hardlink",
          linkname: "s",
          mode: 0o777,
          uid: 99,
          gid: 99,
          mtime: 7,
        },
        { name: "h2", type: "hardlink", linkname: "s" },
        { name: "h2", ...evil },
      ],
      "ok",
      (w) => {
        assert.ok(isLink(`${w.layer}/h`));
        assert.equal(statAt(`${w.layer}/h`).ino, statAt(`${w.layer}/s`).ino);
        assert.equal(read(`${w.layer}/h2`), "pwned");
        assert.ok(isLink(`${w.layer}/s`));
      },
    );
  },
);

privilegedTest(
  "hostile: PAX path and linkpath overrides cannot escape",
  async () => {
    await hostile(
      () => [
        { name: "harmless", ...evil, pax: { path: "../outside/canary" } },
      ],
      "ok",
      (w) => assert.equal(read(`${w.layer}/outside/canary`), "pwned"),
    );
    await hostile((w) => [
      {
        name: "harmless",
        type: "hardlink",
        linkname: "x",
        pax: { linkpath: w.canary },
      },
    ], "InvalidArchive");
    await hostile(
      (w) => [
        {
          name: "x",
          type: "symlink",
          linkname: "x",
          pax: { path: "../../outside", linkpath: w.canary },
        },
        { name: "outside", ...evil },
      ],
      "ok",
      (w) => assert.equal(read(`${w.layer}/outside`), "pwned"),
    );
  },
);

privilegedTest("hostile: .wh. of '..' and '.' is refused", async () => {
  for (const format of ["vfs", "overlay", "aufs"] as const) {
    await hostile(
      () => [{ name: "sub/.wh..", body: "" }],
      "InvalidArchive",
      undefined,
      { format },
    );
    await hostile(
      () => [{ name: ".wh..", body: "" }],
      "InvalidArchive",
      undefined,
      { format },
    );
    await hostile(
      () => [{ name: "../.wh.outside", body: "" }],
      "ok",
      undefined,
      { format },
    );
  }
});

privilegedTest(
  "hostile: symlink entry metadata applies to the link, never its target",
  async () => {
    await hostile(
      (w) => [
        {
          name: "l",
          type: "symlink",
          linkname: w.canary,
          mode: 0o4777,
          uid: 77,
          gid: 78,
          mtime: 123,
          mtimeNsec: 9,
          xattrs: { "trusted.x": "1" },
        },
        {
          name: "d",
          type: "symlink",
          linkname: w.outside,
          mode: 0o777,
          uid: 77,
          gid: 78,
          mtime: 123,
        },
      ],
      "ok",
      (w) => {
        const st = statAt(`${w.layer}/l`);
        assert.deepEqual([st.uid, st.gid, st.mtimeSec, st.mtimeNsec], [
          77,
          78,
          123,
          9,
        ]);
      },
    );
    // Devices and FIFOs are chmodded without following a link either.
    await hostile(
      (w) => [
        { name: "f", type: "symlink", linkname: w.canary },
        { name: "f", type: "fifo", mode: 0o4666, uid: 5 },
      ],
      "ok",
      (w) => assert.equal(statAt(`${w.layer}/f`).mode, 0o014666),
    );
  },
);

privilegedTest(
  "hostile: replacing a dir with a symlink, then writing into the old path",
  async () => {
    await hostile((w) => [
      { name: "d/", type: "dir" },
      { name: "d/f", body: "inside" },
      { name: "d", type: "symlink", linkname: w.outside },
      { name: "d/canary", ...evil },
    ], "InvalidArchive");
    await hostile(
      () => [
        { name: "d/", type: "dir" },
        { name: "d/f", body: "inside" },
        { name: "real/", type: "dir" },
        { name: "d", type: "symlink", linkname: "/real" },
        { name: "d/g", ...evil },
        { name: "d/", type: "dir", mode: 0o700, mtime: 9 }, // replaces the link again, not its target
        { name: "d/h", body: "h" },
        { name: "x", type: "hardlink", linkname: "d/f" }, // d/f went with the old dir
      ],
      "InvalidArchive",
      (w) => {
        assert.equal(read(`${w.layer}/real/g`), "pwned");
        assert.equal(statAt(`${w.layer}/d`).mode & 0o170000, 0o040000);
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/d`)].map((e) => e.name),
          ["h"],
        );
      },
    );
  },
);

privilegedTest(
  "hostile: a file replacing a symlinked parent mid-archive drops cached dir fds",
  async () => {
    await hostile(
      (w) => [
        { name: "real/", type: "dir" },
        { name: "p", type: "symlink", linkname: "real" },
        { name: "p/a", body: "1" }, // caches "p" -> real
        { name: "p", type: "dir" },
        { name: "p/b", body: "2" }, // must land in the new dir p, not in real
        { name: "q", type: "symlink", linkname: w.outside },
      ],
      "ok",
      (w) => {
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/real`)].map((e) => e.name),
          ["a"],
        );
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/p`)].map((e) => e.name),
          ["b"],
        );
      },
    );
  },
);
